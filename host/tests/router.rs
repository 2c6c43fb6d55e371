//! The router service against real stores (a SQLite file and PostgreSQL):
//! arrivals routed exactly once (also with two routers at once), decisions
//! stored with explanations, capacity counted across batches and restarts,
//! re-routing on rejection / overdue backorder / open circuit with bounded
//! attempts, hot policy and catalog changes, persisted performance scores.
//! And stock refreshed through the real rest-json plugin from the supplier
//! simulator over HTTP.

mod common;

use std::sync::Arc;

use common::db::{Db, suite};
use daifa_host::domain::*;
use daifa_host::router::{RerouteResult, Router, RouterConfig};
use daifa_host::routing::performance::Event;
use daifa_host::routing::{CatalogFile, Exclusion, Outcome};
use daifa_host::store::Store;
use rust_decimal::Decimal;

const H: i64 = 3_600_000;
/// 2026-11-25 10:00 CST.
const NOW: i64 = 1_795_572_000_000;

/// A (cheapest), B, C: everywhere, every SKU; D: Guangdong only, SKU-X only.
fn catalog_toml(a_capacity: Option<u32>) -> String {
    let cap = a_capacity.map(|c| format!("daily_capacity = {c}\n")).unwrap_or_default();
    let mut t = format!(
        r#"
[[supplier]]
id = "A"
plugin = "rest-json"
default_shipping = "5"
priority = 3
{cap}
[[supplier]]
id = "B"
plugin = "rest-json"
default_shipping = "6"
priority = 2

[[supplier]]
id = "C"
plugin = "rest-json"
default_shipping = "7"
priority = 1

[[supplier]]
id = "D"
plugin = "rest-json"
regions = ["广东省"]
default_shipping = "1"
"#
    );
    for (s, cost) in [("A", 10), ("B", 11), ("C", 12)] {
        for sku in ["SKU-1", "SKU-2", "SKU-3"] {
            t.push_str(&format!(
                "[[offer]]\nsupplier = \"{s}\"\nsku = \"{sku}\"\nsupplier_sku = \"{s}-{sku}\"\nunit_cost = \"{cost}\"\n"
            ));
        }
    }
    t.push_str("[[offer]]\nsupplier = \"D\"\nsku = \"SKU-X\"\nunit_cost = \"3\"\n");
    t
}

fn policy_toml(version: u32, keep: &str) -> String {
    format!(
        "version = {version}\n[fallback]\nname = \"default\"\nkeep_together = \"{keep}\"\nsplit_penalty = \"3\"\n\
         max_splits = {}\n",
        if keep == "required" { 0 } else { 2 }
    )
}

fn order(id: u32, province: &str, skus: &[&str]) -> OrderContent {
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
            province: province.into(),
            city: "某市".into(),
            district: "某区".into(),
            street: "某路 1 号".into(),
            postcode: "100000".into(),
            country: "CN".into(),
        },
        lines: skus
            .iter()
            .enumerate()
            .map(|(n, sku)| OrderLine {
                erp_line_id: ErpLineId(format!("{id}-{n}")),
                sku: Sku(sku.to_string()),
                quantity: Decimal::ONE,
                unit_price: Decimal::from(30),
                tax_rate: Decimal::from(13),
                unit: String::new(),
            })
            .collect(),
        remark: String::new(),
        source_modified: "2026-11-25T09:00:00".into(),
        cancelled: false,
        intake_problems: vec![],
    }
}

async fn setup(s: &Store, catalog: &str, policy: &str) {
    let c = CatalogFile::from_toml(catalog).unwrap().validate(NOW).unwrap();
    s.replace_catalog(&c, NOW).await.unwrap();
    let version = policy.lines().next().unwrap().trim_start_matches("version = ").parse().unwrap();
    s.put_policy(version, policy, "test", NOW).await.unwrap();
}

async fn ingest(s: &Store, orders: Vec<OrderContent>) -> Vec<OrderId> {
    let ext: Vec<String> = orders.iter().map(|o| o.external_id.0.clone()).collect();
    s.ingest_batch(orders, &Actor::Ingest("kingdee".into()), NOW).await.unwrap();
    let m = s.states_of("kingdee", &ext).await.unwrap();
    ext.iter().map(|e| m[e].0).collect()
}

