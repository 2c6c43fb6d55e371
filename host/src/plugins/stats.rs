//! Per-plugin-version call counters: lock-free, read by the admin API and
//! metrics, written once per call.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use super::error::{CallError, LimitKind};

/// Counters of one plugin version.
#[derive(Debug, Default)]
pub struct PluginStats {
    calls: AtomicU64,
    ok: AtomicU64,
    adapter_errors: AtomicU64,
    traps: AtomicU64,
    denied: AtomicU64,
    incompatible: AtomicU64,
    host_errors: AtomicU64,
    limits: [AtomicU64; LimitKind::ALL.len()],
    total_ns: AtomicU64,
    max_ns: AtomicU64,
    fuel: AtomicU64,
    peak_memory: AtomicU64,
    http_requests: AtomicU64,
    http_bytes_sent: AtomicU64,
    http_bytes_received: AtomicU64,
}

/// A point-in-time copy of [`PluginStats`].
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct StatsSnapshot {
    pub calls: u64,
    pub ok: u64,
    pub adapter_errors: u64,
    pub traps: u64,
    pub denied: u64,
    pub incompatible: u64,
    pub host_errors: u64,
    /// Limit hits by kind (only kinds that happened).
    pub limits: Vec<(LimitKind, u64)>,
    pub mean_us: u64,
    pub max_us: u64,
    pub fuel_consumed: u64,
    pub peak_memory_bytes: u64,
    /// Outbound HTTP requests the plugin made, and body bytes each way.
    pub http_requests: u64,
    pub http_bytes_sent: u64,
    pub http_bytes_received: u64,
}

impl PluginStats {
    /// Records one finished call.
    pub fn record(&self, elapsed: Duration, outcome: Result<(), &CallError>, fuel: u64, memory: u64) {
        // A call that got no slot never ran: the overload of whoever held
        // the slots (see `share`), not a call of this plugin.
        if matches!(outcome, Err(CallError::Crowded { .. })) {
            return;
        }
        self.calls.fetch_add(1, Relaxed);
        let ns = elapsed.as_nanos() as u64;
        self.total_ns.fetch_add(ns, Relaxed);
        self.max_ns.fetch_max(ns, Relaxed);
        self.fuel.fetch_add(fuel, Relaxed);
        self.peak_memory.fetch_max(memory, Relaxed);
        let counter = match outcome {
            Ok(()) => &self.ok,
            Err(CallError::Adapter { .. }) => &self.adapter_errors,
            Err(CallError::Trap { .. }) => &self.traps,
            Err(CallError::CapabilityDenied { .. }) => &self.denied,
            Err(CallError::Incompatible { .. }) => &self.incompatible,
            Err(CallError::LimitExceeded { kind, .. }) => {
                let i = LimitKind::ALL.iter().position(|k| k == kind).unwrap_or(0);
                &self.limits[i]
            }
            Err(CallError::Unavailable { .. } | CallError::Host { .. } | CallError::Crowded { .. }) => {
                &self.host_errors
            }
        };
        counter.fetch_add(1, Relaxed);
    }

    /// Adds one call's outbound HTTP: requests, body bytes sent and received.
    pub fn record_http(&self, requests: u64, sent: u64, received: u64) {
        if requests > 0 {
            self.http_requests.fetch_add(requests, Relaxed);
            self.http_bytes_sent.fetch_add(sent, Relaxed);
            self.http_bytes_received.fetch_add(received, Relaxed);
        }
    }

    /// Reads every counter.
    pub fn snapshot(&self) -> StatsSnapshot {
        let calls = self.calls.load(Relaxed);
        StatsSnapshot {
            calls,
            ok: self.ok.load(Relaxed),
            adapter_errors: self.adapter_errors.load(Relaxed),
            traps: self.traps.load(Relaxed),
            denied: self.denied.load(Relaxed),
            incompatible: self.incompatible.load(Relaxed),
            host_errors: self.host_errors.load(Relaxed),
            limits: LimitKind::ALL
                .iter()
                .zip(&self.limits)
                .map(|(k, c)| (*k, c.load(Relaxed)))
                .filter(|(_, n)| *n > 0)
                .collect(),
            mean_us: self.total_ns.load(Relaxed).checked_div(calls).unwrap_or(0) / 1000,
            max_us: self.max_ns.load(Relaxed) / 1000,
            fuel_consumed: self.fuel.load(Relaxed),
            peak_memory_bytes: self.peak_memory.load(Relaxed),
            http_requests: self.http_requests.load(Relaxed),
            http_bytes_sent: self.http_bytes_sent.load(Relaxed),
            http_bytes_received: self.http_bytes_received.load(Relaxed),
        }
    }
}
