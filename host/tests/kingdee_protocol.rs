//! Wire-level behaviour of the K3Cloud simulator that real integrations
//! trip over: the three body shapes, the TopRowCount quirk, slow answers,
//! and ingestion when the ERP clock is off.

use std::sync::Arc;

use daifa_host::erp::kingdee::sign::signed_headers;
use daifa_host::erp::kingdee::{AuthMode, BillQuery, KingdeeClient, KingdeeConfig, KingdeeError};
use daifa_host::ingest::kingdee::{KingdeeIngestConfig, KingdeeIngester};
use daifa_host::sim::kingdee::{KingdeeSim, KingdeeSimConfig};
use daifa_host::store::{Store, StoreConfig};
use serde_json::{Value, json};

const QUERY: &str = "Kingdee.BOS.WebApi.ServicesStub.DynamicFormService.ExecuteBillQuery.common.kdsvc";

async fn raw(sim: &KingdeeSim, body: Value) -> Value {
    let url = format!("{}{QUERY}", sim.server_url());
    let mut req = reqwest::Client::new().post(&url).body(body.to_string());
    let ts = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    for (k, v) in signed_headers(&sim.credentials(), &url, ts, &daifa_host::erp::kingdee::sign::fresh_nonce()) {
        req = req.header(k, v);
    }
    req.send().await.unwrap().json().await.unwrap()
}

#[tokio::test]
async fn three_body_shapes_and_the_top_row_count_quirk() {
    let sim = KingdeeSim::start(KingdeeSimConfig::default(), 0).await.unwrap();
    sim.generate(10);
    let data = |start: i64, top: i64, limit: i64| {
        json!({ "FormId": "SAL_SaleOrder", "FieldKeys": "FID,FBillNo", "FilterString": "", "OrderString": "FID ASC",
                "TopRowCount": top, "StartRow": start, "Limit": limit })
    };
    // Python SDK shape.
    let a = raw(&sim, json!({ "data": data(0, 0, 4) })).await;
    // Java SDK shape: parameters with the data as a JSON string.
    let b = raw(&sim, json!({ "parameters": [data(0, 0, 4).to_string()] })).await;
    // .NET envelope: parameters itself a JSON string.
    let c = raw(
        &sim,
        json!({ "format": 1, "useragent": "ApiClient", "rid": "1", "v": "1.0", "timestamp": "2026-11-25T10:00:00",
                              "parameters": json!([data(0, 0, 4).to_string()]).to_string() }),
    )
    .await;
    assert_eq!(a.as_array().unwrap().len(), 4);
    assert_eq!(a, b);
    assert_eq!(a, c);
    // TopRowCount is an absolute end row: a "page size" of 4 from row 4 returns nothing.
    assert_eq!(raw(&sim, json!({ "data": data(4, 4, 4) })).await, json!([]));
    assert_eq!(raw(&sim, json!({ "data": data(4, 0, 4) })).await.as_array().unwrap().len(), 4);
    assert_eq!(raw(&sim, json!({ "data": data(2, 5, 10) })).await.as_array().unwrap().len(), 3, "rows 2..5");
    // Entry fields give one row per line; header fields alone, one per document.
    let lines: usize = sim.with(|s| s.sale_orders.iter().map(|o| o.lines.len()).sum());
    let per_line = raw(&sim, json!({ "data": { "FormId": "SAL_SaleOrder", "FieldKeys": "FID,FQty" } })).await;
    assert_eq!(per_line.as_array().unwrap().len(), lines);
    let per_doc = raw(&sim, json!({ "data": { "FormId": "SAL_SaleOrder", "FieldKeys": "FID,FBillNo" } })).await;
    assert_eq!(per_doc.as_array().unwrap().len(), 10);
    // Errors come back inside the array with HTTP 200.
    let err = raw(&sim, json!({ "data": { "FormId": "NO_SUCH_FORM", "FieldKeys": "FID" } })).await;
    assert_eq!(err[0][0]["Result"]["ResponseStatus"]["MsgCode"], 4);
    let err = raw(&sim, json!({ "data": { "FormId": "SAL_SaleOrder", "FieldKeys": "" } })).await;
    assert!(err[0][0]["Result"]["ResponseStatus"]["Errors"][0]["Message"].as_str().unwrap().contains("FieldKeys"));
}

#[tokio::test]
async fn slow_answers_are_transient_timeouts() {
    let sim = KingdeeSim::start(KingdeeSimConfig::default(), 0).await.unwrap();
    sim.with(|s| s.faults.slow_ms = 1_500);
    let client = KingdeeClient::new(KingdeeConfig {
        server_url: sim.server_url(),
        credentials: sim.credentials(),
        auth: AuthMode::Signed,
        timeout_ms: 300,
    })
    .unwrap();
    let q = BillQuery { form_id: "SAL_SaleOrder".into(), field_keys: "FID".into(), limit: 10, ..Default::default() };
    let err = client.execute_bill_query(&q).await.unwrap_err();
    assert!(matches!(err, KingdeeError::Transient { .. }), "{err:?}");
}

/// The ERP clock runs ahead of or behind ours by up to the configured skew:
/// edits made between scans are still caught.
#[tokio::test]
async fn clock_skew_within_the_allowance_loses_nothing() {
    for skew in [-100i64, 100] {
        let cfg = KingdeeSimConfig { clock_offset_secs: 8 * 3600 + skew, ..Default::default() };
        let sim = KingdeeSim::start(cfg, 0).await.unwrap();
        let fids = sim.generate(50);
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite:{}", dir.path().join("d.db").display());
        let store = Store::open(&StoreConfig { url, ..Default::default() }).await.unwrap();
        let client = Arc::new(
            KingdeeClient::new(KingdeeConfig {
                server_url: sim.server_url(),
                credentials: sim.credentials(),
                auth: AuthMode::Signed,
                timeout_ms: 10_000,
            })
            .unwrap(),
        );
        let ing = KingdeeIngester::new(
            client,
            store.clone(),
            KingdeeIngestConfig { max_clock_skew_secs: 120, overlap_secs: 5, ..Default::default() },
        );
        ing.scan().await.unwrap();
        sim.modify(fids[3], |o| o.lines[0].qty = "7".into());
        sim.generate(5);
        let r = ing.scan().await.unwrap();
        assert_eq!((r.outcome.updated, r.outcome.received), (1, 5), "skew {skew}: {r:?}");
        let o = store.order_by_external("kingdee", &fids[3].to_string()).await.unwrap().unwrap();
        assert_eq!(o.content.lines[0].quantity, 7.into());
    }
}
