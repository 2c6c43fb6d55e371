//! `daifa serve` as a library call: every service of the host — admin API,
//! Kingdee ingestion, the router, dispatch and tracking — started from one
//! configuration and stopped together. Tests, the demo and the binary run
//! this same function.
//!
//! Owns: start-up order and shutdown. May call: every service module.

use std::future::Future;
use std::sync::Arc;

use anyhow::{Context, bail};

use crate::api;
use crate::config::HostConfig;
use crate::dispatch::{Dispatcher, ErpTarget};
use crate::erp::kingdee::KingdeeClient;
use crate::ingest::kingdee::KingdeeIngester;
use crate::plugins::{PluginRuntime, Registry};
use crate::router;
use crate::store::{ErpPoTiming, Store};

/// What a started host tells its caller.
#[derive(Debug, Clone)]
pub struct Started {
    /// Where the admin API listens (the bound port when configured as 0).
    pub admin_addr: std::net::SocketAddr,
}

/// Runs the host until `shutdown` completes, then drains: the API stops
/// taking requests, the services stop claiming work, calls in flight finish
/// and record their results, leases are released. `on_start` learns the
/// bound address once the API listens.
pub async fn serve(
    cfg: HostConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
    on_start: impl FnOnce(Started) + Send,
) -> anyhow::Result<()> {
    let Some(token) = cfg.admin.token.clone() else {
        bail!("admin.token is not set (daifa.toml [admin] token, or DAIFA_ADMIN__TOKEN)");
    };
    cfg.dispatch.defer_erp.check().map_err(anyhow::Error::msg)?;
    // Bound first: a client connecting during start-up (catalog, store
    // migrations) waits for its answer instead of being refused.
    let listener = tokio::net::TcpListener::bind(cfg.admin.bind)
        .await
        .with_context(|| format!("binding the admin API to {}", cfg.admin.bind))?;
    let runtime = PluginRuntime::new(cfg.runtime.clone())?;
    let metrics = crate::metrics::Metrics::new(&runtime);
    // Installed plugins load in the background, several at a time, while
    // the API already answers (`/readyz` says when they are done); the
    // services that call plugins start once they are.
    let registry = Arc::new(Registry::open_deferred(runtime, Some(cfg.data_dir.join("registry"))).await?);
    let (found_loaded, found) = registry.loaded();
    tracing::info!(versions = found - found_loaded, "loading installed plugins");
    {
        let registry = registry.clone();
        tokio::spawn(async move {
            registry.load_installed().await;
            tracing::info!("installed plugins loaded");
        });
    }
    let mut store = Store::open(&cfg.store).await.with_context(|| format!("opening the store at {}", cfg.store.url))?;
    store.observe_writes(metrics.store_write_observer());
    let mut settings = cfg.dispatch.settings.clone();
    if cfg.kingdee.is_none() {
        // Nowhere to create purchase orders or write shipments back.
        settings.erp_purchase_orders = ErpPoTiming::Off;
        settings.write_back = false;
    }
    if cfg.dispatch.enabled {
        store = store.with_dispatch(settings);
    }
    let mut state = api::ApiState::new(registry.clone(), &token)
        .map_err(anyhow::Error::msg)?
        .with_store(store.clone())
        .with_metrics(metrics.clone());
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let mut services = tokio::task::JoinSet::new();
    let mut router_handle = None;
    if cfg.router.enabled {
        let now = crate::util::now_ms();
        for line in router::load_files(&store, &cfg.router, now).await? {
            tracing::info!("loaded {line}");
        }
        let r =
            Arc::new(router::Router::new(store.clone(), cfg.router.clone(), now).await?.with_metrics(metrics.clone()));
        state = state.with_router(r.clone());
        router_handle = Some(r.clone());
        let reg = registry.clone();
        services.spawn(once_loaded(registry.clone(), stopped.clone(), move |stopped| r.run(Some(reg), stopped)));
        tracing::info!("routing orders as they arrive");
    }
    let erp_client = match &cfg.kingdee {
        Some(kd) => Some(Arc::new(KingdeeClient::new(kd.client.clone())?.with_metrics(metrics.clone()))),
        None => None,
    };
    if let (Some(kd), Some(client)) = (cfg.kingdee.clone(), erp_client.clone()) {
        let ingester = KingdeeIngester::new(client, store.clone(), kd.ingest).with_metrics(metrics.clone());
        services.spawn(ingester.run(stopped.clone()));
        tracing::info!("polling Kingdee SAL_SaleOrder");
    }
    if cfg.dispatch.enabled {
        let erp = match (&cfg.kingdee, erp_client) {
            (Some(kd), Some(client)) => Some(ErpTarget {
                client,
                source: kd.ingest.source.clone(),
                purchase_orders: kd.purchase_orders.clone(),
                write_back: kd.write_back.clone(),
                po_push: Default::default(),
            }),
            _ => None,
        };
        let d = Arc::new(
            Dispatcher::new(store.clone(), registry.clone(), router_handle, erp, cfg.dispatch.clone())
                .with_metrics(metrics.clone()),
        );
        state = state.with_dispatcher(d.clone());
        services.spawn(once_loaded(registry.clone(), stopped.clone(), {
            let d = d.clone();
            move |stopped| d.run(stopped)
        }));
        tracing::info!(owner = d.owner(), "dispatching purchase orders, tracking shipments");
    }
    services.spawn(judge_canaries(registry.clone(), store.clone(), cfg.canary.clone(), stopped.clone()));
    if cfg.retention.interval_secs > 0 {
        services.spawn(prune_every(store.clone(), cfg.retention.clone(), stopped.clone()));
    }
    if !cfg.alerts.rules.is_empty() {
        let alerter = crate::alerts::Alerter::new(store.clone(), Some(metrics.clone()), cfg.alerts.clone())
            .with_registry(registry.clone());
        services.spawn(alerter.run(stopped.clone()));
        tracing::info!(rules = cfg.alerts.rules.len(), notifiers = cfg.alerts.notifiers.len(), "alerting");
    }
    let admin_addr = listener.local_addr()?;
    tracing::info!("admin API listening on http://{admin_addr}");
    on_start(Started { admin_addr });
    axum::serve(listener, api::router(state)).with_graceful_shutdown(shutdown).await?;
    tracing::info!("stopping: draining work in flight");
    let _ = stop.send(true);
    while services.join_next().await.is_some() {}
    store.close().await;
    Ok(())
}

