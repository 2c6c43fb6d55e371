//! The dispatch service: durable jobs (submits to suppliers, ERP purchase
//! orders, write-backs, polls of suppliers' update feeds) claimed under
//! leases with fencing tokens, run through each supplier's own plugin
//! binding within its concurrency and rate limits and its circuit breaker,
//! retried with exponential backoff and full jitter up to a deadline, then
//! kept as dead letters for a person.
//!
//! Owns: job execution, retry policy, supplier bindings, circuit breakers,
//! per-supplier limits. May call: `store`, `plugins`, `erp`, `router`
//! (re-routes and circuit state), `tracking` (poll results), `domain`.

mod backoff;
mod cancel;
mod circuit;
mod commit;
pub mod connections;
mod erp;
mod limits;
mod load;
mod submit;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::task::JoinSet;

use crate::domain::SupplierId;
use crate::erp::kingdee::KingdeeClient;
use crate::erp::kingdee::documents::{PurchaseOrderSettings, WriteBack};
use crate::plugins::{AdapterErrorKind, CallError, LimitKind, Registry};
use crate::router::Router;
use crate::store::{Connection, Job, JobKind, Retry, Store, StoreError};
use crate::util::now_ms;

pub use backoff::Backoff;
pub use circuit::CircuitConfig;
pub(crate) use circuit::{Gate, Verdict};
pub use connections::{Bindings, bind_connection, effective_config, resolve_secret};
pub use load::DeferErp;
pub(crate) use submit::line_word;
pub use submit::{idempotency_key, wire_order};

/// `[dispatch]` in the host config.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DispatchConfig {
    /// Run the dispatch service in `serve` (routing then creates POs).
    pub enabled: bool,
    /// Jobs in flight at once on this host.
    pub workers: usize,
    /// How long a claim holds a job; a worker that dies lets go after this.
    pub lease_ms: i64,
    /// Pause between claims when nothing was ready.
    pub idle_ms: u64,
    pub backoff: Backoff,
    pub circuit: CircuitConfig,
    /// A PO waiting on an open circuit this long, never tried, moves to
    /// another supplier.
    pub reroute_after_ms: i64,
    /// Limits for suppliers whose connection does not set them.
    pub default_max_in_flight: u32,
    /// ERP purchase orders per batch (one marker query, one BatchSave, one
    /// Submit and one Audit for all of them).
    pub erp_batch: usize,
    /// ERP batches in flight at once (keep within the ERP's session licence).
    pub erp_batches: usize,
    /// ERP purchase orders wait while submits are backlogged on a
    /// saturated host (`[dispatch.defer_erp]`).
    pub defer_erp: DeferErp,
    /// What routing hands over and how long work may take (`[dispatch.flow]`).
    #[serde(rename = "flow")]
    pub settings: crate::store::DispatchSettings,
}

impl Default for DispatchConfig {
    fn default() -> Self {
        DispatchConfig {
            enabled: true,
            workers: 48,
            lease_ms: 120_000,
            idle_ms: 200,
            backoff: Backoff::default(),
            circuit: CircuitConfig::default(),
            reroute_after_ms: 60_000,
            default_max_in_flight: 8,
            erp_batch: 100,
            erp_batches: 6,
            defer_erp: DeferErp::default(),
            settings: crate::store::DispatchSettings::default(),
        }
    }
}

/// The ERP side of dispatch: where purchase orders and write-backs go.
#[derive(Clone)]
pub struct ErpTarget {
    pub client: Arc<KingdeeClient>,
    /// The order source the Kingdee ingester writes (`[kingdee.ingest]
    /// source`): POs of its orders are pushed from their sales order.
    pub source: String,
    pub purchase_orders: PurchaseOrderSettings,
    pub write_back: WriteBack,
    /// Sales orders whose purchase orders a batch in this process is
    /// pushing or amending: a batch finishes a pushed document it finds
    /// unmarked, which must not be another batch's document between its
    /// Push and its Save, so two batches never hold one sales order.
    pub po_push: Arc<erp::BillsInFlight>,
}

