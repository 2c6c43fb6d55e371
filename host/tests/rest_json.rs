//! The rest-json reference adapter, as a real component in wasmtime, against
//! the supplier simulator over real HTTP on 127.0.0.1.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use common::*;
use daifa_host::plugins::bindings::{CallbackRequest, CancelOutcome, LineStatus, UpdateKind};
use daifa_host::plugins::{AdapterErrorKind, CallError, Registry};
use daifa_host::sim::rest_supplier::{SupplierSim, SupplierSimConfig};

async fn setup(sim_cfg: SupplierSimConfig, extra: &[(&str, &str)]) -> (SupplierSim, Registry) {
    let sim = SupplierSim::start(sim_cfg, 0).await.unwrap();
    let reg = registry().await;
    let pkg = rest_json_package();
    let base = sim.base_url();
    let mut cfg = config(&[("base_url", &base), ("api_token", "sim-token")]);
    for (k, v) in extra {
        cfg.insert(k.to_string(), v.to_string());
    }
    reg.install(&pkg, &cfg).await.unwrap();
    reg.activate("rest-json", &pkg.manifest.version).await.unwrap();
    (sim, reg)
}

#[tokio::test]
async fn full_order_lifecycle() {
    let mut sim_cfg = SupplierSimConfig::default();
    sim_cfg.stock.insert("SUP-SKU-0001".into(), 1); // line 1 wants 2: backordered
    let (sim, reg) = setup(sim_cfg, &[]).await;
    let p = reg.get("rest-json").unwrap();

    let info = p.describe().await.unwrap();
    assert_eq!(info.name, "rest-json");

    let mut po = order("PO-1", 3);
    po.lines[2].supplier_sku = "UNKNOWN-X".into();
    let receipt = p.submit_order(&po).await.unwrap();
    assert_eq!(receipt.supplier_ref, "SUP-000001");
    let status: HashMap<_, _> = receipt.lines.iter().map(|l| (l.line_id.as_str(), &l.status)).collect();
    assert_eq!(status["PO-1-0"], &LineStatus::Accepted);
    assert!(matches!(status["PO-1-1"], LineStatus::Backordered(_)));
    assert!(matches!(status["PO-1-2"], LineStatus::Rejected(r) if r.contains("UNKNOWN-X")));

    // A retry with the same idempotency key creates nothing new.
    let again = p.submit_order(&po).await.unwrap();
    assert_eq!(again.supplier_ref, "SUP-000001");
    assert_eq!(sim.order_count(), 1);

    let second = p.submit_order(&order("PO-2", 1)).await.unwrap();
    assert_eq!(second.supplier_ref, "SUP-000002");

    // Nothing shipped yet.
    let batch = p.poll_updates(None).await.unwrap();
    assert!(batch.updates.is_empty());
    assert_eq!(batch.next_cursor.as_deref(), Some("0"));

    // Cancel PO-2 before shipping; ship the rest.
    let out = p.cancel_order("PO-2", Some("SUP-000002"), "customer changed mind").await.unwrap();
    assert_eq!(out, CancelOutcome::Cancelled);
    assert_eq!(sim.ship_all(), 1);
    let out = p.cancel_order("PO-1", Some("SUP-000001"), "too late").await.unwrap();
    assert!(matches!(out, CancelOutcome::Refused(r) if r.contains("shipped")));

    let batch = p.poll_updates(Some("0")).await.unwrap();
    assert_eq!(batch.updates.len(), 2);
    assert!(matches!(&batch.updates[0].kind, UpdateKind::Cancelled(_)));
    assert_eq!(batch.updates[0].po_number, "PO-2");
    let UpdateKind::Shipped(parcels) = &batch.updates[1].kind else { panic!("{:?}", batch.updates[1]) };
    assert_eq!(batch.updates[1].po_number, "PO-1");
    assert_eq!(parcels[0].carrier, "SF");
    assert!(parcels[0].tracking_number.starts_with("SF"));
    assert_eq!(parcels[0].lines.len(), 1, "only the accepted line shipped");
    assert_eq!(parcels[0].lines[0].line_id, "PO-1-0");
    assert_eq!(batch.next_cursor.as_deref(), Some("2"));
    assert!(p.poll_updates(Some("2")).await.unwrap().updates.is_empty());

    let stock = p.query_stock(&["SUP-SKU-0001".into(), "SUP-SKU-0009".into()]).await.unwrap();
    assert_eq!(stock.len(), 2);
    assert_eq!(stock[0].available, 1);
    assert_eq!(stock[1].available, 1000);
}

