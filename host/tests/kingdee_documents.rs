//! Purchase orders and shipment write-back against the K3Cloud simulator:
//! idempotent under retries, lost answers and lost sessions.

use std::str::FromStr;

use daifa_host::erp::kingdee::documents::{
    PoDoc, PoLine, PoLink, PurchaseOrderSettings, ShipmentDoc, ShippedLine, WriteBack, ensure_purchase_order,
    ensure_purchase_orders, write_back_shipment, write_back_shipments,
};
use daifa_host::erp::kingdee::purchase_amend::{Amended, Synced, amend_purchase_orders, sync_purchase_orders};
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
        sale_entry: None,
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
    let doc = write_back_shipment(&c, &how, fids[0], &bill(fids[0]), &[], "SF", "SF1234567890").await.unwrap();
    assert!(doc.created && doc.number.starts_with("XSCKD"));
    let again = write_back_shipment(&c, &how, fids[0], &bill(fids[0]), &[], "SF", "SF1234567890").await.unwrap();
    assert_eq!((again.number, again.created), (doc.number.clone(), false));
    let out = sim.with(|s| s.outstocks.to_vec());
    assert_eq!(out.len(), 1);
    assert_eq!(out[0]["FCarriageNO"], "SF1234567890");
    assert_eq!(out[0]["FCarrierID"]["FNumber"], "SF");
    assert_eq!(out[0]["FEntity"][0]["FSrcBillNo"], bill(fids[0]), "linked to the sales order by Push");
    assert_eq!(out[0]["FEntity"][0]["FEntity_Link"][0]["FEntity_Link_FSBillId"], fids[0]);
    assert_eq!(out[0]["FDocumentStatus"], "C");

    // Everything shipped: pushed-quantity control refuses another copy.
    let err = write_back_shipment(&c, &how, fids[0], &bill(fids[0]), &[], "SF", "SF-OTHER").await.unwrap_err();
    assert!(matches!(&err, KingdeeError::Data { code: 11, message, .. } if message.contains("没有可下推")), "{err:?}");
}

fn entries(sim: &KingdeeSim, fid: i64) -> Vec<(i64, Decimal)> {
    sim.with(|s| {
        let o = s.sale_orders.iter().find(|o| o.fid == fid).unwrap();
        o.lines.iter().map(|l| (l.entry_id, l.qty.parse().unwrap())).collect()
    })
}

/// A split order: each supplier's shipment carries only its own lines, and
/// a partial quantity stays open in the ERP.
#[tokio::test]
async fn a_split_order_ships_each_line_once_and_partial_quantities_stay_open() {
    let sim = KingdeeSim::start(KingdeeSimConfig::default(), 0).await.unwrap();
    sim.generate(1);
    let fid = sim.with(|s| s.sale_orders[0].fid);
    sim.modify(fid, |o| {
        let proto = o.lines[0].clone();
        o.lines = (0..3)
            .map(|i| daifa_host::sim::kingdee::SimLine { entry_id: 700_000 + i, qty: "4".into(), ..proto.clone() })
            .collect();
    });
    let c = client(&sim, AuthMode::Signed);
    let how = WriteBack::default();
    let bill = format!("XSDD{fid:08}");
    let lines = entries(&sim, fid);
    let part = |i: usize, q: i64| ShippedLine { entry_id: lines[i].0, quantity: Decimal::from(q) };

    // Supplier A ships line 1 whole and 1 of line 2's 4; supplier B line 3.
    write_back_shipment(&c, &how, fid, &bill, &[part(0, 4), part(1, 1)], "SF", "SF-A").await.unwrap();
    write_back_shipment(&c, &how, fid, &bill, &[part(2, 4)], "YTO", "YT-B").await.unwrap();
    let shipped: Vec<String> =
        sim.with(|s| s.sale_orders[0].lines.iter().map(|l| l.stock_out_qty.normalize().to_string()).collect());
    assert_eq!(shipped, vec!["4", "1", "4"], "each line shipped once, line 2 in part");
    let out = sim.with(|s| s.outstocks.to_vec());
    assert_eq!(out.len(), 2);
    assert_eq!(out[0]["FEntity"].as_array().unwrap().len(), 2);
    assert_eq!(out[0]["FEntity"][1]["FRealQty"], 1.0);

    // Line 2's other 3 pieces ship later; a 4th push of them is refused.
    write_back_shipment(&c, &how, fid, &bill, &[part(1, 3)], "SF", "SF-A2").await.unwrap();
    let err = write_back_shipment(&c, &how, fid, &bill, &[part(1, 1)], "SF", "SF-A3").await.unwrap_err();
    assert!(matches!(err, KingdeeError::Data { code: 11, .. }), "{err:?}");

    // The answer to the Save after a Push is lost: the retry finishes the
    // pushed document instead of pushing a second one.
    sim.generate(1);
    let fid2 = sim.with(|s| s.sale_orders[1].fid);
    let bill2 = format!("XSDD{fid2:08}");
    let whole: Vec<ShippedLine> =
        entries(&sim, fid2).into_iter().map(|(entry_id, quantity)| ShippedLine { entry_id, quantity }).collect();
    sim.with(|s| s.faults.lose_next_write_answers = 1);
    let before = sim.with(|s| s.outstocks.len());
    assert!(write_back_shipment(&c, &how, fid2, &bill2, &whole, "ZTO", "ZT-1").await.is_err());
    write_back_shipment(&c, &how, fid2, &bill2, &whole, "ZTO", "ZT-1").await.unwrap();
    assert_eq!(sim.with(|s| s.outstocks.len()), before + 1, "one outbound document");
}

