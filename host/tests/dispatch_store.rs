//! Purchase orders and dispatch jobs against real stores (a SQLite file and
//! PostgreSQL): POs created with the routing decision, leases whose fence
//! keeps a slow worker from committing over its successor, concurrent
//! claims that never share a job, idempotent updates (duplicates, partial
//! shipments, SKU-named lines, over-shipment, unknown POs), re-routing of a
//! refused PO, dead letters retried, and write-back closing the chain.

mod common;

use std::sync::Arc;

use common::db::{Db, suite};
use daifa_host::domain::purchase::{LineStatus, LineWord, ParcelIn, PoState, PoUpdate, UpdateKind};
use daifa_host::domain::*;
use daifa_host::router::{Router, RouterConfig};
use daifa_host::routing::CatalogFile;
use daifa_host::store::{DispatchSettings, JobKind, Retry, Store, StoreError, SubmitAnswer};
use rust_decimal::Decimal;

const NOW: i64 = 1_795_572_000_000;

const CATALOG: &str = r#"
[[supplier]]
id = "A"
plugin = "rest-json"
default_shipping = "5"
[[supplier]]
id = "B"
plugin = "rest-json"
default_shipping = "5"
currency = "USD"
erp_number = "VEN-B-0001"

[[offer]]
supplier = "A"
sku = "SKU-X"
supplier_sku = "A-X"
unit_cost = "10"
[[offer]]
supplier = "A"
sku = "SKU-Y"
supplier_sku = "A-Y"
unit_cost = "10"
[[offer]]
supplier = "B"
sku = "SKU-X"
supplier_sku = "B-X"
unit_cost = "12"
[[offer]]
supplier = "B"
sku = "SKU-Y"
supplier_sku = "B-Y"
unit_cost = "12"
"#;

const POLICY: &str = "version = 1\n[fallback]\nname = \"cost\"\nkeep_together = \"preferred\"\n";

fn order(id: u32, lines: &[(&str, &str)]) -> OrderContent {
    OrderContent {
        source: "kingdee".into(),
        external_id: ExternalId(id.to_string()),
        bill_no: BillNo(format!("XSDD{id:06}")),
        platform_order_no: None,
        customer: "CUST001".into(),
        sales_org: String::new(),
        platform: String::new(),
        ship_to: ShipTo {
            name: "王五".into(),
            phone: "13800138000".into(),
            province: "上海市".into(),
            city: "上海市".into(),
            district: "浦东新区".into(),
            street: "某路 1 号".into(),
            postcode: "200000".into(),
            country: "CN".into(),
        },
        lines: lines
            .iter()
            .enumerate()
            .map(|(n, (sku, qty))| OrderLine {
                erp_line_id: ErpLineId(format!("{}", id * 10 + n as u32)),
                sku: Sku(sku.to_string()),
                quantity: qty.parse().unwrap(),
                unit_price: Decimal::from(30),
                tax_rate: Decimal::from(13),
                // Fractions only in units that allow them.
                unit: if qty.contains('.') { "kg".into() } else { String::new() },
            })
            .collect(),
        remark: String::new(),
        source_modified: "2026-11-25T09:00:00".into(),
        cancelled: false,
        intake_problems: vec![],
    }
}

/// A store with dispatch on, the catalog and policy loaded, a router, and
/// `orders` routed.
async fn routed(db: &Db, orders: Vec<OrderContent>) -> (Store, Arc<Router>, Vec<OrderId>) {
    let s = db.store.clone().with_dispatch(DispatchSettings::default());
    let c = CatalogFile::from_toml(CATALOG).unwrap().validate(NOW).unwrap();
    s.replace_catalog(&c, NOW).await.unwrap();
    s.put_policy(1, POLICY, "test", NOW).await.unwrap();
    let ext: Vec<String> = orders.iter().map(|o| o.external_id.0.clone()).collect();
    s.ingest_batch(orders, &Actor::Ingest("kingdee".into()), NOW).await.unwrap();
    let m = s.states_of("kingdee", &ext).await.unwrap();
    let ids = ext.iter().map(|e| m[e].0).collect();
    let r = Arc::new(Router::new(s.clone(), RouterConfig::default(), NOW).await.unwrap());
    r.route_pending(NOW).await.unwrap();
    (s, r, ids)
}