fn cfg() -> RouterConfig {
    RouterConfig { batch: 64, ..Default::default() }
}

async fn arrivals_are_routed_exactly_once(db: Db) {
    let s = &db.store;
    setup(s, &catalog_toml(None), &policy_toml(1, "preferred")).await;
    let mut orders: Vec<OrderContent> = (1..=300).map(|i| order(i, "浙江省", &["SKU-1", "SKU-2"])).collect();
    orders.push(order(301, "浙江省", &["SKU-NOBODY"]));
    orders.push(order(302, "广东省", &["SKU-X", "SKU-1"]));
    orders.push(order(303, "浙江省", &["SKU-X"]));
    let ids = ingest(s, orders).await;

    // Two routers (two hosts) race over the same outbox.
    let r1 = Arc::new(Router::new(s.clone(), cfg(), NOW).await.unwrap());
    let r2 = Arc::new(Router::new(s.clone(), cfg(), NOW).await.unwrap());
    let (a, b) = tokio::join!(r1.route_pending(NOW), r2.route_pending(NOW));
    let (a, b) = (a.unwrap(), b.unwrap());
    assert_eq!(a.routed + b.routed, 301, "{a:?} {b:?}");
    assert_eq!(a.on_hold + b.on_hold, 2);
    assert_eq!(r1.route_pending(NOW).await.unwrap().routed, 0, "nothing left to route");
    assert!(s.pending_routing(10).await.unwrap().is_empty());

    for id in &ids {
        let d = s.decisions(*id).await.unwrap();
        assert_eq!(d.len(), 1, "order {id}: exactly one decision");
        assert_eq!(d[0].attempt, 1);
    }
    let counts = s.count_by_state().await.unwrap();
    assert_eq!(counts.get(&OrderState::Routed), Some(&301));
    assert_eq!(counts.get(&OrderState::OnHold), Some(&2));

    // The cheapest full cover, with its explanation.
    let d = &s.decisions(ids[0]).await.unwrap()[0].decision;
    assert_eq!(d.suppliers, vec![SupplierId::from("A")]);
    assert_eq!(d.landed_cost, Decimal::from(25));
    let o = s.order(ids[0]).await.unwrap();
    assert!(o.state_reason.contains("A") && o.state_reason.contains("policy v1"), "{}", o.state_reason);
    assert_eq!(o.history.last().unwrap().actor, "router");

    // Guangdong: SKU-X only at D (ships there), SKU-1 from A: a split.
    let gd = &s.decisions(ids[301]).await.unwrap()[0].decision;
    assert_eq!(gd.suppliers.len(), 2, "{gd:?}");
    // Zhejiang: D does not ship there; nobody else carries SKU-X.
    let zj = s.order(ids[302]).await.unwrap();
    assert_eq!(zj.state, OrderState::OnHold);
    let zd = &s.decisions(ids[302]).await.unwrap()[0].decision;
    assert_eq!(zd.candidates[0].excluded, Some(Exclusion::NotServingRegion));
    let none = s.order(ids[300]).await.unwrap();
    assert!(none.state_reason.contains("no supplier carries SKU SKU-NOBODY"), "{}", none.state_reason);
}

async fn capacity_is_counted_across_batches_and_restarts(db: Db) {
    let s = &db.store;
    setup(s, &catalog_toml(Some(10)), &policy_toml(1, "required")).await;
    ingest(s, (1..=30).map(|i| order(i, "浙江省", &["SKU-1"])).collect()).await;
    let r = Router::new(s.clone(), RouterConfig { batch: 7, ..Default::default() }, NOW).await.unwrap();
    r.route_pending(NOW).await.unwrap();
    let used = s.orders_per_supplier_since(0).await.unwrap();
    assert_eq!(used[&SupplierId::from("A")], 10, "A's capacity is 10 a day");
    assert_eq!(used[&SupplierId::from("B")], 20);

    // A new router (a restart) counts today's allocations from the store.
    ingest(s, (31..=35).map(|i| order(i, "浙江省", &["SKU-1"])).collect()).await;
    let r = Router::new(s.clone(), cfg(), NOW + 60_000).await.unwrap();
    r.route_pending(NOW + 60_000).await.unwrap();
    assert_eq!(s.orders_per_supplier_since(0).await.unwrap()[&SupplierId::from("A")], 10);
    // The next business day (midnight CST) A has capacity again.
    ingest(s, vec![order(36, "浙江省", &["SKU-1"])]).await;
    let tomorrow = NOW + 24 * H;
    r.route_pending(tomorrow).await.unwrap();
    assert_eq!(s.orders_per_supplier_since(tomorrow - H).await.unwrap()[&SupplierId::from("A")], 1);
}