/// An approved sales order is locked: a field update is refused unless the
/// installation made those fields editable after audit.
#[tokio::test]
async fn field_update_write_back_respects_the_approval_lock() {
    let how =
        WriteBack::FieldUpdate { carrier_field: "F_DAIFA_Carrier".into(), tracking_field: "F_DAIFA_TrackingNo".into() };
    let sim = KingdeeSim::start(KingdeeSimConfig::default(), 0).await.unwrap();
    let fids = sim.generate(1);
    let c = client(&sim, AuthMode::Signed);
    let err =
        write_back_shipment(&c, &how, fids[0], &format!("XSDD{:08}", fids[0]), &[], "YTO", "YT1").await.unwrap_err();
    assert!(matches!(&err, KingdeeError::Data { code: 11, message, .. } if message.contains("已审核")), "{err:?}");

    let cfg = KingdeeSimConfig {
        editable_after_audit: vec!["F_DAIFA_Carrier".into(), "F_DAIFA_TrackingNo".into()],
        ..Default::default()
    };
    let sim = KingdeeSim::start(cfg, 0).await.unwrap();
    let fids = sim.generate(1);
    let stamp = sim.with(|s| s.sale_orders[0].modify_date.clone());
    let c = client(&sim, AuthMode::Signed);
    write_back_shipment(&c, &how, fids[0], &format!("XSDD{:08}", fids[0]), &[], "YTO", "YT99887766").await.unwrap();
    let (extra, modified) = sim.with(|s| (s.sale_orders[0].extra.clone(), s.sale_orders[0].modify_date.clone()));
    assert_eq!(extra["F_DAIFA_TrackingNo"], "YT99887766");
    assert!(modified > stamp, "a Save stamps FModifyDate");
}

fn shipment(sim: &KingdeeSim, fid: i64, pick: &[usize], tracking: &str) -> ShipmentDoc {
    let all = entries(sim, fid);
    ShipmentDoc {
        sale_fid: fid,
        sale_bill_no: format!("XSDD{fid:08}"),
        lines: pick.iter().map(|&i| ShippedLine { entry_id: all[i].0, quantity: all[i].1 }).collect(),
        carrier: "SF".into(),
        tracking: tracking.into(),
    }
}

