//! Suppliers' answers to submits, recorded in set-based statements. A busy
//! dispatcher records hundreds of answers a second; written one statement
//! per row, an answer cost ~20 statements, each a round trip to the
//! database thread while the write lock is held (the ceiling of the whole
//! acceptance stage when measured). Here a group of answers costs a fixed
//! handful of statements, whatever its size, with the same meaning as one
//! answer alone: its lease checked, its PO and lines moved, its events and
//! the order's derived state written, its next jobs created.
//!
//! Owns: the submit-answer transaction body. May call: the store's own
//! helpers (jobs, purchase, orders, connections).

use std::collections::HashSet;

use super::jobs::{JobKind, Lease, finish_jobs, insert_job, insert_ready_jobs, ready_job, rearm_erp_po};
use super::purchase::{
    Applied, DispatchSettings, ErpPoTiming, PoRecord, RerouteRequest, SubmitAnswer, derive_orders, load_pos,
};
use super::updates::{apply_words, reason_of, resolve_line};
use super::{StoreError, Tx, Val, insert_rows, values_statement};
use crate::domain::purchase::{LineStatus, LineWord, PoLineView, PoState, derive_po_state};
use crate::domain::{Actor, OrderState};
use crate::routing::performance::Event;

/// What one answer changes, worked out before anything is written.
struct Plan {
    item: usize,
    po: PoRecord,
    to: PoState,
    detail: String,
    first: bool,
    moved: Vec<String>,
    unknown: Vec<String>,
}

