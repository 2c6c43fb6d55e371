//! The performance feed: reads order state changes from the outbox (its own
//! cursor) and turns them into supplier events for the performance loop —
//! dispatched, acknowledged and shipped (with the time since dispatch),
//! rejected, and cancelled after dispatch — attributed to the suppliers of
//! the order's current routing decision. A rejection of an order that sits
//! with one supplier also moves its lines to the next candidate.
//!
//! Events and the cursor commit together, so a crash or a second host never
//! counts a change twice. Re-routing happens before the cursor moves; if the
//! cursor write is lost the re-route is tried again and refused, because the
//! lines no longer sit with the rejecting supplier.
//!
//! Once dispatch sends purchase orders per supplier, it reports events per
//! supplier itself and this feed will keep only what dispatch cannot see.

use serde::Serialize;

use super::{Router, RouterError};
use crate::domain::{OrderId, OrderState, SupplierId};
use crate::routing::performance::Event;
use crate::store::OutboxRow;

/// The feed's name in `outbox_cursors`.
const CONSUMER: &str = "router.performance";
/// The cursor over events dispatch recorded per PO.
const DIRECT: &str = "router.performance.dispatch";
/// Outbox rows per pass.
const BATCH: i64 = 1000;

/// What one pass of the feed did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct FeedStats {
    /// Outbox rows read (of every topic).
    pub rows: usize,
    /// Supplier events recorded.
    pub events: usize,
    /// Rejected orders moved to another supplier or put on hold.
    pub rerouted: usize,
}

impl Router {
    /// Reads every settled outbox row the feed has not seen yet.
    pub async fn feed_performance(&self, now: i64) -> Result<FeedStats, RouterError> {
        let mut total = FeedStats::default();
        // Per-PO events dispatch recorded: into the window as they are.
        loop {
            let from = self.store.outbox_cursor(DIRECT).await?;
            let rows = self.store.dispatch_events_after(from, now - self.cfg.feed_settle_ms, BATCH).await?;
            let Some(last) = rows.last().map(|r| r.0) else { break };
            if !self.store.advance_with_events(DIRECT, from, last, &[], now).await? {
                continue;
            }
            let mut snap = self.snap.lock().await;
            for (_, s, e) in &rows {
                snap.perf.record(s, e.clone());
            }
            drop(snap);
            total.events += rows.len();
            if rows.len() < BATCH as usize {
                break;
            }
        }
        loop {
            let from = self.store.outbox_cursor(CONSUMER).await?;
            let rows = self.store.outbox_after(from, now - self.cfg.feed_settle_ms, BATCH).await?;
            let Some(last) = rows.last().map(|r| r.id) else { return Ok(total) };
            let (events, rejected) = self.events_for(&rows).await?;
            let mut rerouted = 0;
            for (order, supplier, why) in rejected {
                match self.reroute(order, &supplier, None, &format!("rejected by {supplier}: {why}"), now).await {
                    Ok(_) => rerouted += 1,
                    // Already moved (a replay), or no longer ours to move.
                    Err(RouterError::Refused(why)) => tracing::debug!("rejection not re-routed: {why}"),
                    Err(e) => return Err(e),
                }
            }
            if !self.store.advance_with_events(CONSUMER, from, last, &events, now).await? {
                // Another host took these rows; read on from where it left off.
                continue;
            }
            let mut snap = self.snap.lock().await;
            for (s, e) in &events {
                snap.perf.record(s, e.clone());
            }
            drop(snap);
            total.rows += rows.len();
            total.events += events.len();
            total.rerouted += rerouted;
            if rows.len() < BATCH as usize {
                return Ok(total);
            }
        }
    }

    /// Supplier events for these rows, and the rejections to re-route
    /// (`(order, supplier, reason)`).
    async fn events_for(&self, rows: &[OutboxRow]) -> Result<Feed, RouterError> {
        // Changes derived from purchase orders are left out before anything
        // is read for them: dispatch recorded their supplier events per PO
        // already, and with dispatch on they are nearly every row (loading
        // and parsing their routing decisions was most of the feed's work).
        let relevant: Vec<(&OutboxRow, OrderId, OrderState, serde_json::Value)> = rows
            .iter()
            .filter_map(|r| {
                let state = r.topic.strip_prefix("order.")?.parse::<OrderState>().ok()?;
                Some((r, r.order?, state))
            })
            .filter(|(_, _, s)| {
                matches!(
                    s,
                    OrderState::Dispatched
                        | OrderState::Acknowledged
                        | OrderState::Shipped
                        | OrderState::Rejected
                        | OrderState::Cancelled
                )
            })
            .filter_map(|(r, id, state)| {
                let payload: serde_json::Value = serde_json::from_str(&r.payload).unwrap_or_default();
                (payload["derived"].as_bool() != Some(true)).then_some((r, id, state, payload))
            })
            .collect();
        let mut ids: Vec<OrderId> = relevant.iter().map(|r| r.1).collect();
        ids.sort_unstable();
        ids.dedup();
        if ids.is_empty() {
            return Ok((vec![], vec![]));
        }
        let decisions = self.store.decisions_of(&ids).await?;
        let dispatched = self.store.dispatched_at(&ids).await?;
        let mut events = Vec::new();
        let mut rejected = Vec::new();
        for (row, id, state, payload) in relevant {
            let at = row.created_at;
            // The decision in force when the change happened: a replay after
            // a re-route must still charge the supplier that had the order.
            let Some(d) = decisions.get(&id).and_then(|all| all.iter().rfind(|d| d.at <= at)) else { continue };
            let suppliers = &d.decision.suppliers;
            let since = |at: i64| dispatched.get(&id).map(|t| (at - t).max(0));
            let from = payload["from"].as_str().and_then(|f| f.parse::<OrderState>().ok());
            let event = match state {
                OrderState::Dispatched => Some(Event::Dispatched { at }),
                OrderState::Acknowledged => since(at).map(|after_ms| Event::Acknowledged { at, after_ms }),
                OrderState::Shipped => since(at).map(|after_ms| Event::Shipped { at, after_ms }),
                // Whose rejection it was is only certain when one supplier
                // holds the order; per-PO rejections come from dispatch.
                OrderState::Rejected => match suppliers.as_slice() {
                    [only] => {
                        let why = payload["reason"].as_str().unwrap_or("").to_string();
                        rejected.push((id, only.clone(), why));
                        Some(Event::Rejected { at })
                    }
                    _ => None,
                },
                // Cancelled while a supplier held it: the supplier's doing
                // or not, it is what the cancellation rate measures.
                OrderState::Cancelled
                    if from.is_some_and(|f| {
                        matches!(
                            f,
                            OrderState::Dispatched
                                | OrderState::Acknowledged
                                | OrderState::Backordered
                                | OrderState::PartiallyShipped
                        )
                    }) =>
                {
                    Some(Event::Cancelled { at })
                }
                _ => None,
            };
            if let Some(e) = event {
                events.extend(suppliers.iter().map(|s| (s.clone(), e.clone())));
            }
        }
        Ok((events, rejected))
    }
}

type Feed = (Vec<(SupplierId, Event)>, Vec<(OrderId, SupplierId, String)>);
