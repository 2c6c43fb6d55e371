//! One store suite, run against both backends: a SQLite file and the
//! PostgreSQL server at 127.0.0.1:5432 (database `test`; override with
//! DAIFA_TEST_PG_URL). Postgres being unreachable fails the run, never skips.

mod common;

use common::db::{Db, suite};
use daifa_host::domain::*;
use rust_decimal::Decimal;

fn content(id: u32, modified: &str) -> OrderContent {
    OrderContent {
        source: "kingdee".into(),
        external_id: ExternalId(id.to_string()),
        bill_no: BillNo(format!("XSDD{id:06}")),
        platform_order_no: Some(format!("TB{id}")),
        customer: "CUST001".into(),
        sales_org: "100".into(),
        platform: "tmall".into(),
        ship_to: ShipTo {
            name: "李四".into(),
            phone: "13900139000".into(),
            province: "浙江省".into(),
            city: "杭州市".into(),
            district: "西湖区".into(),
            street: "文三路 90 号".into(),
            postcode: "310012".into(),
            country: "CN".into(),
        },
        lines: (1..=3)
            .map(|n| OrderLine {
                erp_line_id: ErpLineId(format!("{id}-{n}")),
                sku: Sku(format!("MAT{n:03}")),
                quantity: Decimal::from(n),
                unit_price: Decimal::new(1999, 2),
                tax_rate: Decimal::from(13),
                unit: String::new(),
            })
            .collect(),
        remark: String::new(),
        source_modified: modified.into(),
        cancelled: false,
        intake_problems: vec![],
    }
}

fn actor() -> Actor {
    Actor::Ingest("kingdee".into())
}

async fn ingest_reads_back_with_lines_and_history(db: Db) {
    let s = &db.store;
    let out = s
        .ingest_batch(vec![content(1, "2026-11-25T10:00:00"), content(2, "2026-11-25T10:00:00")], &actor(), 1000)
        .await
        .unwrap();
    assert_eq!((out.received, out.exceptions), (2, 0));
    let o = s.order_by_external("kingdee", "1").await.unwrap().unwrap();
    assert_eq!(o.state, OrderState::Received);
    assert_eq!(o.content, content(1, "2026-11-25T10:00:00"));
    assert_eq!(o.history.len(), 1);
    assert_eq!(o.history[0].actor, "ingest:kingdee");
    let again = s.order(o.id.unwrap()).await.unwrap();
    assert_eq!(again, o);
    assert_eq!(s.pending_outbox(10).await.unwrap().len(), 2, "each received order leaves work in the outbox");
}

async fn replays_are_deduplicated(db: Db) {
    let s = &db.store;
    let batch: Vec<_> = (1..=50).map(|i| content(i, "2026-11-25T10:00:00")).collect();
    s.ingest_batch(batch.clone(), &actor(), 1).await.unwrap();
    let out = s.ingest_batch(batch, &actor(), 2).await.unwrap();
    assert_eq!(out.unchanged, 50);
    assert_eq!(out.received, 0);
    // The same order twice in one batch is an error for that id, never a
    // silent pick; the rest of the batch is stored.
    let out = s
        .ingest_batch(
            vec![
                content(60, "2026-11-25T10:00:00"),
                content(60, "2026-11-25T10:00:05"),
                content(61, "2026-11-25T10:00:00"),
            ],
            &actor(),
            3,
        )
        .await
        .unwrap();
    assert_eq!(out.received, 1);
    assert_eq!(out.refused.len(), 2, "{out:?}");
    assert!(out.refused.iter().all(|r| r.external_id == "60" && r.reason.contains("appears 2 times")), "{out:?}");
    assert!(s.order_by_external("kingdee", "60").await.unwrap().is_none());
    assert_eq!(s.count_by_state().await.unwrap()[&OrderState::Received], 51);
}

