//! `daifa demo`: the product on one machine, driven the way an operator
//! drives it. It starts the simulators (a K3Cloud ERP full of sales orders;
//! suppliers speaking three protocols: JSON over HTTP, EDI X12 through a
//! drop box, and a supplier's own K3Cloud — see `partners`), writes a
//! configuration and runs the very `serve` the binary runs. Then, through
//! the admin API only: deploys the bundled plugins, connects each supplier
//! with its own endpoint and secrets, watches the orders flow (ingested → routed →
//! accepted → PUR_PurchaseOrder in the ERP), hot-swaps the plugin under
//! traffic, lets the warehouses ship and watches the tracking numbers come
//! back and go into the ERP. It reports each stage's time, so it doubles as
//! the end-to-end benchmark.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use reqwest::Method;
use serde_json::Value;

use crate::api::client::AdminClient;
use crate::config::{HostConfig, KingdeeSection};
use crate::erp::kingdee::{AuthMode, KingdeeConfig};
use crate::ingest::kingdee::KingdeeIngestConfig;
use crate::plugins::{Manifest, PluginPackage};
use crate::routing::{CatalogFile, explain};
use crate::sim::kingdee::{KingdeeSim, KingdeeSimConfig};
use crate::sim::orders::Gen;
use crate::store::{SqliteSync, StoredDecision};

mod partners;

/// The demo's routing policy: marketplace orders from JD ship in one parcel;
/// the rest go by landed cost, weighed by performance, splits discouraged.
pub const DEMO_POLICY: &str = r#"version = 1

[[rule_set]]
name = "jd-one-parcel"
when = { platform = ["jd"] }
keep_together = "required"
max_splits = 0

[fallback]
name = "landed-cost"
keep_together = "preferred"
split_penalty = "6"
max_splits = 2
"#;

/// Demo options.
pub struct DemoOptions {
    pub orders: u64,
    /// Dispatch workers (jobs in flight at once).
    pub concurrency: usize,
    /// Where `rest_json.wasm` was built.
    pub plugin_dir: PathBuf,
    /// `plugins/rest-json/manifest.toml`.
    pub manifest: PathBuf,
    pub data_dir: Option<PathBuf>,
    pub keep_running: bool,
    /// Delay of every K3Cloud answer (a real one costs 100–300 ms).
    pub erp_latency_ms: u64,
    /// Most live K3Cloud sessions (0 = no limit).
    pub erp_sessions: usize,
    /// Delay of every supplier answer.
    pub supplier_latency_ms: u64,
    /// End with one JSON summary line.
    pub json: bool,
    /// Every supplier on rest-json (the benchmark's shape before the EDI
    /// and Kingdee adapters).
    pub json_only: bool,
}