async fn state(s: &Store, id: OrderId) -> OrderState {
    s.order(id).await.unwrap().state
}

async fn routing_creates_each_po_with_its_submit_job(db: Db) {
    let (s, _, ids) =
        routed(&db, vec![order(1, &[("SKU-X", "2"), ("SKU-Y", "1.5")]), order(2, &[("SKU-Y", "3")])]).await;
    let pos = s.purchase_orders(Some(ids[0]), None, None, 10).await.unwrap();
    assert_eq!(pos.len(), 1, "one supplier, one PO: {pos:?}");
    let po = &pos[0];
    assert_eq!((po.supplier.as_str(), po.state, po.currency.as_str()), ("A", PoState::Pending, "CNY"));
    assert_eq!(po.lines.len(), 2);
    assert_eq!(po.lines[1].quantity, "1.5".parse::<Decimal>().unwrap(), "quantities stay exact");
    assert_eq!(po.lines[0].supplier_sku, "A-X");
    assert_eq!(state(&s, ids[0]).await, OrderState::Routed);
    let jobs = s.claim_jobs(&[JobKind::Submit], "w", NOW, 60_000, 10).await.unwrap();
    assert_eq!(jobs.len(), 2, "one submit job per PO");
    assert!(jobs.iter().all(|j| j.supplier.as_str() == "A"));
}

async fn a_worker_whose_lease_ran_out_cannot_commit(db: Db) {
    let (s, _, ids) = routed(&db, vec![order(1, &[("SKU-X", "2")])]).await;
    let slow = s.claim_jobs(&[JobKind::Submit], "slow", NOW, 1_000, 10).await.unwrap().remove(0);
    assert!(s.claim_jobs(&[JobKind::Submit], "other", NOW + 500, 1_000, 10).await.unwrap().is_empty(), "leased");
    let retry = s.claim_jobs(&[JobKind::Submit], "retry", NOW + 1_001, 1_000, 10).await.unwrap().remove(0);
    assert_eq!(retry.id, slow.id);
    assert!(retry.fence > slow.fence);
    let receipt = SubmitAnswer::Receipt { supplier_ref: "R1".into(), lines: vec![] };
    let e = s.record_submit(slow.lease(), &slow.key, &receipt, NOW + 1_100).await.unwrap_err();
    assert!(matches!(e, StoreError::LeaseLost(_)), "{e}");
    let po = s.purchase_order(&slow.key).await.unwrap().unwrap();
    assert_eq!(po.state, PoState::Pending, "nothing of the stale worker's result was written");
    s.record_submit(retry.lease(), &retry.key, &receipt, NOW + 1_200).await.unwrap();
    let po = s.purchase_order(&retry.key).await.unwrap().unwrap();
    assert_eq!((po.state, po.supplier_ref.as_deref()), (PoState::Acknowledged, Some("R1")));
    assert_eq!(state(&s, ids[0]).await, OrderState::Acknowledged);
    let history = s.order(ids[0]).await.unwrap().history;
    let hops: Vec<OrderState> = history.iter().map(|h| h.to).collect();
    assert!(hops.ends_with(&[OrderState::Routed, OrderState::Dispatched, OrderState::Acknowledged]), "{hops:?}");
    // The stale worker cannot fail the job either.
    assert!(!s.fail_job(&slow, "late", Retry::At(NOW + 5_000), true, NOW + 1_300).await.unwrap());
}

