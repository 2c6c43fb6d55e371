//! Native unit tests against the SDK's mock host:
//! `cargo test --manifest-path plugins/Cargo.toml -p rest-json`.

use daifa_plugin_sdk::prelude::*;
use daifa_plugin_sdk::testing::{MockHost, Reply, assert_manifest_declares, assert_manifest_declares_keys};
use http::Method;
use serde_json::json;

use super::{Config, RestJson};

const MANIFEST: &str = include_str!("../manifest.toml");
const BASE: &str = "https://api.supplier.example/v1";

/// A mock host configured as an operator would: base URL and token, the
/// rest from the manifest's defaults.
fn host(extra: &[(&str, &str)]) -> MockHost {
    let host = MockHost::install();
    host.set_config("base_url", &format!("{BASE}/")).set_config("api_token", "tok");
    for (k, v) in extra {
        host.set_config(k, v);
    }
    host.apply_manifest_defaults(MANIFEST);
    host
}

fn order() -> PurchaseOrder {
    PurchaseOrder {
        po_number: "PO-1".into(),
        idempotency_key: "idem-PO-1".into(),
        erp_refs: vec![ErpRef { system: "kingdee".into(), bill_no: "XSDD1".into(), bill_id: "100".into() }],
        lines: ["A", "B"]
            .iter()
            .enumerate()
            .map(|(i, sku)| OrderLine {
                line_id: format!("PO-1-{i}"),
                our_sku: format!("OUR-{sku}"),
                supplier_sku: format!("SUP-{sku}"),
                quantity: 2,
                unit_cost: "9.50".into(),
            })
            .collect(),
        ship_to: Address {
            name: "Li Lei".into(),
            phone: "13800000000".into(),
            province: "Zhejiang".into(),
            city: "Hangzhou".into(),
            district: "Xihu".into(),
            street: "1 Wenyi Rd".into(),
            postcode: "310000".into(),
            country: "CN".into(),
        },
        currency: "CNY".into(),
        requested_carrier: None,
        requested_service: None,
        remark: None,
    }
}

