//! The host's Prometheus metrics, rendered at `GET /metrics`: counters and
//! histograms the services update as work happens (ingestion, ERP requests,
//! routing, dispatch, plugin calls), and gauges read from the store when
//! scraped (orders and purchase orders by state, the job backlog and its
//! oldest item, circuit states, whether the store can write). Names follow
//! Prometheus conventions: `daifa_` prefix, `_total` counters, base units
//! (`_seconds`); labels carry suppliers, plugins and kinds, never an order.
//!
//! Owns: the metric registry of one host. Calls: the store (scrape gauges)
//! and the plugin runtime (to register its families).

use std::sync::Arc;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Registry, Unit};

use crate::plugins::PluginRuntime;
use crate::store::Store;

/// `supplier` and `outcome`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SupplierOutcome {
    pub supplier: String,
    pub outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SupplierLabel {
    supplier: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ServiceOutcome {
    service: &'static str,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ServiceLabel {
    service: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabel {
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabel {
    state: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RoutedLabels {
    supplier: String,
    rule_set: String,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ServiceClass {
    service: &'static str,
    class: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ConsumerLabel {
    consumer: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabel {
    kind: String,
}

fn request_buckets() -> Histogram {
    // 1 ms to ~30 s.
    Histogram::new(exponential_buckets(0.001, 2.0, 16))
}

fn batch_buckets() -> Histogram {
    // 0.1 ms to ~6.5 s.
    Histogram::new(exponential_buckets(0.000_1, 2.0, 17))
}

/// One host's metrics. Cheap to share: `Arc<Metrics>`.
pub struct Metrics {
    registry: Registry,
    ingested: Family<OutcomeLabel, Counter>,
    scan_seconds: Histogram,
    scan_errors: Counter,
    erp_requests: Family<ServiceOutcome, Counter>,
    erp_seconds: Family<ServiceLabel, Histogram>,
    routed: Family<OutcomeLabel, Counter>,
    routed_by: Family<RoutedLabels, Counter>,
    routing_seconds: Histogram,
    erp_errors: Family<ServiceClass, Counter>,
    submits: Family<SupplierOutcome, Counter>,
    submit_seconds: Family<SupplierLabel, Histogram>,
    dead_letters: Counter,
    retries: Family<KindLabel, Counter>,
    write_back_lag: Histogram,
    store_write_seconds: Histogram,
    // Read from the store at scrape time.
    orders: Family<StateLabel, Gauge>,
    purchase_orders: Family<StateLabel, Gauge>,
    jobs_ready: Family<KindLabel, Gauge>,
    job_oldest_seconds: Family<KindLabel, Gauge<f64, std::sync::atomic::AtomicU64>>,
    circuit_open: Family<SupplierLabel, Gauge>,
    outbox_oldest_seconds: Family<ConsumerLabel, Gauge<f64, std::sync::atomic::AtomicU64>>,
    store_writable: Gauge,
    /// (submits, failed) per supplier, for alert rules over windows.
    submit_counts: std::sync::Mutex<std::collections::HashMap<String, (u64, u64)>>,
    /// When an ERP scan last succeeded (ms; 0 = never).
    last_scan_ok: std::sync::atomic::AtomicI64,
    /// The ERP's last refusal of our credentials (when, why), cleared by
    /// the next call it answers: for `/readyz` and the `erp_credentials`
    /// alert.
    erp_refused: std::sync::Mutex<Option<(i64, String)>>,
}

impl Metrics {
    /// A registry with every family, the plugin runtime's included.
    pub fn new(runtime: &PluginRuntime) -> Arc<Metrics> {
        let mut registry = Registry::default();
        let m = Metrics {
            ingested: Family::default(),
            scan_seconds: batch_buckets(),
            scan_errors: Counter::default(),
            erp_requests: Family::default(),
            erp_seconds: Family::new_with_constructor(request_buckets),
            routed: Family::default(),
            routed_by: Family::default(),
            routing_seconds: batch_buckets(),
            erp_errors: Family::default(),
            submits: Family::default(),
            submit_seconds: Family::new_with_constructor(request_buckets),
            dead_letters: Counter::default(),
            retries: Family::default(),
            // 1 s to ~9 h.
            write_back_lag: Histogram::new(exponential_buckets(1.0, 2.0, 16)),
            store_write_seconds: batch_buckets(),
            orders: Family::default(),
            purchase_orders: Family::default(),
            jobs_ready: Family::default(),
            job_oldest_seconds: Family::default(),
            circuit_open: Family::default(),
            outbox_oldest_seconds: Family::default(),
            store_writable: Gauge::default(),
            submit_counts: Default::default(),
            last_scan_ok: Default::default(),
            erp_refused: Default::default(),
            registry: Registry::default(),
        };
        // Every kind present from the start: no retries is a 0, not a gap.
        for kind in ["submit", "erp_po", "write_back", "poll", "cancel"] {
            m.retries.get_or_create(&KindLabel { kind: kind.to_string() }).inc_by(0);
        }
        let r = &mut registry;
        r.register("daifa_ingest_orders", "Orders read from the ERP, by what became of them", m.ingested.clone());
        r.register_with_unit("daifa_ingest_scan_duration", "ERP scans", Unit::Seconds, m.scan_seconds.clone());
        r.register("daifa_ingest_scan_errors", "ERP scans that failed", m.scan_errors.clone());
        r.register("daifa_erp_requests", "Requests to the ERP by service and outcome", m.erp_requests.clone());
        r.register_with_unit("daifa_erp_request_duration", "ERP request latency", Unit::Seconds, m.erp_seconds.clone());
        r.register("daifa_routing_decisions", "Routing decisions by outcome", m.routed.clone());
        r.register(
            "daifa_routing_supplier_decisions",
            "Routing decisions per supplier they use, rule set and outcome",
            m.routed_by.clone(),
        );
        r.register(
            "daifa_erp_errors",
            "ERP calls that failed, by service and class (credentials, session_lost, transient, data, other, protocol)",
            m.erp_errors.clone(),
        );
        r.register_with_unit(
            "daifa_routing_pass_duration",
            "Routing passes (decide and store a batch)",
            Unit::Seconds,
            m.routing_seconds.clone(),
        );
        r.register("daifa_dispatch_submits", "Purchase order submits by supplier and outcome", m.submits.clone());
        r.register_with_unit(
            "daifa_dispatch_submit_duration",
            "Submit calls to suppliers",
            Unit::Seconds,
            m.submit_seconds.clone(),
        );
        r.register("daifa_dispatch_dead_letters", "Jobs that became dead letters", m.dead_letters.clone());
        r.register(
            "daifa_dispatch_retries",
            "Failed job attempts that will be tried again, by kind",
            m.retries.clone(),
        );
        r.register_with_unit(
            "daifa_writeback_lag",
            "From a shipment (as its supplier dated it) to its document in the ERP",
            Unit::Seconds,
            m.write_back_lag.clone(),
        );
        r.register_with_unit(
            "daifa_store_write_duration",
            "Committed store write transactions, BEGIN to COMMIT",
            Unit::Seconds,
            m.store_write_seconds.clone(),
        );
        r.register("daifa_orders", "Orders by state (read when scraped)", m.orders.clone());
        r.register("daifa_purchase_orders", "Purchase orders by state (read when scraped)", m.purchase_orders.clone());
        r.register("daifa_jobs_ready", "Jobs waiting or running, by kind (read when scraped)", m.jobs_ready.clone());
        r.register_with_unit(
            "daifa_jobs_oldest_age",
            "Age of the oldest waiting job, by kind (read when scraped)",
            Unit::Seconds,
            m.job_oldest_seconds.clone(),
        );
        r.register("daifa_circuit_open", "1 while a supplier's circuit is open or half-open", m.circuit_open.clone());
        r.register_with_unit(
            "daifa_outbox_oldest_age",
            "Per outbox consumer, the age of the oldest row it has not read (read when scraped)",
            Unit::Seconds,
            m.outbox_oldest_seconds.clone(),
        );
        r.register("daifa_store_writable", "1 while the store's last write committed", m.store_writable.clone());
        runtime.register_metrics(r);
        Arc::new(Metrics { registry, ..m })
    }

    /// Orders one scan stored, by outcome, and how long it took.
    pub fn ingest_scan(&self, outcome: &crate::store::IngestOutcome, seconds: f64) {
        for (label, n) in [
            ("received", outcome.received),
            ("exception", outcome.exceptions),
            ("updated", outcome.updated),
            ("unchanged", outcome.unchanged),
            ("raised", outcome.raised),
        ] {
            if n > 0 {
                self.ingested.get_or_create(&OutcomeLabel { outcome: label }).inc_by(n as u64);
            }
        }
        self.scan_seconds.observe(seconds);
        self.last_scan_ok.store(crate::util::now_ms(), std::sync::atomic::Ordering::Relaxed);
    }

    /// When an ERP scan last succeeded, if one has.
    pub fn last_scan_ok(&self) -> Option<i64> {
        Some(self.last_scan_ok.load(std::sync::atomic::Ordering::Relaxed)).filter(|t| *t > 0)
    }

    /// A scan that failed.
    pub fn ingest_scan_failed(&self) {
        self.scan_errors.inc();
    }

    /// One ERP request: `outcome` is `ok`, `transient` or `error`.
    pub fn erp_request(&self, service: &'static str, outcome: &'static str, seconds: f64) {
        self.erp_requests.get_or_create(&ServiceOutcome { service, outcome }).inc();
        self.erp_seconds.get_or_create(&ServiceLabel { service }).observe(seconds);
    }

    /// What the ERP said of our credentials in its last answer: `Some(why)`
    /// when it refused them, `None` when it accepted a call.
    pub fn erp_credentials(&self, refused: Option<&str>) {
        if let Ok(mut r) = self.erp_refused.lock() {
            match refused {
                Some(why) => *r = Some((crate::util::now_ms(), why.to_string())),
                None if r.is_some() => *r = None,
                None => {}
            }
        }
    }

    /// Since when and why the ERP refuses our credentials, if it does.
    pub fn erp_credentials_refused(&self) -> Option<(i64, String)> {
        self.erp_refused.lock().ok().and_then(|r| r.clone())
    }

    /// One routing decision, once for each supplier it uses.
    pub fn routing_decision<'a>(
        &self,
        rule_set: &str,
        suppliers: impl Iterator<Item = &'a str>,
        outcome: &'static str,
    ) {
        for supplier in suppliers {
            let labels = RoutedLabels { supplier: supplier.to_string(), rule_set: rule_set.to_string(), outcome };
            self.routed_by.get_or_create(&labels).inc();
        }
    }

    /// An ERP call that failed, by the class of its MsgCode (or transport).
    pub fn erp_error(&self, service: &'static str, class: &'static str) {
        self.erp_errors.get_or_create(&ServiceClass { service, class }).inc();
    }

    /// One routing pass.
    pub fn routing_pass(&self, routed: usize, backordered: usize, on_hold: usize, seconds: f64) {
        for (outcome, n) in [("routed", routed), ("backordered", backordered), ("on_hold", on_hold)] {
            if n > 0 {
                self.routed.get_or_create(&OutcomeLabel { outcome }).inc_by(n as u64);
            }
        }
        if routed + backordered + on_hold > 0 {
            self.routing_seconds.observe(seconds);
        }
    }

    /// One submit to a supplier: `outcome` is `accepted` or a failure kind.
    pub fn submit(&self, supplier: &str, outcome: &'static str, seconds: f64) {
        self.submits.get_or_create(&SupplierOutcome { supplier: supplier.to_string(), outcome }).inc();
        if let Ok(mut counts) = self.submit_counts.lock() {
            let c = counts.entry(supplier.to_string()).or_default();
            c.0 += 1;
            // Refusals are the supplier's verdict on an order, not a failure
            // of the supplier; a crowded call never reached it.
            if !matches!(outcome, "accepted" | "refused" | "crowded") {
                c.1 += 1;
            }
        }
        self.submit_seconds.get_or_create(&SupplierLabel { supplier: supplier.to_string() }).observe(seconds);
    }

    /// (submits, failed) per supplier since start.
    pub fn submit_counts(&self) -> std::collections::HashMap<String, (u64, u64)> {
        self.submit_counts.lock().map(|c| c.clone()).unwrap_or_default()
    }

    /// A job that became a dead letter.
    pub fn dead_letter(&self) {
        self.dead_letters.inc();
    }

    /// A failed attempt of a `kind` job that will be tried again.
    pub fn retry(&self, kind: &str) {
        self.retries.get_or_create(&KindLabel { kind: kind.to_string() }).inc();
    }

    /// A shipment reached the ERP `seconds` after its supplier shipped it.
    pub fn written_back(&self, seconds: f64) {
        self.write_back_lag.observe(seconds.max(0.0));
    }

    /// What to give [`crate::store::Store::observe_writes`].
    pub fn store_write_observer(self: &Arc<Self>) -> crate::store::WriteObserver {
        let m = Arc::downgrade(self);
        crate::store::WriteObserver(Arc::new(move |secs| {
            if let Some(m) = m.upgrade() {
                m.store_write_seconds.observe(secs);
            }
        }))
    }

    /// Reads the store's gauges, then renders every metric (OpenMetrics
    /// text). A store that cannot be read leaves its gauges as they were.
    pub async fn render(&self, store: Option<&Store>) -> String {
        if let Some(store) = store {
            self.read_store(store).await;
        }
        let mut out = String::new();
        if let Err(e) = prometheus_client::encoding::text::encode(&mut out, &self.registry) {
            tracing::warn!("encoding metrics: {e}");
        }
        out
    }

    async fn read_store(&self, store: &Store) {
        let now = crate::util::now_ms();
        self.store_writable.set(i64::from(store.health().writable));
        // Every state and kind is written each scrape, so one that emptied
        // reads 0 instead of its last count.
        if let Ok(counts) = store.count_by_state().await {
            for state in crate::domain::OrderState::ALL {
                let n = counts.get(&state).copied().unwrap_or(0);
                self.orders.get_or_create(&StateLabel { state: state.as_str().to_string() }).set(n);
            }
        }
        if let Ok(counts) = store.po_counts().await {
            for state in crate::domain::purchase::PoState::ALL {
                let n = counts.get(state.as_str()).copied().unwrap_or(0);
                self.purchase_orders.get_or_create(&StateLabel { state: state.as_str().to_string() }).set(n);
            }
        }
        if let Ok(backlog) = store.job_backlog().await {
            for kind in ["submit", "erp_po", "write_back", "poll", "cancel"] {
                if !backlog.iter().any(|(k, _, _)| k == kind) {
                    self.jobs_ready.get_or_create(&KindLabel { kind: kind.to_string() }).set(0);
                    self.job_oldest_seconds.get_or_create(&KindLabel { kind: kind.to_string() }).set(0.0);
                }
            }
            for (kind, n, oldest) in backlog {
                let age = ((now - oldest).max(0) as f64) / 1000.0;
                self.jobs_ready.get_or_create(&KindLabel { kind: kind.clone() }).set(n);
                self.job_oldest_seconds.get_or_create(&KindLabel { kind }).set(age);
            }
        }
        if let Ok(oldest) = store.outbox_oldest().await {
            // A consumer that caught up reads 0, not its last lag.
            self.outbox_oldest_seconds.clear();
            self.outbox_oldest_seconds.get_or_create(&ConsumerLabel { consumer: "routing".to_string() }).set(0.0);
            for (consumer, at) in oldest {
                let age = ((now - at).max(0) as f64) / 1000.0;
                self.outbox_oldest_seconds.get_or_create(&ConsumerLabel { consumer }).set(age);
            }
        }
        if let Ok(circuits) = store.circuits().await {
            for c in circuits {
                let open = c.state != crate::store::CircuitState::Closed;
                self.circuit_open
                    .get_or_create(&SupplierLabel { supplier: c.supplier.to_string() })
                    .set(i64::from(open));
            }
        }
    }
}