/// A batch of shipments costs a handful of requests, not seven each; it
/// finishes what an earlier try left half done, finds what is already
/// written, ships two parts of one order as two documents, and one bad
/// sales order costs only itself.
#[tokio::test]
async fn shipments_are_written_back_in_batches() {
    let sim = KingdeeSim::start(KingdeeSimConfig::default(), 0).await.unwrap();
    let fids = sim.generate(60);
    let c = client(&sim, AuthMode::Signed);
    let how = WriteBack::default();
    sim.modify(fids[0], |o| {
        let proto = o.lines[0].clone();
        o.lines = (0..2)
            .map(|i| daifa_host::sim::kingdee::SimLine { entry_id: 900_000 + i, qty: "2".into(), ..proto.clone() })
            .collect();
    });

    // A clean batch of 50 whole orders: one lookup, one Push, one lookup
    // of what it made, one BatchSave, one Submit, one Audit.
    let docs: Vec<ShipmentDoc> = fids[10..60].iter().map(|&f| shipment(&sim, f, &[0], &format!("SF-{f}"))).collect();
    let before = sim.with(|s| s.authed_requests);
    let results = write_back_shipments(&c, &how, &docs).await;
    let used = sim.with(|s| s.authed_requests) - before;
    assert!(results.iter().all(Result::is_ok), "{results:?}");
    assert!(used <= 7, "50 shipments took {used} requests");
    let out = sim.with(|s| s.outstocks.to_vec());
    assert_eq!(out.len(), 50);
    for d in &docs {
        let doc = out.iter().find(|o| o["FCarriageNO"] == d.tracking.as_str()).expect("written back");
        assert_eq!(doc["FEntity"][0]["FSoorDerno"], d.sale_bill_no.as_str());
        assert_eq!(doc["FDocumentStatus"], "C");
    }
    // The same batch again: found, nothing new.
    let again = write_back_shipments(&c, &how, &docs).await;
    assert!(again.iter().all(|r| matches!(r, Ok(d) if !d.created)), "{again:?}");
    assert_eq!(sim.with(|s| s.outstocks.len()), 50);

    // Order 1 already written back; order 2's push landed but its answer
    // was lost (a pushed document without a tracking number); order 3 is
    // cancelled in the ERP; order 0 ships in two parts.
    write_back_shipment(&c, &how, fids[1], &format!("XSDD{:08}", fids[1]), &[], "SF", "SF-1").await.unwrap();
    sim.with(|s| s.faults.lose_next_write_answers = 1);
    let s2 = shipment(&sim, fids[2], &[0], "SF-2");
    assert!(write_back_shipment(&c, &how, s2.sale_fid, &s2.sale_bill_no, &s2.lines, "SF", "SF-2").await.is_err());
    sim.modify(fids[3], |o| o.cancel_status = "B".into());
    let docs = vec![
        shipment(&sim, fids[0], &[0], "SF-0a"),
        shipment(&sim, fids[1], &[0], "SF-1"),
        s2,
        shipment(&sim, fids[3], &[0], "SF-3"),
        shipment(&sim, fids[0], &[1], "SF-0b"),
        shipment(&sim, fids[4], &[0], "SF-4"),
    ];
    let n = sim.with(|s| s.outstocks.len());
    let results = write_back_shipments(&c, &how, &docs).await;
    assert!(matches!(&results[3], Err(KingdeeError::Data { code: 11, .. })), "{:?}", results[3]);
    for (i, r) in results.iter().enumerate() {
        if i != 3 {
            assert!(r.is_ok(), "shipment {i}: {r:?}");
        }
    }
    let out = sim.with(|s| s.outstocks.to_vec());
    assert_eq!(out.len(), n + 3, "new documents for 0a, 0b and 4 only (2 finishes its earlier push)");
    for t in ["SF-0a", "SF-0b", "SF-1", "SF-2", "SF-4"] {
        let hits: Vec<_> = out.iter().filter(|o| o["FCarriageNO"] == t).collect();
        assert_eq!(hits.len(), 1, "{t} written once");
        assert_eq!(hits[0]["FDocumentStatus"], "C", "{t} audited");
    }
    let zero_a = out.iter().find(|o| o["FCarriageNO"] == "SF-0a").unwrap();
    assert_eq!(zero_a["FEntity"].as_array().unwrap().len(), 1, "part a carries its own line only");
    assert!(!out.iter().any(|o| o["FCarriageNO"] == "SF-3"), "the cancelled order is not shipped");
}

/// A PO buying `pick` lines of sales order `fid` (whole quantities unless
/// `qty` says otherwise) from `supplier`.
fn pushed_po(sim: &KingdeeSim, po: &str, fid: i64, pick: &[(usize, Option<i64>)], supplier: &str) -> PoDoc {
    let all = entries(sim, fid);
    let material = sim.with(|s| s.sale_orders.iter().find(|o| o.fid == fid).unwrap().lines[0].material.clone());
    PoDoc {
        po_number: po.into(),
        sale_bill_no: Some(format!("XSDD{fid:08}")),
        supplier: supplier.into(),
        purchase_org: "100".into(),
        currency: "PRE001".into(),
        lines: pick
            .iter()
            .map(|&(i, q)| PoLine {
                material: material.clone(),
                quantity: q.map(Decimal::from).unwrap_or(all[i].1),
                unit_price: Decimal::from_str("12.50").unwrap(),
                tax_rate: Decimal::from(13),
                note: format!("{po} line {}", all[i].0),
                sale_entry: Some(all[i].0),
            })
            .collect(),
    }
}

