//! Submitting a purchase order to its supplier: the PO as the plugin API
//! carries it (stable idempotency key, exact quantities), the gates before
//! the call (pause, circuit, rate, concurrency) and what each answer means.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use super::circuit::{Gate, Verdict};
use super::{Dispatcher, Failure};
use crate::domain::purchase::{LineStatus, LineWord, PoState, whole_units};
use crate::domain::{OrderContent, OrderId, OrderState, SupplierId};
use crate::plugins::bindings::{self, Address, ErpRef};
use crate::store::{Applied, Job, JobKind, PoRecord, StoreError, SubmitAnswer};
use crate::util::now_ms;

/// The stable key a supplier (or adapter) uses to make a retried submit
/// harmless: the same PO always carries the same key.
pub fn idempotency_key(source: &str, po_number: &str) -> String {
    format!("daifa:{source}:{po_number}")
}

/// The PO as `daifa:supplier@0.1.0` carries it. Quantities must be whole:
/// that API has no fractions, and rounding would ship the wrong amount.
pub fn wire_order(po: &PoRecord, c: &OrderContent) -> Result<bindings::PurchaseOrder, String> {
    let a = &c.ship_to;
    let mut lines = Vec::with_capacity(po.lines.len());
    for l in po.lines.iter().filter(|l| l.status.is_live()) {
        let quantity = whole_units(l.quantity).ok_or_else(|| {
            format!(
                "line {} asks for {} of {}: the plugin API (daifa:supplier@0.1.0) carries whole units only",
                l.line_id, l.quantity, l.sku
            )
        })?;
        lines.push(bindings::OrderLine {
            line_id: l.line_id.clone(),
            our_sku: l.sku.clone(),
            supplier_sku: l.supplier_sku.clone(),
            quantity,
            unit_cost: l.unit_cost.normalize().to_string(),
        });
    }
    Ok(bindings::PurchaseOrder {
        po_number: po.po_number.clone(),
        idempotency_key: idempotency_key(c.source.as_str(), &po.po_number),
        erp_refs: vec![ErpRef {
            system: c.source.to_string(),
            bill_no: c.bill_no.to_string(),
            bill_id: c.external_id.to_string(),
        }],
        lines,
        ship_to: Address {
            name: a.name.clone(),
            phone: a.phone.clone(),
            province: a.province.clone(),
            city: a.city.clone(),
            district: a.district.clone(),
            street: a.street.clone(),
            postcode: a.postcode.clone(),
            country: a.country.clone(),
        },
        currency: po.currency.clone(),
        requested_carrier: None,
        requested_service: None,
        remark: Some(c.remark.clone()).filter(|r| !r.is_empty()),
    })
}

/// A line result from the plugin in domain terms.
pub(crate) fn line_word(r: &bindings::LineResult) -> LineWord {
    let (status, reason) = match &r.status {
        bindings::LineStatus::Accepted => (LineStatus::Accepted, String::new()),
        bindings::LineStatus::Backordered(until) => {
            (LineStatus::Backordered, until.as_ref().map(|t| format!("expected {t}")).unwrap_or_default())
        }
        bindings::LineStatus::Rejected(why) => (LineStatus::Rejected, why.clone()),
    };
    LineWord { line: r.line_id.clone(), status, reason }
}

/// What a submit needs from the store, read for a whole claim at once:
/// the PO, and its order's state and header (no lines: the PO has its own).
pub(crate) struct Preloaded {
    po: PoRecord,
    order: Option<(OrderState, OrderContent)>,
}