/// Judges running plugin canaries every `check_secs`: a rollback or a
/// promotion is logged and recorded as an operator event.
async fn judge_canaries(
    registry: Arc<Registry>,
    store: Store,
    policy: crate::plugins::CanaryPolicy,
    mut stopped: tokio::sync::watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(std::time::Duration::from_secs(policy.check_secs.max(1))) => {}
            _ = stopped.changed() => return,
        }
        for d in registry.judge_canaries(&policy).await {
            let subject = format!("{}@{}", d.plugin, d.version);
            let message = format!("canary {}: {}", d.action, d.reason);
            if let Err(e) = store.operator_event("canary", "", &subject, &message, crate::util::now_ms()).await {
                tracing::warn!("recording a canary decision: {e}");
            }
        }
    }
}

/// Applies `[retention]` every `interval_secs` until the host stops.
async fn prune_every(
    store: Store,
    cfg: crate::store::RetentionConfig,
    mut stopped: tokio::sync::watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(std::time::Duration::from_secs(cfg.interval_secs)) => {}
            _ = stopped.changed() => return,
        }
        match store.prune(&cfg, crate::util::now_ms()).await {
            Ok(p) => tracing::info!(?p, "pruned by [retention]"),
            Err(e) => tracing::warn!("pruning failed: {e}"),
        }
    }
}

/// Starts a service that calls plugins once the installed ones are loaded,
/// unless the host is stopped first.
async fn once_loaded<F, Fut>(registry: Arc<Registry>, stopped: tokio::sync::watch::Receiver<bool>, start: F)
where
    F: FnOnce(tokio::sync::watch::Receiver<bool>) -> Fut,
    Fut: Future<Output = ()>,
{
    let mut stop = stopped.clone();
    tokio::select! {
        _ = registry.wait_loaded() => start(stopped).await,
        _ = async move {
            let _ = stop.wait_for(|s| *s).await;
        } => {}
    }
}

/// Completes on Ctrl-C or SIGTERM (what service managers and containers send).
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = term => {}
    }
}