fn po_doc(sim: &KingdeeSim, po: &str) -> serde_json::Value {
    sim.with(|s| s.purchase_orders.iter().find(|d| d["F_DAIFA_PoNo"] == po).cloned())
        .unwrap_or_else(|| panic!("no PUR_PurchaseOrder for {po}"))
}

/// With `link = "push"` (the default) a Kingdee order's POs are pushed
/// from it: every PO line is linked to the sales-order line it buys, a
/// split line is bought once in all, a lost answer is finished rather than
/// pushed again, and the ERP refuses to buy a line twice.
#[tokio::test]
async fn purchase_orders_are_pushed_from_their_sales_order_line_by_line() {
    let sim = KingdeeSim::start(KingdeeSimConfig::default(), 0).await.unwrap();
    let fids = sim.generate(40);
    let c = client(&sim, AuthMode::Signed);
    let s = PurchaseOrderSettings::default();
    assert_eq!(s.link, PoLink::Push);
    sim.modify(fids[0], |o| {
        let proto = o.lines[0].clone();
        o.lines = (0..2)
            .map(|i| daifa_host::sim::kingdee::SimLine { entry_id: 910_000 + i, qty: "4".into(), ..proto.clone() })
            .collect();
    });

    // 30 whole orders in one batch: a marker query, a lookup, one Push, a
    // lookup of what it made, one BatchSave, one Submit, one Audit.
    let docs: Vec<PoDoc> =
        fids[10..40].iter().map(|&f| pushed_po(&sim, &format!("PO-{f}"), f, &[(0, None)], "VEN001")).collect();
    let before = sim.with(|s| s.authed_requests);
    let results = ensure_purchase_orders(&c, &s, &docs).await;
    let used = sim.with(|s| s.authed_requests) - before;
    assert!(results.iter().all(|r| matches!(r, Ok(d) if d.created)), "{results:?}");
    assert!(used <= 7, "30 pushed POs took {used} requests");
    for (d, &f) in docs.iter().zip(&fids[10..40]) {
        let doc = po_doc(&sim, &d.po_number);
        let line = &doc["FPOOrderEntry"][0];
        assert_eq!(line["FSaleOrderNo"], format!("XSDD{f:08}"), "linked to its sales order");
        assert_eq!(line["FPOOrderEntry_Link"][0]["FPOOrderEntry_Link_FSId"], d.lines[0].sale_entry.unwrap());
        assert_eq!(
            (doc["FDocumentStatus"].as_str(), doc["FSupplierId"]["FNumber"].as_str()),
            (Some("C"), Some("VEN001"))
        );
        assert_eq!(line["FTaxPrice"], 12.5);
    }
    // The same batch again: found by marker, nothing new.
    let again = ensure_purchase_orders(&c, &s, &docs).await;
    assert!(again.iter().all(|r| matches!(r, Ok(d) if !d.created)), "{again:?}");
    assert_eq!(sim.with(|s| s.purchase_orders.len()), 30);

    // A split order: line 1's 4 pieces go 3 to A and 1 to B, line 2 to B;
    // both POs in one batch (two rounds), each buying only its own part.
    let split = vec![
        pushed_po(&sim, "PO-A", fids[0], &[(0, Some(3))], "VEN-A"),
        pushed_po(&sim, "PO-B", fids[0], &[(0, Some(1)), (1, None)], "VEN-B"),
    ];
    let results = ensure_purchase_orders(&c, &s, &split).await;
    assert!(results.iter().all(Result::is_ok), "{results:?}");
    let bought: Vec<String> =
        sim.with(|s| s.sale_orders[0].lines.iter().map(|l| l.pur_qty.normalize().to_string()).collect());
    assert_eq!(bought, vec!["4", "4"], "each line bought once in all");
    assert_eq!(po_doc(&sim, "PO-A")["FPOOrderEntry"][0]["FQty"], 3.0);
    assert_eq!(po_doc(&sim, "PO-B")["FPOOrderEntry"].as_array().unwrap().len(), 2);
    // Buying line 1 a third time is refused by the ERP, naming why.
    let third = pushed_po(&sim, "PO-C", fids[0], &[(0, Some(1))], "VEN-C");
    let err = ensure_purchase_orders(&c, &s, &[third]).await.remove(0).unwrap_err();
    assert!(matches!(&err, KingdeeError::Data { code: 11, message, .. } if message.contains("没有可下推")), "{err:?}");

    // The Push lands but its answer is lost: the retry finds the unmarked
    // document and finishes it instead of pushing again.
    let lost = pushed_po(&sim, "PO-LOST", fids[1], &[(0, None)], "VEN001");
    sim.with(|s| s.faults.lose_next_write_answers = 1);
    let n = sim.with(|s| s.purchase_orders.len());
    let err = ensure_purchase_orders(&c, &s, std::slice::from_ref(&lost)).await.remove(0).unwrap_err();
    assert!(err.is_transient(), "{err:?}");
    assert_eq!(sim.with(|s| s.purchase_orders.len()), n + 1, "the push landed, unmarked");
    let doc = ensure_purchase_orders(&c, &s, std::slice::from_ref(&lost)).await.remove(0).unwrap();
    assert!(doc.created);
    assert_eq!(sim.with(|s| s.purchase_orders.len()), n + 1, "finished, not pushed twice");
    assert_eq!(po_doc(&sim, "PO-LOST")["FDocumentStatus"], "C");

    // An order from elsewhere (no sales order to push from) is saved with
    // its marker in the same batch.
    let mut outside = pushed_po(&sim, "PO-REST", fids[2], &[(0, None)], "VEN001");
    outside.sale_bill_no = None;
    outside.lines[0].sale_entry = None;
    ensure_purchase_orders(&c, &s, &[outside, pushed_po(&sim, "PO-K", fids[3], &[(0, None)], "VEN001")]).await;
    assert!(po_doc(&sim, "PO-REST")["FPOOrderEntry"][0].get("FSaleOrderNo").is_none(), "saved unlinked");
    assert!(po_doc(&sim, "PO-K")["FPOOrderEntry"][0].get("FSaleOrderNo").is_some(), "pushed");
}