async fn rejected_lines_move_with_bounded_attempts(db: Db) {
    let s = &db.store;
    setup(s, &catalog_toml(None), &policy_toml(1, "free")).await;
    let ids = ingest(s, vec![order(1, "浙江省", &["SKU-1"]), order(2, "广东省", &["SKU-X", "SKU-1"])]).await;
    let r = Router::new(s.clone(), cfg(), NOW).await.unwrap();
    r.route_pending(NOW).await.unwrap();
    let reject = |id: OrderId| async move {
        s.transition(id, OrderState::Dispatched, &Actor::Dispatcher, "sent", NOW).await.unwrap();
        s.transition(id, OrderState::Rejected, &Actor::Dispatcher, "supplier said no", NOW).await.unwrap();
    };
    let id = ids[0];
    let mut expected = vec!["A", "B", "C"];
    for attempt in 2..=3 {
        let at = SupplierId::from(expected.remove(0));
        reject(id).await;
        let out = r.reroute(id, &at, None, &format!("rejected by {at}: out of stock"), NOW).await.unwrap();
        assert!(matches!(out, RerouteResult::Rerouted { attempt: a, .. } if a == attempt), "{out:?}");
        let d = s.decisions(id).await.unwrap().pop().unwrap();
        assert_eq!(d.decision.suppliers, vec![SupplierId::from(expected[0])]);
        // Everyone who failed is excluded, and says so.
        for c in d.decision.candidates.iter().filter(|c| c.supplier == at) {
            assert_eq!(c.excluded, Some(Exclusion::TriedBefore));
        }
        assert_eq!(s.order(id).await.unwrap().state, OrderState::Routed);
    }
    // Attempt 4 would exceed max_attempts = 3: held for a person.
    reject(id).await;
    let out = r.reroute(id, &SupplierId::from("C"), None, "rejected by C", NOW).await.unwrap();
    assert!(matches!(&out, RerouteResult::OnHold { reason, .. } if reason.contains("gave up after 3")), "{out:?}");
    let o = s.order(id).await.unwrap();
    assert_eq!(o.state, OrderState::OnHold);
    let trail: Vec<_> = o.history.iter().map(|h| h.to).collect();
    assert_eq!(trail.iter().filter(|s| **s == OrderState::Rejected).count(), 3, "{trail:?}");
    assert_eq!(s.decisions(id).await.unwrap().len(), 4);

    // A split order: only the rejected line moves.
    let id = ids[1];
    let before = s.decisions(id).await.unwrap().pop().unwrap().decision;
    let x_at = before.allocations.iter().find(|a| a.line_id == "2-0").unwrap().supplier.clone();
    assert_eq!(x_at.0, "D");
    reject(id).await;
    let out = r.reroute(id, &SupplierId::from("A"), Some(&["2-1".to_string()]), "rejected", NOW).await.unwrap();
    assert!(matches!(out, RerouteResult::Rerouted { .. }), "{out:?}");
    let after = s.decisions(id).await.unwrap().pop().unwrap().decision;
    let at = |l: &str| after.allocations.iter().find(|a| a.line_id == l).unwrap().supplier.0.clone();
    assert_eq!((at("2-0").as_str(), at("2-1").as_str()), ("D", "B"));
    // Moving a line the supplier does not have is refused, naming it.
    let e = r.reroute(id, &SupplierId::from("C"), None, "x", NOW).await.unwrap_err();
    assert!(e.to_string().contains("no line is allocated to supplier C"), "{e}");
}

