//! Results and updates applied to purchase orders: the supplier's answer
//! to a submit, status updates from polls and callbacks (line words,
//! shipments with parcels, cancellations), the ERP's purchase orders and
//! write-backs. Each applies in one transaction, under its job's fence when
//! it has one, and leaves the PO, its events, the supplier's performance
//! events and the order's derived state consistent.

use rust_decimal::Decimal;
use sqlx::Row;

use super::jobs::{JobKind, Lease, finish_job, finish_jobs, insert_job, rearm_erp_po};
use super::purchase::{
    Applied, DispatchSettings, ErpPoDone, JobEnd, PoLineRecord, PoRecord, RerouteRequest, SubmitAnswer, corrupt,
    derive_order, load_po, po_event, settle_po,
};
use super::{Store, StoreError, Tx, Val, insert_rows, values_statement};
use crate::domain::purchase::{LineStatus, LineWord, ParcelIn, PoState, PoUpdate, UpdateKind};
use crate::domain::{Actor, SupplierId};
use crate::routing::performance::Event;

/// Which line of `po` an update names: our line id, else a unique supplier
/// SKU, else a unique SKU of ours (adapters that only know SKUs).
pub(super) fn resolve_line(po: &PoRecord, name: &str) -> Option<usize> {
    if let Some(i) = po.lines.iter().position(|l| l.line_id == name) {
        return Some(i);
    }
    for key in [|l: &PoLineRecord| l.supplier_sku.clone(), |l: &PoLineRecord| l.sku.clone()] {
        let hits: Vec<usize> = po.lines.iter().enumerate().filter(|(_, l)| key(l) == name).map(|(i, _)| i).collect();
        if hits.len() == 1 {
            return Some(hits[0]);
        }
    }
    None
}

async fn save_line(tx: &mut Tx, po: &str, l: &PoLineRecord) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE po_lines SET status = $1, status_reason = $2, shipped_qty = $3 WHERE po_number = $4 AND line_id = $5",
    )
    .bind(l.status.as_str())
    .bind(&l.status_reason)
    .bind(l.shipped.normalize().to_string())
    .bind(po)
    .bind(&l.line_id)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Applies a supplier's word on lines; returns the lines that left this
/// supplier (rejected) and whether anything changed.
pub(super) fn apply_words(po: &mut PoRecord, words: &[LineWord], unknown: &mut Vec<String>) -> (Vec<String>, bool) {
    let mut moved = Vec::new();
    let mut changed = false;
    for w in words {
        let Some(i) = resolve_line(po, &w.line) else {
            unknown.push(w.line.clone());
            continue;
        };
        let l = &mut po.lines[i];
        // A line something has shipped of cannot be refused any more.
        if l.status == w.status
            || !l.status.may_become(w.status)
            || (w.status == LineStatus::Rejected && l.shipped > Decimal::ZERO)
        {
            continue;
        }
        l.status = w.status;
        l.status_reason = w.reason.clone();
        changed = true;
        if !l.status.is_live() {
            moved.push(l.line_id.clone());
        }
    }
    (moved, changed)
}

/// Something a person must look at, counted in the result.
async fn exception(
    tx: &mut Tx,
    out: &mut Applied,
    kind: &str,
    supplier: &str,
    subject: &str,
    message: &str,
    now: i64,
) -> Result<(), StoreError> {
    out.exceptions += 1;
    super::connections::insert_operator_event(tx, kind, supplier, subject, message, now).await
}

async fn supplier_event(tx: &mut Tx, supplier: &SupplierId, e: Event) -> Result<(), StoreError> {
    super::routing::insert_events_from(tx, &[(supplier.clone(), e)], "dispatch").await
}

impl Store {
    /// Records the supplier's answer to a submit, under the job's lease.
    pub async fn record_submit(
        &self,
        lease: Lease,
        po_number: &str,
        answer: &SubmitAnswer,
        now: i64,
    ) -> Result<Applied, StoreError> {
        let items = [(lease, po_number.to_string(), answer.clone())];
        self.record_submits(&items, now)
            .await?
            .pop()
            .unwrap_or_else(|| Err(StoreError::Corrupt("a submit answer went unrecorded".into())))
    }

