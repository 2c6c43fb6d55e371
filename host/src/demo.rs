//! `daifa demo`: the whole flow on one machine — orders read from a K3Cloud
//! simulator, routed to five warehouses by a routing policy (every decision
//! stored with its explanation), one purchase order per supplier submitted
//! through the bundled rest-json adapter (deployed through the admin API,
//! hot-swapped under traffic), shipments polled back with tracking numbers
//! and written back to the ERP.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, bail};
use futures::StreamExt;

use crate::api::{self, client::AdminClient};
use crate::domain::{Actor, OrderState, SalesOrder, SupplierId};
use crate::erp::kingdee::documents::{
    PoLine, PurchaseOrderSettings, ShippedLine, WriteBack, ensure_purchase_order, write_back_shipment,
};
use crate::erp::kingdee::{AuthMode, KingdeeClient, KingdeeConfig};
use crate::ingest::kingdee::{KingdeeIngestConfig, KingdeeIngester};
use crate::plugins::bindings::{Address, ErpRef, LineStatus, OrderLine, PurchaseOrder, UpdateKind};
use crate::plugins::{Manifest, PluginPackage, PluginRuntime, Registry, RuntimeConfig};
use crate::router::{Router, RouterConfig};
use crate::routing::{CatalogFile, LineAllocation, explain};
use crate::sim::kingdee::{KingdeeSim, KingdeeSimConfig};
use crate::sim::orders::Gen;
use crate::sim::rest_supplier::{SupplierSim, SupplierSimConfig};
use crate::store::{Store, StoreConfig};
use crate::util::now_ms;

