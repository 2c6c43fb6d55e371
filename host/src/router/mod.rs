//! The router service: routes orders as they arrive (the outbox's
//! `order.received` rows) with the catalog, policy and performance snapshot
//! of the moment, and stores each decision with its explanation, the order's
//! new state and the consumed outbox rows in one transaction. It re-routes
//! lines a supplier rejected, left backordered too long, or whose circuit
//! opened (`reroute.rs`); keeps the performance loop fed and its changes
//! recorded; and refreshes stock through the plugins (`stock.rs`).
//!
//! Owns: the in-memory routing snapshot (catalog, capacity used today,
//! scores, open circuits). May call: `routing`, `store`, `plugins`, `domain`.

mod feed;
mod reroute;
mod stock;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use tokio::sync::Mutex;

use crate::domain::{OrderContent, OrderId, OrderState, Supplier, SupplierId};
use crate::routing::performance::{Event, Performance, PerformanceConfig, ScoreChange};
use crate::routing::{Catalog, Decision, Outcome, Policy, WhatIf, compare, route_excluding};
use crate::store::{RoutingWrite, Store, StoreError, StoredDecision};

pub use feed::FeedStats;
pub use reroute::RerouteResult;
pub use stock::StockRefresh;

/// Router settings (`[router]` in the host config).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RouterConfig {
    /// Route orders in `serve` (off: orders wait in `received`).
    pub enabled: bool,
    /// A catalog file applied at every start (the file is then the source of
    /// truth; changes made through the API last until the next start).
    pub catalog_file: Option<std::path::PathBuf>,
    /// A policy file loaded at start if its `version` is new.
    pub policy_file: Option<std::path::PathBuf>,
    /// Orders per routing transaction.
    pub batch: usize,
    /// Pause between passes when there was nothing to route.
    pub interval_ms: u64,
    /// Most routing attempts per order (the first included) before re-routing
    /// gives up and holds the order for a person.
    pub max_attempts: u32,
    /// An order backordered at a supplier longer than this is re-routed.
    pub backorder_deadline_ms: i64,
    /// How often the performance loop re-evaluates scores.
    pub evaluate_every_ms: i64,
    /// How often stock is asked of the suppliers' plugins (0 = never).
    pub stock_refresh_ms: i64,
    /// A whole stock refresh is given up after this long (the figures it
    /// did not reach keep their last values); it runs beside routing.
    pub stock_refresh_deadline_ms: u64,
    /// The performance feed reads outbox rows only once they are this old,
    /// so a slow transaction's row (PostgreSQL hands out ids before commit)
    /// is never passed over.
    pub feed_settle_ms: i64,
    /// The business day for daily capacity starts at midnight in this UTC
    /// offset (China Standard Time by default).
    pub day_utc_offset_hours: i32,
    pub performance: PerformanceConfig,
}

impl Default for RouterConfig {
    fn default() -> Self {
        RouterConfig {
            enabled: true,
            catalog_file: None,
            policy_file: None,
            batch: 500,
            interval_ms: 1000,
            max_attempts: 3,
            backorder_deadline_ms: 48 * 3600 * 1000,
            evaluate_every_ms: 15 * 60 * 1000,
            stock_refresh_ms: 30 * 60 * 1000,
            stock_refresh_deadline_ms: 5 * 60 * 1000,
            feed_settle_ms: 5_000,
            day_utc_offset_hours: 8,
            performance: PerformanceConfig::default(),
        }
    }
}

/// Why the router could not work.
#[derive(Debug, thiserror::Error)]
pub enum RouterError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("no routing policy is loaded (load one with `daifa route policy load FILE` or PUT /api/v1/routing/policy)")]
    NoPolicy,
    #[error("stored routing policy version {version} no longer loads: {why}")]
    BadPolicy { version: u32, why: String },
    #[error("{0}")]
    Refused(String),
}

/// What one pass did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct RouteStats {
    pub routed: usize,
    pub backordered: usize,
    pub on_hold: usize,
    /// Outbox rows for orders no longer waiting to be routed.
    pub stale: usize,
    /// Orders changed by someone else between read and write.
    pub skipped: usize,
}

struct Snapshot {
    catalog_rev: i64,
    catalog: Catalog,
    suppliers: Vec<Supplier>,
    policy: Option<Policy>,
    perf: Performance,
    /// Start of the business day the capacity counts belong to.
    day_start: i64,
    open_circuits: HashSet<SupplierId>,
    last_eval: i64,
    last_stock: i64,
}