/// One stage's time, measured from the host's start.
struct Stages {
    start: Instant,
    marks: Vec<(&'static str, Duration)>,
}

impl Stages {
    fn mark(&mut self, name: &'static str) -> Duration {
        let d = self.start.elapsed();
        self.marks.push((name, d));
        // Progress as it happens for a person watching; scripts read the
        // summary at the end (or `--json`).
        use std::io::IsTerminal;
        if std::io::stdout().is_terminal() {
            println!("  ✓ {name} ({:.1?} from the host's start)", d);
        }
        d
    }
}

pub async fn run(opts: DemoOptions) -> anyhow::Result<()> {
    let wasm = opts.plugin_dir.join("rest_json.wasm");
    let component = std::fs::read(&wasm)
        .with_context(|| format!("reading {} (build the plugins first: scripts/demo does it)", wasm.display()))?;
    let manifest_text =
        std::fs::read_to_string(&opts.manifest).with_context(|| format!("reading {}", opts.manifest.display()))?;
    let manifest = Manifest::from_toml(&manifest_text)?;
    let tmp = std::env::temp_dir().join(format!("daifa-demo-{}-{}", std::process::id(), now_nanos()));
    let data_dir = opts.data_dir.clone().unwrap_or_else(|| tmp.clone());
    std::fs::create_dir_all(&data_dir)?;
    println!("daifa demo — data in {}", data_dir.display());

    // The ERP: approved drop-ship sales orders, a few with bad data.
    let kd = KingdeeSim::start(KingdeeSimConfig { max_sessions: opts.erp_sessions, ..KingdeeSimConfig::default() }, 0)
        .await?;
    let fids = kd.generate(opts.orders as usize);
    for (i, fid) in fids.iter().enumerate().filter(|(i, _)| i % 250 == 7) {
        kd.modify(*fid, |o| if (i / 250).is_multiple_of(2) { o.city.clear() } else { o.lines[0].qty = "-1".into() });
    }
    kd.with(|s| s.faults.slow_ms = opts.erp_latency_ms);
    println!(
        "  K3Cloud simulator    {} ({} sales orders, {} ms per answer)",
        kd.server_url(),
        fids.len(),
        opts.erp_latency_ms
    );

    // The suppliers, each with its own token: JSON warehouses (some SKUs
    // short, some unknown), an EDI X12 partner and one on its own K3Cloud.
    let catalog = crate::sim::catalog::demo_catalog_toml(5_000, 7);
    let ids: Vec<String> = CatalogFile::from_toml(&catalog)?.suppliers.into_iter().map(|s| s.id).collect();
    let sims = partners::Partners::start(&ids, opts.supplier_latency_ms, opts.json_only).await?;
    println!(
        "  supplier simulators  {} on rest-json ({} ms per answer){}",
        sims.rest.keys().cloned().collect::<Vec<_>>().join(" "),
        opts.supplier_latency_ms,
        sims.others()
    );

    // The host: the same `serve` as `daifa serve`, from a config file's worth of settings.
    std::fs::write(data_dir.join("catalog.toml"), &catalog)?;
    std::fs::write(data_dir.join("policy.toml"), DEMO_POLICY)?;
    let token = format!("demo-{:016x}", Gen::new(std::process::id() as u64 ^ now_nanos()).next_u64());
    let cfg = host_config(&opts, &data_dir, &kd, &token);
    std::fs::write(data_dir.join("daifa.toml"), toml::to_string(&cfg)?)?;
    // The clock starts with the host: reading, routing and dispatch all count.
    let mut st = Stages { start: Instant::now(), marks: vec![] };
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let (addr_tx, addr_rx) = tokio::sync::oneshot::channel();
    let host = tokio::spawn(crate::serve::serve(
        cfg,
        async move {
            let _ = stopped.await;
        },
        move |s| {
            let _ = addr_tx.send(s.admin_addr);
        },
    ));
    let addr = match addr_rx.await {
        Ok(a) => a,
        Err(_) => return Err(host.await?.err().unwrap_or_else(|| anyhow::anyhow!("the host stopped at start"))),
    };
    let admin_url = format!("http://{addr}");
    println!("  daifa serve          {admin_url}  (config {}, token {token})", data_dir.join("daifa.toml").display());
    let client = AdminClient::new(&admin_url, &token);

    // Deploy the plugins and connect every supplier, as an operator would.
    let v1 = PluginPackage::pack(manifest.clone(), component.clone());
    let base: BTreeMap<String, String> = [("base_url".to_string(), "http://127.0.0.1:9".to_string())].into();
    let t = Instant::now();
    client.install(&v1, &base, true).await?;
    let plugins_root = opts.manifest.parent().and_then(|p| p.parent()).unwrap_or(std::path::Path::new("plugins"));
    let edi = partners::package(&opts.plugin_dir, plugins_root, "edi-x12")?;
    let kingdee = partners::package(&opts.plugin_dir, plugins_root, "kingdee-supplier")?;
    sims.connect(&client, &edi, &kingdee).await?;
    println!("\ndeployed the adapters via the admin API in {:.0?} (rest-json {})", t.elapsed(), v1.manifest.version);
    println!(
        "connected {} suppliers, each with its own endpoint and secrets (GET /api/v1/suppliers/connections)",
        ids.len()
    );

    let total = fids.len() as i64;
    wait(&client, 900, |c, _, _| c.values().sum::<i64>() == total).await?;
    st.mark("ingested");
    wait(&client, 900, |c, _, _| n(c, "received") == 0).await?;
    st.mark("routed");
    // A new plugin version goes live while purchase orders are going out.
    let mut next = v1.manifest.clone();
    next.version = semver::Version::new(next.version.major, next.version.minor, next.version.patch + 1);
    let v2 = PluginPackage::pack(next, component);
    let swap = {
        let client = AdminClient::new(&admin_url, &token);
        let base = base.clone();
        tokio::spawn(async move { client.install(&v2, &base, true).await })
    };
    wait(&client, 1800, |c, pos, _| {
        n(c, "routed") + n(c, "dispatched") + n(c, "rejected") == 0 && n(pos, "pending") + n(pos, "submitted") == 0
    })
    .await?;
    st.mark("accepted by suppliers");
    swap.await??;
    wait(&client, 1800, |_, _, jobs| n(jobs, "erp_po/ready") == 0).await?;
    st.mark("purchase orders in the ERP");
    let c = counts(&client).await?;
    println!("\norders: {c:?}");
    show_split_order(&client).await?;
    for o in client.call(Method::GET, "/orders?state=on_hold&limit=2", None).await?.as_array().into_iter().flatten() {
        println!("  on hold {}: {}", o["bill_no"], o["state_reason"]);
    }
    for o in client.call(Method::GET, "/orders?state=exception&limit=2", None).await?.as_array().into_iter().flatten() {
        println!("  exception {}: {}", o["bill_no"], o["state_reason"]);
    }

    // The suppliers ship; tracking comes back by polling and goes to the ERP.
    let shipped: usize = sims.ship_all();
    st.mark("suppliers shipped");
    println!("\nsuppliers shipped {shipped} purchase orders");
    // Every PO the warehouses shipped is written back (POs with backordered
    // lines stay partially shipped until the rest ships).
    wait(&client, 1800, |_, pos, jobs| {
        n(pos, "written_back") + n(pos, "partially_shipped") >= shipped as i64
            && n(pos, "shipped") == 0
            && n(jobs, "write_back/ready") == 0
    })
    .await?;
    st.mark("written back");
    let c = counts(&client).await?;
    let outstocks = kd.with(|s| s.outstocks.len());
    let erp_pos = kd.with(|s| s.purchase_orders.len());
    println!(
        "  {} orders written back: {outstocks} SAL_OUTSTOCK documents with carrier and tracking number; {erp_pos} PUR_PurchaseOrder documents",
        n(&c, "written_back")
    );

    println!("\nstages (from the host's start, {} orders; deploying and connecting included):", fids.len());
    let mut prev = Duration::ZERO;
    for (name, d) in &st.marks {
        println!("  {name:<28} at {:>8.2?}  (+{:.2?})", d, d.saturating_sub(prev));
        prev = *d;
    }

    // What operators see.
    let plugins = client.list().await?;
    println!("\nGET /api/v1/plugins:");
    for p in plugins.as_array().into_iter().flatten() {
        println!("  {} active={} rollback_to={}", p["name"], p["active"], p["rollback_to"]);
        for v in p["versions"].as_array().into_iter().flatten() {
            let s = &v["stats"];
            println!(
                "    {} calls={} ok={} adapter_errors={} traps={} mean={}µs max={}µs",
                v["version"], s["calls"], s["ok"], s["adapter_errors"], s["traps"], s["mean_us"], s["max_us"]
            );
        }
    }
    let perf = client.call(Method::GET, "/suppliers/performance", None).await?;
    println!("GET /api/v1/suppliers/performance:");
    for p in
        perf["suppliers"].as_array().into_iter().flatten().filter(|p| p["metrics"]["dispatched"].as_u64() > Some(0))
    {
        let m = &p["metrics"];
        println!(
            "  {}: {} dispatched, acceptance {:.0} %, median to shipped {}",
            p["supplier"],
            m["dispatched"],
            m["acceptance_rate"].as_f64().unwrap_or(0.0) * 100.0,
            m["median_ship_ms"].as_i64().map_or("n/a".to_string(), |ms| format!("{:.1} s", ms as f64 / 1000.0))
        );
    }
    let dead = client.call(Method::GET, "/dispatch/dead-letters", None).await?;
    let dead = dead.as_array().map_or(0, Vec::len);
    let duplicates: u64 = sims.duplicates();
    println!("dead letters: {dead}; idempotency-key conflicts at the suppliers: {duplicates}");

    let summary = {
        let pos = client.call(Method::GET, "/purchase-orders?limit=1", None).await?["counts"].clone();
        let per_supplier: BTreeMap<String, usize> = sims.orders_held();
        let sent: usize = per_supplier.values().sum();
        let shares: BTreeMap<&String, f64> = per_supplier
            .iter()
            .map(|(id, k)| (id, if sent == 0 { 0.0 } else { (*k as f64 * 1000.0 / sent as f64).round() / 10.0 }))
            .collect();
        let mut stages = Vec::new();
        let mut prev = Duration::ZERO;
        for (name, d) in &st.marks {
            let took = d.saturating_sub(prev).as_millis() as u64;
            stages.push(serde_json::json!({ "stage": name, "at_ms": d.as_millis() as u64, "took_ms": took }));
            prev = *d;
        }
        serde_json::json!({
            "orders": fids.len(),
            "routed": total - n(&c, "received") - n(&c, "exception") - n(&c, "on_hold") - n(&c, "cancelled"),
            "exceptions": n(&c, "exception"),
            "on_hold": n(&c, "on_hold"),
            "purchase_orders_dispatched": sent,
            "purchase_orders_shipped": shipped,
            "written_back": n(&c, "written_back"),
            "purchase_orders": pos,
            "erp_purchase_orders": erp_pos,
            "erp_outstocks": outstocks,
            "duplicates": duplicates,
            "dead_letters": dead,
            "elapsed_ms": st.marks.last().map_or(0, |(_, d)| d.as_millis() as u64),
            "stages": stages,
            "supplier_share_percent": shares,
            "protocols": sims.protocols(),
        })
    };
    let result = if n(&c, "written_back") == 0 || dead > 0 || duplicates > 0 {
        Err(anyhow::anyhow!("the flow did not complete cleanly (see above)"))
    } else {
        Ok(())
    };
    if opts.keep_running {
        println!("\nrunning; admin API at {admin_url} (token {token}); Ctrl-C to stop");
        crate::serve::shutdown_signal().await;
    }
    let _ = stop.send(());
    host.await??;
    if opts.data_dir.is_none() {
        let _ = std::fs::remove_dir_all(&tmp);
    }
    if opts.json {
        // The last line, whole, for scripts: `daifa demo --json | tail -1 | jq`.
        println!("{summary}");
    }
    result
}

fn host_config(opts: &DemoOptions, data_dir: &std::path::Path, kd: &KingdeeSim, token: &str) -> HostConfig {
    let mut cfg = HostConfig { data_dir: data_dir.join("host"), ..HostConfig::default() };
    cfg.runtime.cache_dir = Some(data_dir.join("host").join("cache"));
    // The demo's supplier simulators listen on this machine; a real host
    // keeps loopback closed to plugins.
    cfg.runtime.egress_allow_ips = vec!["127.0.0.1/32".into()];
    cfg.admin.bind = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
    cfg.admin.token = Some(token.to_string());
    cfg.store.url = format!("sqlite:{}", data_dir.join("daifa.db").display());
    // A demo's data is thrown away: no fsync per commit.
    cfg.store.sqlite_synchronous = SqliteSync::Normal;
    cfg.router.catalog_file = Some(data_dir.join("catalog.toml"));
    cfg.router.policy_file = Some(data_dir.join("policy.toml"));
    cfg.router.interval_ms = 100;
    cfg.router.feed_settle_ms = 0;
    cfg.router.stock_refresh_ms = 0;
    cfg.dispatch.workers = opts.concurrency.max(1);
    cfg.dispatch.idle_ms = 20;
    cfg.kingdee = Some(KingdeeSection {
        client: KingdeeConfig {
            server_url: kd.server_url(),
            credentials: kd.credentials(),
            auth: AuthMode::Signed,
            timeout_ms: 30_000,
        },
        ingest: KingdeeIngestConfig { interval_secs: 1, ..KingdeeIngestConfig::default() },
        purchase_orders: Default::default(),
        write_back: Default::default(),
    });
    cfg
}

fn n(c: &BTreeMap<String, i64>, k: &str) -> i64 {
    c.get(k).copied().unwrap_or(0)
}

async fn counts(client: &AdminClient) -> anyhow::Result<BTreeMap<String, i64>> {
    let v = client.call(Method::GET, "/orders/stats", None).await?;
    Ok(serde_json::from_value(v["by_state"].clone())?)
}

/// Polls orders per state, POs per state and jobs per `kind/state` until
/// `done` holds.
async fn wait(
    client: &AdminClient,
    secs: u64,
    done: impl Fn(&BTreeMap<String, i64>, &BTreeMap<String, i64>, &BTreeMap<String, i64>) -> bool,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let c = counts(client).await?;
        let pos = client.call(Method::GET, "/purchase-orders?limit=1", None).await?;
        let pos: BTreeMap<String, i64> = serde_json::from_value(pos["counts"].clone())?;
        let jobs = client.call(Method::GET, "/dispatch/jobs", None).await?;
        let jobs: BTreeMap<String, i64> = jobs
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|j| Some((format!("{}/{}", j["kind"].as_str()?, j["state"].as_str()?), j["count"].as_i64()?)))
            .collect();
        if done(&c, &pos, &jobs) {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("timed out: orders {c:?}, purchase orders {pos:?}, jobs {jobs:?}");
        }
        // Each look costs the store three aggregate queries; looking more
        // often than this slows down the flow it measures.
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// An order split over two warehouses: its POs and why, as
/// `daifa route explain` shows it.
async fn show_split_order(client: &AdminClient) -> anyhow::Result<()> {
    let pos = client.call(Method::GET, "/purchase-orders?limit=100000", None).await?;
    let mut by_order: HashMap<i64, Vec<&Value>> = HashMap::new();
    for p in pos["purchase_orders"].as_array().into_iter().flatten() {
        by_order.entry(p["order"].as_i64().unwrap_or(0)).or_default().push(p);
    }
    let Some((id, split)) = by_order.iter().filter(|(_, v)| v.len() > 1).min_by_key(|(id, _)| **id) else {
        return Ok(());
    };
    let routing = client.call(Method::GET, &format!("/orders/{id}/routing"), None).await?;
    println!("  a split order, {} ({}):", routing["bill_no"], routing["state"]);
    for p in split {
        println!(
            "    {} → {} {} (supplier ref {}, ERP {})",
            p["po_number"], p["supplier"], p["state"], p["supplier_ref"], p["erp_bill_no"]
        );
    }
    if let Some(d) = routing["decisions"].as_array().and_then(|d| d.last()) {
        let d: StoredDecision = serde_json::from_value(d.clone())?;
        for l in explain::render(d.attempt, &d.cause, &d.tried, &d.decision).lines() {
            println!("      {l}");
        }
    }
    Ok(())
}

fn now_nanos() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64)
}
