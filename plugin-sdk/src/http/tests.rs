use super::*;
use crate::testing::{MockHost, Reply};
use crate::{AdapterError, RetryHint};

#[test]
fn form_encoding() {
    assert_eq!(encode_form(&[("a b", "x&y=z"), ("k", "中")]), "a+b=x%26y%3Dz&k=%E4%B8%AD");
}

#[test]
fn query_appends_encoded_pairs() {
    let q = |url: &str| Request::get(url).query(&[("since", "a&b c"), ("k", "中")]).url().to_string();
    assert_eq!(q("https://x.example/e"), "https://x.example/e?since=a%26b+c&k=%E4%B8%AD");
    assert_eq!(q("https://x.example/e?t=1"), "https://x.example/e?t=1&since=a%26b+c&k=%E4%B8%AD");
    assert_eq!(q("https://x.example/e?"), "https://x.example/e?since=a%26b+c&k=%E4%B8%AD");
    assert_eq!(q("https://x.example/e?t=1&"), "https://x.example/e?t=1&since=a%26b+c&k=%E4%B8%AD");
    assert_eq!(q("https://x.example/e#top"), "https://x.example/e?since=a%26b+c&k=%E4%B8%AD#top");
    let empty: &[(&str, &str)] = &[];
    assert_eq!(Request::get("https://x.example/e").query(empty).url(), "https://x.example/e");
    let owned = vec![("n".to_string(), 5.to_string())];
    assert_eq!(Request::get("https://x.example/e").query(&owned).url(), "https://x.example/e?n=5");
}

#[test]
fn set_header_replaces() {
    let r = Request::get("https://x.example").header("Authorization", "a").set_header("authorization", "b");
    assert_eq!(r.header_value("AUTHORIZATION"), Some("b"));
}

fn response(status: u16, body: &str) -> Response {
    Response { status, headers: vec![], body: body.as_bytes().to_vec() }
}

#[test]
fn unreadable_2xx_json_is_transient_but_other_statuses_are_rejected() {
    let err = response(201, "<html>").json::<serde_json::Value>().unwrap_err();
    match err {
        AdapterError::Transient(RetryHint { message, retry_after_ms: None }) => {
            assert!(message.contains("answered HTTP 201 but the body could not be read"), "{message}")
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(response(422, "<html>").json::<serde_json::Value>(), Err(AdapterError::Rejected(_))));
    let e: AdapterError = serde_json::from_str::<u32>("x").unwrap_err().into();
    assert!(matches!(e, AdapterError::Transient(_)), "{e:?}");
}

#[test]
fn error_statuses_map_to_adapter_errors() {
    let mut r = response(503, "busy");
    r.headers.push(("retry-after".into(), "3".into()));
    assert!(matches!(r.error_for_status(), Err(AdapterError::Transient(RetryHint { retry_after_ms: Some(3000), .. }))));
    assert!(matches!(response(401, "").error_for_status(), Err(AdapterError::Unauthorized(_))));
    assert!(matches!(response(404, "").error_for_status(), Err(AdapterError::Rejected(_))));
    assert!(response(204, "").error_for_status().is_ok());
}

const URL: &str = "https://x.example/stock";

#[test]
fn retry_retries_transport_errors_and_5xx_at_once() {
    let host = MockHost::install();
    host.expect(Method::Get, URL, Reply::error(HttpError::Transport("reset".into())))
        .expect(Method::Get, URL, Reply::status(502))
        .expect(Method::Get, URL, Reply::text(200, "ok"));
    let resp = send_with_retry(Request::get(URL), RetryPolicy::default()).unwrap();
    assert_eq!(resp.text(), "ok");
    host.assert_http_done();
    host.assert_logged(crate::log::Level::Debug, "retrying at once");
}

#[test]
fn retry_returns_the_wait_a_server_asks_for_to_the_host() {
    let host = MockHost::install();
    host.expect(Method::Get, URL, Reply::status(429).header("retry-after", "30"));
    match send_with_retry(Request::get(URL), RetryPolicy::default()) {
        Err(AdapterError::Transient(RetryHint { retry_after_ms: Some(30_000), .. })) => {}
        other => panic!("{other:?}"),
    }
    assert_eq!(host.requests().len(), 1, "no retry inside the call");

    // `Retry-After: 0` asks for no wait: retried at once.
    host.expect(Method::Get, URL, Reply::status(503).header("retry-after", "0")).expect(
        Method::Get,
        URL,
        Reply::status(200),
    );
    assert_eq!(send_with_retry(Request::get(URL), RetryPolicy::default()).unwrap().status, 200);
}

#[test]
fn retry_stops_at_the_attempt_limit_and_leaves_4xx_and_timeouts_alone() {
    let host = MockHost::install();
    for _ in 0..2 {
        host.expect(Method::Get, URL, Reply::status(500));
    }
    let policy = RetryPolicy { max_attempts: 2, ..RetryPolicy::default() };
    assert!(matches!(send_with_retry(Request::get(URL), policy), Err(AdapterError::Transient(_))));
    host.assert_http_done();

    host.expect(Method::Get, URL, Reply::status(404));
    assert_eq!(send_with_retry(Request::get(URL), policy).unwrap().status, 404, "the caller classifies 4xx");

    host.expect(Method::Get, URL, Reply::error(HttpError::Timeout));
    assert!(matches!(send_with_retry(Request::get(URL), policy), Err(AdapterError::Transient(_))));
    assert_eq!(host.requests().len(), 4, "a timeout is not retried by default");
}