/// The router. Cheap to share: `Arc<Router>`.
pub struct Router {
    store: Store,
    cfg: RouterConfig,
    snap: Mutex<Snapshot>,
    metrics: Option<Arc<crate::metrics::Metrics>>,
}

impl Router {
    /// Loads the performance window and latest scores from the store.
    pub async fn new(store: Store, cfg: RouterConfig, now: i64) -> Result<Router, RouterError> {
        let mut perf = Performance::new(cfg.performance.clone());
        for (s, e) in store.supplier_events_since(now - cfg.performance.window_ms).await? {
            perf.record(&s, e);
        }
        for (s, score) in store.latest_scores().await? {
            perf.restore_score(s, score);
        }
        let snap = Snapshot {
            catalog_rev: -1,
            catalog: Catalog::default(),
            suppliers: vec![],
            policy: None,
            perf,
            day_start: 0,
            open_circuits: HashSet::new(),
            last_eval: now,
            last_stock: 0,
        };
        Ok(Router { store, cfg, snap: Mutex::new(snap), metrics: None })
    }

    /// Counts routing decisions and times passes in `metrics`.
    pub fn with_metrics(mut self, metrics: Arc<crate::metrics::Metrics>) -> Router {
        self.metrics = Some(metrics);
        self
    }

    pub fn config(&self) -> &RouterConfig {
        &self.cfg
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Routes every order waiting in the outbox, batch by batch. Without a
    /// policy nothing can be routed, and it says so even when nothing waits.
    pub async fn route_pending(&self, now: i64) -> Result<RouteStats, RouterError> {
        {
            let mut snap = self.snap.lock().await;
            self.refresh(&mut snap, now).await?;
            if snap.policy.is_none() {
                return Err(RouterError::NoPolicy);
            }
        }
        let mut total = RouteStats::default();
        loop {
            let pending = self.store.pending_routing(self.cfg.batch as i64).await?;
            if pending.is_empty() {
                return Ok(total);
            }
            let s = self.route_batch(&pending, now).await?;
            total.routed += s.routed;
            total.backordered += s.backordered;
            total.on_hold += s.on_hold;
            total.stale += s.stale;
            total.skipped += s.skipped;
        }
    }

    async fn route_batch(&self, pending: &[(i64, OrderId)], now: i64) -> Result<RouteStats, RouterError> {
        let mut snap = self.snap.lock().await;
        self.refresh(&mut snap, now).await?;
        let snap = &mut *snap;
        let policy = snap.policy.as_ref().ok_or(RouterError::NoPolicy)?;
        let ids: Vec<OrderId> = pending.iter().map(|p| p.1).collect();
        let orders = self.store.orders_content(&ids).await?;
        let latest = self.store.latest_decisions(&ids).await?;
        let mut stats = RouteStats::default();
        let mut writes = Vec::with_capacity(orders.len());
        let mut seen = HashSet::new();
        let scores = snap.perf.scores().clone();
        for (id, st, content) in &orders {
            if *st != OrderState::Received || !seen.insert(*id) {
                stats.stale += 1;
                continue;
            }
            let attempt = latest.get(id).map_or(1, |d| d.attempt + 1);
            let d = route_excluding(content, &snap.catalog, policy, &scores, &HashSet::new());
            // Counted now so later orders of the batch see it.
            count_capacity(&mut snap.catalog, &d, 1);
            writes.push(write_for(*id, OrderState::Received, attempt, "received".into(), vec![], d, now));
        }
        stats.stale += pending.len().saturating_sub(orders.len());
        let outbox: Vec<i64> = pending.iter().map(|p| p.0).collect();
        let applied = self.store.apply_routing(&writes, &outbox, now).await?;
        for (i, w) in writes.iter().enumerate() {
            if applied.skipped_at.contains(&i) {
                // Another router got there first: give the capacity back.
                count_capacity(&mut snap.catalog, &w.stored.decision, -1);
                continue;
            }
            let outcome = match w.to {
                OrderState::OnHold => {
                    stats.on_hold += 1;
                    "on_hold"
                }
                _ if w.stored.decision.outcome == Outcome::PartlyBackordered => {
                    stats.backordered += 1;
                    "backordered"
                }
                _ => {
                    stats.routed += 1;
                    "routed"
                }
            };
            if let Some(m) = &self.metrics {
                let d = &w.stored.decision;
                m.routing_decision(&d.rule_set, d.suppliers.iter().map(|s| s.as_str()), outcome);
            }
        }
        stats.skipped = applied.skipped;
        Ok(stats)
    }

    /// Reloads what changed: the catalog (by revision), the active policy (by
    /// version) and, on a new business day, the capacity counts.
    async fn refresh(&self, snap: &mut Snapshot, now: i64) -> Result<(), RouterError> {
        let rev = self.store.catalog_rev().await?;
        let day_start = day_start(now, self.cfg.day_utc_offset_hours);
        if rev != snap.catalog_rev || day_start != snap.day_start {
            let (rev, suppliers, mut catalog) = self.store.load_catalog().await?;
            let used = self.store.orders_per_supplier_since(day_start).await?;
            for s in &mut catalog.suppliers {
                s.used_today = used.get(&s.id).copied().unwrap_or(0);
                s.circuit_open = snap.open_circuits.contains(&s.id);
            }
            snap.catalog = catalog;
            snap.suppliers = suppliers;
            snap.catalog_rev = rev;
            snap.day_start = day_start;
        }
        snap.catalog.as_of = Some(now);
        match self.store.active_policy().await? {
            None => snap.policy = None,
            Some((version, _)) if snap.policy.as_ref().is_some_and(|p| p.version == version) => {}
            Some((version, body)) => {
                let p = Policy::from_toml(&body).map_err(|e| RouterError::BadPolicy { version, why: e.0 })?;
                snap.policy = Some(p);
            }
        }
        Ok(())
    }

    /// Adds supplier events (from dispatch and tracking) to the store and the
    /// performance window.
    pub async fn record_events(&self, events: &[(SupplierId, Event)]) -> Result<(), RouterError> {
        self.store.record_supplier_events(events).await?;
        let mut snap = self.snap.lock().await;
        for (s, e) in events {
            snap.perf.record(s, e.clone());
        }
        Ok(())
    }

    /// Re-evaluates performance scores; records and returns the changes.
    pub async fn evaluate(&self, now: i64) -> Result<Vec<ScoreChange>, RouterError> {
        let late = self.store.late_purchase_orders(now).await?;
        let mut snap = self.snap.lock().await;
        snap.perf.set_open_late(late.into_iter().map(|(s, _, dispatched)| (s, now - dispatched)));
        let changes = snap.perf.evaluate(now);
        snap.perf.changes.clear();
        snap.last_eval = now;
        drop(snap);
        self.store.record_score_changes(&changes).await?;
        Ok(changes)
    }

    /// Current performance scores (absent = 1) and rolling metrics.
    pub async fn performance(&self, now: i64) -> Vec<SupplierPerformance> {
        let snap = self.snap.lock().await;
        let mut ids: Vec<SupplierId> = snap.suppliers.iter().map(|s| s.id.clone()).collect();
        for s in snap.perf.suppliers() {
            if !ids.contains(s) {
                ids.push(s.clone());
            }
        }
        ids.into_iter()
            .map(|s| SupplierPerformance {
                score: snap.perf.scores().get(&s).copied().unwrap_or(Decimal::ONE),
                metrics: snap.perf.metrics(&s, now),
                circuit_open: snap.open_circuits.contains(&s),
                supplier: s,
            })
            .collect()
    }

    /// Routes `orders` under the current policy and under `proposed`.
    pub async fn what_if(
        &self,
        orders: &[(String, OrderContent)],
        proposed: &Policy,
        now: i64,
        limit: usize,
    ) -> Result<WhatIf, RouterError> {
        let mut snap = self.snap.lock().await;
        self.refresh(&mut snap, now).await?;
        let current = snap.policy.as_ref().ok_or(RouterError::NoPolicy)?;
        Ok(compare(orders, &snap.catalog, current, proposed, snap.perf.scores(), limit))
    }

    /// Runs until `shutdown`: routes arrivals, sweeps overdue backorders,
    /// re-evaluates scores and refreshes stock on their schedules.
    pub async fn run(
        self: Arc<Self>,
        plugins: Option<Arc<crate::plugins::Registry>>,
        mut shutdown: tokio::sync::watch::Receiver<bool>,
    ) {
        let mut stock_task: Option<tokio::task::JoinHandle<()>> = None;
        loop {
            let now = crate::util::now_ms();
            let pass = std::time::Instant::now();
            let routed = self.route_pending(now).await;
            if let (Some(m), Ok(s)) = (&self.metrics, &routed) {
                m.routing_pass(s.routed, s.backordered, s.on_hold, pass.elapsed().as_secs_f64());
            }
            match routed {
                Ok(s) if s.routed + s.on_hold + s.backordered > 0 => {
                    tracing::info!(routed = s.routed, backordered = s.backordered, on_hold = s.on_hold, "routing pass");
                }
                Ok(_) => {}
                Err(RouterError::NoPolicy) => tracing::debug!("routing waits for a policy"),
                Err(e) => tracing::warn!("routing pass failed: {e}"),
            }
            match self.feed_performance(now).await {
                Ok(f) if f.events + f.rerouted > 0 => {
                    tracing::info!(events = f.events, rerouted = f.rerouted, "performance feed");
                }
                Ok(_) => {}
                Err(e) => tracing::warn!("performance feed failed: {e}"),
            }
            if let Err(e) = self.sweep_backorders(now).await {
                tracing::warn!("backorder sweep failed: {e}");
            }
            let (due_eval, due_stock) = {
                let snap = self.snap.lock().await;
                (
                    now - snap.last_eval >= self.cfg.evaluate_every_ms,
                    self.cfg.stock_refresh_ms > 0 && now - snap.last_stock >= self.cfg.stock_refresh_ms,
                )
            };
            if due_eval {
                match self.evaluate(now).await {
                    Ok(c) => c.iter().for_each(|c| {
                        tracing::info!(supplier = %c.supplier, from = %c.from, to = %c.to, cause = %c.cause, "score changed")
                    }),
                    Err(e) => tracing::warn!("performance evaluation failed: {e}"),
                }
            }
            let refreshing = stock_task.as_ref().is_some_and(|t| !t.is_finished());
            if due_stock
                && !refreshing
                && let Some(reg) = &plugins
            {
                // Beside routing, never inside it: a slow `query-stock`
                // held up every order's routing for as long as it took.
                self.snap.lock().await.last_stock = now;
                let (me, reg) = (self.clone(), reg.clone());
                let deadline = std::time::Duration::from_millis(self.cfg.stock_refresh_deadline_ms);
                stock_task = Some(tokio::spawn(async move {
                    match tokio::time::timeout(deadline, me.refresh_stock(&reg, now)).await {
                        Ok(Ok(r)) => tracing::info!(updated = r.updated, failed = r.failures.len(), "stock refreshed"),
                        Ok(Err(e)) => tracing::warn!("stock refresh failed: {e}"),
                        Err(_) => tracing::warn!(?deadline, "stock refresh gave up at its deadline"),
                    }
                }));
            }
            tokio::select! {
                _ = tokio::time::sleep(std::time::Duration::from_millis(self.cfg.interval_ms)) => {}
                _ = shutdown.changed() => {
                    if let Some(t) = stock_task {
                        t.abort();
                    }
                    return;
                }
            }
        }
    }
}

/// Applies the configured catalog and policy files: the catalog always, the
/// policy when its version is newer than the active one. A policy file whose
/// version is already loaded with different text is refused, so a version
/// always names one text.
pub async fn load_files(store: &Store, cfg: &RouterConfig, now: i64) -> Result<Vec<String>, RouterError> {
    let mut did = Vec::new();
    let read = |p: &std::path::Path| {
        std::fs::read_to_string(p).map_err(|e| RouterError::Refused(format!("reading {}: {e}", p.display())))
    };
    if let Some(f) = &cfg.catalog_file {
        let text = read(f)?;
        let loaded = crate::routing::CatalogFile::load_toml(&text, now)
            .map_err(|e| RouterError::Refused(format!("{}: {e}", f.display())))?;
        // The same file over the catalog it made last time (nothing changed
        // it since, e.g. through the API) is not written again: on
        // PostgreSQL that was seconds of every start.
        let digest = crate::util::sha256_hex(text.as_bytes());
        let hash = i64::from_str_radix(&digest[..15], 16).unwrap_or(0);
        let (last_hash, last_rev) = store.catalog_file_mark().await?;
        if hash != 0 && last_hash == hash && last_rev == store.catalog_rev().await? {
            did.push(format!("catalog {}: unchanged", f.display()));
        } else {
            store.replace_catalog(&loaded, now).await?;
            store.set_catalog_file_mark(hash, store.catalog_rev().await?).await?;
            did.push(format!(
                "catalog {}: {} suppliers, {} offers",
                f.display(),
                loaded.suppliers.len(),
                loaded.entries.len()
            ));
        }
    }
    if let Some(f) = &cfg.policy_file {
        let body = read(f)?;
        let p = Policy::from_toml(&body).map_err(|e| RouterError::Refused(format!("{}: {e}", f.display())))?;
        match store.active_policy().await? {
            Some((v, text)) if v == p.version && text == body => {}
            Some((v, _)) if v >= p.version => {
                return Err(RouterError::Refused(format!(
                    "{}: version {} is not newer than the loaded version {v}; bump `version`",
                    f.display(),
                    p.version
                )));
            }
            _ => {
                store.put_policy(p.version, &body, &format!("file:{}", f.display()), now).await?;
                did.push(format!("policy {} version {}", f.display(), p.version));
            }
        }
    }
    Ok(did)
}

/// A supplier's score, metrics and circuit, as reported.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SupplierPerformance {
    pub supplier: SupplierId,
    pub score: Decimal,
    pub metrics: crate::routing::performance::Metrics,
    pub circuit_open: bool,
}

