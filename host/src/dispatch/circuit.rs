//! Per-supplier circuit breakers, kept in the store so a restart or another
//! host sees the same state. Closed: calls flow, consecutive transient
//! failures are counted; at the threshold it opens. Open: calls wait until
//! `retry_at` and the router sends new orders elsewhere. Then one worker
//! (whoever moves it to half-open first; the store's compare-and-set picks
//! one) makes a trial call: success closes it, failure opens it again for
//! twice as long (up to `max_open_ms`).

use serde::{Deserialize, Serialize};

use super::Dispatcher;
use crate::domain::SupplierId;
use crate::store::{Circuit, CircuitState, StoreError};

/// Breaker thresholds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CircuitConfig {
    /// Consecutive transient failures that open the circuit.
    pub failure_threshold: u32,
    /// How long it stays open the first time.
    pub open_ms: i64,
    pub max_open_ms: i64,
}

impl Default for CircuitConfig {
    fn default() -> Self {
        CircuitConfig { failure_threshold: 5, open_ms: 30_000, max_open_ms: 600_000 }
    }
}

/// What a call's result tells the breaker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict<'a> {
    /// An order call (submit, cancel) worked: the supplier takes orders.
    Works,
    /// A read of the update feed worked. It closes a half-open circuit (it
    /// was the trial) but does not clear failures counted while closed: a
    /// feed that answers says nothing of the order endpoint that failed,
    /// and letting it clear them kept waves of failing submits from ever
    /// reaching the threshold.
    FeedWorks,
    /// A transient failure, with its message.
    Failed(&'a str),
}

/// Whether a call may go now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Gate {
    Go,
    /// Not before this time (unix ms).
    WaitUntil(i64),
}

impl Dispatcher {
    /// The breaker as this host last saw it, if it has read them yet (a
    /// supplier never tripped has no row: closed, no failures).
    fn known_circuit(&self, supplier: &SupplierId) -> Option<Circuit> {
        let seen = self.circuits.lock().ok()?;
        let all = seen.as_ref()?;
        Some(all.get(supplier).cloned().unwrap_or_else(|| Circuit::closed(supplier)))
    }

    /// Notes a breaker this host just wrote.
    fn saw_circuit(&self, c: &Circuit) {
        if let Ok(mut seen) = self.circuits.lock()
            && let Some(all) = seen.as_mut()
        {
            all.insert(c.supplier.clone(), c.clone());
        }
    }

    /// Asks the supplier's breaker for a call.
    pub(crate) async fn circuit_gate(&self, supplier: &SupplierId, now: i64) -> Result<Gate, StoreError> {
        if self.known_circuit(supplier).is_some_and(|c| c.state == CircuitState::Closed) {
            return Ok(Gate::Go);
        }
        let c = self.store.circuit(supplier).await?;
        Ok(match c.state {
            CircuitState::Closed => Gate::Go,
            CircuitState::Open if c.retry_at.unwrap_or(0) > now => Gate::WaitUntil(c.retry_at.unwrap_or(now)),
            CircuitState::Open => {
                let next = Circuit { state: CircuitState::HalfOpen, ..c.clone() };
                if self.store.update_circuit(&c, &next, "open time over: one trial call", now).await? {
                    tracing::info!(%supplier, "circuit half-open: trial call");
                    Gate::Go
                } else {
                    Gate::WaitUntil(now + 1_000)
                }
            }
            // A trial whose worker died is taken over after a lease's time.
            CircuitState::HalfOpen if now - c.updated_at > self.cfg.lease_ms => {
                if self.store.update_circuit(&c, &c, "trial call taken over", now).await? {
                    Gate::Go
                } else {
                    Gate::WaitUntil(now + 1_000)
                }
            }
            CircuitState::HalfOpen => Gate::WaitUntil(now + 1_000),
        })
    }

    /// Feeds a call's result to the supplier's breaker.
    pub(crate) async fn circuit_result(&self, supplier: &SupplierId, verdict: Verdict<'_>, now: i64) {
        let cfg = &self.cfg.circuit;
        let (ok, why) = match verdict {
            Verdict::Works | Verdict::FeedWorks => (true, ""),
            Verdict::Failed(why) => (false, why),
        };
        let clears = verdict == Verdict::Works;
        if ok
            && self
                .known_circuit(supplier)
                .is_some_and(|c| c.state == CircuitState::Closed && (c.failures == 0 || !clears))
        {
            return;
        }
        // Compare-and-set against every worker (and host) reporting at the
        // same time: each retry re-reads, so a contender gives up only after
        // this many others wrote first. Three lost failures under four
        // submits in flight, and the count never reached the threshold.
        for _ in 0..64 {
            let c = match self.store.circuit(supplier).await {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!(%supplier, "reading the circuit failed: {e}");
                    return;
                }
            };
            let (next, reason) = match (c.state, ok) {
                (CircuitState::Closed, true) if c.failures == 0 || !clears => return,
                (CircuitState::Closed, true) => (Circuit { failures: 0, ..c.clone() }, String::new()),
                (CircuitState::Closed, false) if c.failures + 1 >= cfg.failure_threshold => (
                    Circuit {
                        state: CircuitState::Open,
                        failures: c.failures + 1,
                        opened_at: Some(now),
                        retry_at: Some(now + cfg.open_ms),
                        ..c.clone()
                    },
                    format!("{} consecutive failures, the last: {why}", c.failures + 1),
                ),
                (CircuitState::Closed, false) => (Circuit { failures: c.failures + 1, ..c.clone() }, String::new()),
                (CircuitState::HalfOpen, true) => (
                    Circuit { state: CircuitState::Closed, failures: 0, opened_at: None, retry_at: None, ..c.clone() },
                    "trial call succeeded".to_string(),
                ),
                (CircuitState::HalfOpen, false) => {
                    let last = c.retry_at.zip(c.opened_at).map_or(cfg.open_ms, |(r, o)| (r - o).max(cfg.open_ms));
                    let open_for = (last * 2).min(cfg.max_open_ms);
                    (
                        Circuit {
                            state: CircuitState::Open,
                            opened_at: Some(now),
                            retry_at: Some(now + open_for),
                            ..c.clone()
                        },
                        format!("trial call failed: {why}"),
                    )
                }
                // Results of calls that started before it opened change nothing.
                (CircuitState::Open, _) => return,
            };
            match self.store.update_circuit(&c, &next, &reason, now).await {
                Ok(true) => {
                    self.saw_circuit(&Circuit { updated_at: now.max(c.updated_at + 1), ..next.clone() });
                    if next.state != c.state {
                        tracing::warn!(%supplier, from = c.state.as_str(), to = next.state.as_str(), "circuit: {reason}");
                        if let Some(r) = &self.router {
                            r.mark_circuit(supplier, next.state != CircuitState::Closed).await;
                        }
                    }
                    return;
                }
                Ok(false) => continue,
                Err(e) => {
                    tracing::warn!(%supplier, "writing the circuit failed: {e}");
                    return;
                }
            }
        }
    }
}