/// Why a job attempt failed, by what should happen next.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Failure {
    /// Try again later (network, 5xx, rate limit, timeout).
    Transient { message: String, retry_after: Option<Duration> },
    /// The supplier refused this request for good.
    Refused(String),
    /// Our credentials were refused: pause the supplier.
    Unauthorized(String),
    /// Our side is wrong (plugin missing, misconfigured or broken): retry
    /// until a person fixes it or the deadline passes.
    Setup(String),
    /// Can never work (e.g. a quantity the API cannot carry): dead letter now.
    Hopeless(String),
    /// The call never started: another plugin held the call slots. Says
    /// nothing about this supplier; retried.
    Crowded(String),
}

impl Failure {
    pub(crate) fn message(&self) -> &str {
        match self {
            Failure::Transient { message, .. } => message,
            Failure::Refused(m)
            | Failure::Unauthorized(m)
            | Failure::Setup(m)
            | Failure::Hopeless(m)
            | Failure::Crowded(m) => m,
        }
    }

    /// Whether this failure says something about the supplier's health.
    fn trips_circuit(&self) -> bool {
        matches!(self, Failure::Transient { .. })
    }
}

impl From<&CallError> for Failure {
    fn from(e: &CallError) -> Failure {
        let message = e.to_string();
        match e {
            CallError::Adapter { error, .. } => match error {
                AdapterErrorKind::Rejected(m) => Failure::Refused(m.clone()),
                AdapterErrorKind::Transient { retry_after, .. } => {
                    Failure::Transient { message, retry_after: *retry_after }
                }
                AdapterErrorKind::Unauthorized(_) => Failure::Unauthorized(message),
                AdapterErrorKind::Misconfigured(_) => Failure::Setup(message),
            },
            // A call cut off at its deadline may have reached the supplier:
            // only a retry with the same idempotency key is safe.
            CallError::LimitExceeded { kind: LimitKind::Deadline, .. } | CallError::Host { .. } => {
                Failure::Transient { message, retry_after: None }
            }
            CallError::Crowded { .. } => Failure::Crowded(message),
            _ => Failure::Setup(message),
        }
    }
}

/// The dispatch service. Cheap to share: `Arc<Dispatcher>`.
pub struct Dispatcher {
    pub(crate) store: Store,
    pub(crate) router: Option<Arc<Router>>,
    pub(crate) erp: Option<ErpTarget>,
    pub(crate) cfg: DispatchConfig,
    /// This worker pool's name in job leases.
    pub(crate) owner: String,
    pub(crate) bindings: Bindings,
    pub(crate) limits: limits::Limits,
    pub(crate) commits: commit::SubmitCommits,
    connections: std::sync::Mutex<(i64, HashMap<SupplierId, Connection>)>,
    /// Breakers as last read or written here (`None` until first read):
    /// every call asks its supplier's breaker, and nearly always it is
    /// closed; reading the store for that would cost a query per call.
    /// Another host's change shows within a refresh (500 ms).
    circuits: std::sync::Mutex<Option<HashMap<SupplierId, crate::store::Circuit>>>,
    pub(crate) metrics: Option<Arc<crate::metrics::Metrics>>,
}

impl Dispatcher {
    pub fn new(
        store: Store,
        registry: Arc<Registry>,
        router: Option<Arc<Router>>,
        erp: Option<ErpTarget>,
        cfg: DispatchConfig,
    ) -> Dispatcher {
        let owner = format!(
            "{}-{}-{:08x}",
            std::env::var("HOSTNAME").unwrap_or_else(|_| "host".into()),
            std::process::id(),
            fastrand::u32(..)
        );
        Dispatcher {
            commits: commit::SubmitCommits::new(store.clone()),
            store,
            bindings: Bindings::new(registry),
            router,
            erp,
            cfg,
            owner,
            limits: limits::Limits::default(),
            connections: std::sync::Mutex::new((0, HashMap::new())),
            metrics: None,
            circuits: std::sync::Mutex::new(None),
        }
    }

    /// Counts submits and dead letters in `metrics`.
    pub fn with_metrics(mut self, metrics: Arc<crate::metrics::Metrics>) -> Dispatcher {
        self.metrics = Some(metrics);
        self
    }

    /// The name this host's workers hold leases under.
    pub fn owner(&self) -> &str {
        &self.owner
    }