#[test]
fn submit_maps_fields_and_sends_the_idempotency_key() {
    let host = host(&[("field_map", r#"{"external_id":"outOrderNo","sku":"goodsCode","order_id":"orderNo"}"#)]);
    host.expect(
        Method::Post,
        &format!("{BASE}/orders"),
        Reply::json(
            201,
            &json!({ "orderNo": 42, "items": [
                { "line_id": "PO-1-0", "status": "accepted" },
                { "line_id": "PO-1-1", "status": "backordered", "eta": "2026-12-01T00:00:00Z" },
            ]}),
        ),
    );
    let receipt = RestJson::submit_order(order()).unwrap();
    host.assert_http_done();

    assert_eq!(receipt.supplier_ref, "42");
    assert_eq!(receipt.lines[0].status, LineStatus::Accepted);
    assert!(matches!(&receipt.lines[1].status, LineStatus::Backordered(Some(eta)) if eta.starts_with("2026-12-01")));

    let sent = host.last_request();
    assert_eq!(sent.header("idempotency-key"), Some("idem-PO-1"));
    assert_eq!(sent.header("authorization"), Some("Bearer tok"));
    let body = sent.body_json();
    assert_eq!(body["outOrderNo"], "PO-1", "field_map renames our keys: {body}");
    assert_eq!(body["items"][1]["goodsCode"], "SUP-B");
    assert_eq!(body["items"][1]["qty"], 2);
    assert_eq!(body["ship_to"]["address"], "1 Wenyi Rd");
}

#[test]
fn a_503_with_retry_after_is_transient_and_an_unreadable_2xx_is_not_a_rejection() {
    let host = host(&[]);
    let url = format!("{BASE}/orders");
    host.expect(Method::Post, &url, Reply::text(503, "busy").header("retry-after", "7"));
    match RestJson::submit_order(order()) {
        Err(AdapterError::Transient(RetryHint { retry_after_ms: Some(7000), message })) => {
            assert!(message.contains("503"), "{message}")
        }
        other => panic!("a 503 must be transient with retry_after_ms: {other:?}"),
    }

    // The supplier may have taken the order: retry (same key), never reroute.
    host.expect(Method::Post, &url, Reply::text(200, "<html>ok</html>"));
    assert!(matches!(RestJson::submit_order(order()), Err(AdapterError::Transient(_))));
    host.expect(Method::Post, &url, Reply::json(200, &json!({ "no_order_id": true })));
    assert!(matches!(RestJson::submit_order(order()), Err(AdapterError::Transient(_))));
}

#[test]
fn poll_maps_events_and_passes_the_cursor() {
    let host = host(&[("page_size", "2"), ("status_map", r#"{"DELIVERED":"shipped"}"#)]);
    host.expect_prefix(
        Method::Get,
        &format!("{BASE}/shipments?"),
        Reply::json(
            200,
            &json!({ "next": 17, "events": [
                { "external_id": "PO-1", "order_id": "S-1", "type": "DELIVERED", "at": "2026-11-30T01:00:00Z",
                  "packages": [{ "carrier": "SF", "tracking_no": "SF123", "items": [{ "line_id": "PO-1-0", "qty": 2 }] }] },
                { "external_id": "PO-2", "type": "cancelled", "reason": "out of stock" },
                { "external_id": "PO-3", "type": "mystery" },
            ]}),
        ),
    );
    let batch = RestJson::poll_updates(Some("a b&c".into())).unwrap();

    let sent = host.last_request();
    assert_eq!(sent.query(), [("since".to_string(), "a b&c".to_string()), ("limit".to_string(), "2".to_string())]);
    assert_eq!(batch.next_cursor.as_deref(), Some("17"));
    assert_eq!(batch.updates.len(), 2, "the unknown event type is skipped");
    let first = &batch.updates[0];
    assert_eq!((first.po_number.as_str(), first.supplier_ref.as_deref()), ("PO-1", Some("S-1")));
    match &first.kind {
        UpdateKind::Shipped(parcels) => {
            assert_eq!((parcels[0].carrier.as_str(), parcels[0].tracking_number.as_str()), ("SF", "SF123"));
            assert_eq!((parcels[0].lines[0].line_id.as_str(), parcels[0].lines[0].quantity), ("PO-1-0", 2));
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(&batch.updates[1].kind, UpdateKind::Cancelled(Some(r)) if r == "out of stock"));
    host.assert_logged(daifa_plugin_sdk::log::Level::Warn, "unknown type `mystery`");
}

fn callback(token: Option<&str>) -> CallbackRequest {
    let body = json!({ "external_id": "PO-1", "type": "shipped",
        "packages": [{ "carrier": "YTO", "tracking_no": "YT1", "items": [] }] });
    CallbackRequest {
        method: "POST".into(),
        path: "/events".into(),
        query: String::new(),
        headers: token.map(|t| vec![("X-Callback-Token".to_string(), t.to_string())]).unwrap_or_default(),
        body: serde_json::to_vec(&body).unwrap(),
    }
}

#[test]
fn callbacks_need_the_configured_token() {
    let _host = host(&[("callback_token", "s3cret")]);
    for bad in [None, Some("wrong")] {
        let res = RestJson::handle_callback(callback(bad)).unwrap();
        assert_eq!(res.response_status, 401);
        assert!(res.updates.is_empty());
    }
    let res = RestJson::handle_callback(callback(Some("s3cret"))).unwrap();
    assert_eq!(res.response_status, 200);
    assert!(matches!(&res.updates[0].kind, UpdateKind::Shipped(p) if p[0].tracking_number == "YT1"));
}

#[test]
fn the_manifest_declares_every_key_the_code_reads() {
    assert_manifest_declares(MANIFEST, Config::KEYS);

    // And every key an actual call read.
    let host = MockHost::install();
    host.set_config("base_url", BASE).apply_manifest_defaults(MANIFEST);
    host.expect_prefix(Method::Get, BASE, Reply::json(200, &json!({ "events": [] })));
    RestJson::poll_updates(None).unwrap();
    assert_manifest_declares_keys(MANIFEST, &host.config_reads());
}

#[test]
fn missing_base_url_is_misconfigured_naming_the_key() {
    let _host = MockHost::install();
    match RestJson::submit_order(order()) {
        Err(AdapterError::Misconfigured(m)) => assert!(m.contains("`base_url`"), "{m}"),
        other => panic!("{other:?}"),
    }
}
