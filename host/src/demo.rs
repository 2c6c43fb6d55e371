//! `daifa demo`: the whole foundation on one machine — a supplier simulator,
//! the plugin runtime with its admin API, the bundled rest-json adapter
//! deployed through that API, orders submitted, a hot swap under traffic,
//! shipments polled back with tracking numbers.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, bail};
use futures::StreamExt;

use crate::api::{self, client::AdminClient};
use crate::plugins::bindings::{LineStatus, UpdateKind};
use crate::plugins::{Manifest, PluginPackage, PluginRuntime, Registry, RuntimeConfig};
use crate::sim::orders::Gen;
use crate::sim::rest_supplier::{SupplierSim, SupplierSimConfig};

/// Demo options.
pub struct DemoOptions {
    pub orders: u64,
    pub concurrency: usize,
    /// Where `rest_json.wasm` was built.
    pub plugin_dir: PathBuf,
    /// `plugins/rest-json/manifest.toml`.
    pub manifest: PathBuf,
    pub data_dir: Option<PathBuf>,
    pub keep_running: bool,
}

pub async fn run(opts: DemoOptions) -> anyhow::Result<()> {
    let wasm = opts.plugin_dir.join("rest_json.wasm");
    let component = std::fs::read(&wasm)
        .with_context(|| format!("reading {} (build the plugins first: scripts/demo does it)", wasm.display()))?;
    let manifest_text =
        std::fs::read_to_string(&opts.manifest).with_context(|| format!("reading {}", opts.manifest.display()))?;
    let manifest = Manifest::from_toml(&manifest_text)?;

    let tmp = tempfile_dir()?;
    let data_dir = opts.data_dir.clone().unwrap_or_else(|| tmp.clone());
    println!("daifa demo — data in {}", data_dir.display());

    // 1. A supplier: JSON over HTTP on 127.0.0.1, some SKUs short, some unknown.
    let mut sim_cfg = SupplierSimConfig::default();
    for sku in 0..40 {
        sim_cfg.stock.insert(format!("SKU-{sku:05}"), 2);
    }
    sim_cfg.unknown_prefix = "SKU-0099".into();
    let sim = SupplierSim::start(sim_cfg, 0).await?;
    println!("  supplier simulator   {}", sim.base_url());

    // 2. The host: plugin runtime, registry, admin API.
    let runtime =
        PluginRuntime::new(RuntimeConfig { cache_dir: Some(data_dir.join("cache")), ..RuntimeConfig::default() })?;
    let registry = Arc::new(Registry::open(runtime, Some(data_dir.join("registry"))).await?);
    let token = format!("demo-{:016x}", Gen::new(std::process::id() as u64 ^ now_nanos()).next_u64());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let admin_url = format!("http://{}", listener.local_addr()?);
    let state = api::ApiState::new(registry.clone(), &token).map_err(anyhow::Error::msg)?;
    let server = tokio::spawn(async move { axum::serve(listener, api::router(state)).await });
    println!("  admin API            {admin_url}  (token {token})");

    // 3. Deploy rest-json through the admin API, as an operator would.
    let client = AdminClient::new(&admin_url, &token);
    let config: BTreeMap<String, String> = [("base_url", sim.base_url()), ("api_token", "sim-token".to_string())]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
    let v1 = PluginPackage::pack(manifest.clone(), component.clone());
    let t = Instant::now();
    client.install(&v1, &config, true).await?;
    println!("  deployed rest-json {} via the admin API in {:.0?}", v1.manifest.version, t.elapsed());

    // 4. Orders, with a hot swap to a new version half-way.
    let mut next = v1.manifest.clone();
    next.version = semver::Version::new(next.version.major, next.version.minor, next.version.patch + 1);
    let v2 = PluginPackage::pack(next, component);
    let mut rng = Gen::new(20261125);
    let orders: Vec<_> = (1..=opts.orders).map(|n| rng.purchase_order(n, 1_000)).collect();
    let lines: usize = orders.iter().map(|o| o.lines.len()).sum();
    println!("\nsubmitting {} purchase orders ({lines} lines) with {} in flight…", orders.len(), opts.concurrency);
    let started = Instant::now();
    let half = orders.len() / 2;
    let (first, second) = orders.split_at(half);
    let mut results = submit_all(&registry, first, opts.concurrency).await;
    let swap = {
        let client = AdminClient::new(&admin_url, &token);
        let config = config.clone();
        tokio::spawn(async move { client.install(&v2, &config, true).await })
    };
    results.extend(submit_all(&registry, second, opts.concurrency).await);
    swap.await??;
    let elapsed = started.elapsed();

    let mut by_version: BTreeMap<String, usize> = BTreeMap::new();
    let (mut accepted, mut backordered, mut rejected, mut failed) = (0, 0, 0, 0);
    for (version, r) in &results {
        *by_version.entry(version.clone()).or_default() += 1;
        match r {
            Ok(receipt) => {
                for l in &receipt.lines {
                    match l.status {
                        LineStatus::Accepted => accepted += 1,
                        LineStatus::Backordered(_) => backordered += 1,
                        LineStatus::Rejected(_) => rejected += 1,
                    }
                }
            }
            Err(e) => {
                failed += 1;
                eprintln!("  failed: {e}");
            }
        }
    }
    println!(
        "  {} orders in {:.2?} ({:.0} orders/s); lines accepted {accepted}, backordered {backordered}, rejected {rejected}; failed calls {failed}",
        results.len(),
        elapsed,
        results.len() as f64 / elapsed.as_secs_f64()
    );
    println!("  answered by version (hot swap mid-run): {by_version:?}");

    // 5. The supplier ships; tracking numbers come back by polling.
    let shipped = sim.ship_all();
    let plugin = registry.get("rest-json")?;
    let mut cursor: Option<String> = None;
    let (mut shipments, mut parcels, mut cancels) = (0, 0, 0);
    let mut samples = Vec::new();
    loop {
        let batch = plugin.poll_updates(cursor.as_deref()).await?;
        if batch.updates.is_empty() {
            break;
        }
        for u in &batch.updates {
            match &u.kind {
                UpdateKind::Shipped(ps) => {
                    shipments += 1;
                    parcels += ps.len();
                    if samples.len() < 3 {
                        samples.push(format!("{} → {} {}", u.po_number, ps[0].carrier, ps[0].tracking_number));
                    }
                }
                UpdateKind::Cancelled(_) => cancels += 1,
                UpdateKind::Lines(_) => {}
            }
        }
        cursor = batch.next_cursor;
    }
    println!(
        "\nsupplier shipped {shipped} orders; polled back {shipments} shipments, {parcels} parcels, {cancels} cancellations"
    );
    for s in samples {
        println!("  {s}");
    }
    if shipments != shipped {
        bail!("polled {shipments} shipments but the supplier shipped {shipped}");
    }

    // 6. What operators see.
    let listing = client.list().await?;
    println!("\nGET /api/v1/plugins:");
    for p in listing.as_array().into_iter().flatten() {
        println!("  {} active={} rollback_to={}", p["name"], p["active"], p["rollback_to"]);
        for v in p["versions"].as_array().into_iter().flatten() {
            let s = &v["stats"];
            println!(
                "    {} calls={} ok={} adapter_errors={} traps={} mean={}µs max={}µs",
                v["version"], s["calls"], s["ok"], s["adapter_errors"], s["traps"], s["mean_us"], s["max_us"]
            );
        }
    }
    if failed > 0 {
        bail!("{failed} calls failed");
    }

    if opts.keep_running {
        println!("\nrunning; admin API at {admin_url} (token {token}); Ctrl-C to stop");
        tokio::signal::ctrl_c().await?;
    }
    server.abort();
    if opts.data_dir.is_none() {
        let _ = std::fs::remove_dir_all(&tmp);
    }
    Ok(())
}

type Submitted = (String, Result<crate::plugins::bindings::SubmitReceipt, crate::plugins::CallError>);

async fn submit_all(
    registry: &Arc<Registry>,
    orders: &[crate::plugins::bindings::PurchaseOrder],
    concurrency: usize,
) -> Vec<Submitted> {
    futures::stream::iter(orders.iter().cloned())
        .map(|o| {
            let registry = registry.clone();
            async move {
                match registry.get("rest-json") {
                    Ok(p) => (p.manifest.version.to_string(), p.submit_order(&o).await),
                    Err(e) => ("none".to_string(), Err(e)),
                }
            }
        })
        .buffer_unordered(concurrency.max(1))
        .collect()
        .await
}

fn now_nanos() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64)
}

fn tempfile_dir() -> anyhow::Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!("daifa-demo-{}-{}", std::process::id(), now_nanos()));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}