/// The demo's routing policy: marketplace orders from JD ship in one parcel;
/// the rest go by landed cost, weighed by performance, splits discouraged.
const DEMO_POLICY: &str = r#"version = 1

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

    // 0. The ERP: a K3Cloud simulator full of approved drop-ship sales
    //    orders (a few with bad data), read into the store.
    let kd = KingdeeSim::start(KingdeeSimConfig::default(), 0).await?;
    let fids = kd.generate(opts.orders as usize);
    for (i, fid) in fids.iter().enumerate().filter(|(i, _)| i % 250 == 7) {
        kd.modify(*fid, |o| if (i / 250).is_multiple_of(2) { o.city.clear() } else { o.lines[0].qty = "-1".into() });
    }
    println!("  K3Cloud simulator    {} ({} sales orders)", kd.server_url(), fids.len());
    let store = Store::open(&StoreConfig {
        url: format!("sqlite:{}", data_dir.join("daifa.db").display()),
        ..Default::default()
    })
    .await?;
    let erp = Arc::new(KingdeeClient::new(KingdeeConfig {
        server_url: kd.server_url(),
        credentials: kd.credentials(),
        auth: AuthMode::Signed,
        timeout_ms: 30_000,
    })?);
    let ingester = KingdeeIngester::new(erp.clone(), store.clone(), KingdeeIngestConfig::default());
    let t = Instant::now();
    let scan = ingester.scan().await?;
    println!(
        "\norders in: {} sales orders ({} line rows, {} pages) from Kingdee in {:.2?}: {} received, {} exceptions",
        scan.orders,
        scan.rows,
        scan.pages,
        t.elapsed(),
        scan.outcome.received,
        scan.outcome.exceptions
    );
    for o in store.list_orders(Some(OrderState::Exception), 2).await? {
        println!("  exception {} ({}): {}", o.bill_no, o.external_id, o.state_reason);
    }
    let rescan = ingester.scan().await?;
    println!(
        "  second scan: {} unchanged, {} new — each order exactly once",
        rescan.outcome.unchanged, rescan.outcome.received
    );

    // 1. Routing: the catalog and policy loaded as an operator would; every
    //    received order routed, its decision stored with its explanation.
    let now = now_ms();
    let catalog = CatalogFile::load_toml(&crate::sim::catalog::demo_catalog_toml(5_000, 7), now)?;
    store.replace_catalog(&catalog, now).await?;
    store.put_policy(1, DEMO_POLICY, "demo", now).await?;
    // One process on SQLite: outbox rows are visible in id order at once, so
    // the performance feed need not wait for them to settle.
    let router_cfg = RouterConfig { feed_settle_ms: 0, ..RouterConfig::default() };
    let router = Arc::new(Router::new(store.clone(), router_cfg, now).await?);
    let t = Instant::now();
    let routed = router.route_pending(now).await?;
    let took = t.elapsed();
    println!(
        "
routing: {} suppliers, {} offers; {} orders routed ({} with backorders), {} on hold, in {:.2?} ({:.0} orders/s incl. storage)",
        catalog.suppliers.len(),
        catalog.entries.len(),
        routed.routed + routed.backordered,
        routed.backordered,
        routed.on_hold,
        took,
        (routed.routed + routed.backordered + routed.on_hold) as f64 / took.as_secs_f64().max(1e-9)
    );
    let mut shares: Vec<_> = crate::router::shares_since(&store, 0).await?.into_iter().collect();
    shares.sort_by_key(|s| std::cmp::Reverse(s.1));
    let shares: Vec<String> = shares.iter().map(|(s, p)| format!("{s} {}%", p.round_dp(1))).collect();
    println!("  share of lines: {}", shares.join(", "));
    let mut plans: Vec<(SalesOrder, Vec<LineAllocation>)> = Vec::new();
    for summary in store.list_orders(Some(OrderState::Routed), i64::MAX).await? {
        plans.push((store.order(summary.id).await?, Vec::new()));
    }
    let ids: Vec<_> = plans.iter().filter_map(|(o, _)| o.id).collect();
    let decisions = store.latest_decisions(&ids).await?;
    for (o, allocations) in &mut plans {
        if let Some(d) = o.id.and_then(|id| decisions.get(&id)) {
            *allocations = d.decision.allocations.clone();
        }
    }
    // One explanation, the way `daifa route explain` shows it: a split order if any.
    let sample = ids.iter().filter_map(|id| decisions.get(id)).max_by_key(|d| d.decision.suppliers.len());
    if let Some(d) = sample {
        let bill = plans.iter().find(|(o, _)| o.id == Some(d.order)).map(|(o, _)| o.content.bill_no.to_string());
        println!("  why (daifa route explain {}):", bill.unwrap_or_default());
        for l in explain::render(d.attempt, &d.cause, &d.tried, &d.decision).lines() {
            println!("    {l}");
        }
    }
    for o in store.list_orders(Some(OrderState::OnHold), 2).await? {
        println!("  on hold {}: {}", o.bill_no, o.state_reason);
    }

    // 2. The suppliers: one JSON-over-HTTP simulator on 127.0.0.1 plays all
    //    five warehouses; some SKUs short, some unknown.
    let mut sim_cfg = SupplierSimConfig::default();
    for sku in 0..40 {
        sim_cfg.stock.insert(format!("SKU-{sku:05}"), 2);
    }
    sim_cfg.unknown_prefix = "SKU-0099".into();
    let sim = SupplierSim::start(sim_cfg, 0).await?;
    println!("  supplier simulator   {}", sim.base_url());

    // 3. The host: plugin runtime, registry, admin API (with routing).
    let runtime =
        PluginRuntime::new(RuntimeConfig { cache_dir: Some(data_dir.join("cache")), ..RuntimeConfig::default() })?;
    let registry = Arc::new(Registry::open(runtime, Some(data_dir.join("registry"))).await?);
    let token = format!("demo-{:016x}", Gen::new(std::process::id() as u64 ^ now_nanos()).next_u64());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let admin_url = format!("http://{}", listener.local_addr()?);
    let state = api::ApiState::new(registry.clone(), &token).map_err(anyhow::Error::msg)?.with_router(router.clone());
    let server = tokio::spawn(async move { axum::serve(listener, api::router(state)).await });
    println!("  admin API            {admin_url}  (token {token})");

    // 4. Deploy rest-json through the admin API, as an operator would.
    let client = AdminClient::new(&admin_url, &token);
    let config: BTreeMap<String, String> = [("base_url", sim.base_url()), ("api_token", "sim-token".to_string())]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
    let v1 = PluginPackage::pack(manifest.clone(), component.clone());
    let t = Instant::now();
    client.install(&v1, &config, true).await?;
    println!("  deployed rest-json {} via the admin API in {:.0?}", v1.manifest.version, t.elapsed());

    // 5. Purchase orders, one per (order, supplier), with a hot swap to a new
    //    version half-way.
    let mut next = v1.manifest.clone();
    next.version = semver::Version::new(next.version.major, next.version.minor, next.version.patch + 1);
    let v2 = PluginPackage::pack(next, component);
    let pos: Vec<(&SalesOrder, SupplierId, Vec<&LineAllocation>)> = plans
        .iter()
        .flat_map(|(o, allocations)| {
            let mut by_supplier: BTreeMap<&SupplierId, Vec<&LineAllocation>> = BTreeMap::new();
            for a in allocations {
                by_supplier.entry(&a.supplier).or_default().push(a);
            }
            by_supplier.into_iter().map(move |(s, lines)| (o, s.clone(), lines))
        })
        .collect();
    let orders: Vec<PurchaseOrder> = pos.iter().map(|(o, s, lines)| purchase_order(o, s, lines)).collect();
    let lines: usize = orders.iter().map(|o| o.lines.len()).sum();
    println!(
        "\nsubmitting {} purchase orders ({lines} lines) for {} orders with {} in flight…",
        orders.len(),
        plans.len(),
        opts.concurrency
    );
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
    for (_, version, r) in &results {
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
        "  {} purchase orders in {:.2?} ({:.0}/s); lines accepted {accepted}, backordered {backordered}, rejected {rejected}; failed calls {failed}",
        results.len(),
        elapsed,
        results.len() as f64 / elapsed.as_secs_f64()
    );
    println!("  answered by version (hot swap mid-run): {by_version:?}");
    // Orders whose purchase orders all went through are now with their
    // suppliers; the state change feeds the performance loop.
    let failed_pos: std::collections::HashSet<&str> =
        results.iter().filter(|r| r.2.is_err()).map(|r| r.0.as_str()).collect();
    let mut dispatched = std::collections::HashSet::new();
    for (o, allocations) in &plans {
        let Some(id) = o.id else { continue };
        let sent = allocations.iter().all(|a| !failed_pos.contains(po_number(o, &a.supplier).as_str()));
        if sent && !allocations.is_empty() {
            store.transition(id, OrderState::Dispatched, &Actor::Dispatcher, "purchase orders sent", now_ms()).await?;
            dispatched.insert(id);
        }
    }
    println!("  {} orders dispatched", dispatched.len());

    // 5b. The purchase orders in the ERP, one per supplier allocation, at
    //     the routed supplier's cost.
    let t = Instant::now();
    let settings = PurchaseOrderSettings::default();
    let created: Vec<_> = futures::stream::iter(pos.iter())
        .map(|(o, supplier, allocations)| {
            let (erp, settings) = (erp.clone(), settings.clone());
            async move {
                let lines: Vec<PoLine> = allocations
                    .iter()
                    .filter_map(|a| {
                        o.content.lines.iter().find(|l| l.erp_line_id.as_str() == a.line_id).map(|l| (a, l))
                    })
                    .map(|(a, l)| PoLine {
                        material: l.sku.to_string(),
                        quantity: l.quantity,
                        unit_price: a.unit_cost,
                        tax_rate: l.tax_rate,
                        note: format!("{} line {}", o.content.bill_no, l.erp_line_id),
                    })
                    .collect();
                ensure_purchase_order(&erp, &settings, &po_number(o, supplier), &format!("VEN-{supplier}"), &lines)
                    .await
            }
        })
        .buffer_unordered(opts.concurrency.max(1))
        .collect()
        .await;
    let po_errors = created.iter().filter(|r| r.is_err()).count();
    println!(
        "  {} PUR_PurchaseOrder documents saved, submitted and audited in Kingdee in {:.2?} ({po_errors} failed)",
        created.len() - po_errors,
        t.elapsed()
    );

    // 6. The suppliers ship; tracking numbers come back by polling.
    let shipped = sim.ship_all();
    let plugin = registry.get("rest-json")?;
    let mut cursor: Option<String> = None;
    let (mut shipments, mut parcels, mut cancels) = (0, 0, 0);
    let mut samples = Vec::new();
    let mut to_write_back: Vec<(String, String, String)> = Vec::new();
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
                    to_write_back.push((u.po_number.clone(), ps[0].carrier.clone(), ps[0].tracking_number.clone()));
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

    // Orders whose every purchase order shipped are shipped.
    let shipped_pos: std::collections::HashSet<&str> = to_write_back.iter().map(|w| w.0.as_str()).collect();
    let mut shipped_orders = 0;
    for (o, allocations) in &plans {
        let Some(id) = o.id else { continue };
        if dispatched.contains(&id)
            && allocations.iter().all(|a| shipped_pos.contains(po_number(o, &a.supplier).as_str()))
        {
            store.transition(id, OrderState::Shipped, &Actor::Dispatcher, "every parcel shipped", now_ms()).await?;
            shipped_orders += 1;
        }
    }
    // The performance loop reads those state changes from the outbox.
    let fed = router.feed_performance(now_ms()).await?;
    println!("  {shipped_orders} orders shipped; the performance feed recorded {} supplier events", fed.events);
    for p in router.performance(now_ms()).await.iter().filter(|p| p.metrics.dispatched > 0) {
        let m = &p.metrics;
        println!(
            "    {}: {} dispatched, acceptance {:.0} %, median to shipped {}",
            p.supplier,
            m.dispatched,
            m.acceptance_rate * 100.0,
            m.median_ship_ms.map_or("n/a".to_string(), |ms| format!("{:.1} s", ms as f64 / 1000.0))
        );
    }

    // 6b. Tracking numbers back into the ERP: SAL_OUTSTOCK pushed from each
    //     sales order, carrier and tracking number set, audited.
    let by_po: std::collections::HashMap<String, (&SalesOrder, &Vec<&LineAllocation>)> =
        pos.iter().map(|(o, s, a)| (po_number(o, s), (*o, a))).collect();
    let t = Instant::now();
    let written: Vec<_> =
        futures::stream::iter(to_write_back.iter().filter_map(|(po, c, tn)| by_po.get(po).map(|p| (*p, c, tn))))
            .map(|((o, allocations), carrier, tracking)| {
                let erp = erp.clone();
                // Only this supplier's lines: a split order ships each once.
                let lines: Vec<ShippedLine> = allocations
                    .iter()
                    .filter_map(|a| {
                        let l = o.content.lines.iter().find(|l| l.erp_line_id.as_str() == a.line_id)?;
                        Some(ShippedLine { entry_id: l.erp_line_id.as_str().parse().ok()?, quantity: l.quantity })
                    })
                    .collect();
                async move {
                    let fid: i64 = o.content.external_id.as_str().parse().unwrap_or(0);
                    let bill = o.content.bill_no.as_str();
                    write_back_shipment(&erp, &WriteBack::default(), fid, bill, &lines, carrier, tracking).await
                }
            })
            .buffer_unordered(opts.concurrency.max(1))
            .collect()
            .await;
    let wb_errors = written.iter().filter(|r| r.is_err()).count();
    let outstocks = kd.with(|s| s.outstocks.len());
    println!(
        "  {} SAL_OUTSTOCK documents in Kingdee with carrier and tracking number, in {:.2?} ({wb_errors} failed)",
        outstocks,
        t.elapsed()
    );

    // 7. What operators see.
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

