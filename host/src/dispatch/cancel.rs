//! Cancelling a purchase order at its supplier after the ERP cancelled the
//! sales order: `cancel-order` through the supplier's binding, within its
//! pause and circuit, and what each answer means. The sales order is
//! already cancelled here; this job only brings the supplier along.

use super::circuit::{Gate, Verdict};
use super::{Dispatcher, Failure};
use crate::domain::purchase::{PoState, PoUpdate, UpdateKind};
use crate::plugins::bindings::CancelOutcome;
use crate::store::{Job, JobEnd, StoreError};
use crate::util::now_ms;

/// What daifa tells the supplier.
const REASON: &str = "the sales order was cancelled in the ERP";

impl Dispatcher {
    pub(crate) async fn cancel(&self, job: &Job) -> Result<(), StoreError> {
        let now = now_ms();
        let Some(po) = self.store.purchase_order(&job.key).await? else {
            return self.complete(job, now).await;
        };
        // Already gone, or shipped (an operator event said so when the
        // cancellation came in): nothing to ask.
        if !matches!(po.state, PoState::Submitted | PoState::Acknowledged | PoState::Backordered) {
            return self.complete(job, now).await;
        }
        let Some(conn) = self.callable_connection(job, now).await? else { return Ok(()) };
        if let Gate::WaitUntil(at) = self.circuit_gate(&job.supplier, now).await? {
            return self.postpone(job, at, "circuit open", now).await;
        }
        let plugin = match self.bindings.get(&conn) {
            Ok(p) => p,
            Err(f) => return self.fail(job, &f, now).await,
        };
        let answer = plugin.cancel_order(&po.po_number, po.supplier_ref.as_deref(), REASON).await;
        let now = now_ms();
        if answer.is_ok() {
            self.circuit_result(&job.supplier, Verdict::Works, now).await;
        }
        let end = JobEnd { lease: job.lease(), cursor: None, again_at: None };
        match answer {
            Ok(CancelOutcome::Cancelled) => {
                let update = PoUpdate {
                    po_number: po.po_number.clone(),
                    supplier_ref: po.supplier_ref.clone(),
                    at: None,
                    kind: UpdateKind::Cancelled(Some(format!("{REASON}; {} confirmed", po.supplier))),
                };
                // The sales order is cancelled: its lines go nowhere else.
                self.store.apply_updates(&po.supplier, &[update], "dispatch", Some(end), now).await?;
                Ok(())
            }
            // The supplier's own update (poll or callback) will say cancelled.
            Ok(CancelOutcome::Requested) => self.complete(job, now).await,
            Ok(CancelOutcome::Refused(why)) => self.cancel_refused(job, &why, now).await,
            Err(e) => match Failure::from(&e) {
                Failure::Refused(why) => self.cancel_refused(job, &why, now).await,
                Failure::Unauthorized(why) => {
                    self.pause(&job.supplier, &why, now).await?;
                    self.postpone(job, now + 30_000, &why, now).await
                }
                other => self.fail(job, &other, now).await,
            },
        }
    }

    /// Too late or not possible: a person must stop the goods.
    async fn cancel_refused(&self, job: &Job, why: &str, now: i64) -> Result<(), StoreError> {
        let msg = format!(
            "{}: the sales order was cancelled in the ERP, but {} refused to cancel: {why}",
            job.key, job.supplier
        );
        tracing::warn!("{msg}");
        self.store.operator_event("cancel_refused", job.supplier.as_str(), &job.key, &msg, now).await?;
        self.complete(job, now).await
    }

    async fn complete(&self, job: &Job, now: i64) -> Result<(), StoreError> {
        if !self.store.complete_job(job.lease(), now).await? {
            return Err(StoreError::LeaseLost(job.id));
        }
        Ok(())
    }
}
