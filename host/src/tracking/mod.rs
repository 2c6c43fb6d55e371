//! Tracking: what suppliers say after a submit — acknowledgements,
//! backorders, rejections, cancellations, shipments with parcels — read
//! from each supplier's update feed on its own schedule (a recurring poll
//! job, its cursor saved with the updates it produced) or pushed to
//! `POST /callbacks/{supplier}/…` and interpreted by the supplier's plugin.
//! Both paths apply updates through the same store call, idempotently.
//!
//! Owns: converting plugin updates to domain updates, the poll schedule,
//! callback handling. May call: `store`, `plugins`, `dispatch` (bindings,
//! re-routes), `domain`.

use crate::dispatch::{Dispatcher, Failure};
use crate::domain::purchase::{ParcelIn, PoUpdate, UpdateKind};
use crate::plugins::bindings::{self, CallbackRequest, CallbackResult};
use crate::store::{Applied, Job, JobEnd, StoreError};
use crate::util::now_ms;

/// RFC 3339 (`2026-11-25T03:07:27Z`, `...+08:00`) → unix ms; `None` when
/// absent or unreadable (the host's clock then stands in).
fn ms(t: &Option<String>) -> Option<i64> {
    let t = t.as_deref()?.trim();
    let (local, offset_secs) = if let Some(l) = t.strip_suffix(['Z', 'z']) {
        (l, 0)
    } else {
        let cut = t.len().checked_sub(6)?;
        let (l, off) = t.split_at(cut);
        let sign = match off.as_bytes().first()? {
            b'+' => 1,
            b'-' => -1,
            _ => return None,
        };
        let (h, m) = off[1..].split_once(':')?;
        (l, sign * (h.parse::<i64>().ok()? * 3600 + m.parse::<i64>().ok()? * 60))
    };
    let naive = crate::erp::time::parse(local)?;
    Some((naive - offset_secs) * 1000)
}

/// A plugin's status update in domain terms. Quantities stay exact.
pub fn domain_update(u: &bindings::StatusUpdate) -> PoUpdate {
    let kind = match &u.kind {
        bindings::UpdateKind::Lines(results) => {
            UpdateKind::Lines(results.iter().map(crate::dispatch::line_word).collect())
        }
        bindings::UpdateKind::Shipped(parcels) => UpdateKind::Shipped(
            parcels
                .iter()
                .map(|p| ParcelIn {
                    carrier: p.carrier.clone(),
                    tracking_number: p.tracking_number.clone(),
                    lines: p.lines.iter().map(|l| (l.line_id.clone(), l.quantity.into())).collect(),
                    shipped_at: ms(&p.shipped_at),
                })
                .collect(),
        ),
        bindings::UpdateKind::Cancelled(why) => UpdateKind::Cancelled(why.clone()),
    };
    PoUpdate { po_number: u.po_number.clone(), supplier_ref: u.supplier_ref.clone(), at: ms(&u.at), kind }
}

/// Runs one poll of a supplier's update feed: one page, applied with the
/// new cursor in one transaction; the next poll follows at once when the
/// page had news and moved the cursor, else after the connection's interval.
pub async fn poll(d: &Dispatcher, job: &Job) -> Result<(), StoreError> {
    let now = now_ms();
    let Some(conn) = d.current_connection(&job.supplier, now).await? else {
        // Removed meanwhile (its poll job is discarded with it).
        return d.postpone(job, now + 60_000, "no connection", now).await;
    };
    if let Some(why) = &conn.paused_reason {
        return d.postpone(job, now + 30_000, &format!("supplier paused: {why}"), now).await;
    }
    // A supplier whose circuit is open is left alone by polls too; a poll
    // may be the half-open trial, and its result closes or reopens it.
    if let crate::dispatch::Gate::WaitUntil(at) = d.circuit_gate(&job.supplier, now).await? {
        return d.postpone(job, at, "circuit open", now).await;
    }
    let plugin = match d.bindings.get(&conn) {
        Ok(p) => p,
        Err(f) => return d.fail(job, &f, now).await,
    };
    let cursor = d.store.poll_cursor(&job.supplier).await?;
    match plugin.poll_updates(cursor.as_deref()).await {
        Ok(batch) => {
            let now = now_ms();
            d.circuit_result(&job.supplier, crate::dispatch::Verdict::FeedWorks, now).await;
            let updates: Vec<PoUpdate> = batch.updates.iter().map(domain_update).collect();
            // Follow at once only when the page had news *and* the cursor
            // moved: a feed that re-reads its last page (an inclusive
            // cursor) would otherwise be polled in a tight loop.
            let moved = batch.next_cursor.is_some() && batch.next_cursor != cursor;
            let again = if updates.is_empty() || !moved { now + conn.poll_interval_ms.max(100) } else { now };
            let end = JobEnd { lease: job.lease(), cursor: batch.next_cursor.as_deref(), again_at: Some(again) };
            let applied = d.store.apply_updates(&job.supplier, &updates, "poll", Some(end), now).await?;
            log_applied(&job.supplier, "poll", &applied);
            d.reroute(applied, now).await;
            Ok(())
        }
        Err(e) => {
            let f = Failure::from(&e);
            if let Failure::Unauthorized(why) = &f {
                d.pause(&job.supplier, why, now).await?;
            }
            d.fail(job, &f, now_ms()).await
        }
    }
}

fn log_applied(supplier: &crate::domain::SupplierId, origin: &str, a: &Applied) {
    if a.updates > 0 {
        tracing::info!(
            %supplier,
            origin,
            updates = a.updates,
            parcels = a.parcels,
            duplicates = a.duplicates,
            exceptions = a.exceptions,
            reroutes = a.reroutes.len(),
            "supplier updates applied"
        );
    }
}

/// Why a callback was not handled.
#[derive(Debug, thiserror::Error)]
pub enum CallbackError {
    #[error("no supplier `{0}` is connected")]
    UnknownSupplier(String),
    #[error("{0}")]
    Plugin(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Hands a webhook to the supplier's plugin (which checks its signature
/// and reads it) and applies the updates it returns.
pub async fn callback(
    d: &Dispatcher,
    supplier: &crate::domain::SupplierId,
    req: CallbackRequest,
) -> Result<CallbackResult, CallbackError> {
    let conn = d.connection_now(supplier).await?.ok_or_else(|| CallbackError::UnknownSupplier(supplier.to_string()))?;
    let plugin = d.bindings.get(&conn).map_err(|f| CallbackError::Plugin(f.message().to_string()))?;
    let result = plugin.handle_callback(&req).await.map_err(|e| CallbackError::Plugin(e.to_string()))?;
    let updates: Vec<PoUpdate> = result.updates.iter().map(domain_update).collect();
    let now = now_ms();
    let applied = d.store.apply_updates(supplier, &updates, "callback", None, now).await?;
    log_applied(supplier, "callback", &applied);
    d.reroute(applied, now).await;
    Ok(result)
}