async fn concurrent_claims_never_share_a_job(db: Db) {
    let orders = (1..=40).map(|i| order(i, &[("SKU-X", "1")])).collect();
    let (s, _, _) = routed(&db, orders).await;
    let mut tasks = Vec::new();
    for w in 0..4 {
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            let mut mine = Vec::new();
            loop {
                let got = s.claim_jobs(&[JobKind::Submit], &format!("w{w}"), NOW, 60_000, 3).await.unwrap();
                if got.is_empty() {
                    return mine;
                }
                mine.extend(got.into_iter().map(|j| j.id));
            }
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    let n = all.len();
    all.sort_unstable();
    all.dedup();
    assert_eq!((n, all.len()), (40, 40), "every job claimed exactly once");
}

async fn updates_apply_once_and_never_corrupt(db: Db) {
    let (s, _, ids) = routed(&db, vec![order(1, &[("SKU-X", "3"), ("SKU-Y", "1")])]).await;
    let job = s.claim_jobs(&[JobKind::Submit], "w", NOW, 60_000, 1).await.unwrap().remove(0);
    let words = vec![LineWord { line: "11".into(), status: LineStatus::Backordered, reason: "until Monday".into() }];
    s.record_submit(job.lease(), &job.key, &SubmitAnswer::Receipt { supplier_ref: "R".into(), lines: words }, NOW)
        .await
        .unwrap();
    let a = SupplierId::from("A");
    assert_eq!(state(&s, ids[0]).await, OrderState::Backordered);
    let parcel = |t: &str, lines: &[(&str, &str)]| ParcelIn {
        carrier: "SF".into(),
        tracking_number: t.into(),
        lines: lines.iter().map(|(l, q)| (l.to_string(), q.parse().unwrap())).collect(),
        shipped_at: None,
    };
    let shipped = |parcels: Vec<ParcelIn>| PoUpdate {
        po_number: job.key.clone(),
        supplier_ref: None,
        at: None,
        kind: UpdateKind::Shipped(parcels),
    };
    // Partial: 2 of line 10, named by the supplier's SKU.
    let r = s.apply_updates(&a, &[shipped(vec![parcel("SF1", &[("A-X", "2")])])], "poll", None, NOW).await.unwrap();
    assert_eq!((r.parcels, r.exceptions), (1, 0));
    assert_eq!(state(&s, ids[0]).await, OrderState::PartiallyShipped);
    // The same parcel again: nothing changes.
    let r = s.apply_updates(&a, &[shipped(vec![parcel("SF1", &[("A-X", "2")])])], "poll", None, NOW).await.unwrap();
    assert_eq!((r.parcels, r.duplicates), (0, 1));
    // More than ordered: refused into an operator event, nothing applied.
    let r = s.apply_updates(&a, &[shipped(vec![parcel("SF2", &[("10", "2")])])], "poll", None, NOW).await.unwrap();
    assert_eq!((r.parcels, r.exceptions), (0, 1));
    // Unknown PO, and a PO of another supplier: exceptions.
    let mut stray = shipped(vec![parcel("SF3", &[("10", "1")])]);
    stray.po_number = "PO-NEVER-SENT".into();
    let r = s.apply_updates(&a, &[stray], "callback", None, NOW).await.unwrap();
    assert_eq!(r.exceptions, 1);
    let r = s
        .apply_updates(&SupplierId::from("B"), &[shipped(vec![parcel("SF4", &[("10", "1")])])], "poll", None, NOW)
        .await
        .unwrap();
    assert_eq!(r.exceptions, 1, "another supplier's PO is not its to update");
    let kinds: Vec<String> = s.operator_events(10).await.unwrap().into_iter().map(|e| e.kind).collect();
    assert_eq!(kinds.iter().filter(|k| *k == "unknown_po").count(), 2, "{kinds:?}");
    assert!(kinds.contains(&"bad_parcel".to_string()));
    // An out-of-order "accepted" after shipping changes nothing shipped.
    let late = PoUpdate {
        po_number: job.key.clone(),
        supplier_ref: None,
        at: None,
        kind: UpdateKind::Lines(vec![LineWord { line: "10".into(), status: LineStatus::Rejected, reason: "x".into() }]),
    };
    let r = s.apply_updates(&a, &[late], "poll", None, NOW).await.unwrap();
    assert_eq!(r.reroutes.len(), 0, "a line something shipped of cannot be refused");
    // The rest in two parcels: shipped; one write-back per shipment.
    let r = s
        .apply_updates(
            &a,
            &[shipped(vec![parcel("SF5", &[("10", "1")]), parcel("SF6", &[("11", "1")])])],
            "poll",
            None,
            NOW,
        )
        .await
        .unwrap();
    assert_eq!(r.parcels, 2);
    assert_eq!(state(&s, ids[0]).await, OrderState::Shipped);
    let po = s.purchase_order(&job.key).await.unwrap().unwrap();
    assert_eq!(po.lines.iter().map(|l| l.shipped).collect::<Vec<_>>(), vec![Decimal::from(3), Decimal::ONE]);
    let wb = s.claim_jobs(&[JobKind::WriteBack], "w", NOW, 60_000, 10).await.unwrap();
    assert_eq!(wb.len(), 2, "one write-back per shipment");
    let shipments = s.shipments_of(&job.key).await.unwrap();
    assert_eq!(
        shipments[1].quantities().into_iter().collect::<Vec<_>>(),
        vec![("10".to_string(), Decimal::ONE), ("11".to_string(), Decimal::ONE)]
    );
    for j in &wb {
        s.record_write_back(j.lease(), j.key.parse().unwrap(), "XSCKD1", NOW).await.unwrap();
    }
    assert_eq!(s.purchase_order(&job.key).await.unwrap().unwrap().state, PoState::WrittenBack);
    assert_eq!(state(&s, ids[0]).await, OrderState::WrittenBack);
}

async fn a_refused_po_moves_to_the_next_supplier(db: Db) {
    let (s, r, ids) = routed(&db, vec![order(1, &[("SKU-X", "1")])]).await;
    let job = s.claim_jobs(&[JobKind::Submit], "w", NOW, 60_000, 1).await.unwrap().remove(0);
    let applied = s
        .record_submit(job.lease(), &job.key, &SubmitAnswer::Refused("we stopped carrying it".into()), NOW)
        .await
        .unwrap();
    assert_eq!(applied.reroutes.len(), 1);
    assert_eq!(state(&s, ids[0]).await, OrderState::Rejected);
    // The order says which of its lines no live PO covers any more.
    let why = s.order(ids[0]).await.unwrap().state_reason;
    assert!(why.ends_with("; line(s) 10 to be re-routed"), "{why}");
    let req = &applied.reroutes[0];
    r.reroute(req.order, &req.supplier, Some(&req.lines), &req.cause, NOW).await.unwrap();
    assert_eq!(state(&s, ids[0]).await, OrderState::Routed);
    let pos = s.purchase_orders(Some(ids[0]), None, None, 10).await.unwrap();
    let by: Vec<(&str, PoState)> = pos.iter().map(|p| (p.supplier.as_str(), p.state)).collect();
    assert!(by.contains(&("A", PoState::Rejected)) && by.contains(&("B", PoState::Pending)), "{by:?}");
    let b = pos.iter().find(|p| p.supplier.as_str() == "B").unwrap();
    assert_eq!((b.currency.as_str(), b.lines[0].supplier_sku.as_str()), ("USD", "B-X"));
}

async fn a_dead_letter_can_be_retried(db: Db) {
    let (s, _, ids) = routed(&db, vec![order(1, &[("SKU-X", "1")])]).await;
    let job = s.claim_jobs(&[JobKind::Submit], "w", NOW, 60_000, 1).await.unwrap().remove(0);
    assert!(s.fail_job(&job, "supplier down", Retry::Dead, true, NOW).await.unwrap());
    assert_eq!(s.purchase_order(&job.key).await.unwrap().unwrap().state, PoState::Dead);
    assert_eq!(state(&s, ids[0]).await, OrderState::Exception);
    let dead = s.jobs_in_state("dead", 10).await.unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].errors[0].error, "supplier down");
    assert!(s.retry_dead_letter(job.id, NOW + 60_000, NOW).await.unwrap());
    assert_eq!(s.purchase_order(&job.key).await.unwrap().unwrap().state, PoState::Pending);
    assert_eq!(state(&s, ids[0]).await, OrderState::Routed);
    assert_eq!(s.claim_jobs(&[JobKind::Submit], "w", NOW, 60_000, 1).await.unwrap().len(), 1);
}