/// Records `items` (lease, PO number, answer) in `tx`. Per item: `Ok`
/// with what it did, or `LeaseLost` (nothing of it written). Any other
/// error fails the whole group.
pub(super) async fn submits_in(
    tx: &mut Tx,
    settings: &DispatchSettings,
    items: &[(Lease, String, SubmitAnswer)],
    now: i64,
) -> Result<Vec<Result<Applied, StoreError>>, StoreError> {
    let mut seen = HashSet::new();
    if let Some((_, dup, _)) = items.iter().find(|(_, po, _)| !seen.insert(po.as_str())) {
        return Err(StoreError::Conflict(format!("purchase order {dup} answered twice in one group")));
    }
    // The fence first: an item whose lease was lost writes nothing.
    let leases: Vec<Lease> = items.iter().map(|(l, _, _)| *l).collect();
    let finished = finish_jobs(tx, &leases, now).await?;
    let mut out: Vec<Result<Applied, StoreError>> = items
        .iter()
        .map(
            |(l, _, _)| {
                if finished.contains(&l.id) { Ok(Applied::default()) } else { Err(StoreError::LeaseLost(l.id)) }
            },
        )
        .collect();
    let live: Vec<String> =
        items.iter().filter(|(l, _, _)| finished.contains(&l.id)).map(|(_, po, _)| po.clone()).collect();
    let positional = tx.positional();
    let mut pos = load_pos(tx, positional, &live).await?;

    let mut plans = Vec::new();
    for (i, (lease, po_number, answer)) in items.iter().enumerate() {
        if !finished.contains(&lease.id) {
            continue;
        }
        // Gone, or cancelled or answered meanwhile (a callback can beat
        // the receipt): the job is done, nothing else changes.
        let Some(po) = pos.remove(po_number).filter(|p| p.state == PoState::Pending) else { continue };
        plans.push(plan(i, po, answer, now));
    }

    // Lines, then the POs themselves, in one statement each.
    let mut line_rows = Vec::new();
    let mut po_rows = Vec::new();
    let mut po_events = Vec::new();
    let mut supplier_events = Vec::new();
    for p in &plans {
        for l in &p.po.lines {
            line_rows.push(vec![
                p.po.po_number.as_str().into(),
                l.line_id.as_str().into(),
                l.status.as_str().into(),
                l.status_reason.as_str().into(),
            ]);
        }
        let changed = p.to != p.po.state;
        let reason = if changed { p.detail.clone() } else { p.po.state_reason.clone() };
        let ack = changed && matches!(p.to, PoState::Acknowledged | PoState::Backordered | PoState::PartiallyShipped);
        po_rows.push(vec![
            p.po.po_number.as_str().into(),
            p.po.supplier_ref.clone().into(),
            Val::Int(now),
            Val::Int(now + settings.expected_ship_ms),
            p.to.as_str().into(),
            reason.into(),
            Val::Int(i64::from(ack)),
            Val::Int(i64::from(changed && p.to == PoState::Shipped)),
        ]);
        if changed {
            po_events.push(vec![
                p.po.po_number.as_str().into(),
                p.po.state.as_str().into(),
                p.to.as_str().into(),
                "submit".into(),
                p.detail.as_str().into(),
                Val::Int(now),
            ]);
        }
        let mut events = Vec::new();
        if p.first {
            events.push(Event::Dispatched { at: now });
        }
        if matches!(p.to, PoState::Acknowledged | PoState::Backordered) {
            events.push(Event::Acknowledged { at: now, after_ms: 0 });
        }
        if !p.moved.is_empty() {
            events.push(Event::Rejected { at: now });
        }
        for e in events {
            let json = serde_json::to_string(&e).map_err(|e| StoreError::Corrupt(e.to_string()))?;
            supplier_events.push(vec![p.po.supplier.as_str().into(), json.into(), Val::Int(e.at()), "dispatch".into()]);
        }
    }
    values_statement(
        tx,
        "UPDATE po_lines SET status = v.column3, status_reason = v.column4 FROM",
        "WHERE po_lines.po_number = v.column1 AND po_lines.line_id = v.column2",
        4,
        &line_rows,
    )
    .await?;
    values_statement(
        tx,
        "UPDATE purchase_orders SET supplier_ref = v.column2, dispatched_at = v.column3, \
         expected_ship_by = v.column4, updated_at = v.column3, state = v.column5, state_reason = v.column6, \
         acknowledged_at = CASE WHEN v.column7 = 1 AND purchase_orders.acknowledged_at IS NULL \
         THEN v.column3 ELSE purchase_orders.acknowledged_at END, \
         shipped_at = CASE WHEN v.column8 = 1 AND purchase_orders.shipped_at IS NULL \
         THEN v.column3 ELSE purchase_orders.shipped_at END FROM",
        "WHERE purchase_orders.po_number = v.column1",
        8,
        &po_rows,
    )
    .await?;
    insert_rows(tx, "po_events (po_number, from_state, to_state, origin, detail, at)", "", 6, &po_events).await?;
    insert_rows(tx, "supplier_events (supplier, event, at, origin)", "", 4, &supplier_events).await?;

    // The rare parts, one by one: lines the receipt names that we never
    // sent, lines that leave this supplier.
    for p in &plans {
        let r = out[p.item].as_mut().map_err(|e| StoreError::Corrupt(e.to_string()))?;
        if !p.unknown.is_empty() {
            let msg = format!("submit receipt names lines we did not send: {}", p.unknown.join(", "));
            super::connections::insert_operator_event(
                tx,
                "unknown_line",
                p.po.supplier.as_str(),
                &p.po.po_number,
                &msg,
                now,
            )
            .await?;
            r.exceptions += 1;
        }
        if !p.moved.is_empty() {
            // A PUR_PurchaseOrder made before the answer (`erp_purchase_orders
            // = on_route`) must stop buying the refused lines.
            rearm_erp_po(tx, &p.po.po_number, now, now + settings.erp_deadline_ms).await?;
            r.reroutes.push(RerouteRequest {
                order: p.po.order,
                supplier: p.po.supplier.clone(),
                lines: p.moved.clone(),
                cause: format!("rejected by {}: {}", p.po.supplier, reason_of(&p.po)),
            });
        }
        r.updates = 1;
    }

    // The orders move with their POs; the state an order was in says
    // whether it was cancelled while its submit was in flight: the
    // supplier has it now, so it must be asked to cancel, and no purchase
    // order goes into the ERP for it.
    let orders: Vec<i64> = plans.iter().map(|p| p.po.order.0).collect();
    let before = derive_orders(tx, &orders, &Actor::Dispatcher, false, now).await?;
    let mut erp_jobs = Vec::new();
    for p in &plans {
        let cancelled = before.get(&p.po.order.0) == Some(&OrderState::Cancelled);
        if cancelled && matches!(p.to, PoState::Acknowledged | PoState::Backordered | PoState::Submitted) {
            let deadline = now + settings.submit_deadline_ms;
            insert_job(tx, JobKind::Cancel, &p.po.po_number, &p.po.supplier, now, deadline, now).await?;
        }
        if !cancelled
            && settings.erp_purchase_orders == ErpPoTiming::OnAccept
            && p.po.lines.iter().any(|l| l.status.is_live())
        {
            let deadline = now + settings.erp_deadline_ms;
            erp_jobs.push(ready_job(JobKind::ErpPo, &p.po.po_number, p.po.supplier.as_str(), now, deadline));
        }
    }
    insert_ready_jobs(tx, &erp_jobs).await?;
    Ok(out)
}