async fn revisions_are_ordered_repaired_and_rerouted(db: Db) {
    let s = &db.store;
    s.ingest_batch(vec![content(1, "2026-11-25 10:00:05"), content(2, "2026-11-25 10:00:05")], &actor(), 1)
        .await
        .unwrap();
    // A stale retry (older stamp) is refused and kept visible, not applied.
    let mut stale = content(1, "2026-11-25 10:00:01");
    stale.ship_to.street = "旧地址".into();
    let out = s.ingest_batch(vec![stale], &actor(), 2).await.unwrap();
    assert_eq!(out.refused.len(), 1, "{out:?}");
    assert!(out.refused[0].reason.contains("older than the stored revision"), "{out:?}");
    let o1 = s.order_by_external("kingdee", "1").await.unwrap().unwrap();
    assert_ne!(o1.content.ship_to.street, "旧地址");
    assert!(s.rejects(10).await.unwrap().iter().any(|(_, _, r)| r.contains("older than the stored revision")));

    // The same stamp with different content (a torn read repaired): applied.
    let mut whole = content(1, "2026-11-25 10:00:05");
    let mut extra = whole.lines[0].clone();
    extra.erp_line_id = ErpLineId("1-extra".into());
    whole.lines.push(extra);
    let n = whole.lines.len();
    let out = s.ingest_batch(vec![whole.clone()], &actor(), 3).await.unwrap();
    assert_eq!((out.updated, out.unchanged), (1, 0), "{out:?}");
    assert_eq!(s.order_by_external("kingdee", "1").await.unwrap().unwrap().content.lines.len(), n);
    let out = s.ingest_batch(vec![whole], &actor(), 4).await.unwrap();
    assert_eq!(out.unchanged, 1, "a true replay is unchanged: {out:?}");

    // Edited after routing, before dispatch: back to received, with why.
    let id2 = s.order_by_external("kingdee", "2").await.unwrap().unwrap().id.unwrap();
    s.transition(id2, OrderState::Routed, &Actor::Router, "to S1", 5).await.unwrap();
    let mut moved = content(2, "2026-11-25 10:05:00");
    moved.ship_to.street = "新地址 8 号".into();
    let out = s.ingest_batch(vec![moved], &actor(), 6).await.unwrap();
    assert_eq!((out.updated, out.rerouted), (1, 1), "{out:?}");
    let o2 = s.order(id2).await.unwrap();
    assert_eq!(o2.state, OrderState::Received);
    let last = o2.history.last().unwrap();
    assert_eq!((last.from, last.to), (Some(OrderState::Routed), OrderState::Received));
    assert!(
        last.reason.contains("ship-to address changed") && last.reason.contains("routing again"),
        "{}",
        last.reason
    );
    assert!(
        s.pending_outbox(100).await.unwrap().iter().any(|(_, t, o)| t == "order.received" && *o == Some(id2.0)),
        "the router is told"
    );
}

async fn bad_data_is_kept_in_exception_and_retryable(db: Db) {
    let s = &db.store;
    let mut bad = content(7, "t1");
    bad.ship_to.street.clear();
    bad.lines[1].quantity = Decimal::from(-2);
    let out = s.ingest_batch(vec![bad.clone()], &actor(), 1).await.unwrap();
    assert_eq!(out.exceptions, 1);
    let o = s.order_by_external("kingdee", "7").await.unwrap().unwrap();
    assert_eq!(o.state, OrderState::Exception);
    assert!(
        o.state_reason.contains("ship_to.street is missing") && o.state_reason.contains("quantity -2"),
        "{}",
        o.state_reason
    );
    assert!(s.pending_outbox(10).await.unwrap().is_empty(), "nothing downstream for an exception");

    // Fixed in the ERP: the next revision brings it back to received.
    let out = s.ingest_batch(vec![content(7, "t2")], &actor(), 2).await.unwrap();
    assert_eq!(out.updated, 1);
    let o = s.order_by_external("kingdee", "7").await.unwrap().unwrap();
    assert_eq!(o.state, OrderState::Received);
    assert_eq!(o.history.iter().map(|h| h.to).collect::<Vec<_>>(), vec![OrderState::Exception, OrderState::Received]);

    // Or fixed by an operator.
    s.ingest_batch(vec![bad.clone_with_id(8)], &actor(), 3).await.unwrap();
    let id = s.order_by_external("kingdee", "8").await.unwrap().unwrap().id.unwrap();
    let fixed = s.fix_content(id, content(8, "t1"), &Actor::Operator("wang".into()), 4).await.unwrap();
    assert_eq!(fixed.state, OrderState::Received);
    assert_eq!(fixed.history.last().unwrap().actor, "operator:wang");
}

trait CloneWithId {
    fn clone_with_id(&self, id: u32) -> OrderContent;
}
impl CloneWithId for OrderContent {
    fn clone_with_id(&self, id: u32) -> OrderContent {
        let mut c = self.clone();
        c.external_id = ExternalId(id.to_string());
        c.bill_no = BillNo(format!("XSDD{id:06}"));
        c
    }
}