    /// [`Store::record_submit`] for many answers in one transaction (a
    /// group commit: a busy dispatcher records hundreds of receipts a
    /// second). An item whose lease was lost answers `LeaseLost` and
    /// writes nothing; any other error fails the whole batch, and the
    /// caller records the items one by one to find the bad one.
    pub async fn record_submits(
        &self,
        items: &[(Lease, String, SubmitAnswer)],
        now: i64,
    ) -> Result<Vec<Result<Applied, StoreError>>, StoreError> {
        let settings = self.dispatch_settings();
        let _w = self.writer().await;
        let mut tx = self.begin_write().await?;
        let out = super::submits::submits_in(&mut tx, &settings, items, now).await?;
        tx.commit().await?;
        Ok(out)
    }

    /// Applies updates from `supplier` (a poll page or a callback) in one
    /// transaction. With a job's lease, the job ends in the same
    /// transaction (a poll also saves its feed's new cursor).
    pub async fn apply_updates(
        &self,
        supplier: &SupplierId,
        updates: &[PoUpdate],
        origin: &str,
        job: Option<JobEnd<'_>>,
        now: i64,
    ) -> Result<Applied, StoreError> {
        let settings = self.dispatch_settings();
        let ours = origin == "dispatch";
        let _w = self.writer().await;
        let mut tx = self.begin_write().await?;
        if let Some(JobEnd { lease, cursor, again_at }) = job {
            finish_job(&mut tx, lease, again_at, now).await?;
            if let Some(c) = cursor {
                sqlx::query(
                    "INSERT INTO poll_cursors (supplier, cursor, updated_at) VALUES ($1, $2, $3) \
                     ON CONFLICT (supplier) DO UPDATE SET cursor = $2, updated_at = $3",
                )
                .bind(supplier.as_str())
                .bind(c)
                .bind(now)
                .execute(&mut *tx)
                .await?;
            }
        }
        let mut out = Applied::default();
        let mut touched: Vec<i64> = Vec::new();
        for u in updates {
            out.updates += 1;
            let Some(mut po) = load_po(&mut tx, &u.po_number).await?.filter(|p| &p.supplier == supplier) else {
                // Another supplier's PO is as unknown as one never sent.
                let msg = format!("update for purchase order `{}`, which was never sent to {supplier}", u.po_number);
                exception(&mut tx, &mut out, "unknown_po", supplier.as_str(), &u.po_number, &msg, now).await?;
                continue;
            };
            if po.state.is_final() && po.state != PoState::WrittenBack || po.state == PoState::Dead {
                out.duplicates += 1;
                continue;
            }
            if po.dispatched_at.is_none() && !ours {
                // The supplier's word beat the submit's receipt (the receipt
                // then finds the PO answered and records nothing): the PO
                // reached the supplier, and its performance counts it here.
                supplier_event(&mut tx, supplier, Event::Dispatched { at: now }).await?;
                po.dispatched_at = Some(now);
                sqlx::query(
                    "UPDATE purchase_orders SET dispatched_at = $1, expected_ship_by = $2 WHERE po_number = $3",
                )
                .bind(now)
                .bind(now + settings.expected_ship_ms)
                .bind(&po.po_number)
                .execute(&mut *tx)
                .await?;
            }
            if let (None, Some(r)) = (&po.supplier_ref, &u.supplier_ref) {
                sqlx::query("UPDATE purchase_orders SET supplier_ref = $1 WHERE po_number = $2")
                    .bind(r)
                    .bind(&po.po_number)
                    .execute(&mut *tx)
                    .await?;
                po.supplier_ref = Some(r.clone());
            }
            let before = po.state;
            let mut changed = false;
            let mut moved = Vec::new();
            let detail;
            match &u.kind {
                UpdateKind::Lines(words) => {
                    let mut unknown = Vec::new();
                    let (m, c) = apply_words(&mut po, words, &mut unknown);
                    if !unknown.is_empty() {
                        let msg = format!("update names lines we did not send: {}", unknown.join(", "));
                        exception(&mut tx, &mut out, "unknown_line", supplier.as_str(), &po.po_number, &msg, now)
                            .await?;
                    }
                    moved = m;
                    changed = c;
                    detail = "line status from the supplier".to_string();
                }
                UpdateKind::Cancelled(why) => {
                    let why = why.clone().unwrap_or_else(|| "no reason given".into());
                    for l in po.lines.iter_mut().filter(|l| l.status.is_live()) {
                        if l.shipped > Decimal::ZERO {
                            if l.shipped < l.quantity {
                                let msg = format!(
                                    "line {} cancelled by the supplier after {} of {} shipped: the rest needs a person",
                                    l.line_id, l.shipped, l.quantity
                                );
                                exception(
                                    &mut tx,
                                    &mut out,
                                    "partly_cancelled",
                                    supplier.as_str(),
                                    &po.po_number,
                                    &msg,
                                    now,
                                )
                                .await?;
                            }
                            continue;
                        }
                        l.status = LineStatus::Cancelled;
                        l.status_reason = why.clone();
                        moved.push(l.line_id.clone());
                        changed = true;
                    }
                    if changed && !ours {
                        supplier_event(&mut tx, supplier, Event::Cancelled { at: now }).await?;
                    }
                    detail =
                        if ours { format!("withdrawn: {why}") } else { format!("cancelled by the supplier: {why}") };
                }
                UpdateKind::Shipped(parcels) => {
                    let (n, ex) = self.ship(&mut tx, &mut po, parcels, &settings, now).await?;
                    out.parcels += n;
                    out.exceptions += ex;
                    changed = n > 0;
                    detail = format!("{n} parcel(s) shipped");
                }
            }
            if !changed {
                out.duplicates += 1;
                continue;
            }
            for l in &po.lines {
                save_line(&mut tx, &po.po_number, l).await?;
            }
            let to = settle_po(&mut tx, &po, origin, &detail, now).await?;
            let since = now - po.dispatched_at.unwrap_or(now);
            if to != before {
                if matches!(to, PoState::Acknowledged | PoState::Backordered) && po.acknowledged_at.is_none() {
                    supplier_event(&mut tx, supplier, Event::Acknowledged { at: now, after_ms: since }).await?;
                }
                if matches!(to, PoState::Shipped | PoState::WrittenBack) && po.shipped_at.is_none() {
                    supplier_event(&mut tx, supplier, Event::Shipped { at: now, after_ms: since }).await?;
                }
            }
            if !moved.is_empty() {
                if matches!(u.kind, UpdateKind::Lines(_)) {
                    supplier_event(&mut tx, supplier, Event::Rejected { at: now }).await?;
                }
                // Its PUR_PurchaseOrder must stop buying what was taken back.
                rearm_erp_po(&mut tx, &po.po_number, now, now + settings.erp_deadline_ms).await?;
                out.reroutes.push(RerouteRequest {
                    order: po.order,
                    supplier: supplier.clone(),
                    lines: moved,
                    cause: detail.clone(),
                });
            }
            touched.push(po.order.0);
        }
        touched.sort_unstable();
        touched.dedup();
        for order in touched {
            derive_order(&mut tx, order, &Actor::Tracker, false, now).await?;
        }
        tx.commit().await?;
        Ok(out)
    }