/// The simulator is as strict as the ERP: a pushed PO has no supplier, so
/// without IsDraftWhenSaveFail the conversion is refused and nothing is
/// made; an unknown rule is named. With `push_rule` naming a rule the ERP
/// lacks, POs are saved unlinked (once each) rather than not at all.
#[tokio::test]
async fn a_push_the_erp_cannot_save_or_convert_is_refused_and_falls_back() {
    let sim = KingdeeSim::start(KingdeeSimConfig::default(), 0).await.unwrap();
    let fids = sim.generate(3);
    let c = client(&sim, AuthMode::Signed);
    let entry = entries(&sim, fids[0])[0].0;
    let data = serde_json::json!({ "EntryIds": entry.to_string(), "TargetFormId": "PUR_PurchaseOrder", "IsEnableDefaultRule": "true" });
    let err = c.push("SAL_SaleOrder", data).await.unwrap_err();
    assert!(matches!(&err, KingdeeError::Data { code: 11, message, .. } if message.contains("供应商")), "{err:?}");
    let data = serde_json::json!({ "EntryIds": entry.to_string(), "RuleId": "NoSuchRule" });
    let err = c.push("SAL_SaleOrder", data).await.unwrap_err();
    assert!(matches!(&err, KingdeeError::Data { code: 11, message, .. } if message.contains("NoSuchRule")), "{err:?}");
    assert_eq!(sim.with(|s| s.purchase_orders.len()), 0, "nothing made");

    let s = PurchaseOrderSettings { push_rule: "NoSuchRule".into(), ..Default::default() };
    let docs = vec![pushed_po(&sim, "PO-1", fids[1], &[(0, None)], "VEN001")];
    for _ in 0..2 {
        let r = ensure_purchase_orders(&c, &s, &docs).await;
        assert!(r[0].is_ok(), "{r:?}");
    }
    assert_eq!(sim.with(|s| s.purchase_orders.len()), 1, "saved once, unlinked");
    assert!(po_doc(&sim, "PO-1")["FPOOrderEntry"][0].get("FSaleOrderNo").is_none());
}