async fn overdue_backorders_and_open_circuits_move(db: Db) {
    let s = &db.store;
    setup(s, &catalog_toml(None), &policy_toml(1, "required")).await;
    let ids = ingest(s, (1..=5).map(|i| order(i, "浙江省", &["SKU-1", "SKU-2"])).collect()).await;
    let cfg = RouterConfig { backorder_deadline_ms: 48 * H, ..cfg() };
    let r = Router::new(s.clone(), cfg, NOW).await.unwrap();
    r.route_pending(NOW).await.unwrap();

    // Order 1 backordered at A three days ago; order 2 only an hour ago.
    for (id, at) in [(ids[0], NOW - 72 * H), (ids[1], NOW - H)] {
        s.transition(id, OrderState::Dispatched, &Actor::Dispatcher, "sent", at).await.unwrap();
        s.transition(id, OrderState::Backordered, &Actor::Tracker, "supplier backordered", at).await.unwrap();
    }
    assert_eq!(r.sweep_backorders(NOW).await.unwrap(), 1);
    let moved = s.decisions(ids[0]).await.unwrap().pop().unwrap();
    assert_eq!(moved.decision.suppliers, vec![SupplierId::from("B")]);
    assert!(moved.cause.contains("backordered for more than 48 h"), "{}", moved.cause);
    assert_eq!(s.order(ids[1]).await.unwrap().state, OrderState::Backordered);

    // A's circuit opens: its routed, undispatched orders move; new ones avoid it.
    assert_eq!(r.set_circuit(&SupplierId::from("A"), true, NOW).await.unwrap(), 3);
    for id in &ids[2..] {
        let d = s.decisions(*id).await.unwrap().pop().unwrap();
        assert_eq!(d.decision.suppliers, vec![SupplierId::from("B")], "order {id}");
        assert!(d.cause.contains("circuit open at A"));
    }
    let new = ingest(s, vec![order(9, "浙江省", &["SKU-1"])]).await;
    r.route_pending(NOW).await.unwrap();
    let d = s.decisions(new[0]).await.unwrap().pop().unwrap().decision;
    assert_eq!(d.suppliers, vec![SupplierId::from("B")]);
    assert!(d.candidates.iter().any(|c| c.supplier.0 == "A" && c.excluded == Some(Exclusion::CircuitOpen)));
    r.set_circuit(&SupplierId::from("A"), false, NOW).await.unwrap();
    let new = ingest(s, vec![order(10, "浙江省", &["SKU-1"])]).await;
    r.route_pending(NOW).await.unwrap();
    assert_eq!(s.decisions(new[0]).await.unwrap()[0].decision.suppliers, vec![SupplierId::from("A")]);
}

async fn policy_and_catalog_change_without_restart(db: Db) {
    let s = &db.store;
    setup(s, &catalog_toml(None), &policy_toml(1, "required")).await;
    let r = Router::new(s.clone(), cfg(), NOW).await.unwrap();
    let a = ingest(s, vec![order(1, "广东省", &["SKU-X", "SKU-1"])]).await;
    r.route_pending(NOW).await.unwrap();
    // Keep-together required and nobody carries both: held, with the reason.
    let o = s.order(a[0]).await.unwrap();
    assert_eq!(o.state, OrderState::OnHold);
    assert!(o.state_reason.contains("keep-together is required"), "{}", o.state_reason);

    // Version 2 allows splits; an operator sends the held order back.
    s.put_policy(2, &policy_toml(2, "free"), "test", NOW).await.unwrap();
    let e = s.put_policy(2, &policy_toml(2, "free"), "test", NOW).await.unwrap_err();
    assert!(e.to_string().contains("bump `version`"), "{e}");
    s.transition(a[0], OrderState::Received, &Actor::Operator("ops".into()), "policy v2 allows splits", NOW)
        .await
        .unwrap();
    r.route_pending(NOW).await.unwrap();
    let d = s.decisions(a[0]).await.unwrap();
    assert_eq!(d.len(), 2);
    assert_eq!((d[1].attempt, d[1].decision.policy_version), (2, 2));
    assert_eq!(d[1].decision.outcome, Outcome::Routed);

    // Pausing A in the catalog takes effect on the next batch.
    let mut a_prof = s.suppliers().await.unwrap().into_iter().find(|r| r.supplier.id.0 == "A").unwrap().profile;
    a_prof.paused = true;
    s.update_supplier_profile(&a_prof, NOW).await.unwrap();
    let b = ingest(s, vec![order(2, "浙江省", &["SKU-1"])]).await;
    r.route_pending(NOW).await.unwrap();
    let d = s.decisions(b[0]).await.unwrap().pop().unwrap().decision;
    assert_eq!(d.suppliers, vec![SupplierId::from("B")]);
    assert!(d.candidates.iter().any(|c| c.supplier.0 == "A" && c.excluded == Some(Exclusion::Paused)));

    // Stock confirmed at zero excludes B too (safety stock 0, quantity 1).
    s.update_stock(&[(SupplierId::from("B"), SupplierSku::from("B-SKU-1"), 0)], NOW).await.unwrap();
    let c = ingest(s, vec![order(3, "浙江省", &["SKU-1"])]).await;
    r.route_pending(NOW).await.unwrap();
    assert_eq!(s.decisions(c[0]).await.unwrap()[0].decision.suppliers, vec![SupplierId::from("C")]);
}