/// The ERP cancels orders: one whose PO is being submitted right then (its
/// receipt arrives after the cancellation), one already acknowledged, and
/// one already shipped. The first two end with a cancel job for their
/// supplier (and no ERP purchase order for the first); the shipped one is an
/// exception with an operator event, never a silent change.
async fn cancellations_from_the_erp_reach_the_suppliers(db: Db) {
    let (s, _, ids) =
        routed(&db, vec![order(1, &[("SKU-X", "1")]), order(2, &[("SKU-X", "1")]), order(3, &[("SKU-X", "1")])]).await;
    let jobs = s.claim_jobs(&[JobKind::Submit], "w", NOW, 60_000, 10).await.unwrap();
    assert_eq!(jobs.len(), 3);
    // Lines a receipt does not name were accepted as sent.
    let receipt = |po: &str| SubmitAnswer::Receipt { supplier_ref: format!("SUP-{po}"), lines: vec![] };
    // Orders 2 and 3 are answered; 3 ships.
    let po_of = |i: usize| jobs.iter().find(|j| j.key.starts_with(&format!("PO{}-", ids[i].0))).unwrap();
    for i in [1, 2] {
        let j = po_of(i);
        s.record_submit(j.lease(), &j.key, &receipt(&j.key), NOW + 1).await.unwrap();
    }
    let ship = PoUpdate {
        po_number: po_of(2).key.clone(),
        supplier_ref: None,
        at: None,
        kind: UpdateKind::Shipped(vec![ParcelIn {
            carrier: "SF".into(),
            tracking_number: "SF001".into(),
            lines: vec![("30".into(), Decimal::ONE)],
            shipped_at: None,
        }]),
    };
    let a = s.apply_updates(&SupplierId("A".into()), &[ship], "poll", None, NOW + 2).await.unwrap();
    assert_eq!(a.parcels, 1, "{a:?}");
    // The ERP cancels all three.
    let cancelled: Vec<OrderContent> = (1..=3)
        .map(|n| OrderContent {
            cancelled: true,
            source_modified: "2026-11-25T10:00:00".into(),
            ..order(n, &[("SKU-X", "1")])
        })
        .collect();
    s.ingest_batch(cancelled, &Actor::Ingest("kingdee".into()), NOW + 3).await.unwrap();
    assert_eq!(state(&s, ids[0]).await, OrderState::Cancelled, "not yet with a supplier: cancelled");
    assert_eq!(state(&s, ids[1]).await, OrderState::Cancelled, "acknowledged: cancelled, supplier asked");
    assert_eq!(state(&s, ids[2]).await, OrderState::Exception, "shipped: a person decides");
    // Order 1's submit was in flight: its receipt lands after the cancel.
    let j = po_of(0);
    s.record_submit(j.lease(), &j.key, &receipt(&j.key), NOW + 4).await.unwrap();
    let cancels = s.claim_jobs(&[JobKind::Cancel], "w", NOW + 5, 60_000, 10).await.unwrap();
    let mut keys: Vec<&str> = cancels.iter().map(|j| j.key.as_str()).collect();
    keys.sort_unstable();
    let mut want = vec![po_of(0).key.as_str(), po_of(1).key.as_str()];
    want.sort_unstable();
    assert_eq!(keys, want, "a cancel job for each PO a supplier holds, none for the shipped one");
    let erp = s.claim_jobs(&[JobKind::ErpPo], "w", NOW + 5, 60_000, 10).await.unwrap();
    assert!(!erp.iter().any(|j| j.key == po_of(0).key), "no ERP purchase order for a cancelled order's late receipt");
    let events = s.operator_events(10).await.unwrap();
    assert!(events.iter().any(|e| e.kind == "cancelled_after_shipping" && e.subject == po_of(2).key), "{events:?}");
}