/// A PO that changes after its PUR_PurchaseOrder was made: lines taken
/// back are taken out of the document (the ERP counts them as bought no
/// more, so another supplier's PO can buy them), a PO with nothing left
/// loses its document, and a document already in line is left alone.
#[tokio::test]
async fn documents_follow_their_purchase_orders_when_lines_are_taken_back() {
    let sim = KingdeeSim::start(KingdeeSimConfig::default(), 0).await.unwrap();
    let fids = sim.generate(3);
    let c = client(&sim, AuthMode::Signed);
    let s = PurchaseOrderSettings::default();
    sim.modify(fids[0], |o| {
        let proto = o.lines[0].clone();
        o.lines = (0..2)
            .map(|i| daifa_host::sim::kingdee::SimLine { entry_id: 920_000 + i, qty: "4".into(), ..proto.clone() })
            .collect();
    });
    let both = pushed_po(&sim, "PO-1", fids[0], &[(0, None), (1, None)], "VEN-A");
    let r = ensure_purchase_orders(&c, &s, std::slice::from_ref(&both)).await;
    assert!(r[0].is_ok(), "{r:?}");
    let bought = |sim: &KingdeeSim| -> Vec<String> {
        sim.with(|s| s.sale_orders[0].lines.iter().map(|l| l.pur_qty.normalize().to_string()).collect())
    };
    assert_eq!(bought(&sim), vec!["4", "4"]);

    // Line 2 refused by the supplier: the audited document is un-audited,
    // saved with line 1 only, audited again.
    let mut one = both.clone();
    one.lines.truncate(1);
    let r = amend_purchase_orders(&c, &s, std::slice::from_ref(&one)).await;
    assert!(matches!(&r[0], Ok(Amended::Amended(_))), "{r:?}");
    let doc = po_doc(&sim, "PO-1");
    assert_eq!(doc["FPOOrderEntry"].as_array().unwrap().len(), 1);
    assert_eq!(doc["FDocumentStatus"], "C");
    assert_eq!(bought(&sim), vec!["4", "0"], "line 2 no longer counts as bought");
    // Again: nothing to do, one query.
    let before = sim.with(|s| s.authed_requests);
    let r = amend_purchase_orders(&c, &s, std::slice::from_ref(&one)).await;
    assert!(matches!(&r[0], Ok(Amended::Unchanged(_))), "{r:?}");
    assert_eq!(sim.with(|s| s.authed_requests) - before, 1);
    // Re-routed, line 2 is bought from another supplier.
    let other = pushed_po(&sim, "PO-2", fids[0], &[(1, None)], "VEN-B");
    let r = ensure_purchase_orders(&c, &s, &[other]).await;
    assert!(r[0].is_ok(), "{r:?}");
    assert_eq!(bought(&sim), vec!["4", "4"]);

    // Everything cancelled, and the document was left submitted (a crash
    // between Submit and Audit): audited, un-audited, deleted.
    sim.with(|st| {
        let p = st.purchase_orders.docs.iter().position(|d| d["F_DAIFA_PoNo"] == "PO-1").unwrap();
        st.purchase_orders.docs[p]["FDocumentStatus"] = "B".into();
    });
    one.lines.clear();
    let r = amend_purchase_orders(&c, &s, std::slice::from_ref(&one)).await;
    assert!(matches!(&r[0], Ok(Amended::Deleted(_))), "{r:?}");
    assert!(sim.with(|s| s.purchase_orders.iter().all(|d| d["F_DAIFA_PoNo"] != "PO-1")), "deleted");
    assert_eq!(bought(&sim), vec!["0", "4"]);
    let r = amend_purchase_orders(&c, &s, std::slice::from_ref(&one)).await;
    assert!(matches!(&r[0], Ok(Amended::Missing)), "{r:?}");

    // A saved (unlinked) PO follows the same way.
    let saved = PurchaseOrderSettings { link: PoLink::Save, ..Default::default() };
    let mut po = pushed_po(&sim, "PO-3", fids[1], &[(0, None)], "VEN-A");
    ensure_purchase_orders(&c, &saved, std::slice::from_ref(&po)).await.remove(0).unwrap();
    po.lines[0].quantity -= Decimal::ONE;
    let r = amend_purchase_orders(&c, &saved, std::slice::from_ref(&po)).await;
    assert!(matches!(&r[0], Ok(Amended::Amended(_))), "{r:?}");
    let qty = po_doc(&sim, "PO-3")["FPOOrderEntry"][0]["FQty"].to_string();
    assert_eq!(Decimal::from_str(&qty).unwrap(), po.lines[0].quantity);
}