async fn performance_scores_persist_and_steer(db: Db) {
    let s = &db.store;
    // Performance counts fully: a score of 0 doubles a supplier's cost.
    let policy = "version = 1\n[fallback]\nname = \"p\"\nweights = { performance = \"1\" }\n";
    setup(s, &catalog_toml(None), policy).await;
    let r = Router::new(s.clone(), cfg(), NOW).await.unwrap();
    let min = r.config().performance.min_samples;
    let mut events = Vec::new();
    for i in 0..min as i64 {
        let at = NOW - 10 * H + i * 1000;
        events.push((SupplierId::from("A"), Event::Dispatched { at }));
        events.push((SupplierId::from("A"), Event::Shipped { at: at + 1, after_ms: 90 * H }));
        events.push((SupplierId::from("B"), Event::Dispatched { at }));
        events.push((SupplierId::from("B"), Event::Shipped { at: at + 1, after_ms: 12 * H }));
    }
    r.record_events(&events).await.unwrap();
    let mut score = Decimal::ONE;
    for k in 0..8 {
        for c in r.evaluate(NOW + k * 60_000).await.unwrap() {
            if c.supplier.0 == "A" {
                score = c.to;
                assert!(c.cause.contains("median time to shipped 90.0 h"), "{}", c.cause);
            }
        }
    }
    assert!(score < Decimal::new(5, 1), "A's score fell step by step: {score}");
    assert!(!s.score_changes(Some(&SupplierId::from("A")), 100).await.unwrap().is_empty());

    // A restarted router restores the score and the window; A is now dearer than B.
    let r2 = Router::new(s.clone(), cfg(), NOW + H).await.unwrap();
    let perf = r2.performance(NOW + H).await;
    let a = perf.iter().find(|p| p.supplier.0 == "A").unwrap();
    assert_eq!(a.score, score);
    assert_eq!(a.metrics.median_ship_ms, Some(90 * H));
    let ids = ingest(s, vec![order(1, "浙江省", &["SKU-1"])]).await;
    r2.route_pending(NOW + H).await.unwrap();
    assert_eq!(s.decisions(ids[0]).await.unwrap()[0].decision.suppliers, vec![SupplierId::from("B")]);
}

