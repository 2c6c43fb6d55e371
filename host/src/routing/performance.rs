//! The performance loop: per-supplier rolling metrics from dispatch events,
//! turned into a 0–1 score that routing uses to weigh costs. The score moves
//! toward its target by at most `max_step` down or `max_recovery_step` up per
//! evaluation, so a supplier that slows down loses volume promptly but
//! regains it gradually; a hard SLA breach drops it to 0 (excluded by the `healthy` filter once below the
//! rule set's `min_performance`). Every change is recorded with its cause.
//! Pure: the caller feeds events and a clock.

use std::collections::{HashMap, VecDeque};

use rust_decimal::Decimal;
use rust_decimal::prelude::{FromPrimitive, ToPrimitive};
use serde::{Deserialize, Serialize};

use crate::domain::SupplierId;

/// Something that happened to an order at a supplier (times: unix ms).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Event {
    Dispatched {
        at: i64,
    },
    /// Accepted; `after_ms` since dispatch.
    Acknowledged {
        at: i64,
        after_ms: i64,
    },
    /// Confirmed shipment with tracking (not label creation); `after_ms` since dispatch.
    Shipped {
        at: i64,
        after_ms: i64,
    },
    Rejected {
        at: i64,
    },
    Cancelled {
        at: i64,
    },
    ApiError {
        at: i64,
    },
}

impl Event {
    /// When it happened (unix ms).
    pub fn at(&self) -> i64 {
        match self {
            Event::Dispatched { at }
            | Event::Acknowledged { at, .. }
            | Event::Shipped { at, .. }
            | Event::Rejected { at }
            | Event::Cancelled { at }
            | Event::ApiError { at } => *at,
        }
    }
}

/// Windows, weights and limits.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PerformanceConfig {
    /// Events older than this are forgotten.
    pub window_ms: i64,
    /// Below this many dispatches the supplier keeps its current score.
    pub min_samples: usize,
    /// Time to shipped at which the shipping part of the score reaches 0.
    pub ship_target_ms: i64,
    pub ship_worst_ms: i64,
    /// Weights of the parts (normalised).
    pub w_ship_time: f64,
    pub w_acceptance: f64,
    pub w_api_errors: f64,
    pub w_cancellations: f64,
    /// Largest fall per evaluation.
    pub max_step: f64,
    /// Largest rise per evaluation: smaller than `max_step`, so a supplier
    /// that slows loses volume promptly and regains it gradually.
    pub max_recovery_step: f64,
    /// Hard SLA: median time to shipped above this → score 0.
    pub sla_ship_ms: i64,
}

impl Default for PerformanceConfig {
    fn default() -> Self {
        PerformanceConfig {
            window_ms: 3 * 24 * 3600 * 1000,
            min_samples: 20,
            ship_target_ms: 24 * 3600 * 1000,
            ship_worst_ms: 96 * 3600 * 1000,
            w_ship_time: 0.6,
            w_acceptance: 0.2,
            w_api_errors: 0.1,
            w_cancellations: 0.1,
            max_step: 0.15,
            max_recovery_step: 0.05,
            sla_ship_ms: 120 * 3600 * 1000,
        }
    }
}

/// Rolling metrics of one supplier.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Metrics {
    pub dispatched: usize,
    pub acceptance_rate: f64,
    pub median_ack_ms: Option<i64>,
    pub median_ship_ms: Option<i64>,
    pub api_error_rate: f64,
    pub cancellation_rate: f64,
    /// Purchase orders still unshipped past their expected time; their ages
    /// count in `median_ship_ms` as lower bounds of their time to ship.
    #[serde(default)]
    pub open_late: usize,
}

/// A recorded automatic change.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScoreChange {
    pub supplier: SupplierId,
    pub at: i64,
    pub from: Decimal,
    pub to: Decimal,
    /// The metric that drove it, in words.
    pub cause: String,
}

/// Per-supplier event windows and current scores.
#[derive(Debug, Clone, Default)]
pub struct Performance {
    cfg: PerformanceConfig,
    events: HashMap<SupplierId, VecDeque<Event>>,
    scores: HashMap<SupplierId, Decimal>,
    /// Ages (since dispatch) of each supplier's POs still open past their
    /// expected ship time, as last reported.
    open_late: HashMap<SupplierId, Vec<i64>>,
    pub changes: Vec<ScoreChange>,
}