    /// Runs until `shutdown`, then drains: no new claims, calls in flight
    /// finish and record their results, leases still held are released.
    pub async fn run(self: Arc<Self>, mut shutdown: tokio::sync::watch::Receiver<bool>) {
        self.sync_circuits().await;
        let kinds = [JobKind::Submit, JobKind::Poll, JobKind::Cancel];
        let mut tasks: JoinSet<()> = JoinSet::new();
        let mut erp_tasks: JoinSet<()> = JoinSet::new();
        // Every claim is a write transaction: claiming on every finished
        // job (one job at a time, and the ERP kinds each time too) made
        // claims most of the store's writes when measured. So jobs are
        // claimed when a quarter of the workers are free, ERP batches at most
        // every `ERP_CLAIM_EVERY` unless one just finished.
        const ERP_CLAIM_EVERY: Duration = Duration::from_millis(50);
        let mut last_erp_claim: Option<std::time::Instant> = None;
        // Whether the last claim of supplier jobs (submits, polls, cancels)
        // filled every free worker: more are ready than workers can take.
        let mut backlogged = false;
        let cpu = load::CpuGauge::start();
        let mut deferral = load::ErpDeferral::default();
        loop {
            if *shutdown.borrow() {
                break;
            }
            while tasks.try_join_next().is_some() {}
            let mut erp_finished = false;
            while erp_tasks.try_join_next().is_some() {
                erp_finished = true;
            }
            let free = self.cfg.workers.saturating_sub(tasks.len());
            let mut claimed = 0;
            let erp_due = erp_finished || last_erp_claim.is_none_or(|t| t.elapsed() >= ERP_CLAIM_EVERY);
            let was_waiting = deferral.waiting();
            let defer_pos =
                erp_due && deferral.defer(&self.cfg.defer_erp, backlogged, cpu.percent(), std::time::Instant::now());
            if defer_pos != was_waiting && erp_due {
                tracing::debug!(
                    cpu_percent = cpu.percent(),
                    "{}",
                    if defer_pos {
                        "host saturated with submits waiting: ERP purchase orders wait"
                    } else {
                        "ERP purchase orders go ahead"
                    }
                );
            }
            // ERP work goes in batches, purchase orders and write-backs
            // taking turns for the ERP's few sessions.
            for kind in [JobKind::ErpPo, JobKind::WriteBack] {
                if !erp_due || erp_tasks.len() >= self.cfg.erp_batches.max(1) {
                    break;
                }
                if defer_pos && kind == JobKind::ErpPo {
                    continue;
                }
                last_erp_claim = Some(std::time::Instant::now());
                let batch = self.cfg.erp_batch.max(1) as i64;
                match self.store.claim_jobs(&[kind], &self.owner, now_ms(), self.cfg.lease_ms, batch).await {
                    Ok(jobs) if !jobs.is_empty() => {
                        let me = self.clone();
                        erp_tasks.spawn(async move {
                            match kind {
                                JobKind::ErpPo => me.erp_purchase_orders(jobs).await,
                                _ => me.write_backs(jobs).await,
                            }
                        });
                    }
                    Ok(_) => {}
                    Err(e) => tracing::warn!("claiming ERP jobs failed: {e}"),
                }
            }
            let want = free > 0 && free * 4 >= self.cfg.workers.max(1);
            if want {
                let now = now_ms();
                if let Err(e) = self.refresh_connections(now).await {
                    tracing::warn!("reading supplier connections failed: {e}");
                }
                match self.store.claim_jobs(&kinds, &self.owner, now, self.cfg.lease_ms, free as i64).await {
                    Ok(jobs) => {
                        claimed = jobs.len();
                        backlogged = claimed >= free;
                        let mut pre = self.preload_submits(&jobs).await;
                        for job in jobs {
                            let me = self.clone();
                            let p = if job.kind == JobKind::Submit { pre.remove(&job.key) } else { None };
                            tasks.spawn(async move { me.run_job(job, p).await });
                        }
                    }
                    Err(e) => tracing::warn!("claiming jobs failed: {e}"),
                }
            }
            if want && claimed < free {
                // Nothing more is ready: look again after a pause, or as
                // soon as a job finishes.
                let idle = Duration::from_millis(self.cfg.idle_ms);
                tokio::select! {
                    _ = tokio::time::sleep(idle) => {}
                    _ = shutdown.changed() => {}
                    Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
                    Some(_) = erp_tasks.join_next(), if !erp_tasks.is_empty() => {}
                }
            } else {
                // Busy: wait for a slot (or the next ERP claim).
                tokio::select! {
                    _ = shutdown.changed() => {}
                    Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
                    Some(_) = erp_tasks.join_next(), if !erp_tasks.is_empty() => {}
                    _ = tokio::time::sleep(ERP_CLAIM_EVERY) => {}
                }
            }
        }
        let in_flight = tasks.len() + erp_tasks.len();
        while tasks.join_next().await.is_some() {}
        while erp_tasks.join_next().await.is_some() {}
        // Answers still queued for the committer hold their leases: write
        // them before letting go (a minute at most; what is not written by
        // then is sent again, with the same idempotency key, after restart).
        self.commits.drain(Duration::from_secs(60)).await;
        match self.store.release_leases(&self.owner, now_ms()).await {
            Ok(n) => tracing::info!(in_flight, released = n, "dispatch drained"),
            Err(e) => tracing::warn!("releasing leases failed: {e}"),
        }
    }

