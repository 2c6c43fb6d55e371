//! Purchase orders and shipment write-back against the K3Cloud simulator:
//! idempotent under retries, lost answers and lost sessions.

use std::str::FromStr;

use daifa_host::erp::kingdee::documents::{
    PoLine, PurchaseOrderSettings, WriteBack, ensure_purchase_order, write_back_shipment,
};
use daifa_host::erp::kingdee::{AuthMode, KingdeeClient, KingdeeConfig, KingdeeError};
use daifa_host::sim::kingdee::{KingdeeSim, KingdeeSimConfig};
use rust_decimal::Decimal;

fn client(sim: &KingdeeSim, auth: AuthMode) -> KingdeeClient {
    KingdeeClient::new(KingdeeConfig {
        server_url: sim.server_url(),
        credentials: sim.credentials(),
        auth,
        timeout_ms: 10_000,
    })
    .unwrap()
}

fn lines() -> Vec<PoLine> {
    vec![PoLine {
        material: "MAT00042".into(),
        quantity: Decimal::from(3),
        unit_price: Decimal::from_str("18.80").unwrap(),
        tax_rate: Decimal::from(13),
        note: "XSDD00100001 line 1".into(),
    }]
}

#[tokio::test]
async fn purchase_orders_are_created_once_whatever_goes_wrong() {
    let sim = KingdeeSim::start(KingdeeSimConfig::default(), 0).await.unwrap();
    let c = client(&sim, AuthMode::AppSecret);
    let s = PurchaseOrderSettings::default();

    let doc = ensure_purchase_order(&c, &s, "PO-1", "VEN001", &lines()).await.unwrap();
    assert!(doc.created && doc.number.starts_with("CGDD"));
    let again = ensure_purchase_order(&c, &s, "PO-1", "VEN001", &lines()).await.unwrap();
    assert_eq!((again.number.as_str(), again.created), (doc.number.as_str(), false), "a retry finds it");
    assert_eq!(sim.with(|s| s.purchase_orders[0]["FDocumentStatus"].clone()), "C", "submitted and audited");

    // The Save lands but its answer is lost: the caller retries, and the
    // retry finds the document instead of saving a second one.
    sim.with(|st| st.faults.lose_next_write_answers = 1);
    let err = ensure_purchase_order(&c, &s, "PO-2", "VEN001", &lines()).await.unwrap_err();
    assert!(err.is_transient(), "{err:?}");
    let doc2 = ensure_purchase_order(&c, &s, "PO-2", "VEN001", &lines()).await.unwrap();
    assert!(!doc2.created);

    // The session dies between the lookup and the Save: the Save is refused
    // (MsgCode 1), the client logs in again, looks again, then saves once.
    sim.with(|st| st.faults.expire_sessions_after = Some(st.authed_requests + 1));
    let doc3 = ensure_purchase_order(&c, &s, "PO-3", "VEN001", &lines()).await.unwrap();
    assert!(doc3.created);
    assert_eq!(sim.with(|st| st.faults.expire_sessions_after), None, "the fault fired");

    // A conflict (MsgCode 13) is transient; the retry succeeds.
    sim.with(|st| st.faults.conflict_next_writes = 1);
    let err = ensure_purchase_order(&c, &s, "PO-4", "VEN001", &lines()).await.unwrap_err();
    assert!(matches!(err, KingdeeError::Transient { code: 13, .. }), "{err:?}");
    ensure_purchase_order(&c, &s, "PO-4", "VEN001", &lines()).await.unwrap();

    // Bad data: a clear error naming the field, nothing created.
    let mut bad = lines();
    bad[0].quantity = Decimal::ZERO;
    let err = ensure_purchase_order(&c, &s, "PO-5", "VEN001", &bad).await.unwrap_err();
    assert!(matches!(&err, KingdeeError::Data { code: 11, field: Some(f), .. } if f == "FQty"), "{err:?}");

    let numbers: Vec<String> = sim
        .with(|st| st.purchase_orders.iter().map(|p| p["F_DAIFA_PoNo"].as_str().unwrap_or("").to_string()).collect());
    assert_eq!(numbers, vec!["PO-1", "PO-2", "PO-3", "PO-4"], "exactly one document per PO");
}

#[tokio::test]
async fn shipments_are_written_back_once() {
    let sim = KingdeeSim::start(KingdeeSimConfig::default(), 0).await.unwrap();
    let fids = sim.generate(2);
    let c = client(&sim, AuthMode::Signed);
    let bill = |fid: i64| format!("XSDD{fid:08}");

    let how = WriteBack::default();
    let doc = write_back_shipment(&c, &how, fids[0], &bill(fids[0]), "SF", "SF1234567890").await.unwrap();
    assert!(doc.created && doc.number.starts_with("XSCKD"));
    let again = write_back_shipment(&c, &how, fids[0], &bill(fids[0]), "SF", "SF1234567890").await.unwrap();
    assert_eq!((again.number, again.created), (doc.number.clone(), false));
    let out = sim.with(|s| s.outstocks.clone());
    assert_eq!(out.len(), 1);
    assert_eq!(out[0]["FCarriageNO"], "SF1234567890");
    assert_eq!(out[0]["FCarrierID"]["FNumber"], "SF");
    assert_eq!(out[0]["FSrcBillNo"], bill(fids[0]), "linked to the sales order by Push");
    assert_eq!(out[0]["FDocumentStatus"], "C");

    let how =
        WriteBack::FieldUpdate { carrier_field: "F_DAIFA_Carrier".into(), tracking_field: "F_DAIFA_TrackingNo".into() };
    write_back_shipment(&c, &how, fids[1], &bill(fids[1]), "YTO", "YT99887766").await.unwrap();
    let extra = sim.with(|s| s.sale_orders[1].extra.clone());
    assert_eq!(extra["F_DAIFA_TrackingNo"], "YT99887766");
}