async fn the_order_flow_feeds_performance_and_rejections_move(db: Db) {
    let s = &db.store;
    setup(s, &catalog_toml(None), &policy_toml(1, "free")).await;
    let ids = ingest(s, (1..=4).map(|i| order(i, "浙江省", &["SKU-1"])).collect()).await;
    let cfg = RouterConfig { feed_settle_ms: 0, ..cfg() };
    let r = Router::new(s.clone(), cfg.clone(), NOW).await.unwrap();
    r.route_pending(NOW).await.unwrap();
    let by = Actor::Dispatcher;
    let go = |id: OrderId, to: OrderState, why: &'static str, at: i64| {
        let by = by.clone();
        async move { s.transition(id, to, &by, why, at).await.unwrap() }
    };
    // Order 1: dispatched, acknowledged after 1 h, shipped after 30 h.
    go(ids[0], OrderState::Dispatched, "sent", NOW).await;
    go(ids[0], OrderState::Acknowledged, "accepted", NOW + H).await;
    go(ids[0], OrderState::Shipped, "SF1234567890", NOW + 30 * H).await;
    // Order 2: A rejects it; the feed moves it to B by itself.
    go(ids[1], OrderState::Dispatched, "sent", NOW).await;
    go(ids[1], OrderState::Rejected, "out of stock", NOW + 2 * H).await;
    // Order 4: A rejects it, and it was re-routed before the feed's cursor
    // moved (a crash in between): the replay charges A, not the new supplier,
    // and does not move the order again.
    go(ids[3], OrderState::Dispatched, "sent", NOW).await;
    go(ids[3], OrderState::Rejected, "address unreachable", NOW + 2 * H).await;
    r.reroute(ids[3], &SupplierId::from("A"), None, "rejected by A", NOW + 3 * H).await.unwrap();

    let f = r.feed_performance(NOW + 31 * H).await.unwrap();
    assert_eq!((f.events, f.rerouted), (7, 1), "{f:?}");
    assert_eq!(s.decisions(ids[3]).await.unwrap().len(), 2, "order 4 moved once");
    let o2 = s.order(ids[1]).await.unwrap();
    assert_eq!(o2.state, OrderState::Routed);
    let d = s.decisions(ids[1]).await.unwrap().pop().unwrap();
    assert_eq!(d.decision.suppliers, vec![SupplierId::from("B")]);
    assert!(d.cause.contains("rejected by A: out of stock"), "{}", d.cause);
    let a =
        |perf: Vec<daifa_host::router::SupplierPerformance>| perf.into_iter().find(|p| p.supplier.0 == "A").unwrap();
    let m = a(r.performance(NOW + 31 * H).await).metrics;
    assert_eq!((m.dispatched, m.median_ack_ms, m.median_ship_ms), (3, Some(H), Some(30 * H)));
    assert!((m.acceptance_rate - 1.0 / 3.0).abs() < 1e-9, "{m:?}");

    // Nothing is counted twice: not by the same router, not after a restart.
    assert_eq!(r.feed_performance(NOW + 31 * H).await.unwrap().events, 0);
    let r2 = Router::new(s.clone(), cfg.clone(), NOW + 31 * H).await.unwrap();
    assert_eq!(r2.feed_performance(NOW + 31 * H).await.unwrap().events, 0);
    assert_eq!(a(r2.performance(NOW + 31 * H).await).metrics, m);

    // A change younger than the settle time waits for the next pass.
    let r3 = Router::new(s.clone(), RouterConfig { feed_settle_ms: 60_000, ..cfg }, NOW + 32 * H).await.unwrap();
    go(ids[2], OrderState::Dispatched, "sent", NOW + 32 * H).await;
    assert_eq!(r3.feed_performance(NOW + 32 * H + 1_000).await.unwrap().events, 0);
    assert_eq!(r3.feed_performance(NOW + 32 * H + 60_000).await.unwrap().events, 1);
    assert_eq!(a(r3.performance(NOW + 33 * H).await).metrics.dispatched, 4);
}

/// Retention forgets only what no unfinished order needs: the history of
/// finished orders and outbox rows that are done; never the history or
/// decisions of an order still under way, nor a pending outbox row; a
/// `*_days` of 0 keeps that kind forever.
async fn retention_forgets_only_what_no_unfinished_order_needs(db: Db) {
    use daifa_host::store::RetentionConfig;
    let s = &db.store;
    setup(s, &catalog_toml(None), &policy_toml(1, "preferred")).await;
    let ids = ingest(s, (1..=4).map(|i| order(i, "浙江省", &["SKU-1"])).collect()).await;
    let r = Router::new(s.clone(), cfg(), NOW).await.unwrap();
    assert_eq!(r.route_pending(NOW).await.unwrap().routed, 4);
    for id in &ids[..2] {
        s.transition(*id, OrderState::Cancelled, &Actor::Operator("ops".into()), "customer withdrew", NOW + 1)
            .await
            .unwrap();
    }
    let pending_before = s.pending_outbox(100).await.unwrap();
    let later = NOW + 400 * 24 * H;
    // History kept forever by default.
    let kept = s.prune(&RetentionConfig::default(), later).await.unwrap();
    assert_eq!(kept.history, 0, "{kept:?}");
    assert!(kept.outbox > 0, "done outbox rows older than a week go: {kept:?}");
    for id in &ids {
        assert!(s.order(*id).await.unwrap().history.len() >= 2);
    }
    let cfg = RetentionConfig { history_days: 30, decisions_days: 30, ..RetentionConfig::default() };
    let pruned = s.prune(&cfg, later).await.unwrap();
    assert_eq!(pruned.history, 2 * 3, "received, routed, cancelled of the two finished orders: {pruned:?}");
    for id in &ids[..2] {
        let o = s.order(*id).await.unwrap();
        assert_eq!((o.state, o.history.len()), (OrderState::Cancelled, 0), "still visible, in its state");
    }
    for id in &ids[2..] {
        let o = s.order(*id).await.unwrap();
        assert_eq!((o.state, o.history.len()), (OrderState::Routed, 2), "an unfinished order keeps its history");
    }
    for id in &ids {
        assert_eq!(s.decisions(*id).await.unwrap().len(), 1, "the last decision of every order stays");
    }
    assert_eq!(s.pending_outbox(100).await.unwrap(), pending_before, "pending work is never pruned");
    // Nothing is older than the cut-off now: a second pass finds nothing.
    assert_eq!(s.prune(&cfg, later).await.unwrap(), Default::default());
}

