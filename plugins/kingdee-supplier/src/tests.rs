//! The signature against the reference vector; the manifest against the code.

use daifa_plugin_sdk::testing::assert_manifest_declares;

use daifa_plugin_sdk::prelude::*;

use super::*;

#[test]
fn the_manifest_declares_every_key() {
    assert_manifest_declares(include_str!("../manifest.toml"), Config::KEYS);
}

/// The vector in shared/reference/kingdee-k3cloud-webapi.md, computed with
/// the official SDK's code.
#[test]
fn signs_as_the_official_sdk_does() {
    let k = K3 {
        server_url: String::new(),
        acct_id: "5db25ac8d2b819".into(),
        user_name: "webapi".into(),
        app_id: "204399_72epSbtEQMC92Vwt2d3LRa9LRqSc1tqJ".into(),
        app_secret: "fb7d46647ac346dbb5fcd45b65512a45".into(),
        lcid: "2052".into(),
        org_num: "0".into(),
    };
    let url = "http://erp.example.com/k3cloud/Kingdee.BOS.WebApi.ServicesStub.DynamicFormService.ExecuteBillQuery.common.kdsvc";
    assert_eq!(k3::decode_app_secret("72epSbtEQMC92Vwt2d3LRa9LRqSc1tqJ"), "31ecfd13effe724e7e78fc17f8f94b66");
    let h: std::collections::HashMap<_, _> = k.headers(url, 1_700_000_000, "1700000000").into_iter().collect();
    assert_eq!(
        h["X-Api-Signature"],
        "ZTJhY2RiZTYxNmFhZDMxN2MyZmU2ZTMxN2I0ZmFjZGE2ZGVlMTgyNTM4YzdkOTNlYzFlNzhmZGU1M2E4YTRmNg=="
    );
    assert_eq!(h["X-Kd-Appdata"], "NWRiMjVhYzhkMmI4MTksd2ViYXBpLDIwNTIsMA==");
    assert_eq!(
        h["X-Kd-Signature"],
        "OWQ2YWVhM2JmOGVlYWEzYjVlZGI0NzM3MjlmYzA4NTkyYjhiMTAwNTgxODk5MmQ5NWIxMzBjZTQxNjk5ZWFiYg=="
    );
}

fn host() -> daifa_plugin_sdk::testing::MockHost {
    let host = daifa_plugin_sdk::testing::MockHost::install();
    for (k, v) in [
        ("server_url", "https://erp.supplier.example/k3cloud/"),
        ("acct_id", "A1"),
        ("user_name", "u"),
        ("app_id", "204399_72epSbtEQMC92Vwt2d3LRa9LRqSc1tqJ"),
        ("app_secret", "fb7d46647ac346dbb5fcd45b65512a45"),
        ("customer", "DAIFA"),
    ] {
        host.set_config(k, v);
    }
    host.apply_manifest_defaults(include_str!("../manifest.toml"));
    host
}

const QUERY: &str = "https://erp.supplier.example/k3cloud/Kingdee.BOS.WebApi.ServicesStub.DynamicFormService.ExecuteBillQuery.common.kdsvc";

/// A sales order the supplier closes becomes a cancellation, once: the
/// next poll starts at the same instant and skips what it already read.
#[test]
fn a_closed_sales_order_cancels_our_po_once() {
    use daifa_plugin_sdk::testing::{Method, Reply};
    let host = host();
    let closed = serde_json::json!([["XSDD1", "PO-1", "A", "B", "2026-11-30T10:00:00"]]);
    host.expect(Method::Post, QUERY, Reply::json(200, &serde_json::json!([])));
    host.expect(Method::Post, QUERY, Reply::json(200, &closed));
    let batch = Adapter::poll_updates(None).unwrap();
    assert_eq!(batch.updates.len(), 1);
    assert_eq!(batch.updates[0].po_number, "PO-1");
    assert!(
        matches!(&batch.updates[0].kind, UpdateKind::Cancelled(Some(why)) if why.contains("closed its sales order XSDD1"))
    );
    let sent = host.requests();
    assert!(sent[1].body_text().contains("FCloseStatus = 'B'"), "{}", sent[1].body_text());
    assert!(sent[0].header("X-Kd-Signature").is_some(), "every call is signed");

    host.expect(Method::Post, QUERY, Reply::json(200, &serde_json::json!([])));
    host.expect(Method::Post, QUERY, Reply::json(200, &closed));
    let again = Adapter::poll_updates(batch.next_cursor).unwrap();
    assert!(again.updates.is_empty(), "read once: {:?}", again.updates);
    assert!(host.last_request().body_text().contains("FModifyDate >= '2026-11-30T10:00:00'"));
    host.assert_http_done();
}

/// A query error inside the answer's array is the K3Cloud error class.
#[test]
fn errors_map_to_what_the_host_should_do() {
    use daifa_plugin_sdk::testing::{Method, Reply};
    let host = host();
    let lost = serde_json::json!([[{ "Result": { "ResponseStatus": { "IsSuccess": false, "MsgCode": 1,
        "Errors": [{ "FieldName": "", "Message": "会话信息已丢失，请重新登录" }] } } }]]);
    host.expect(Method::Post, QUERY, Reply::json(200, &lost));
    match Adapter::poll_updates(None) {
        Err(AdapterError::Unauthorized(m)) => assert!(m.contains("MsgCode 1") && m.contains("会话信息已丢失"), "{m}"),
        other => panic!("{other:?}"),
    }
}