fn median(mut v: Vec<i64>) -> Option<i64> {
    if v.is_empty() {
        return None;
    }
    v.sort_unstable();
    Some(v[v.len() / 2])
}

impl Performance {
    pub fn new(cfg: PerformanceConfig) -> Performance {
        Performance { cfg, ..Default::default() }
    }

    /// Restores a score saved earlier (after a restart).
    pub fn restore_score(&mut self, supplier: SupplierId, score: Decimal) {
        self.scores.insert(supplier, score);
    }

    /// The windows and limits in force.
    pub fn config(&self) -> &PerformanceConfig {
        &self.cfg
    }

    /// Adds an event to the supplier's window.
    pub fn record(&mut self, supplier: &SupplierId, e: Event) {
        self.events.entry(supplier.clone()).or_default().push_back(e);
    }

    /// Replaces what is known of POs still open past their expected ship
    /// time: (supplier, age since dispatch in ms). A slowdown then shows
    /// while the slow POs are still open, not only once they finally ship.
    pub fn set_open_late(&mut self, open: impl IntoIterator<Item = (SupplierId, i64)>) {
        self.open_late.clear();
        for (s, age) in open {
            self.open_late.entry(s).or_default().push(age);
        }
    }

    /// Suppliers with events in the window or a score.
    pub fn suppliers(&self) -> impl Iterator<Item = &SupplierId> {
        self.events.keys().chain(self.scores.keys().filter(|s| !self.events.contains_key(*s)))
    }

    /// Current scores (suppliers never evaluated are absent = 1).
    pub fn scores(&self) -> &HashMap<SupplierId, Decimal> {
        &self.scores
    }

    /// Rolling metrics of `supplier` at `now`.
    pub fn metrics(&self, supplier: &SupplierId, now: i64) -> Metrics {
        let Some(ev) = self.events.get(supplier) else { return Metrics::default() };
        let recent = ev.iter().filter(|e| e.at() > now - self.cfg.window_ms);
        let (mut disp, mut acks, mut ships, mut rej, mut canc, mut errs) = (0, Vec::new(), Vec::new(), 0, 0, 0);
        for e in recent {
            match e {
                Event::Dispatched { .. } => disp += 1,
                Event::Acknowledged { after_ms, .. } => acks.push(*after_ms),
                Event::Shipped { after_ms, .. } => ships.push(*after_ms),
                Event::Rejected { .. } => rej += 1,
                Event::Cancelled { .. } => canc += 1,
                Event::ApiError { .. } => errs += 1,
            }
        }
        // An open PO's age is a lower bound of its time to ship: counting it
        // is conservative, and it is known days before the PO ships.
        let open_late = self.open_late.get(supplier).map_or(0, Vec::len);
        ships.extend(self.open_late.get(supplier).into_iter().flatten().copied());
        let d = disp.max(1) as f64;
        Metrics {
            open_late,
            dispatched: disp,
            acceptance_rate: 1.0 - (rej as f64 / d).min(1.0),
            median_ack_ms: median(acks),
            median_ship_ms: median(ships),
            api_error_rate: (errs as f64 / (d + errs as f64)).min(1.0),
            cancellation_rate: (canc as f64 / d).min(1.0),
        }
    }