/// A line refused on one PO and re-routed to another PO of the same sales
/// order, both jobs in one batch: the document that gives the line up is
/// amended before the other is pushed (pushed first, the ERP refuses it:
/// the line's quantity is still drawn), whether or not the batch knew the
/// first document was made.
#[tokio::test]
async fn a_line_moves_between_two_purchase_orders_in_one_batch() {
    let sim = KingdeeSim::start(KingdeeSimConfig::default(), 0).await.unwrap();
    let fids = sim.generate(2);
    let c = client(&sim, AuthMode::Signed);
    let s = PurchaseOrderSettings::default();
    for &fid in &fids {
        sim.modify(fid, |o| {
            let proto = o.lines[0].clone();
            o.lines = (0..2)
                .map(|i| daifa_host::sim::kingdee::SimLine {
                    entry_id: 930_000 + fid * 10 + i,
                    qty: "4".into(),
                    ..proto.clone()
                })
                .collect();
        });
    }
    let bought = |sim: &KingdeeSim, fid: i64| -> Vec<String> {
        sim.with(|s| {
            let o = s.sale_orders.iter().find(|o| o.fid == fid).unwrap();
            o.lines.iter().map(|l| l.pur_qty.normalize().to_string()).collect()
        })
    };
    for (fid, (a, b)) in fids.iter().zip([("PO-A1", "PO-B1"), ("PO-A2", "PO-B2")]) {
        let both = pushed_po(&sim, a, *fid, &[(0, None), (1, None)], "VEN-A");
        assert!(ensure_purchase_orders(&c, &s, std::slice::from_ref(&both)).await[0].is_ok());
        // What the old order did: the push alone is refused.
        let moved = pushed_po(&sim, b, *fid, &[(1, None)], "VEN-B");
        let r = ensure_purchase_orders(&c, &s, std::slice::from_ref(&moved)).await;
        assert!(r[0].is_err(), "the ERP refuses to buy a line twice: {r:?}");
    }
    assert_eq!(bought(&sim, fids[0]), vec!["4", "4"]);

    // Order 1: the batch knows PO-A1's document is made. Order 2: it does
    // not (an earlier run's answer was lost), so PO-A2 is found, amended,
    // and PO-B2's refused push is tried once more.
    let mut batch = Vec::new();
    for (fid, (a, b), known) in [(fids[0], ("PO-A1", "PO-B1"), true), (fids[1], ("PO-A2", "PO-B2"), false)] {
        batch.push((pushed_po(&sim, b, fid, &[(1, None)], "VEN-B"), false));
        batch.push((pushed_po(&sim, a, fid, &[(0, None)], "VEN-A"), known));
    }
    let r = sync_purchase_orders(&c, &s, &batch).await;
    for (i, want_made) in [(0, true), (1, false), (2, true), (3, false)] {
        match (&r[i], want_made) {
            (Ok(Synced::Made(_)), true) | (Ok(Synced::Amended(Amended::Amended(_))), false) => {}
            other => panic!("{}: {other:?}", batch[i].0.po_number),
        }
    }
    for &fid in &fids {
        assert_eq!(bought(&sim, fid), vec!["4", "4"], "each line bought once, from its new supplier");
    }
    assert_eq!(po_doc(&sim, "PO-A1")["FPOOrderEntry"].as_array().unwrap().len(), 1);
    assert_eq!(po_doc(&sim, "PO-B2")["FDocumentStatus"], "C");
    // Again: nothing changes.
    let again: Vec<(PoDoc, bool)> = batch.iter().map(|(d, _)| (d.clone(), true)).collect();
    let r = sync_purchase_orders(&c, &s, &again).await;
    assert!(r.iter().all(|r| matches!(r, Ok(Synced::Amended(Amended::Unchanged(_))))), "{r:?}");
}