/// The catalog file is written at start only when it (or the catalog in
/// the store) changed since it was last loaded.
async fn an_unchanged_catalog_file_is_not_written_again(db: Db) {
    let s = &db.store;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("catalog.toml");
    std::fs::write(&file, catalog_toml(None)).unwrap();
    let cfg = RouterConfig { catalog_file: Some(file.clone()), ..cfg() };
    let first = daifa_host::router::load_files(s, &cfg, NOW).await.unwrap();
    assert!(first[0].contains("4 suppliers"), "{first:?}");
    let rev = s.catalog_rev().await.unwrap();
    let again = daifa_host::router::load_files(s, &cfg, NOW + 1).await.unwrap();
    assert!(again[0].ends_with("unchanged"), "{again:?}");
    assert_eq!(s.catalog_rev().await.unwrap(), rev, "nothing written");
    // A change in the file is loaded.
    std::fs::write(&file, catalog_toml(Some(5))).unwrap();
    let changed = daifa_host::router::load_files(s, &cfg, NOW + 2).await.unwrap();
    assert!(changed[0].contains("4 suppliers"), "{changed:?}");
    assert!(s.catalog_rev().await.unwrap() > rev);
    // A catalog changed in the store since (e.g. through the API) is
    // replaced by the file again, as before.
    let c = CatalogFile::from_toml(&catalog_toml(None)).unwrap().validate(NOW).unwrap();
    s.replace_catalog(&c, NOW + 3).await.unwrap();
    let back = daifa_host::router::load_files(s, &cfg, NOW + 4).await.unwrap();
    assert!(back[0].contains("4 suppliers"), "{back:?}");
}

suite!(
    an_unchanged_catalog_file_is_not_written_again,
    retention_forgets_only_what_no_unfinished_order_needs,
    arrivals_are_routed_exactly_once,
    capacity_is_counted_across_batches_and_restarts,
    rejected_lines_move_with_bounded_attempts,
    overdue_backorders_and_open_circuits_move,
    policy_and_catalog_change_without_restart,
    performance_scores_persist_and_steer,
    the_order_flow_feeds_performance_and_rejections_move,
);