    /// Re-evaluates every supplier at `now`; returns the changes made.
    pub fn evaluate(&mut self, now: i64) -> Vec<ScoreChange> {
        let cutoff = now - self.cfg.window_ms;
        for ev in self.events.values_mut() {
            while ev.front().is_some_and(|e| e.at() <= cutoff) {
                ev.pop_front();
            }
        }
        let mut made = Vec::new();
        let suppliers: Vec<SupplierId> = self.events.keys().cloned().collect();
        for s in suppliers {
            let m = self.metrics(&s, now);
            if m.dispatched < self.cfg.min_samples {
                // Too little recent traffic to judge (often because routing
                // already moved volume away): drift back toward neutral so
                // the supplier is tried again, a little at a time.
                let current = self.scores.get(&s).copied().unwrap_or(Decimal::ONE);
                if current < Decimal::ONE {
                    let step = Decimal::from_f64(self.cfg.max_recovery_step).unwrap_or(Decimal::ZERO).round_dp(3);
                    let next = (current + step).min(Decimal::ONE);
                    let cause = format!("only {} dispatches in the window: drifting back toward neutral", m.dispatched);
                    made.push(ScoreChange { supplier: s.clone(), at: now, from: current, to: next, cause });
                    self.scores.insert(s, next);
                }
                continue;
            }
            let c = &self.cfg;
            let ship_part = m.median_ship_ms.map_or(1.0, |t| {
                1.0 - ((t - c.ship_target_ms) as f64 / (c.ship_worst_ms - c.ship_target_ms).max(1) as f64)
                    .clamp(0.0, 1.0)
            });
            let total_w = c.w_ship_time + c.w_acceptance + c.w_api_errors + c.w_cancellations;
            let target = (c.w_ship_time * ship_part
                + c.w_acceptance * m.acceptance_rate
                + c.w_api_errors * (1.0 - m.api_error_rate)
                + c.w_cancellations * (1.0 - m.cancellation_rate))
                / total_w.max(f64::EPSILON);
            let current = self.scores.get(&s).and_then(|d| d.to_f64()).unwrap_or(1.0);
            let sla_breach = m.median_ship_ms.is_some_and(|t| t > c.sla_ship_ms);
            let next =
                if sla_breach { 0.0 } else { current + (target - current).clamp(-c.max_step, c.max_recovery_step) };
            let next_d = Decimal::from_f64(next).unwrap_or(Decimal::ONE).round_dp(3);
            let cur_d = Decimal::from_f64(current).unwrap_or(Decimal::ONE).round_dp(3);
            if next_d != cur_d {
                let hours = |ms: Option<i64>| ms.map_or("n/a".to_string(), |v| format!("{:.1} h", v as f64 / 3.6e6));
                let cause = if sla_breach {
                    format!(
                        "SLA breach: median time to shipped {} > {}",
                        hours(m.median_ship_ms),
                        hours(Some(c.sla_ship_ms))
                    )
                } else {
                    format!(
                        "median time to shipped {}, acceptance {:.0} %, API errors {:.0} %, cancellations {:.0} % over {} dispatches → target {:.3}",
                        hours(m.median_ship_ms),
                        m.acceptance_rate * 100.0,
                        m.api_error_rate * 100.0,
                        m.cancellation_rate * 100.0,
                        m.dispatched,
                        target
                    )
                };
                let change = ScoreChange { supplier: s.clone(), at: now, from: cur_d, to: next_d, cause };
                self.scores.insert(s, next_d);
                made.push(change);
            }
        }
        self.changes.extend(made.iter().cloned());
        made
    }
}

#[cfg(test)]
mod open_late_tests {
    use super::*;

    const H: i64 = 3_600_000;

    #[test]
    fn unshipped_late_orders_count_before_they_ship() {
        let s = SupplierId::from("C");
        let mut p = Performance::new(PerformanceConfig::default());
        let now = 10 * 24 * H;
        for i in 0..30 {
            p.record(&s, Event::Dispatched { at: now - 90 * H + i });
            p.record(&s, Event::Shipped { at: now - 80 * H + i, after_ms: 10 * H });
        }
        for i in 0..40 {
            p.record(&s, Event::Dispatched { at: now - 60 * H + i });
        }
        assert!(p.evaluate(now).is_empty(), "shipped in 10 h: nothing to change");
        // Those 40 are still open, 60 h after dispatch: the slowdown shows now.
        p.set_open_late((0..40).map(|_| (s.clone(), 60 * H)));
        let m = p.metrics(&s, now);
        assert_eq!((m.open_late, m.median_ship_ms), (40, Some(60 * H)));
        let changes = p.evaluate(now);
        assert_eq!(changes.len(), 1);
        assert!(changes[0].to < changes[0].from, "{changes:?}");
    }
}