async fn changes_before_and_after_dispatch(db: Db) {
    let s = &db.store;
    s.ingest_batch(vec![content(1, "t1"), content(2, "t1"), content(3, "t1")], &actor(), 1).await.unwrap();
    // Order 2 goes to a supplier.
    let id2 = s.order_by_external("kingdee", "2").await.unwrap().unwrap().id.unwrap();
    s.transition(id2, OrderState::Routed, &Actor::Router, "to S1", 2).await.unwrap();
    s.transition(id2, OrderState::Dispatched, &Actor::Dispatcher, "PO-1 sent", 3).await.unwrap();

    let mut c1 = content(1, "t2");
    c1.lines[0].quantity = Decimal::from(9);
    let mut c2 = content(2, "t2");
    c2.ship_to.street = "另一个地址".into();
    let mut c3 = content(3, "t2");
    c3.remark = "noise only".into();
    let out = s.ingest_batch(vec![c1, c2.clone(), c3], &actor(), 4).await.unwrap();
    // A remark-only edit before dispatch is written too (nothing silently dropped).
    assert_eq!((out.updated, out.raised, out.unchanged), (2, 1, 0), "{out:?}");

    let o1 = s.order_by_external("kingdee", "1").await.unwrap().unwrap();
    assert_eq!(o1.content.lines[0].quantity, Decimal::from(9), "undispatched: updated in place");
    assert_eq!(o1.state, OrderState::Received);

    let o2 = s.order(id2).await.unwrap();
    assert_eq!(o2.state, OrderState::Exception);
    assert!(o2.state_reason.contains("after dispatch"), "{}", o2.state_reason);
    assert_eq!(o2.content.ship_to.street, "文三路 90 号", "what the supplier has stays visible");
    assert_eq!(o2.history.last().unwrap().from, Some(OrderState::Dispatched));

    let o3 = s.order_by_external("kingdee", "3").await.unwrap().unwrap();
    assert_eq!(o3.content.remark, "noise only");
    assert_eq!(o3.state, OrderState::Received);

    // Cancelled in the ERP before dispatch.
    let mut c1 = content(1, "t3");
    c1.cancelled = true;
    s.ingest_batch(vec![c1], &actor(), 5).await.unwrap();
    assert_eq!(s.order_by_external("kingdee", "1").await.unwrap().unwrap().state, OrderState::Cancelled);
}

async fn transitions_are_checked_and_atomic(db: Db) {
    let s = &db.store;
    s.ingest_batch(vec![content(1, "t1")], &actor(), 1).await.unwrap();
    let id = s.order_by_external("kingdee", "1").await.unwrap().unwrap().id.unwrap();
    let err = s.transition(id, OrderState::Shipped, &Actor::Tracker, "?", 2).await.unwrap_err();
    assert!(err.to_string().contains("received → shipped is not a legal transition"), "{err}");
    let o = s.transition(id, OrderState::OnHold, &Actor::Router, "no supplier serves 西藏", 3).await.unwrap();
    assert_eq!(o.state, OrderState::OnHold);
    let o = s.order(id).await.unwrap();
    assert_eq!(o.state_reason, "no supplier serves 西藏");
    assert_eq!(o.history.len(), 2);
    let topics: Vec<String> = s.pending_outbox(10).await.unwrap().into_iter().map(|(_, t, _)| t).collect();
    assert_eq!(topics, vec!["order.received", "order.on_hold"]);
}

async fn cursors_rejects_and_big_batches(db: Db) {
    let s = &db.store;
    assert_eq!(s.cursor("kingdee").await.unwrap(), None);
    s.set_cursor("kingdee", "2026-11-25 10:00:00", 1).await.unwrap();
    s.set_cursor("kingdee", "2026-11-25 10:05:00", 2).await.unwrap();
    assert_eq!(s.cursor("kingdee").await.unwrap().as_deref(), Some("2026-11-25 10:05:00"));
    s.reject_row("csv", "garbage,,,", "line 3: 4 fields, expected 12", 3).await.unwrap();
    assert_eq!(s.rejects(5).await.unwrap()[0].2, "line 3: 4 fields, expected 12");

    let batch: Vec<_> = (1..=2_500).map(|i| content(i, "t1")).collect();
    let out = s.ingest_batch(batch, &actor(), 4).await.unwrap();
    assert_eq!(out.received, 2_500);
    assert_eq!(s.list_orders(Some(OrderState::Received), 10_000).await.unwrap().len(), 2_500);
    let o = s.order_by_external("kingdee", "2500").await.unwrap().unwrap();
    assert_eq!(o.content.lines.len(), 3);
}

suite!(
    ingest_reads_back_with_lines_and_history,
    replays_are_deduplicated,
    bad_data_is_kept_in_exception_and_retryable,
    changes_before_and_after_dispatch,
    transitions_are_checked_and_atomic,
    cursors_rejects_and_big_batches,
    revisions_are_ordered_repaired_and_rerouted,
);
