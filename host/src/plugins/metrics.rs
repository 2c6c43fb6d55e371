//! Prometheus metrics of plugin calls: counted by plugin, version, operation
//! and outcome as each call finishes, with a latency histogram, limit hits
//! and fuel; call-slot use is read from the slots at scrape time. The host
//! registers these into its registry (`crate::metrics`).
//!
//! Owns: the plugin metric families. Calls: nothing.

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Registry, Unit};

use super::error::CallError;
use super::share::{CallShare, ShareSnapshot};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CallLabels {
    plugin: String,
    version: String,
    operation: &'static str,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OpLabels {
    plugin: String,
    version: String,
    operation: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LimitLabels {
    plugin: String,
    version: String,
    limit: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct VersionLabels {
    plugin: String,
    version: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PluginLabel {
    plugin: String,
}

fn call_buckets() -> Histogram {
    // 50 µs to ~26 s: a bare call to a supplier that answers slowly.
    Histogram::new(exponential_buckets(0.000_05, 2.5, 15))
}

/// The families; clones share them.
#[derive(Clone)]
pub struct PluginMetrics {
    calls: Family<CallLabels, Counter>,
    duration: Family<OpLabels, Histogram>,
    limits: Family<LimitLabels, Counter>,
    fuel: Family<VersionLabels, Counter>,
}

impl Default for PluginMetrics {
    fn default() -> Self {
        PluginMetrics {
            calls: Family::default(),
            duration: Family::new_with_constructor(call_buckets),
            limits: Family::default(),
            fuel: Family::default(),
        }
    }
}

impl PluginMetrics {
    /// Records one finished call. A call that got no slot never ran and is
    /// counted only as `crowded`.
    pub(crate) fn record(
        &self,
        plugin: &str,
        version: &str,
        operation: &'static str,
        outcome: Result<(), &CallError>,
        seconds: f64,
        fuel: u64,
    ) {
        let label = match outcome {
            Ok(()) => "ok",
            Err(e) => e.kind_label(),
        };
        let (plugin, version) = (plugin.to_string(), version.to_string());
        self.calls
            .get_or_create(&CallLabels { plugin: plugin.clone(), version: version.clone(), operation, outcome: label })
            .inc();
        if let Err(CallError::Crowded { .. }) = outcome {
            return;
        }
        if let Err(CallError::LimitExceeded { kind, .. }) = outcome {
            self.limits
                .get_or_create(&LimitLabels { plugin: plugin.clone(), version: version.clone(), limit: kind.as_str() })
                .inc();
        }
        if fuel > 0 {
            self.fuel.get_or_create(&VersionLabels { plugin: plugin.clone(), version: version.clone() }).inc_by(fuel);
        }
        self.duration.get_or_create(&OpLabels { plugin, version, operation }).observe(seconds);
    }

    /// Adds the families, and the call slots read at scrape, to `registry`.
    pub fn register(&self, registry: &mut Registry, share: &CallShare) {
        registry.register(
            "daifa_plugin_calls",
            "Plugin calls by plugin, version, operation and outcome (ok, adapter, limit, trap, denied, ...)",
            self.calls.clone(),
        );
        registry.register_with_unit(
            "daifa_plugin_call_duration",
            "Wall time of plugin calls, instantiation included",
            Unit::Seconds,
            self.duration.clone(),
        );
        registry.register("daifa_plugin_limit_hits", "Plugin calls stopped by a sandbox limit", self.limits.clone());
        registry.register("daifa_plugin_fuel_consumed", "Fuel (instructions) plugin calls consumed", self.fuel.clone());
        registry.register_collector(Box::new(SlotCollector { share: share.clone() }));
    }
}

/// (name, help, read) of a per-plugin slot gauge, and of a counter.
type SlotGauge = (&'static str, &'static str, fn(&ShareSnapshot) -> u32);
type SlotCounter = (&'static str, &'static str, fn(&ShareSnapshot) -> u64);

/// Call-slot use per plugin, read when scraped.
#[derive(Debug)]
struct SlotCollector {
    share: CallShare,
}

impl Collector for SlotCollector {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let all = self.share.snapshot_all();
        let (total, per_plugin) = self.share.limits();
        let mut e = encoder.encode_descriptor(
            "daifa_plugin_call_slots",
            "Call slots every plugin shares, and the most one plugin may hold",
            None,
            MetricType::Gauge,
        )?;
        for (kind, v) in [("total", total), ("per_plugin", per_plugin)] {
            #[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
            struct Kind {
                kind: &'static str,
            }
            ConstGauge::new(i64::from(v)).encode(e.encode_family(&Kind { kind })?)?;
        }
        let gauges: [SlotGauge; 2] = [
            ("daifa_plugin_call_slots_in_use", "Call slots a plugin holds now", |s| s.in_use),
            ("daifa_plugin_calls_waiting", "Calls of a plugin waiting for a slot now", |s| s.waiting),
        ];
        for (name, help, get) in gauges {
            let mut e = encoder.encode_descriptor(name, help, None, MetricType::Gauge)?;
            for (plugin, s) in &all {
                ConstGauge::new(i64::from(get(s))).encode(e.encode_family(&PluginLabel { plugin: plugin.clone() })?)?;
            }
        }
        let counters: [SlotCounter; 2] = [
            ("daifa_plugin_calls_crowded_out", "Calls of a plugin that got no call slot in time", |s| s.crowded_out),
            (
                "daifa_plugin_calls_crowded_others",
                "Other plugins' calls that got no slot while this plugin held the most",
                |s| s.crowded_others,
            ),
        ];
        for (name, help, get) in counters {
            let mut e = encoder.encode_descriptor(name, help, None, MetricType::Counter)?;
            for (plugin, s) in &all {
                ConstCounter::new(get(s)).encode(e.encode_family(&PluginLabel { plugin: plugin.clone() })?)?;
            }
        }
        Ok(())
    }
}