    /// Adds the new parcels of a shipped update; returns (parcels added,
    /// exceptions). Parcels seen before (same tracking number) are skipped;
    /// a parcel naming an unknown line or shipping more than was ordered is
    /// refused into an operator event.
    async fn ship(
        &self,
        tx: &mut Tx,
        po: &mut PoRecord,
        parcels: &[ParcelIn],
        settings: &DispatchSettings,
        now: i64,
    ) -> Result<(usize, usize), StoreError> {
        let mut shipment: Option<i64> = None;
        let (mut added, mut exceptions) = (0, 0);
        for p in parcels {
            let refuse = |why: String| (why, "parcel");
            let problem = if p.tracking_number.trim().is_empty() {
                Some(refuse("a parcel without a tracking number".into()))
            } else {
                None
            };
            let exists: Option<String> =
                sqlx::query_scalar("SELECT tracking_number FROM parcels WHERE po_number = $1 AND tracking_number = $2")
                    .bind(&po.po_number)
                    .bind(&p.tracking_number)
                    .fetch_optional(&mut **tx)
                    .await?;
            if exists.is_some() {
                continue;
            }
            let mut resolved: Vec<(usize, Decimal)> = Vec::new();
            let mut problem = problem;
            for (name, q) in &p.lines {
                match resolve_line(po, name) {
                    None => {
                        problem = Some(refuse(format!(
                            "parcel {} names line `{name}`, which we did not send",
                            p.tracking_number
                        )))
                    }
                    Some(_) if *q <= Decimal::ZERO => {
                        problem = Some(refuse(format!("parcel {} ships {q} of `{name}`", p.tracking_number)))
                    }
                    Some(i) => resolved.push((i, *q)),
                }
            }
            if problem.is_none() {
                for (i, q) in &resolved {
                    let l = &po.lines[*i];
                    let earlier: Decimal =
                        resolved.iter().filter(|(j, _)| j == i).map(|(_, q)| *q).sum::<Decimal>() - q;
                    if !l.status.is_live() || l.shipped + earlier + q > l.quantity {
                        problem = Some(refuse(format!(
                            "parcel {} ships {} of line {} ({}), but {} of {} were ordered and {} shipped already",
                            p.tracking_number,
                            q,
                            l.line_id,
                            l.status,
                            if l.status.is_live() { l.quantity } else { Decimal::ZERO },
                            l.quantity,
                            l.shipped
                        )));
                        break;
                    }
                }
            }
            if let Some((why, _)) = problem {
                super::connections::insert_operator_event(
                    tx,
                    "bad_parcel",
                    po.supplier.as_str(),
                    &po.po_number,
                    &why,
                    now,
                )
                .await?;
                exceptions += 1;
                continue;
            }
            let sid = match shipment {
                Some(id) => id,
                None => {
                    let id: i64 = sqlx::query_scalar(
                        "INSERT INTO shipments (po_number, shipped_at, created_at) VALUES ($1, $2, $3) RETURNING id",
                    )
                    .bind(&po.po_number)
                    .bind(p.shipped_at)
                    .bind(now)
                    .fetch_one(&mut **tx)
                    .await?;
                    shipment = Some(id);
                    id
                }
            };
            let lines: Vec<(String, String)> =
                resolved.iter().map(|(i, q)| (po.lines[*i].line_id.clone(), q.normalize().to_string())).collect();
            sqlx::query(
                "INSERT INTO parcels (po_number, tracking_number, shipment_id, carrier, lines) VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(&po.po_number)
            .bind(&p.tracking_number)
            .bind(sid)
            .bind(&p.carrier)
            .bind(serde_json::to_string(&lines).map_err(corrupt)?)
            .execute(&mut **tx)
            .await?;
            for (i, q) in resolved {
                let l = &mut po.lines[i];
                l.shipped += q;
                if l.status == LineStatus::Pending || l.status == LineStatus::Backordered {
                    l.status = LineStatus::Accepted;
                }
            }
            added += 1;
        }
        if let Some(sid) = shipment {
            let source: String = sqlx::query_scalar("SELECT source FROM sales_orders WHERE id = $1")
                .bind(po.order.0)
                .fetch_one(&mut **tx)
                .await?;
            if settings.write_back && source == settings.erp_source {
                insert_job(
                    tx,
                    JobKind::WriteBack,
                    &sid.to_string(),
                    &po.supplier,
                    now,
                    now + settings.erp_deadline_ms,
                    now,
                )
                .await?;
            } else {
                // Nothing to write back to: the shipment is as done as it gets.
                sqlx::query("UPDATE shipments SET written_back_at = $1, erp_doc = $2 WHERE id = $3")
                    .bind(now)
                    .bind(format!("not written back (source `{source}`)"))
                    .bind(sid)
                    .execute(&mut **tx)
                    .await?;
            }
        }
        Ok((added, exceptions))
    }

    /// Records each PO's PUR_PurchaseOrder under its job's lease, a batch in
    /// one transaction: each item `(lease, po_number, outcome)` is recorded
    /// unless its lease was lost (answered `false`, and nothing of it written).
    pub async fn record_erp_pos(
        &self,
        items: &[(Lease, String, ErpPoDone)],
        now: i64,
    ) -> Result<Vec<bool>, StoreError> {
        let _w = self.writer().await;
        let mut tx = self.begin_write().await?;
        // Set-based: a batch is up to a hundred POs, and one statement per
        // PO per step held the writer ~18 ms a batch (measured: the ERP
        // records were most of the writer's time while suppliers accepted).
        let leases: Vec<Lease> = items.iter().map(|(l, _, _)| *l).collect();
        let finished = finish_jobs(&mut tx, &leases, now).await?;
        let mut po_rows = Vec::new();
        let mut what = std::collections::HashMap::new();
        for (lease, po_number, outcome) in items {
            if !finished.contains(&lease.id) {
                continue;
            }
            let (step, bill_no, detail) = match outcome {
                ErpPoDone::Audited(b) => ("audited", Some(b), format!("PUR_PurchaseOrder {b} audited")),
                ErpPoDone::Amended(b) => {
                    ("audited", Some(b), format!("PUR_PurchaseOrder {b} amended to the lines still bought, audited"))
                }
                ErpPoDone::Deleted(b) if b.is_empty() => {
                    ("deleted", None, "no PUR_PurchaseOrder in the ERP, none needed: nothing left to buy".to_string())
                }
                ErpPoDone::Deleted(b) => {
                    ("deleted", None, format!("PUR_PurchaseOrder {b} deleted: nothing left to buy"))
                }
            };
            po_rows.push(vec![po_number.as_str().into(), step.into(), bill_no.cloned().into(), Val::Int(now)]);
            what.insert(po_number.as_str(), detail);
        }
        let moved = values_statement(
            &mut tx,
            "UPDATE purchase_orders SET erp_step = v.column2, erp_bill_no = v.column3, updated_at = v.column4 FROM",
            "WHERE purchase_orders.po_number = v.column1 RETURNING purchase_orders.po_number, purchase_orders.state",
            4,
            &po_rows,
        )
        .await?;
        let mut events = Vec::with_capacity(moved.len());
        for r in &moved {
            let po: String = r.try_get("po_number")?;
            let st: String = r.try_get("state")?;
            let st: PoState = st.parse().map_err(corrupt)?;
            let detail = what.get(po.as_str()).cloned().unwrap_or_default();
            events.push(vec![
                po.into(),
                st.as_str().into(),
                st.as_str().into(),
                "erp".into(),
                detail.into(),
                Val::Int(now),
            ]);
        }
        insert_rows(&mut tx, "po_events (po_number, from_state, to_state, origin, detail, at)", "", 6, &events).await?;
        tx.commit().await?;
        Ok(items.iter().map(|(l, _, _)| finished.contains(&l.id)).collect())
    }

    /// Records a shipment written back to the ERP, under the job's lease;
    /// its PO and order move on when it was the last one.
    pub async fn record_write_back(
        &self,
        lease: Lease,
        shipment: i64,
        erp_doc: &str,
        now: i64,
    ) -> Result<(), StoreError> {
        let done = self.record_write_backs(&[(lease, shipment, erp_doc.to_string())], now).await?;
        if done.first() != Some(&true) {
            return Err(StoreError::LeaseLost(lease.id));
        }
        Ok(())
    }

    /// [`Store::record_write_back`] for a batch in one transaction: each
    /// item `(lease, shipment, erp_doc)` is recorded unless its lease was
    /// lost (answered `false`, and nothing of it written).
    pub async fn record_write_backs(&self, items: &[(Lease, i64, String)], now: i64) -> Result<Vec<bool>, StoreError> {
        let _w = self.writer().await;
        let mut tx = self.begin_write().await?;
        let mut done = Vec::with_capacity(items.len());
        for (lease, shipment, erp_doc) in items {
            if !held(finish_job(&mut tx, *lease, None, now).await)? {
                done.push(false);
                continue;
            }
            let po: Option<String> = sqlx::query_scalar(
                "UPDATE shipments SET written_back_at = $1, erp_doc = $2 WHERE id = $3 AND written_back_at IS NULL \
                 RETURNING po_number",
            )
            .bind(now)
            .bind(erp_doc)
            .bind(shipment)
            .fetch_optional(&mut *tx)
            .await?;
            if let Some(po) = po
                && let Some(rec) = load_po(&mut tx, &po).await?
            {
                settle_po(&mut tx, &rec, "erp", &format!("shipment {shipment} written back as {erp_doc}"), now).await?;
                derive_order(&mut tx, rec.order.0, &Actor::Tracker, false, now).await?;
            }
            done.push(true);
        }
        tx.commit().await?;
        Ok(done)
    }
}

/// `Ok(false)` for a lost lease (the fence moved on: another worker owns
/// the job), so one lost job does not undo a batch.
fn held(r: Result<(), StoreError>) -> Result<bool, StoreError> {
    match r {
        Ok(()) => Ok(true),
        Err(StoreError::LeaseLost(_)) => Ok(false),
        Err(e) => Err(e),
    }
}

/// The reasons of a PO's rejected lines, for the re-route's cause.
pub(super) fn reason_of(po: &PoRecord) -> String {
    let mut why: Vec<&str> = po
        .lines
        .iter()
        .filter(|l| l.status == LineStatus::Rejected && !l.status_reason.is_empty())
        .map(|l| l.status_reason.as_str())
        .collect();
    why.dedup();
    if why.is_empty() { "no reason given".into() } else { why.join("; ") }
}

/// The ERP cancelled a sales order that suppliers already have: a cancel
/// job for each PO still open at its supplier (a PO not yet answered gets
/// one when its answer comes, see `submit_in`); a PO already shipped is an
/// operator exception, since only a person can get the goods back.
pub(super) async fn request_cancels(tx: &mut Tx, order: i64, now: i64, deadline_ms: i64) -> Result<usize, StoreError> {
    let pos: Vec<(String, String, String)> =
        sqlx::query_as("SELECT po_number, supplier, state FROM purchase_orders WHERE order_id = $1")
            .bind(order)
            .fetch_all(&mut **tx)
            .await?;
    let mut n = 0;
    for (po, supplier, st) in pos {
        let st: PoState = st.parse().map_err(corrupt)?;
        let supplier = SupplierId::from(supplier);
        match st {
            PoState::Submitted | PoState::Acknowledged | PoState::Backordered
                if insert_job(tx, JobKind::Cancel, &po, &supplier, now, now + deadline_ms, now).await? =>
            {
                let what = "sales order cancelled at the source; cancel requested";
                po_event(tx, &po, Some(st), st, "erp", what, now).await?;
                n += 1;
            }
            PoState::PartiallyShipped | PoState::Shipped | PoState::WrittenBack => {
                let msg = format!("{po}: the sales order was cancelled at the source after {supplier} shipped ({st})");
                super::connections::insert_operator_event(
                    tx,
                    "cancelled_after_shipping",
                    supplier.as_str(),
                    &po,
                    &msg,
                    now,
                )
                .await?;
            }
            _ => {}
        }
    }
    Ok(n)
}