    /// Runs one claimed job to its recorded end.
    pub async fn handle(self: Arc<Self>, job: Job) {
        self.clone().run_job(job, None).await;
        // A submit's answer is written after its worker returns.
        self.commits.drain(Duration::from_secs(60)).await;
    }

    async fn run_job(self: Arc<Self>, job: Job, pre: Option<submit::Preloaded>) {
        // Every log line of the job carries its kind, key (the PO number,
        // shipment or supplier) and supplier.
        let span = tracing::info_span!("job", kind = job.kind.as_str(), key = %job.key, supplier = %job.supplier);
        tracing::Instrument::instrument(self.run_job_in_span(job, pre), span).await
    }

    async fn run_job_in_span(self: Arc<Self>, job: Job, pre: Option<submit::Preloaded>) {
        let kind = job.kind;
        let key = job.key.clone();
        let r = match kind {
            JobKind::Submit => self.submit(&job, pre).await,
            JobKind::ErpPo => {
                self.clone().erp_purchase_orders(vec![job.clone()]).await;
                Ok(())
            }
            JobKind::WriteBack => {
                self.clone().write_backs(vec![job.clone()]).await;
                Ok(())
            }
            JobKind::Poll => crate::tracking::poll(&self, &job).await,
            JobKind::Cancel => self.cancel(&job).await,
        };
        match r {
            Ok(()) => {}
            Err(StoreError::LeaseLost(_)) => {
                tracing::warn!(job = job.id, kind = kind.as_str(), key, "lease lost; another worker owns the job now");
            }
            Err(e) => tracing::warn!(job = job.id, kind = kind.as_str(), key, "job failed to record: {e}"),
        }
    }

    /// Records a failed attempt and decides what happens next.
    pub(crate) async fn fail(&self, job: &Job, failure: &Failure, now: i64) -> Result<(), StoreError> {
        if failure.trips_circuit() && matches!(job.kind, JobKind::Submit | JobKind::Poll | JobKind::Cancel) {
            self.circuit_result(&job.supplier, Verdict::Failed(failure.message()), now).await;
        }
        let retry = match failure {
            Failure::Hopeless(_) => Retry::Dead,
            Failure::Transient { retry_after, .. } => self.next_try(job, *retry_after, now),
            _ => self.next_try(job, None, now),
        };
        if job.attempts == 0 && matches!(failure, Failure::Setup(_)) {
            let msg = format!("{} {}: {}", job.kind.as_str(), job.key, failure.message());
            self.store.operator_event("setup", job.supplier.as_str(), &job.key, &msg, now).await?;
        }
        if retry == Retry::Dead {
            if let Some(m) = &self.metrics {
                m.dead_letter();
            }
            tracing::warn!(job = job.id, kind = job.kind.as_str(), key = job.key, "dead letter: {}", failure.message());
        } else {
            if let Some(m) = &self.metrics {
                m.retry(job.kind.as_str());
            }
            tracing::debug!(job = job.id, kind = job.kind.as_str(), key = job.key, "will retry: {}", failure.message());
        }
        if !self.store.fail_job(job, failure.message(), retry, true, now).await? {
            return Err(StoreError::LeaseLost(job.id));
        }
        Ok(())
    }