/// A group commit records each answer exactly as it would be recorded
/// alone: the same four answers (accepted, refused, a lost lease, a
/// receipt naming a line never sent) on two identical sets of orders, one
/// set in one group, the other one answer at a time.
async fn a_group_of_answers_is_recorded_as_each_alone(db: Db) {
    let lines: &[&[(&str, &str)]] =
        &[&[("SKU-X", "2"), ("SKU-Y", "1")], &[("SKU-X", "1")], &[("SKU-Y", "4")], &[("SKU-X", "3")]];
    let mut orders: Vec<OrderContent> = Vec::new();
    for (i, l) in lines.iter().enumerate() {
        orders.push(order(i as u32 + 1, l));
        orders.push(order(i as u32 + 11, l));
    }
    let (s, _, ids) = routed(&db, orders).await;
    let jobs = s.claim_jobs(&[JobKind::Submit], "w", NOW, 60_000, 20).await.unwrap();
    assert_eq!(jobs.len(), 8);
    let job_of = |order: OrderId| {
        let po = s_po(order);
        jobs.iter().find(|j| j.key.starts_with(&po)).unwrap().clone()
    };
    let answer = |n: usize| match n {
        1 => SubmitAnswer::Refused("we stopped carrying it".into()),
        3 => SubmitAnswer::Receipt {
            supplier_ref: "R-3".into(),
            lines: vec![LineWord { line: "999".into(), status: LineStatus::Rejected, reason: "?".into() }],
        },
        n => SubmitAnswer::Receipt { supplier_ref: format!("R-{n}"), lines: vec![] },
    };
    let lease = |n: usize, j: &daifa_host::store::Job| {
        let mut l = j.lease();
        if n == 2 {
            l.fence -= 1; // a worker whose lease was taken over
        }
        l
    };
    // ids: [1, 11, 2, 12, …]: even indexes in one group, odd ones alone.
    let mut group = Vec::new();
    for n in 0..4 {
        let j = job_of(ids[2 * n]);
        group.push((lease(n, &j), j.key.clone(), answer(n)));
    }
    let grouped = s.record_submits(&group, NOW + 10).await.unwrap();
    let mut alone = Vec::new();
    for n in 0..4 {
        let j = job_of(ids[2 * n + 1]);
        alone.push(s.record_submit(lease(n, &j), &j.key, &answer(n), NOW + 10).await);
    }
    for n in 0..4 {
        let (g, a) = (&grouped[n], &alone[n]);
        match (g, a) {
            (Ok(g), Ok(a)) => {
                assert_eq!(
                    (g.updates, g.exceptions, g.reroutes.len()),
                    (a.updates, a.exceptions, a.reroutes.len()),
                    "answer {n}"
                );
                // Twin orders' line ids differ (order 2 has line 20, order 12 line 120).
                assert_eq!(g.reroutes.first().map(|r| r.lines.len()), a.reroutes.first().map(|r| r.lines.len()));
            }
            (Err(StoreError::LeaseLost(_)), Err(StoreError::LeaseLost(_))) => assert_eq!(n, 2),
            other => panic!("answer {n}: {other:?}"),
        }
        let (og, oa) = (s.order(ids[2 * n]).await.unwrap(), s.order(ids[2 * n + 1]).await.unwrap());
        assert_eq!(og.state, oa.state, "answer {n}");
        let hops = |o: &daifa_host::domain::SalesOrder| o.history.iter().map(|h| (h.from, h.to)).collect::<Vec<_>>();
        assert_eq!(hops(&og), hops(&oa), "answer {n}");
        let (pg, pa) = (job_of(ids[2 * n]).key, job_of(ids[2 * n + 1]).key);
        let (pg, pa) = (s.purchase_order(&pg).await.unwrap().unwrap(), s.purchase_order(&pa).await.unwrap().unwrap());
        assert_eq!(pg.state, pa.state, "answer {n}");
        let st = |p: &daifa_host::store::PoRecord| {
            p.lines.iter().map(|l| (l.status, l.status_reason.clone())).collect::<Vec<_>>()
        };
        assert_eq!(st(&pg), st(&pa), "answer {n}");
        let ev = |v: Vec<daifa_host::store::PoEvent>| {
            v.into_iter().map(|e| (e.from_state, e.to_state, e.detail)).collect::<Vec<_>>()
        };
        let (eg, ea) = (ev(s.po_events(&pg.po_number).await.unwrap()), ev(s.po_events(&pa.po_number).await.unwrap()));
        assert_eq!(eg, ea, "answer {n}");
    }
    let expect = [PoState::Acknowledged, PoState::Rejected, PoState::Pending, PoState::Acknowledged];
    for (n, want) in expect.iter().enumerate() {
        let po = s.purchase_order(&job_of(ids[2 * n]).key).await.unwrap().unwrap();
        assert_eq!(po.state, *want, "answer {n}");
    }
    // The lost lease left its job to its new owner: still claimable later.
    let j = job_of(ids[4]);
    assert!(s.record_submit(j.lease(), &j.key, &answer(0), NOW + 20).await.is_ok());
}