/// Stock comes from the supplier's own API through its plugin.
#[tokio::test]
async fn stock_is_refreshed_through_the_plugin() {
    use daifa_host::sim::rest_supplier::{SupplierSim, SupplierSimConfig};
    let mut sim_cfg = SupplierSimConfig::default();
    sim_cfg.stock.insert("A-SKU-1".into(), 0);
    sim_cfg.stock.insert("A-SKU-2".into(), 7);
    let sim = SupplierSim::start(sim_cfg, 0).await.unwrap();
    let reg = Arc::new(common::registry().await);
    let pkg = common::rest_json_package();
    reg.install(&pkg, &common::config(&[("base_url", &sim.base_url()), ("api_token", "sim-token")])).await.unwrap();
    reg.activate("rest-json", &pkg.manifest.version).await.unwrap();

    let db = common::db::sqlite().await;
    let s = &db.store;
    // Only A uses the installed plugin; D names one that is not installed.
    let cat = catalog_toml(None).replace("id = \"D\"\nplugin = \"rest-json\"", "id = \"D\"\nplugin = \"edi-x12\"");
    setup(s, &cat, &policy_toml(1, "required")).await;
    let r = Router::new(s.clone(), cfg(), NOW).await.unwrap();
    let out = r.refresh_stock(&reg, NOW).await.unwrap();
    // A, B and C each offer 3 SKUs through rest-json; D's plugin is missing.
    assert_eq!(out.updated, 9, "{out:?}");
    assert_eq!(out.failures.len(), 1);
    assert!(out.failures[0].1.contains("edi-x12"), "{:?}", out.failures);
    let (_, _, catalog) = s.load_catalog().await.unwrap();
    let a1 = catalog.offers("SKU-1").iter().find(|(_, e)| e.supplier.0 == "A").unwrap();
    assert_eq!((a1.1.stock, a1.1.stock_confirmed_at), (Some(0), Some(NOW)));

    // A has none of SKU-1 now: the order goes to B, and A's exclusion says why.
    let ids = ingest(s, vec![order(1, "浙江省", &["SKU-1"])]).await;
    r.route_pending(NOW).await.unwrap();
    let d = s.decisions(ids[0]).await.unwrap()[0].decision.clone();
    assert_eq!(d.suppliers, vec![SupplierId::from("B")]);
    assert!(
        d.candidates
            .iter()
            .any(|c| c.supplier.0 == "A" && matches!(c.excluded, Some(Exclusion::OutOfStock { available: 0, .. })))
    );
    assert!(sim.request_count() >= 3, "stock came over HTTP");

    // A supplier with a connection is asked through it: its own base URL
    // and credentials, not the plugin's installed config.
    let mut own_cfg = SupplierSimConfig { token: Some("a-own-token".into()), ..SupplierSimConfig::default() };
    own_cfg.stock.insert("A-SKU-1".into(), 42);
    let own = SupplierSim::start(own_cfg, 0).await.unwrap();
    let conn = daifa_host::store::Connection {
        supplier: SupplierId::from("A"),
        plugin: "rest-json".into(),
        pinned_version: None,
        config: [("base_url".to_string(), own.base_url())].into(),
        secrets: [("api_token".to_string(), "a-own-token".to_string())].into(),
        secret_refs: Default::default(),
        max_in_flight: 4,
        rate_per_sec: 0,
        poll_interval_ms: 1_000,
        paused_reason: None,
        revision: 0,
        updated_at: 0,
    };
    s.put_connection(&conn, NOW).await.unwrap();
    let out = r.refresh_stock(&reg, NOW + 1).await.unwrap();
    assert_eq!(out.updated, 9, "{out:?}");
    let (_, _, catalog) = s.load_catalog().await.unwrap();
    let a1 = catalog.offers("SKU-1").iter().find(|(_, e)| e.supplier.0 == "A").unwrap();
    assert_eq!(a1.1.stock, Some(42), "A's stock came from A's own endpoint");
    assert!(own.request_count() >= 1);
}

/// A plugin whose `query-stock` never answers does not hold up routing:
/// the refresh runs beside the routing loop.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_stock_refresh_does_not_hold_up_routing() {
    let reg = Arc::new(common::registry().await);
    let pkg = common::hostile_named("h-slow", |_| {});
    reg.install(&pkg, &common::config(&[("mode", "stock-slow")])).await.unwrap();
    reg.activate("h-slow", &pkg.manifest.version).await.unwrap();
    let db = common::db::sqlite().await;
    let s = &db.store;
    setup(s, &catalog_toml(None).replace("plugin = \"rest-json\"", "plugin = \"h-slow\""), &policy_toml(1, "required"))
        .await;
    let cfg = RouterConfig { interval_ms: 20, stock_refresh_ms: 1, ..cfg() };
    let r = Arc::new(Router::new(s.clone(), cfg, NOW).await.unwrap());
    let (stop, shutdown) = tokio::sync::watch::channel(false);
    let task = tokio::spawn(r.clone().run(Some(reg.clone()), shutdown));
    // Let the refresh start and get stuck in the plugin (2 s per call).
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let ids = ingest(s, vec![order(1, "浙江省", &["SKU-2"])]).await;
    let started = std::time::Instant::now();
    while s.order(ids[0]).await.unwrap().state == OrderState::Received {
        assert!(started.elapsed() < std::time::Duration::from_millis(1_500), "routing waited for the stock refresh");
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    let _ = stop.send(true);
    task.await.unwrap();
}
