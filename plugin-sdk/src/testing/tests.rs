use super::*;
use crate::http::Request;
use crate::{clock, config, kv};

fn panic_message(f: impl FnOnce()) -> String {
    let err = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).expect_err("expected a panic");
    err.downcast_ref::<String>()
        .cloned()
        .or_else(|| err.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_default()
}

#[test]
fn config_kv_clock_and_log_go_to_the_mock() {
    let host = MockHost::install();
    host.set_config("base_url", "https://x.example").kv_set("cursor", "7");
    assert_eq!(config::get("base_url").as_deref(), Some("https://x.example"));
    assert_eq!(config::get("missing"), None);
    assert_eq!(config::keys(), vec!["base_url".to_string()]);
    assert_eq!(host.config_reads(), vec!["base_url".to_string(), "missing".to_string()]);

    assert_eq!(kv::get_string("cursor").as_deref(), Some("7"));
    kv::set("token", "abc").unwrap();
    kv::delete("cursor").unwrap();
    assert_eq!(host.kv_keys(), vec!["token".to_string()]);
    host.fail_kv_writes(Some(KvError::QuotaExceeded("full".into())));
    assert!(matches!(kv::set("k", "v"), Err(crate::AdapterError::Misconfigured(_))));

    assert_eq!(clock::now_ms(), DEFAULT_NOW_MS);
    host.advance_ms(1500);
    assert_eq!(clock::now_ms(), DEFAULT_NOW_MS + 1500);

    crate::log::log(Level::Info, "hello", &[("po", "PO-1")]);
    crate::warn!("careful {}", 1);
    let logs = host.logs();
    assert_eq!(logs[0].fields, vec![("po".to_string(), "PO-1".to_string())]);
    host.assert_logged(Level::Warn, "careful 1");
}

#[test]
fn http_expectations_answer_in_order_and_record_requests() {
    let host = MockHost::install();
    host.expect(Method::Get, "https://x.example/a", Reply::text(200, "first"))
        .expect_prefix(Method::Get, "https://x.example/", Reply::status(503).header("Retry-After", "2"))
        .expect(Method::Get, "https://x.example/a", Reply::text(200, "second"))
        .expect(Method::Post, "https://x.example/b", Reply::error(HttpError::Timeout));

    assert_eq!(Request::get("https://x.example/a").send().unwrap().text(), "first");
    assert_eq!(Request::get("https://x.example/a").send().unwrap().status, 503, "the prefix was added before");
    assert_eq!(Request::get("https://x.example/a").send().unwrap().text(), "second");
    let err = Request::post("https://x.example/b").body("x").send().unwrap_err();
    assert!(matches!(err, crate::AdapterError::Transient(_)), "{err:?}");
    host.assert_http_done();

    let sent = host.requests();
    assert_eq!(sent.len(), 4);
    assert_eq!((sent[3].method, sent[3].body_text().as_str()), (Method::Post, "x"));
}

#[test]
fn unexpected_requests_and_leftovers_fail_clearly() {
    let host = MockHost::install();
    host.expect(Method::Post, "https://x.example/orders", Reply::status(201));
    let msg = panic_message(|| {
        let _ = Request::get("https://x.example/orders?x=1").send();
    });
    assert!(msg.contains("unexpected HTTP request GET https://x.example/orders?x=1"), "{msg}");
    assert!(msg.contains("POST https://x.example/orders → HTTP 201"), "{msg}");
    let msg = panic_message(|| host.assert_http_done());
    assert!(msg.contains("never sent") && msg.contains("POST https://x.example/orders"), "{msg}");
}

#[test]
fn a_dropped_mock_is_gone_and_install_starts_fresh() {
    {
        let host = MockHost::install();
        host.set_config("a", "1");
    }
    let msg = panic_message(|| {
        let _ = config::get("a");
    });
    assert!(msg.contains("MockHost::install()"), "{msg}");
    let _host = MockHost::install();
    assert_eq!(config::get("a"), None);
}

#[test]
fn sent_requests_decode_forms_and_queries() {
    let host = MockHost::install();
    host.expect_prefix(Method::Post, "https://x.example/t", Reply::status(200));
    let _ = Request::post("https://x.example/t?a=1&b=x+y").form(&[("k", "v w"), ("s", "&=")]).send();
    let r = host.last_request();
    assert_eq!(r.path_url(), "https://x.example/t");
    assert_eq!(r.query(), vec![("a".into(), "1".into()), ("b".into(), "x y".into())]);
    assert_eq!(r.body_form(), vec![("k".into(), "v w".into()), ("s".into(), "&=".into())]);
}

const MANIFEST: &str = r#"
name = "x"
[config.base_url]
description = "API"
required = true
[config.token]
secret = true
[config.page_size]
default = "100"
"#;

#[test]
fn manifest_checks_name_what_is_missing_or_different() {
    let mut keys = [
        ConfigKey { required: true, ..ConfigKey::new("base_url") },
        ConfigKey { secret: true, ..ConfigKey::new("token") },
        ConfigKey { default: Some("100"), ..ConfigKey::new("page_size") },
    ];
    assert_manifest_declares(MANIFEST, &keys);
    assert_manifest_declares_keys(MANIFEST, &["base_url", "token"]);

    keys[1].secret = false;
    keys[2].default = Some("50");
    let extra = [keys.as_slice(), &[ConfigKey::new("region")]].concat();
    let msg = panic_message(|| assert_manifest_declares(MANIFEST, &extra));
    assert!(msg.contains("`region` is read by the code but the manifest has no [config.region]"), "{msg}");
    assert!(msg.contains("`page_size`: default is Some(\"50\")"), "{msg}");
    assert!(!msg.contains("`token`"), "secret in the manifest only is fine: {msg}");
    let msg = panic_message(|| assert_manifest_declares_keys(MANIFEST, &["base_url", "region"]));
    assert!(msg.contains("`region`") && !msg.contains("`base_url`"), "{msg}");
}

#[test]
fn manifest_defaults_fill_unset_keys_only() {
    let host = MockHost::install();
    host.set_config("page_size", "7").apply_manifest_defaults(MANIFEST);
    assert_eq!(config::get("page_size").as_deref(), Some("7"));
    host.remove_config("page_size").apply_manifest_defaults(MANIFEST);
    assert_eq!(config::get("page_size").as_deref(), Some("100"));
    assert_eq!(config::get("token"), None);
}