fn s_po(order: OrderId) -> String {
    format!("PO{}-", order.0)
}

/// The time-to-ship alert: a PO sent longer ago than the SLA and not
/// shipped fires for its supplier; once shipped, it resolves.
async fn a_po_not_shipped_within_the_sla_raises_an_alert(db: Db) {
    use daifa_host::alerts::{Alerter, AlertsConfig, Condition, Rule};
    let (s, _, _) = routed(&db, vec![order(1, &[("SKU-X", "1")])]).await;
    let job = s.claim_jobs(&[JobKind::Submit], "w", NOW, 60_000, 1).await.unwrap().remove(0);
    let words = vec![LineWord { line: "10".into(), status: LineStatus::Accepted, reason: String::new() }];
    s.record_submit(job.lease(), &job.key, &SubmitAnswer::Receipt { supplier_ref: "R".into(), lines: words }, NOW)
        .await
        .unwrap();
    let h = 3_600_000;
    assert_eq!(s.unshipped_since(NOW + 1).await.unwrap(), vec![("A".to_string(), 1, NOW)]);
    assert!(s.unshipped_since(NOW).await.unwrap().is_empty());
    let cfg = AlertsConfig {
        rules: vec![Rule { name: "ship-sla".into(), when: Condition::ShipSla { max_hours: 48 } }],
        ..AlertsConfig::default()
    };
    let mut alerter = Alerter::new(s.clone(), None, cfg);
    assert!(alerter.check(NOW + 47 * h).await.unwrap().is_empty(), "within the SLA");
    let fired = alerter.check(NOW + 49 * h).await.unwrap();
    assert_eq!(fired.len(), 1);
    assert_eq!((fired[0].state, fired[0].subject.as_str()), ("firing", "A"));
    assert!(fired[0].message.contains("1 POs sent more than 48 h ago are not shipped (oldest 49 h)"), "{fired:?}");
    let parcel = ParcelIn {
        carrier: "SF".into(),
        tracking_number: "SF9".into(),
        lines: vec![("10".into(), Decimal::ONE)],
        shipped_at: None,
    };
    let update =
        PoUpdate { po_number: job.key.clone(), supplier_ref: None, at: None, kind: UpdateKind::Shipped(vec![parcel]) };
    let r = s.apply_updates(&SupplierId::from("A"), &[update], "poll", None, NOW + 50 * h).await.unwrap();
    assert_eq!(r.parcels, 1, "{r:?}");
    let resolved = alerter.check(NOW + 50 * h).await.unwrap();
    assert_eq!(resolved.len(), 1);
    assert_eq!(resolved[0].state, "resolved");
}