fn po_number(o: &SalesOrder, supplier: &SupplierId) -> String {
    format!("PO-{}-{supplier}", o.id.map_or(0, |i| i.0))
}

/// The purchase order for one supplier's share of a routed order.
fn purchase_order(o: &SalesOrder, supplier: &SupplierId, allocations: &[&LineAllocation]) -> PurchaseOrder {
    let c = &o.content;
    let a = &c.ship_to;
    PurchaseOrder {
        po_number: po_number(o, supplier),
        idempotency_key: format!("daifa:{}:{}", c.source, po_number(o, supplier)),
        erp_refs: vec![ErpRef {
            system: c.source.to_string(),
            bill_no: c.bill_no.to_string(),
            bill_id: c.external_id.to_string(),
        }],
        lines: allocations
            .iter()
            .filter_map(|al| c.lines.iter().find(|l| l.erp_line_id.as_str() == al.line_id).map(|l| (al, l)))
            .map(|(al, l)| OrderLine {
                line_id: l.erp_line_id.to_string(),
                our_sku: l.sku.to_string(),
                supplier_sku: al.supplier_sku.clone(),
                quantity: l.quantity.trunc().to_string().parse().unwrap_or(0),
                unit_cost: al.unit_cost.to_string(),
            })
            .collect(),
        ship_to: Address {
            name: a.name.clone(),
            phone: a.phone.clone(),
            province: a.province.clone(),
            city: a.city.clone(),
            district: a.district.clone(),
            street: a.street.clone(),
            postcode: a.postcode.clone(),
            country: a.country.clone(),
        },
        currency: "CNY".into(),
        requested_carrier: None,
        requested_service: None,
        remark: Some(c.remark.clone()).filter(|r| !r.is_empty()),
    }
}

/// (PO number, plugin version that answered, result).
type Submitted = (String, String, Result<crate::plugins::bindings::SubmitReceipt, crate::plugins::CallError>);

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
                    Ok(p) => (o.po_number.clone(), p.manifest.version.to_string(), p.submit_order(&o).await),
                    Err(e) => (o.po_number.clone(), "none".to_string(), Err(e)),
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