impl Dispatcher {
    /// Reads the POs and orders of the submit jobs in `jobs` together (four
    /// queries for a claim instead of four per job). A failed read only
    /// means each job reads its own.
    pub(crate) async fn preload_submits(&self, jobs: &[Job]) -> HashMap<String, Preloaded> {
        let keys: Vec<String> = jobs.iter().filter(|j| j.kind == JobKind::Submit).map(|j| j.key.clone()).collect();
        if keys.is_empty() {
            return HashMap::new();
        }
        let pos = match self.store.purchase_orders_by_number(&keys).await {
            Ok(p) => p,
            Err(e) => {
                tracing::debug!("preloading purchase orders failed: {e}");
                return HashMap::new();
            }
        };
        let mut ids: Vec<OrderId> = pos.values().map(|p| p.order).collect();
        ids.sort_unstable_by_key(|o| o.0);
        ids.dedup();
        // The header is all a submit sends of the order (the lines are the PO's).
        let orders: HashMap<OrderId, (OrderState, OrderContent)> = match self.store.orders_header(&ids).await {
            Ok(v) => v.into_iter().map(|(id, st, c)| (id, (st, c))).collect(),
            Err(e) => {
                tracing::debug!("preloading orders failed: {e}");
                HashMap::new()
            }
        };
        pos.into_iter()
            .map(|(k, po)| {
                let order = orders.get(&po.order).cloned();
                (k, Preloaded { po, order })
            })
            .collect()
    }

    pub(crate) async fn submit(self: &Arc<Self>, job: &Job, pre: Option<Preloaded>) -> Result<(), StoreError> {
        let now = now_ms();
        let (po, order) = match pre {
            Some(p) => (Some(p.po), p.order),
            None => (self.store.purchase_order(&job.key).await?, None),
        };
        let Some(po) = po else {
            self.store.complete_job(job.lease(), now).await?;
            return Ok(());
        };
        if po.state != PoState::Pending {
            self.store.complete_job(job.lease(), now).await?;
            return Ok(());
        }
        let Some(conn) = self.callable_connection(job, now).await? else { return Ok(()) };
        if let Gate::WaitUntil(at) = self.circuit_gate(&job.supplier, now).await? {
            // Never tried, and the circuit has been open a while: another
            // supplier can have it. Once tried, it may have arrived; only a
            // retry with the same key is safe then.
            if job.attempts == 0 && now - po.created_at >= self.cfg.reroute_after_ms && self.router.is_some() {
                return self.withdraw(job, &po, now).await;
            }
            return self.postpone(job, at, "circuit open", now).await;
        }
        if let Err(at) = self.limits.start(&job.supplier, conn.rate_per_sec, now) {
            return self.postpone(job, at, "rate limit", now).await;
        }
        let plugin = match self.bindings.get(&conn) {
            Ok(p) => p,
            Err(f) => return self.fail(job, &f, now).await,
        };
        let max = if conn.max_in_flight == 0 { self.cfg.default_max_in_flight } else { conn.max_in_flight };
        // The adapter's own cap (e.g. 1 when it numbers documents from a
        // kv counter) wins over the connection's setting.
        let max = plugin.manifest.limits.calls_per_connection.map_or(max, |cap| max.min(cap));
        let Some(permit) = self.limits.permit(&job.supplier, max, Duration::from_secs(2)).await else {
            return self.postpone(job, now + 50, "at the supplier's concurrency limit", now).await;
        };
        // The content only: an order's history can be long and is not sent.
        let (order_state, content) = match order {
            Some(o) => o,
            None => match self.store.orders_header(&[po.order]).await?.pop() {
                Some((_, st, c)) => (st, c),
                None => return Err(StoreError::NotFound(po.order.to_string())),
            },
        };
        if order_state == OrderState::Cancelled || content.cancelled {
            return self.never_send(job, &po, now).await;
        }
        let wire = match wire_order(&po, &content) {
            Ok(w) => w,
            Err(why) => return self.fail(job, &Failure::Hopeless(why), now).await,
        };
        let called = std::time::Instant::now();
        let result = plugin.submit_order(&wire).await;
        if let Some(m) = &self.metrics {
            let outcome = match &result {
                Ok(_) => "accepted",
                Err(e) => match Failure::from(e) {
                    Failure::Transient { .. } => "transient",
                    Failure::Refused(_) => "refused",
                    Failure::Unauthorized(_) => "unauthorized",
                    Failure::Setup(_) => "setup",
                    Failure::Hopeless(_) => "hopeless",
                    Failure::Crowded(_) => "crowded",
                },
            };
            m.submit(job.supplier.as_str(), outcome, called.elapsed().as_secs_f64());
        }
        // The limit is on calls to the supplier: recording the answer must
        // not hold its slot (it did, and the commit wait capped each
        // supplier at a few hundred submits a second).
        drop(permit);
        let now = now_ms();
        let answer = match result {
            Ok(receipt) => {
                self.circuit_result(&job.supplier, Verdict::Works, now).await;
                let lines = receipt.lines.iter().map(line_word).collect();
                SubmitAnswer::Receipt { supplier_ref: receipt.supplier_ref, lines }
            }
            Err(e) => match Failure::from(&e) {
                Failure::Refused(why) => {
                    self.circuit_result(&job.supplier, Verdict::Works, now).await;
                    SubmitAnswer::Refused(why)
                }
                Failure::Unauthorized(why) => {
                    self.pause(&job.supplier, &why, now).await?;
                    return self.postpone(job, now + 30_000, &why, now).await;
                }
                other => return self.fail(job, &other, now).await,
            },
        };
        // The job stays leased until the answer is written; this worker's
        // slot is free as soon as the answer is queued (see `commit`).
        let queued = self.commits.queue(job.lease(), &po.po_number, answer).await;
        let me = self.clone();
        let (id, key) = (job.id, job.key.clone());
        tokio::spawn(async move {
            match queued.await {
                Ok(Ok(applied)) => me.reroute(applied, now).await,
                Ok(Err(StoreError::LeaseLost(_))) => {
                    tracing::warn!(job = id, key, "lease lost; another worker owns the job now")
                }
                Ok(Err(e)) => tracing::warn!(job = id, key, "submit answer failed to record: {e}"),
                Err(_) => tracing::warn!(job = id, key, "the submit committer stopped before recording"),
            }
            me.commits.finished();
        });
        Ok(())
    }