/// The supplier's word can arrive before the submit's receipt is recorded
/// (an EDI 855 polled while the receipt waits for its group commit): the
/// PO counts as sent to the supplier once, whichever comes first.
async fn an_update_that_beats_the_receipt_counts_the_dispatch_once(db: Db) {
    use daifa_host::routing::performance::Event;
    let (s, _, ids) = routed(&db, vec![order(1, &[("SKU-X", "3")])]).await;
    let job = s.claim_jobs(&[JobKind::Submit], "w", NOW, 60_000, 1).await.unwrap().remove(0);
    let a = SupplierId::from("A");
    let accepted = PoUpdate {
        po_number: job.key.clone(),
        supplier_ref: Some("R-1".into()),
        at: None,
        kind: UpdateKind::Lines(vec![LineWord { line: "10".into(), status: LineStatus::Accepted, reason: "".into() }]),
    };
    let r = s.apply_updates(&a, &[accepted], "poll", None, NOW).await.unwrap();
    assert_eq!(r.updates, 1, "{r:?}");
    assert_eq!(state(&s, ids[0]).await, OrderState::Acknowledged);
    let receipt = SubmitAnswer::Receipt { supplier_ref: "R-1".into(), lines: vec![] };
    s.record_submit(job.lease(), &job.key, &receipt, NOW + 1).await.unwrap();
    let dispatched = s
        .supplier_events_since(0)
        .await
        .unwrap()
        .into_iter()
        .filter(|(who, e)| *who == a && matches!(e, Event::Dispatched { .. }))
        .count();
    assert_eq!(dispatched, 1, "one dispatch for the PO, counted when the supplier first spoke of it");
    let po = s.purchase_order(&job.key).await.unwrap().unwrap();
    assert_eq!(po.dispatched_at, Some(NOW));
}

suite!(
    an_update_that_beats_the_receipt_counts_the_dispatch_once,
    a_po_not_shipped_within_the_sla_raises_an_alert,
    a_group_of_answers_is_recorded_as_each_alone,
    routing_creates_each_po_with_its_submit_job,
    a_worker_whose_lease_ran_out_cannot_commit,
    concurrent_claims_never_share_a_job,
    updates_apply_once_and_never_corrupt,
    a_refused_po_moves_to_the_next_supplier,
    a_dead_letter_can_be_retried,
    cancellations_from_the_erp_reach_the_suppliers,
);