/// The answer applied to the PO in memory: its lines' new words and the
/// state the PO goes to.
fn plan(item: usize, mut po: PoRecord, answer: &SubmitAnswer, now: i64) -> Plan {
    let first = po.dispatched_at.is_none();
    let mut unknown = Vec::new();
    let (moved, detail) = match answer {
        SubmitAnswer::Receipt { supplier_ref, lines } => {
            po.supplier_ref = Some(supplier_ref.clone());
            // Lines the receipt does not mention were accepted as sent.
            let named: HashSet<usize> = lines.iter().filter_map(|w| resolve_line(&po, &w.line)).collect();
            let mut words = lines.clone();
            for (i, l) in po.lines.iter().enumerate() {
                if !named.contains(&i) {
                    words.push(LineWord {
                        line: l.line_id.clone(),
                        status: LineStatus::Accepted,
                        reason: String::new(),
                    });
                }
            }
            let (moved, _) = apply_words(&mut po, &words, &mut unknown);
            (moved, format!("sent; supplier ref {supplier_ref}"))
        }
        SubmitAnswer::Refused(why) => {
            let mut moved = Vec::new();
            for l in &mut po.lines {
                l.status = LineStatus::Rejected;
                l.status_reason = why.clone();
                moved.push(l.line_id.clone());
            }
            (moved, format!("refused by the supplier: {why}"))
        }
    };
    po.dispatched_at = Some(now);
    let views: Vec<PoLineView> = po
        .lines
        .iter()
        .map(|l| PoLineView { line_id: l.line_id.clone(), quantity: l.quantity, status: l.status, shipped: l.shipped })
        .collect();
    // Pending until now, so it has no shipments yet: all written back.
    let to = derive_po_state(po.state, true, &views, true);
    Plan { item, po, to, detail, first, moved, unknown }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The grouped write is only as good as its agreement with the rules
    /// for one answer; those are tested through the store's public API
    /// (tests/dispatch_*). Here: the in-memory part of an answer.
    #[test]
    fn a_receipt_that_names_no_line_accepts_every_line() {
        let po = sample_po(&["10", "20"]);
        let answer = SubmitAnswer::Receipt { supplier_ref: "S-1".into(), lines: vec![] };
        let p = plan(0, po, &answer, 5);
        assert_eq!(p.to, PoState::Acknowledged);
        assert!(p.po.lines.iter().all(|l| l.status == LineStatus::Accepted));
        assert!(p.moved.is_empty() && p.unknown.is_empty() && p.first);
    }

    #[test]
    fn a_refusal_moves_every_line_away() {
        let po = sample_po(&["10", "20"]);
        let p = plan(0, po, &SubmitAnswer::Refused("no stock".into()), 5);
        assert_eq!(p.to, PoState::Rejected);
        assert_eq!(p.moved, vec!["10".to_string(), "20".to_string()]);
    }

    #[test]
    fn lines_never_sent_are_named_not_applied() {
        let po = sample_po(&["10"]);
        let words = vec![LineWord { line: "99".into(), status: LineStatus::Rejected, reason: "x".into() }];
        let p = plan(0, po, &SubmitAnswer::Receipt { supplier_ref: "S".into(), lines: words }, 5);
        assert_eq!(p.unknown, vec!["99".to_string()]);
        assert_eq!(p.to, PoState::Acknowledged);
    }

    fn sample_po(lines: &[&str]) -> PoRecord {
        use crate::domain::{OrderId, SupplierId};
        use crate::store::PoLineRecord;
        use rust_decimal::Decimal;
        PoRecord {
            po_number: "PO1-A-1".into(),
            order: OrderId(1),
            supplier: SupplierId::from("A".to_string()),
            attempt: 1,
            state: PoState::Pending,
            state_reason: String::new(),
            currency: "CNY".into(),
            supplier_ref: None,
            erp_step: "none".into(),
            erp_bill_no: None,
            expected_ship_by: None,
            dispatched_at: None,
            acknowledged_at: None,
            shipped_at: None,
            created_at: 0,
            updated_at: 0,
            lines: lines
                .iter()
                .map(|id| PoLineRecord {
                    line_id: id.to_string(),
                    sku: format!("SKU-{id}"),
                    supplier_sku: format!("S-{id}"),
                    quantity: Decimal::ONE,
                    unit_cost: Decimal::TEN,
                    tax_rate: Decimal::ZERO,
                    status: LineStatus::Pending,
                    status_reason: String::new(),
                    shipped: Decimal::ZERO,
                })
                .collect(),
        }
    }
}