    /// The supplier's connection when calls may go to it; otherwise the
    /// job is failed (no connection) or put back (paused) and `None` comes
    /// back.
    pub(crate) async fn callable_connection(&self, job: &Job, now: i64) -> Result<Option<Connection>, StoreError> {
        let Some(conn) = self.current_connection(&job.supplier, now).await? else {
            let f = Failure::Setup(format!("supplier {} has no connection (daifa supplier connect)", job.supplier));
            self.fail(job, &f, now).await?;
            return Ok(None);
        };
        if let Some(why) = &conn.paused_reason {
            self.postpone(job, now + 30_000, &format!("supplier paused: {why}"), now).await?;
            return Ok(None);
        }
        Ok(Some(conn))
    }

    /// Puts a job back until `at` without counting an attempt (a paused
    /// supplier, an open circuit, a full rate window).
    pub(crate) async fn postpone(&self, job: &Job, at: i64, why: &str, now: i64) -> Result<(), StoreError> {
        if !self.store.fail_job(job, why, Retry::At(at), false, now).await? {
            return Err(StoreError::LeaseLost(job.id));
        }
        Ok(())
    }

    fn next_try(&self, job: &Job, retry_after: Option<Duration>, now: i64) -> Retry {
        let at = now + self.cfg.backoff.delay_ms(job.attempts, retry_after);
        if at > job.deadline_at { Retry::Dead } else { Retry::At(at) }
    }

    /// The supplier's connection, from a snapshot refreshed at most every
    /// 500 ms (connections change rarely; every job reads one).
    pub(crate) fn connection(&self, supplier: &SupplierId) -> Option<Connection> {
        self.connections.lock().ok()?.1.get(supplier).cloned()
    }

    /// The supplier's connection from the cache, or on a miss from the
    /// store: a connection saved a moment ago can have its first jobs (its
    /// poll) claimed before the cache is told, and they were postponed a
    /// minute or failed as "no connection" (a demo's write-back waited 60 s).
    pub(crate) async fn current_connection(
        &self,
        supplier: &SupplierId,
        now: i64,
    ) -> Result<Option<Connection>, StoreError> {
        if let Some(c) = self.connection(supplier) {
            return Ok(Some(c));
        }
        self.connections_changed();
        self.refresh_connections(now).await?;
        Ok(self.connection(supplier))
    }

    async fn refresh_connections(&self, now: i64) -> Result<(), StoreError> {
        let due = self.connections.lock().map(|c| now - c.0 >= 500).unwrap_or(true);
        if !due {
            return Ok(());
        }
        let all = self.store.connections().await?;
        let circuits = self.store.circuits().await?;
        if let Ok(mut c) = self.connections.lock() {
            *c = (now, all.into_iter().map(|c| (c.supplier.clone(), c)).collect());
        }
        if let Ok(mut c) = self.circuits.lock() {
            *c = Some(circuits.into_iter().map(|c| (c.supplier.clone(), c)).collect());
        }
        Ok(())
    }

    /// The supplier's connection read from the store now.
    pub async fn connection_now(&self, supplier: &SupplierId) -> Result<Option<Connection>, StoreError> {
        self.refresh_connections(now_ms()).await?;
        Ok(self.connection(supplier))
    }

    /// Forces the next job to read connections afresh (after an API change).
    pub fn connections_changed(&self) {
        if let Ok(mut c) = self.connections.lock() {
            c.0 = 0;
        }
    }

    /// Suppliers whose circuit is open right now, for the router.
    async fn sync_circuits(&self) {
        let Some(router) = &self.router else { return };
        match self.store.circuits().await {
            Ok(all) => {
                let open: HashSet<SupplierId> = all
                    .into_iter()
                    .filter(|c| c.state != crate::store::CircuitState::Closed)
                    .map(|c| c.supplier)
                    .collect();
                for s in open {
                    router.mark_circuit(&s, true).await;
                }
            }
            Err(e) => tracing::warn!("reading circuits failed: {e}"),
        }
    }
}