/// Midnight of `now`'s day at `offset_hours` from UTC, in unix ms.
fn day_start(now: i64, offset_hours: i32) -> i64 {
    let off = i64::from(offset_hours) * 3_600_000;
    (now + off).div_euclid(86_400_000) * 86_400_000 - off
}

/// Counts a routed order for (`+1`) or back against (`-1`) each chosen
/// supplier's daily capacity.
fn count_capacity(catalog: &mut Catalog, d: &Decision, by: i32) {
    for s in &d.suppliers {
        if let Some(p) = catalog.supplier_mut(s) {
            p.used_today = p.used_today.saturating_add_signed(by);
        }
    }
}

/// The write for one decision: routed, or on hold with the reason.
fn write_for(
    order: OrderId,
    from: OrderState,
    attempt: u32,
    cause: String,
    tried: Vec<(String, SupplierId)>,
    decision: Decision,
    now: i64,
) -> RoutingWrite {
    let (to, reason) = match &decision.outcome {
        Outcome::OnHold(why) => (OrderState::OnHold, why.clone()),
        o => {
            let plan: Vec<String> = decision
                .allocations
                .iter()
                .map(|a| format!("{}→{}{}", a.line_id, a.supplier, if a.backordered { " (backorder)" } else { "" }))
                .collect();
            let what = if *o == Outcome::PartlyBackordered { "routed with backorders" } else { "routed" };
            (
                OrderState::Routed,
                format!(
                    "{what} by rule set `{}` (policy v{}): {}; landed cost {}",
                    decision.rule_set,
                    decision.policy_version,
                    plan.join(", "),
                    decision.landed_cost
                ),
            )
        }
    };
    RoutingWrite {
        from,
        to,
        reason,
        stored: StoredDecision { order, attempt, cause, tried, reroutes: 0, decision, at: now },
    }
}

/// Per-supplier share of lines routed since `since`, in percent.
pub async fn shares_since(store: &Store, since: i64) -> Result<HashMap<SupplierId, Decimal>, StoreError> {
    let rows = store.lines_per_supplier_since(since).await?;
    let total: i64 = rows.iter().map(|r| r.1).sum();
    Ok(rows
        .into_iter()
        .map(|(s, n)| (s, if total == 0 { Decimal::ZERO } else { Decimal::from(n * 100) / Decimal::from(total) }))
        .collect())
}

#[cfg(test)]
mod tests {
    #[test]
    fn business_day_starts_at_local_midnight() {
        // 2026-11-25 15:59:59 UTC = 23:59:59 CST; 16:00 UTC is the next day.
        let t = 1_795_622_399_000;
        assert_eq!(super::day_start(t, 8), 1_795_536_000_000);
        assert_eq!(super::day_start(t + 1000, 8), 1_795_622_400_000);
        assert_eq!(super::day_start(t, 0), 1_795_564_800_000);
    }
}