    /// Takes a never-sent PO away from a supplier whose circuit stays open:
    /// its lines are cancelled here (under the job's lease, so no call of it
    /// is in flight) and routed again.
    async fn withdraw(&self, job: &Job, po: &PoRecord, now: i64) -> Result<(), StoreError> {
        let update = crate::domain::purchase::PoUpdate {
            po_number: po.po_number.clone(),
            supplier_ref: None,
            at: None,
            kind: crate::domain::purchase::UpdateKind::Cancelled(Some(format!(
                "circuit open at {}; never sent, so it can go elsewhere",
                po.supplier
            ))),
        };
        let end = crate::store::JobEnd { lease: job.lease(), cursor: None, again_at: None };
        let applied = self.store.apply_updates(&po.supplier, &[update], "dispatch", Some(end), now).await?;
        self.reroute(applied, now).await;
        Ok(())
    }

    /// The sales order was cancelled before this PO went out: it never will.
    async fn never_send(&self, job: &Job, po: &PoRecord, now: i64) -> Result<(), StoreError> {
        let update = crate::domain::purchase::PoUpdate {
            po_number: po.po_number.clone(),
            supplier_ref: None,
            at: None,
            kind: crate::domain::purchase::UpdateKind::Cancelled(Some(
                "the sales order was cancelled before this purchase order was sent".into(),
            )),
        };
        let end = crate::store::JobEnd { lease: job.lease(), cursor: None, again_at: None };
        // No re-route: the order is cancelled, its lines go nowhere.
        self.store.apply_updates(&po.supplier, &[update], "dispatch", Some(end), now).await?;
        Ok(())
    }

    /// Credentials refused: the supplier waits for a person.
    pub(crate) async fn pause(&self, supplier: &SupplierId, why: &str, now: i64) -> Result<(), StoreError> {
        if self.store.set_connection_paused(supplier, Some(why), now).await? {
            let msg = format!("{supplier} refused our credentials; dispatch paused until resumed: {why}");
            tracing::error!("{msg}");
            self.store.operator_event("unauthorized", supplier.as_str(), supplier.as_str(), &msg, now).await?;
            self.connections_changed();
        }
        Ok(())
    }

    /// Sends lines a supplier refused or cancelled to the router.
    pub(crate) async fn reroute(&self, applied: Applied, now: i64) {
        let Some(router) = &self.router else { return };
        for r in applied.reroutes {
            match router.reroute(r.order, &r.supplier, Some(&r.lines), &r.cause, now).await {
                Ok(res) => tracing::info!(order = %r.order, supplier = %r.supplier, "re-routed: {res:?}"),
                Err(e) => tracing::warn!(order = %r.order, supplier = %r.supplier, "re-route failed: {e}"),
            }
        }
    }
}