#[tokio::test]
async fn supplier_errors_map_to_adapter_errors() {
    let (sim, reg) = setup(SupplierSimConfig::default(), &[]).await;
    let p = reg.get("rest-json").unwrap();

    sim.fail_next(1, 503);
    match p.submit_order(&order("PO-E1", 1)).await {
        Err(CallError::Adapter { error: AdapterErrorKind::Transient { retry_after, .. }, .. }) => {
            assert_eq!(retry_after, Some(Duration::from_secs(1)), "Retry-After is honoured");
        }
        other => panic!("503 must be transient: {other:?}"),
    }
    // The retry goes through and creates exactly one order.
    p.submit_order(&order("PO-E1", 1)).await.unwrap();
    assert_eq!(sim.order_count(), 1);

    let mut bad = order("PO-E2", 1);
    bad.ship_to.city = String::new();
    match p.submit_order(&bad).await {
        Err(CallError::Adapter { error: AdapterErrorKind::Rejected(m), .. }) => {
            assert!(m.contains("ship_to.city"), "{m}")
        }
        other => panic!("422 must be rejected: {other:?}"),
    }

    // Wrong token.
    let reg2 = registry().await;
    let pkg = rest_json_package();
    reg2.install(&pkg, &config(&[("base_url", &sim.base_url()), ("api_token", "wrong")])).await.unwrap();
    reg2.activate("rest-json", &pkg.manifest.version).await.unwrap();
    match reg2.get("rest-json").unwrap().submit_order(&order("PO-E3", 1)).await {
        Err(CallError::Adapter { error: AdapterErrorKind::Unauthorized(_), .. }) => {}
        other => panic!("401 must be unauthorized: {other:?}"),
    }

    // Nothing listening: a transport error is transient.
    let reg3 = registry().await;
    reg3.install(&pkg, &config(&[("base_url", "http://127.0.0.1:9")])).await.unwrap();
    reg3.activate("rest-json", &pkg.manifest.version).await.unwrap();
    match reg3.get("rest-json").unwrap().submit_order(&order("PO-E4", 1)).await {
        Err(CallError::Adapter { error: AdapterErrorKind::Transient { .. }, .. }) => {}
        other => panic!("connection refused must be transient: {other:?}"),
    }
}

#[tokio::test]
async fn field_and_status_mapping_from_config() {
    // A supplier with its own dialect: different key names and status words.
    let mut sim_cfg = SupplierSimConfig::default();
    for (ours, theirs) in [
        ("external_id", "outOrderNo"),
        ("items", "goods"),
        ("sku", "goodsCode"),
        ("qty", "num"),
        ("order_id", "orderNo"),
    ] {
        sim_cfg.field_names.insert(ours.into(), theirs.into());
    }
    sim_cfg.status_words.insert("accepted".into(), "SUCCESS".into());
    sim_cfg.status_words.insert("shipped".into(), "DELIVERED".into());
    let field_map =
        r#"{"external_id":"outOrderNo","items":"goods","sku":"goodsCode","qty":"num","order_id":"orderNo"}"#;
    let status_map = r#"{"SUCCESS":"accepted","DELIVERED":"shipped"}"#;
    let (sim, reg) = setup(sim_cfg, &[("field_map", field_map), ("status_map", status_map)]).await;
    let p = reg.get("rest-json").unwrap();
    let receipt = p.submit_order(&order("PO-M1", 2)).await.unwrap();
    assert_eq!(receipt.supplier_ref, "SUP-000001");
    assert!(receipt.lines.iter().all(|l| l.status == LineStatus::Accepted), "{receipt:?}");
    sim.ship_all();
    let batch = p.poll_updates(None).await.unwrap();
    assert!(matches!(&batch.updates[0].kind, UpdateKind::Shipped(p) if p[0].lines.len() == 2), "{batch:?}");

    // A status word nobody mapped is an error naming it, not a silent default.
    let (_sim2, reg2) = setup(
        {
            let mut c = SupplierSimConfig::default();
            c.status_words.insert("accepted".into(), "GOOD".into());
            c
        },
        &[],
    )
    .await;
    match reg2.get("rest-json").unwrap().submit_order(&order("PO-M2", 1)).await {
        Err(CallError::Adapter { error: AdapterErrorKind::Rejected(m), .. }) => assert!(m.contains("`GOOD`"), "{m}"),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn webhooks_are_authenticated_and_parsed() {
    let (_sim, reg) = setup(SupplierSimConfig::default(), &[("callback_token", "hook-secret")]).await;
    let p = reg.get("rest-json").unwrap();
    let body = serde_json::json!({
        "type": "shipped", "order_id": "SUP-9", "external_id": "PO-W1", "at": "2026-11-25T08:00:00+08:00",
        "packages": [{"carrier": "YTO", "tracking_no": "YT123456789", "items": [{"line_id": "PO-W1-0", "qty": 1}]}],
    });
    let mut req = CallbackRequest {
        method: "POST".into(),
        path: "/".into(),
        query: String::new(),
        headers: vec![("x-callback-token".into(), "hook-secret".into())],
        body: serde_json::to_vec(&body).unwrap(),
    };
    let res = p.handle_callback(&req).await.unwrap();
    assert_eq!(res.response_status, 200);
    assert_eq!(res.updates.len(), 1);
    assert_eq!(res.updates[0].supplier_ref.as_deref(), Some("SUP-9"));
    assert!(matches!(&res.updates[0].kind, UpdateKind::Shipped(p) if p[0].tracking_number == "YT123456789"));

    req.headers[0].1 = "guess".into();
    let res = p.handle_callback(&req).await.unwrap();
    assert_eq!(res.response_status, 401);
    assert!(res.updates.is_empty());
}
