//! The full chain through the real `daifa serve` binary: a K3Cloud
//! simulator full of sales orders → ingestion → routing to five suppliers →
//! one rest-json plugin bound five times (each supplier its own simulator,
//! base URL and token) → acknowledged → shipped → written back to the ERP.
//! Then the counts that matter: one PO per allocation in the ERP, one
//! order per PO at each supplier, exactly the tracking numbers the
//! suppliers issued, exactly the ordered quantities, nothing twice.

mod common;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use daifa_host::api::client::AdminClient;
use daifa_host::config::HostConfig;
use daifa_host::erp::kingdee::{AuthMode, KingdeeConfig};
use daifa_host::ingest::kingdee::KingdeeIngestConfig;
use daifa_host::sim::kingdee::{KingdeeSim, KingdeeSimConfig};
use daifa_host::sim::rest_supplier::{SupplierSim, SupplierSimConfig};
use reqwest::Method;
use rust_decimal::Decimal;
use serde_json::{Value, json};

const TOKEN: &str = "full-chain-admin-token-0123";

use daifa_host::demo::DEMO_POLICY as POLICY;

struct Host {
    child: Child,
    url: String,
    log: PathBuf,
    config: PathBuf,
}

impl Host {
    /// Copies the host's log out of the test's temporary folder (which a
    /// failing test deletes) and says where: a whole log, not only the
    /// tail a panic message can carry.
    fn keep_log(&self) -> String {
        let dest = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!(
            "full-chain-{}-{}.log",
            std::process::id(),
            daifa_host::util::now_ms()
        ));
        match std::fs::copy(&self.log, &dest) {
            Ok(_) => format!("whole log kept at {}", dest.display()),
            Err(e) => format!("the log could not be kept: {e}"),
        }
    }

    fn start(config: &Path, log: &Path) -> Host {
        let text = std::fs::read_to_string(config).expect("config");
        let cfg: HostConfig = toml::from_str(&text).expect("parse config");
        let out = std::fs::OpenOptions::new().create(true).append(true).open(log).expect("log file");
        let child = Command::new(env!("CARGO_BIN_EXE_daifa"))
            .args(["serve", "--config"])
            .arg(config)
            .env("RUST_LOG", "warn,daifa_host=info")
            .stdout(Stdio::null())
            .stderr(out)
            .spawn()
            .expect("start daifa serve");
        Host { child, url: format!("http://{}", cfg.admin.bind), log: log.to_path_buf(), config: config.to_path_buf() }
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    fn restart(&mut self) {
        self.kill();
        *self = Host::start(&self.config.clone(), &self.log.clone());
    }

    fn client(&self) -> AdminClient {
        AdminClient::new(&self.url, TOKEN)
    }

    async fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if reqwest::get(format!("{}/healthz", self.url)).await.is_ok_and(|r| r.status().is_success()) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("daifa serve did not come up; log:\n{}", std::fs::read_to_string(&self.log).unwrap_or_default());
    }

    async fn get(&self, path: &str) -> Value {
        self.client().call(Method::GET, path, None).await.unwrap_or_else(|e| panic!("GET {path}: {e}"))
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        self.kill();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("free port")
}

fn write_config(dir: &Path, kd: &KingdeeSim, tweak: impl FnOnce(&mut HostConfig)) -> PathBuf {
    let mut cfg = HostConfig { data_dir: dir.join("data"), ..HostConfig::default() };
    cfg.admin.bind = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    cfg.admin.token = Some(TOKEN.into());
    cfg.store.url = format!("sqlite:{}", dir.join("daifa.db").display());
    cfg.router.catalog_file = Some(dir.join("catalog.toml"));
    cfg.router.policy_file = Some(dir.join("policy.toml"));
    cfg.router.interval_ms = 100;
    cfg.router.feed_settle_ms = 0;
    cfg.router.stock_refresh_ms = 0;
    cfg.dispatch.idle_ms = 50;
    cfg.dispatch.lease_ms = 20_000;
    // The supplier simulators listen on this machine.
    cfg.runtime.egress_allow_ips = vec!["127.0.0.1/32".into()];
    cfg.dispatch.backoff.base_ms = 100;
    cfg.dispatch.backoff.cap_ms = 1_000;
    cfg.kingdee = Some(daifa_host::config::KingdeeSection {
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
    tweak(&mut cfg);
    std::fs::write(dir.join("catalog.toml"), daifa_host::sim::catalog::demo_catalog_toml(5_000, 7)).unwrap();
    std::fs::write(dir.join("policy.toml"), POLICY).unwrap();
    let path = dir.join("daifa.toml");
    std::fs::write(&path, toml::to_string(&cfg).expect("serialize config")).unwrap();
    path
}

async fn connect(host: &Host, sims: &HashMap<String, SupplierSim>, max_in_flight: u32) {
    let client = host.client();
    let pkg = common::rest_json_package();
    // The install's own config is the base every connection overlays.
    let base = common::config(&[("base_url", "http://127.0.0.1:9")]);
    client.install(&pkg, &base, true).await.expect("install rest-json");
    for (id, sim) in sims {
        let body = json!({
            "plugin": "rest-json",
            "config": { "base_url": sim.base_url() },
            "secrets": { "api_token": format!("token-{id}") },
            "poll_interval_ms": 200,
            "max_in_flight": max_in_flight,
        });
        let v = client
            .call(Method::PUT, &format!("/suppliers/{id}/connection"), Some(&body))
            .await
            .unwrap_or_else(|e| panic!("connect {id}: {e}"));
        assert_eq!(v["secrets"], json!(["api_token"]), "secret keys listed, values never: {v}");
        assert!(!v.to_string().contains(&format!("token-{id}")), "a secret came back: {v}");
    }
}

async fn counts(host: &Host) -> BTreeMap<String, i64> {
    let v = host.get("/orders/stats").await;
    serde_json::from_value(v["by_state"].clone()).unwrap_or_default()
}

/// Waits until `done(counts)` holds and returns the order counts it held
/// for (a second read could catch an order mid-way through a re-route);
/// panics with the host's log after `secs`.
async fn wait_for(
    host: &Host,
    what: &str,
    secs: u64,
    done: impl Fn(&BTreeMap<String, i64>, &Value) -> bool,
) -> BTreeMap<String, i64> {
    let deadline = Instant::now() + Duration::from_secs(secs);
    let mut last = String::new();
    while Instant::now() < deadline {
        let c = counts(host).await;
        let pos = host.get("/purchase-orders?limit=1").await;
        if done(&c, &pos["counts"]) {
            return c;
        }
        last = format!("orders {c:?}; POs {}", pos["counts"]);
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let log = std::fs::read_to_string(&host.log).unwrap_or_default();
    let tail: Vec<&str> = log.lines().rev().take(60).collect();
    let dead = host.get("/dispatch/dead-letters?limit=5").await;
    let events = host.get("/operator-events?limit=10").await;
    panic!(
        "timed out waiting for {what}: {last}\ndead letters: {dead}\nevents: {events}\n{}\nlog tail:\n{}",
        host.keep_log(),
        tail.into_iter().rev().collect::<Vec<_>>().join("\n")
    );
}

fn n(c: &BTreeMap<String, i64>, k: &str) -> i64 {
    c.get(k).copied().unwrap_or(0)
}

fn orders_to_run() -> usize {
    std::env::var("DAIFA_E2E_ORDERS").ok().and_then(|v| v.parse().ok()).unwrap_or(2_000)
}

/// The simulators, the host and its directory.
struct World {
    _dir: tempfile::TempDir,
    kd: KingdeeSim,
    sims: HashMap<String, SupplierSim>,
    host: Host,
    orders: usize,
}

impl World {
    async fn start(orders: usize, max_in_flight: u32, tweak: impl FnOnce(&mut HostConfig)) -> World {
        World::start_without(orders, max_in_flight, &[], tweak).await
    }

    /// A world whose suppliers in `outside` get no REST simulator and no
    /// connection: the test connects them itself.
    async fn start_without(
        orders: usize,
        max_in_flight: u32,
        outside: &[&str],
        tweak: impl FnOnce(&mut HostConfig),
    ) -> World {
        World::start_with(orders, max_in_flight, outside, |_, _| {}, tweak).await
    }

    /// [`World::start_without`] with `setup` run on each supplier simulator
    /// before the host starts: a fault present from the first submit, not
    /// only from whenever the test gets to it (dispatch may be done by then).
    async fn start_with(
        orders: usize,
        max_in_flight: u32,
        outside: &[&str],
        setup: impl Fn(&str, &SupplierSim),
        tweak: impl FnOnce(&mut HostConfig),
    ) -> World {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let dir = tempfile::tempdir().unwrap();
        let kd = KingdeeSim::start(KingdeeSimConfig::default(), 0).await.unwrap();
        kd.generate(orders);
        let catalog = daifa_host::sim::catalog::demo_catalog_toml(5_000, 7);
        let ids: Vec<String> = daifa_host::routing::CatalogFile::from_toml(&catalog)
            .unwrap()
            .suppliers
            .into_iter()
            .map(|s| s.id)
            .collect();
        let mut sims = HashMap::new();
        for id in ids.into_iter().filter(|id| !outside.contains(&id.as_str())) {
            let cfg = SupplierSimConfig { token: Some(format!("token-{id}")), ..SupplierSimConfig::default() };
            let sim = SupplierSim::start(cfg, 0).await.unwrap();
            setup(&id, &sim);
            sims.insert(id, sim);
        }
        let config = write_config(dir.path(), &kd, tweak);
        let host = Host::start(&config, &dir.path().join("serve.log"));
        host.wait_ready().await;
        connect(&host, &sims, max_in_flight).await;
        World { _dir: dir, kd, sims, host, orders }
    }

    /// The POs dispatched to `supplier`, by number.
    async fn sent_to(&self, supplier: &str) -> HashSet<String> {
        let pos = self.host.get(&format!("/purchase-orders?supplier={supplier}&limit=100000")).await;
        pos["purchase_orders"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|p| p["supplier"] == supplier && p["dispatched_at"].is_i64())
            .map(|p| p["po_number"].as_str().unwrap().to_string())
            .collect()
    }

    /// Every order read, routed and answered by its suppliers.
    async fn wait_accepted(&self) -> i64 {
        let orders = self.orders as i64;
        let c = wait_for(&self.host, "every order at its suppliers", 60 + self.orders as u64 / 10, |c, pos| {
            c.values().sum::<i64>() == orders
                && n(c, "received") + n(c, "routed") + n(c, "dispatched") + n(c, "rejected") == 0
                && pos.get("pending").is_none()
                && pos.get("submitted").is_none()
        })
        .await;
        // Shown if the test fails: what "every order at its suppliers" was.
        println!("orders at their suppliers: {c:?}");
        n(&c, "acknowledged") + n(&c, "backordered")
    }

    async fn wait_written_back(&self, expected: i64) {
        let what = format!("every shipped order written back ({expected} expected)");
        wait_for(&self.host, &what, 60 + self.orders as u64 / 10, |c, pos| {
            n(c, "written_back") == expected && pos.get("shipped").is_none() && pos.get("partially_shipped").is_none()
        })
        .await;
    }

    /// One PO per (order, supplier) in the store, in the ERP and at the
    /// supplier; every tracking number issued written back once, with
    /// exactly the ordered quantities; no dead letters.
    async fn check_end_state(&self) {
        self.check_end_state_with(&[]).await
    }

    /// [`World::check_end_state`] counting also the tracking numbers that
    /// suppliers outside `sims` issued.
    async fn check_end_state_with(&self, other_tracking: &[String]) {
        // Purchase orders go into the ERP behind the suppliers' submits (and
        // may still be going in after the last write-back): wait until no
        // ERP job is left before comparing.
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let jobs = self.host.get("/dispatch/jobs").await;
            let left: i64 = jobs
                .as_array()
                .into_iter()
                .flatten()
                .filter(|j| j["kind"] == "erp_po" && j["state"] == "ready")
                .filter_map(|j| j["count"].as_i64())
                .sum();
            if left == 0 {
                break;
            }
            if Instant::now() >= deadline {
                let log = std::fs::read_to_string(&self.host.log).unwrap_or_default();
                let erp: Vec<&str> = log.lines().filter(|l| l.contains("WARN") || l.contains("ERP")).collect();
                let tail = &erp[erp.len().saturating_sub(40)..];
                panic!(
                    "ERP purchase orders still waiting after 60 s: {jobs}\n{}\nlog (warnings, ERP):\n{}",
                    self.host.keep_log(),
                    tail.join("\n")
                );
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        let pos = self.host.get("/purchase-orders?limit=100000").await;
        let pos = pos["purchase_orders"].as_array().unwrap().clone();
        let mut by_supplier: HashMap<String, HashSet<String>> = HashMap::new();
        for p in pos.iter().filter(|p| p["dispatched_at"].is_i64()) {
            by_supplier
                .entry(p["supplier"].as_str().unwrap().into())
                .or_default()
                .insert(p["po_number"].as_str().unwrap().into());
        }
        for (id, sim) in &self.sims {
            let got: Vec<String> = sim.orders().into_iter().map(|o| o.0).collect();
            let unique: HashSet<String> = got.iter().cloned().collect();
            assert_eq!(unique.len(), got.len(), "{id}: one order per PO at the supplier");
            let ours = by_supplier.get(id).cloned().unwrap_or_default();
            assert_eq!(unique, ours, "{id}: the supplier holds exactly the POs we sent it");
            assert_eq!(sim.key_conflicts(), 0, "{id}: no idempotency key reused with another body");
        }
        let in_erp: Vec<String> = self.kd.with(|s| {
            s.purchase_orders.docs.iter().map(|d| d["F_DAIFA_PoNo"].as_str().unwrap_or("").to_string()).collect()
        });
        let unique: HashSet<&String> = in_erp.iter().collect();
        assert_eq!(unique.len(), in_erp.len(), "one PUR_PurchaseOrder per PO");
        let accepted = pos.iter().filter(|p| p["erp_bill_no"].is_string()).count();
        assert_eq!(in_erp.len(), accepted, "every accepted PO is in the ERP, and nothing else");
        // Pushed from its sales order (the default link): every line names
        // the sales-order line it buys, so the ERP counts what is bought.
        let unlinked = self.kd.with(|s| {
            s.purchase_orders
                .docs
                .iter()
                .flat_map(|d| d["FPOOrderEntry"].as_array().cloned().unwrap_or_default())
                .filter(|e| !e["FSaleOrderEntryId"].is_i64() || !e["FPOOrderEntry_Link"].is_array())
                .count()
        });
        assert_eq!(unlinked, 0, "every PUR_PurchaseOrder line is linked to its sales-order line");

        let mut issued: Vec<String> = self.sims.values().flat_map(|s| s.tracking_numbers()).map(|t| t.1).collect();
        issued.extend(other_tracking.iter().cloned());
        let shipments = issued.len();
        let issued: HashSet<String> = issued.into_iter().collect();
        assert_eq!(issued.len(), shipments, "tracking numbers are unique, as carriers issue them");
        assert_eq!(self.kd.with(|s| s.outstocks.len()), shipments, "one SAL_OUTSTOCK per shipment");
        let (tracking, qty_by_line): (HashSet<String>, HashMap<String, Decimal>) = self.kd.with(|s| {
            let mut tracking = HashSet::new();
            let mut qty: HashMap<String, Decimal> = HashMap::new();
            for doc in &s.outstocks.docs {
                for t in doc["FCarriageNO"].as_str().unwrap_or("").split(',').filter(|t| !t.is_empty()) {
                    assert!(tracking.insert(t.to_string()), "tracking number {t} written back twice");
                }
                for e in doc["FEntity"].as_array().into_iter().flatten() {
                    let line = e["FSrcEntryId"].to_string();
                    let q: Decimal = e["FRealQty"].to_string().trim_matches('"').parse().unwrap_or_default();
                    *qty.entry(line).or_default() += q;
                }
            }
            (tracking, qty)
        });
        assert_eq!(tracking, issued, "the ERP holds exactly the tracking numbers the suppliers issued");
        let ordered: HashMap<String, Decimal> = self.kd.with(|s| {
            s.sale_orders
                .iter()
                .flat_map(|o| o.lines.iter().map(|l| (l.entry_id.to_string(), l.qty.parse().unwrap_or_default())))
                .collect()
        });
        for (line, q) in &qty_by_line {
            assert_eq!(ordered.get(line), Some(q), "line {line}: written back {q}, ordered {:?}", ordered.get(line));
        }
        let dead = self.host.get("/dispatch/dead-letters").await;
        assert_eq!(dead, json!([]), "no dead letters");

        // The performance loop saw each PO sent, per supplier.
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let perf = self.host.get("/suppliers/performance").await;
            let seen: HashMap<String, u64> = perf["suppliers"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| {
                    (p["supplier"].as_str().unwrap().to_string(), p["metrics"]["dispatched"].as_u64().unwrap_or(0))
                })
                .collect();
            let want: HashMap<String, u64> = by_supplier.iter().map(|(s, p)| (s.clone(), p.len() as u64)).collect();
            if want.iter().all(|(s, n)| seen.get(s) == Some(n)) {
                break;
            }
            assert!(Instant::now() < deadline, "dispatches per supplier: performance {seen:?}, POs {want:?}");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sales_orders_flow_to_suppliers_and_back_into_the_erp() {
    let orders = orders_to_run();
    // Three protocols: GZ is an EDI X12 partner, CD runs its own K3Cloud,
    // the other three are JSON warehouses on rest-json.
    let w = World::start_without(orders, 8, &["GZ", "CD"], |_| {}).await;
    let started = Instant::now();
    let (edi, k3) = connect_other_protocols(&w).await;
    let at_suppliers = w.wait_accepted().await;
    let accepted_in = started.elapsed();
    assert!(at_suppliers as usize >= orders * 9 / 10, "most orders reach their suppliers: {at_suppliers}");

    // Exactly one 850 per GZ PO and one sales order per CD PO.
    let at_gz: Vec<String> = edi.orders().into_iter().map(|o| o.po).collect();
    assert_eq!(at_gz.len(), at_gz.iter().collect::<HashSet<_>>().len(), "one 850 per PO at GZ");
    assert_eq!(at_gz.into_iter().collect::<HashSet<_>>(), w.sent_to("GZ").await, "GZ holds exactly its POs");
    assert_eq!(edi.counts().conflicting_850s, 0);
    let at_cd: Vec<String> = k3.with(|s| {
        s.sale_orders
            .iter()
            .filter_map(|o| o.extra.get("F_SUP_CustPoNo").and_then(|v| v.as_str()).map(str::to_string))
            .collect()
    });
    assert_eq!(at_cd.len(), at_cd.iter().collect::<HashSet<_>>().len(), "one sales order per PO at CD");
    assert_eq!(at_cd.into_iter().collect::<HashSet<_>>(), w.sent_to("CD").await, "CD holds exactly its POs");

    let mut shipped: usize = w.sims.values().map(|s| s.ship_all()).sum();
    shipped += edi.ship_all();
    let mut k3_tracking = Vec::new();
    for (i, bill) in k3.with(|s| s.sale_orders.iter().map(|o| o.bill_no.clone()).collect::<Vec<_>>()).iter().enumerate()
    {
        let t = format!("SFCD{i:08}");
        k3.ship_sale_order(bill, "SF", &t).expect("CD ships");
        k3_tracking.push(t);
        shipped += 1;
    }
    assert!(shipped > 0);
    w.wait_written_back(at_suppliers).await;
    eprintln!("{orders} orders: at suppliers in {accepted_in:.1?}, written back in {:.1?}", started.elapsed());
    let mut other: Vec<String> = edi.tracking_numbers().into_iter().map(|t| t.1).collect();
    other.extend(k3_tracking);
    w.check_end_state_with(&other).await;
    check_metrics(&w, orders).await;
}

/// GZ on edi-x12 and CD on kingdee-supplier, each with its simulator.
async fn connect_other_protocols(
    w: &World,
) -> (daifa_host::sim::edi_supplier::EdiSim, daifa_host::sim::kingdee::KingdeeSim) {
    use daifa_host::sim::edi_supplier::{EdiSim, EdiSimConfig};
    use daifa_host::sim::kingdee::{KingdeeSim, KingdeeSimConfig};
    let edi = EdiSim::start(EdiSimConfig { backorder_every: 11, ..Default::default() }, 0).await.unwrap();
    let cfg = KingdeeSimConfig::supplier_company(Vec::<String>::new());
    let app = cfg.app.clone();
    let k3 = KingdeeSim::start(cfg, 0).await.unwrap();
    let client = w.host.client();
    let placeholders = common::config(&[("base_url", "http://127.0.0.1:9"), ("receiver_id", "-")]);
    client.install(&common::edi_x12_package(), &placeholders, true).await.expect("install edi-x12");
    let placeholders = common::config(&[
        ("server_url", "http://127.0.0.1:9/k3cloud/"),
        ("acct_id", "-"),
        ("user_name", "-"),
        ("app_id", "-"),
        ("app_secret", "-"),
        ("customer", "-"),
    ]);
    client.install(&common::kingdee_supplier_package(), &placeholders, true).await.expect("install kingdee-supplier");
    let gz = json!({
        "plugin": "edi-x12",
        "config": { "base_url": edi.base_url(), "receiver_id": "PARTNER" },
        "secrets": { "api_token": "edi-token" },
        "poll_interval_ms": 200,
        "max_in_flight": 8,
    });
    client.call(Method::PUT, "/suppliers/GZ/connection", Some(&gz)).await.expect("connect GZ");
    let cd = json!({
        "plugin": "kingdee-supplier",
        "config": { "server_url": k3.server_url(), "acct_id": app.acct_id, "user_name": app.user_name, "app_id": app.app_id, "customer": "DAIFA" },
        "secrets": { "app_secret": app.app_secret },
        "poll_interval_ms": 200,
        "max_in_flight": 8,
    });
    client.call(Method::PUT, "/suppliers/CD/connection", Some(&cd)).await.expect("connect CD");
    (edi, k3)
}

/// `GET /metrics` after a run: refused without the token; every family
/// named by Prometheus conventions (`daifa_` prefix, `_total` counters,
/// `_seconds` durations, no order or PO number in a label); and the numbers
/// agree with what the run did.
async fn check_metrics(w: &World, orders: usize) {
    let url = format!("{}/metrics", w.host.url);
    assert_eq!(reqwest::get(&url).await.unwrap().status(), 401, "metrics need the token");
    let resp = reqwest::Client::new().get(&url).bearer_auth(TOKEN).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let text = resp.text().await.unwrap();
    if let Ok(path) = std::env::var("DAIFA_DUMP_METRICS") {
        std::fs::write(path, &text).unwrap();
    }
    let mut types: HashMap<String, String> = HashMap::new();
    let mut samples: Vec<(String, HashMap<String, String>, f64)> = Vec::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').expect("TYPE name kind");
            types.insert(name.to_string(), kind.to_string());
            continue;
        }
        if line.starts_with('#') || line.is_empty() {
            continue;
        }
        let (series, value) = line.rsplit_once(' ').unwrap_or_else(|| panic!("sample without value: {line}"));
        let value: f64 = value.parse().unwrap_or_else(|_| panic!("bad value: {line}"));
        let (name, labels) = match series.split_once('{') {
            Some((n, l)) => (n, l.trim_end_matches('}')),
            None => (series, ""),
        };
        let labels: HashMap<String, String> = labels
            .split("\",")
            .filter(|p| !p.is_empty())
            .map(|p| {
                let (k, v) = p.split_once("=\"").unwrap_or_else(|| panic!("bad label in {line}"));
                (k.to_string(), v.trim_end_matches('"').to_string())
            })
            .collect();
        for k in labels.keys() {
            assert!(!["order", "order_id", "po", "po_number", "bill_no"].contains(&k.as_str()), "{line}");
        }
        samples.push((name.to_string(), labels, value));
    }
    for (name, kind) in &types {
        assert!(name.starts_with("daifa_"), "{name}: no daifa_ prefix");
        assert!(!name.ends_with("_total"), "{name}: the family name carries no _total");
        if name.contains("duration") || name.contains("age") {
            assert!(name.ends_with("_seconds"), "{name}: durations are in seconds");
        }
        // The samples of this family: its name plus a suffix its type allows.
        let suffixes: &[&str] = match kind.as_str() {
            "counter" => &["_total", "_created"],
            "histogram" => &["_bucket", "_sum", "_count", "_created"],
            _ => &[""],
        };
        let family = |n: &str| suffixes.iter().any(|s| n == format!("{name}{s}"));
        assert!(samples.iter().any(|(n, ..)| family(n)) || kind == "gauge", "{name} ({kind}) has no samples");
        for (n, ..) in &samples {
            if n.starts_with(&format!("{name}_")) && !types.contains_key(n.as_str()) && !family(n) {
                let owned =
                    types.keys().any(|t| t != name && t.starts_with(name.as_str()) && n.starts_with(t.as_str()));
                assert!(owned, "{n} is neither a sample of {name} ({kind}) nor of another family");
            }
        }
    }
    let sum = |name: &str, want: &[(&str, &str)]| -> f64 {
        samples
            .iter()
            .filter(|(n, l, _)| n == name && want.iter().all(|(k, v)| l.get(*k).map(String::as_str) == Some(*v)))
            .map(|s| s.2)
            .sum()
    };
    let pos = w.host.get("/purchase-orders?limit=1").await["counts"].clone();
    let written_back = pos["written_back"].as_i64().unwrap_or(0) as f64;
    assert!(written_back > 0.0, "{pos}");
    assert_eq!(sum("daifa_purchase_orders", &[("state", "written_back")]), written_back);
    assert!(sum("daifa_dispatch_submits_total", &[("outcome", "accepted")]) >= written_back);
    assert!(sum("daifa_plugin_calls_total", &[("operation", "submit-order"), ("outcome", "ok")]) >= written_back);
    assert!(sum("daifa_dispatch_submit_duration_seconds_count", &[]) >= written_back);
    assert!(sum("daifa_erp_requests_total", &[("service", "BatchSave"), ("outcome", "ok")]) > 0.0);
    assert!(sum("daifa_ingest_orders_total", &[]) >= orders as f64, "every order read was counted");
    assert!(sum("daifa_routing_decisions_total", &[("outcome", "routed")]) > 0.0);
    assert_eq!(sum("daifa_orders", &[]), orders as f64, "every order in one state");
    assert_eq!(sum("daifa_store_writable", &[]), 1.0);
    assert!(sum("daifa_plugin_call_slots", &[("kind", "total")]) > 0.0);
    assert!(sum("daifa_writeback_lag_seconds_count", &[]) > 0.0, "write-back lag observed");
    assert!(sum("daifa_store_write_duration_seconds_count", &[]) > 0.0, "store writes timed");
    assert!(types.get("daifa_dispatch_retries").is_some_and(|k| k == "counter"), "retries counted by kind");
    assert!(sum("daifa_routing_supplier_decisions_total", &[("outcome", "routed")]) > 0.0, "decisions by supplier");
    assert!(samples.iter().any(|(n, l, _)| n == "daifa_outbox_oldest_age_seconds" && l["consumer"] == "routing"));

    // The Grafana dashboard in the repository asks only for what exists
    // (families that appear once something happened are named here).
    let dashboard =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/grafana/daifa.json")).unwrap();
    let happens_later = ["daifa_circuit_open", "daifa_plugin_limit_hits"];
    for word in dashboard.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).filter(|w| w.starts_with("daifa_"))
    {
        let family = ["_bucket", "_total", "_count", "_sum"].iter().fold(word, |w, s| w.strip_suffix(s).unwrap_or(w));
        assert!(
            types.contains_key(family) || happens_later.contains(&family),
            "the dashboard asks for {word}, which /metrics does not have"
        );
    }
}

/// kill -9 while purchase orders go out, and again while shipments go
/// into the ERP; each restart finishes the work with nothing lost or doubled.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigkill_during_dispatch_and_during_write_back() {
    let mut w = World::start(600, 2, |c| c.dispatch.lease_ms = 3_000).await;
    for s in w.sims.values() {
        s.set_latency(60);
    }
    // Dispatch under way: some POs answered, not all.
    wait_for(&w.host, "dispatch under way", 120, |_, pos| n_v(pos, "acknowledged") >= 100).await;
    let before = w.host.get("/purchase-orders?limit=1").await["counts"].clone();
    w.host.restart();
    w.host.wait_ready().await;
    eprintln!("killed during dispatch at {before}");
    assert!(n_v(&before, "pending") > 0, "the kill came while POs were still going out: {before}");
    for s in w.sims.values() {
        s.set_latency(0);
    }
    let at_suppliers = w.wait_accepted().await;
    // Write-back under way: the ERP answers slowly, then the host dies.
    w.kd.with(|s| s.faults.slow_ms = 25);
    let _shipped: usize = w.sims.values().map(|s| s.ship_all()).sum();
    wait_for(&w.host, "write-back under way", 120, |c, _| n(c, "written_back") >= 20).await;
    let before = counts(&w.host).await;
    w.host.restart();
    w.host.wait_ready().await;
    eprintln!("killed during write-back at {before:?}");
    assert!(n(&before, "written_back") < at_suppliers, "the kill came mid-write-back: {before:?}");
    w.kd.with(|s| s.faults.slow_ms = 0);
    w.wait_written_back(at_suppliers).await;
    w.check_end_state().await;
}

/// A supplier answers 503 for a while: retries with backoff, its circuit
/// opens (and the transitions are stored), POs never sent move to another
/// supplier, the circuit closes after a good trial call, nothing doubles.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_failing_supplier_trips_its_circuit_and_loses_its_unsent_orders() {
    // Failing from the first request: set once dispatch was under way, the
    // window could miss every submit (all sent already) and land on polls
    // alone, slower than the test.
    let failing = |id: &str, sim: &SupplierSim| {
        if id == "QG" {
            // Submits and polls share these: a window of a few seconds.
            sim.fail_next(20, 503);
        }
    };
    let w = World::start_with(400, 4, &[], failing, |c| {
        c.dispatch.circuit.open_ms = 1_000;
        c.dispatch.circuit.max_open_ms = 2_000;
        c.dispatch.reroute_after_ms = 300;
    })
    .await;
    let at_suppliers = w.wait_accepted().await;
    let circuits = w.host.get("/dispatch/circuits").await;
    let qg = circuits.as_array().unwrap().iter().find(|c| c["circuit"]["supplier"] == "QG").expect("QG's circuit");
    let moves: Vec<(String, String)> = qg["transitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| (t["from_state"].as_str().unwrap().into(), t["to_state"].as_str().unwrap().into()))
        .collect();
    assert!(moves.contains(&("closed".into(), "open".into())), "{moves:?}");
    assert!(moves.contains(&("half_open".into(), "closed".into())), "{moves:?}");
    assert_eq!(qg["circuit"]["state"], "closed");
    let withdrawn = w.host.get("/purchase-orders?state=cancelled&supplier=QG&limit=10000").await;
    let withdrawn = withdrawn["purchase_orders"].as_array().unwrap().len();
    assert!(withdrawn > 0, "POs never sent to QG moved on while its circuit was open");
    let _ = w.sims.values().map(|s| s.ship_all()).sum::<usize>();
    w.wait_written_back(at_suppliers).await;
    w.check_end_state().await;
}

/// A supplier slows down, then takes orders but answers only after our
/// 5 s HTTP deadline for a window, so submits time out after the order
/// landed. Retries carry the same idempotency key and get the first answer
/// back (replays, never a second order), the circuit opens, and once the
/// supplier recovers everything ends shipped and written back once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_supplier_that_slows_down_then_times_out_duplicates_nothing() {
    // Slow from the start, but within the deadline: nothing fails, it is
    // only slow (and so still has orders to take when the window opens).
    let slow = |id: &str, sim: &SupplierSim| {
        if id == "QG" {
            sim.set_latency(400);
        }
    };
    // 8 submits in flight time out together: more than the 5 consecutive
    // failures that open the circuit, whatever successful poll comes
    // between two waves (4 in flight left that to timing).
    let w = World::start_with(400, 8, &[], slow, |c| {
        c.dispatch.circuit.open_ms = 1_000;
        c.dispatch.circuit.max_open_ms = 2_000;
        c.dispatch.reroute_after_ms = 300;
        c.dispatch.backoff.base_ms = 300;
        c.dispatch.backoff.cap_ms = 3_000;
    })
    .await;
    let qg = &w.sims["QG"];
    tokio::time::sleep(Duration::from_secs(3)).await;
    qg.set_latency(0);
    // Orders land; their answers come after the deadline.
    qg.set_answer_delay(6_000);
    tokio::time::sleep(Duration::from_secs(12)).await;
    qg.set_answer_delay(0);
    let at_suppliers = w.wait_accepted().await;
    assert!(qg.replays() > 0, "timed-out submits were retried with their key and answered from the first order");
    let circuits = w.host.get("/dispatch/circuits").await;
    let c = circuits.as_array().unwrap().iter().find(|c| c["circuit"]["supplier"] == "QG").expect("QG's circuit");
    let opened = c["transitions"].as_array().unwrap().iter().any(|t| t["to_state"] == "open");
    assert!(opened, "timeouts open the circuit: {c}");
    let _ = w.sims.values().map(|s| s.ship_all()).sum::<usize>();
    w.wait_written_back(at_suppliers).await;
    w.check_end_state().await;
}

fn n_v(v: &Value, k: &str) -> i64 {
    v.get(k).and_then(Value::as_i64).unwrap_or(0)
}

/// A supplier that pushes: `POST /callbacks/{supplier}/…` reaches its own
/// plugin binding, which checks the shared token; a shipment pushed twice is
/// applied once; strangers, floods and oversized bodies are refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn suppliers_push_updates_to_the_callback_route() {
    let w = World::start(40, 8, |_| {}).await;
    let sim = &w.sims["QG"];
    let body = json!({
        "plugin": "rest-json",
        "config": { "base_url": sim.base_url() },
        "secrets": { "api_token": "token-QG", "callback_token": "cb-secret-QG" },
        "poll_interval_ms": 86_400_000,
    });
    w.host.client().call(Method::PUT, "/suppliers/QG/connection", Some(&body)).await.unwrap();
    w.wait_accepted().await;
    let pos = w.host.get("/purchase-orders?supplier=QG&state=acknowledged&limit=1").await;
    let po = pos["purchase_orders"][0].clone();
    let po_number = po["po_number"].as_str().expect("an acknowledged QG purchase order").to_string();
    let items: Vec<Value> =
        po["lines"].as_array().unwrap().iter().map(|l| json!({ "line_id": l["line_id"], "qty": 1 })).collect();
    let event = json!({
        "type": "shipped", "order_id": "SUP-X", "external_id": po_number,
        "packages": [{ "carrier": "SF", "tracking_no": "SFCALLBACK0001", "items": items }],
    });
    let http = reqwest::Client::new();
    let url = format!("{}/callbacks/QG/events", w.host.url);
    let post = |token: &str, body: Vec<u8>| {
        http.post(&url).header("x-callback-token", token).header("content-type", "application/json").body(body).send()
    };
    let bytes = serde_json::to_vec(&event).unwrap();
    let r = post("wrong", bytes.clone()).await.unwrap();
    assert_eq!(r.status(), 401, "the plugin refuses a wrong token");
    let r = post("cb-secret-QG", bytes.clone()).await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().await.unwrap(), r#"{"ok":true}"#);
    let r = post("cb-secret-QG", bytes.clone()).await.unwrap();
    assert_eq!(r.status(), 200, "a repeated webhook is answered, and applied once");
    let one = w.host.get(&format!("/purchase-orders/{po_number}")).await;
    let shipments = one["shipments"].as_array().unwrap();
    assert_eq!(shipments.len(), 1, "{one}");
    assert_eq!(shipments[0]["parcels"][0]["tracking_number"], "SFCALLBACK0001");
    // A PO never sent to QG: answered, kept as an operator event, nothing applied.
    let mut stray = event.clone();
    stray["external_id"] = json!("PO-FORGED-1");
    stray["packages"][0]["tracking_no"] = json!("SFCALLBACK0002");
    assert_eq!(post("cb-secret-QG", serde_json::to_vec(&stray).unwrap()).await.unwrap().status(), 200);
    let events = w.host.get("/operator-events").await;
    assert!(events.as_array().unwrap().iter().any(|e| e["kind"] == "unknown_po" && e["subject"] == "PO-FORGED-1"));
    // No such supplier; a body over 1 MiB; a flood.
    let r = http.post(format!("{}/callbacks/NOBODY/events", w.host.url)).body("{}").send().await.unwrap();
    assert_eq!(r.status(), 404);
    let (status, body) = common::answer_to_declared_length(
        &w.host.url,
        "POST",
        "/callbacks/QG/events",
        &[("x-callback-token", "cb-secret-QG"), ("content-type", "application/json")],
        2 << 20,
    )
    .await;
    assert_eq!(status, 413, "a body over 1 MiB is refused by its length, unread: {body}");
    assert!(body.contains("too-large"), "{body}");
    let flood = (0..400).map(|_| post("wrong", b"{}".to_vec()));
    let statuses: Vec<u16> =
        futures::future::join_all(flood).await.into_iter().map(|r| r.map_or(0, |r| r.status().as_u16())).collect();
    assert!(statuses.contains(&429), "a flood is cut off: {:?}", &statuses[..10]);
    // The pushed shipment goes into the ERP like a polled one.
    let deadline = Instant::now() + Duration::from_secs(60);
    while w.kd.with(|s| s.outstocks.len()) == 0 {
        assert!(Instant::now() < deadline, "the pushed shipment was not written back");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// An adapter written outside this repository, against the SDK only (ACME:
/// OAuth2 client credentials, XML orders, HMAC-signed webhooks), installed
/// on the running `daifa serve` through the admin API and bound to one
/// supplier: it receives that supplier's POs (refreshing its token when
/// ACME revokes it), and ACME's signed webhooks bring the tracking numbers
/// back, into the ERP. No host code knows ACME.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_outside_adapter_installed_on_a_running_host_carries_its_suppliers_orders() {
    use common::acme::{self, Acme};
    let w = World::start_without(300, 8, &["HZ"], |_| {}).await;
    let acme = Acme::start().await;
    let client = w.host.client();
    // The operator installs the package (placeholders for the per-supplier
    // keys), then binds HZ to it with HZ's own endpoint and secrets.
    let placeholders = common::config(&[
        ("base_url", "http://127.0.0.1:9"),
        ("client_id", "-"),
        ("client_secret", "-"),
        ("webhook_secret", "-"),
    ]);
    client.install(&common::acme_xml_package(), &placeholders, true).await.expect("install acme-xml");
    let body = json!({
        "plugin": "acme-xml",
        "config": { "base_url": acme.base_url, "client_id": acme::CLIENT_ID },
        "secrets": { "client_secret": acme::CLIENT_SECRET, "webhook_secret": acme::WEBHOOK_SECRET },
        "poll_interval_ms": 86_400_000,
    });
    // Part-way through, ACME rotates its tokens: the adapter must notice
    // the 401 and fetch a new one by itself.
    acme.revoke_after_orders(5);
    client.call(Method::PUT, "/suppliers/HZ/connection", Some(&body)).await.expect("connect HZ to acme-xml");
    let at_suppliers = w.wait_accepted().await;
    let (grants, refused, _, conflicts) = acme.counts();
    assert!(grants >= 2 && refused >= 1, "the revoked token was refused and replaced: {:?}", acme.counts());
    assert_eq!(conflicts, 0);

    let ours = w.sent_to("HZ").await;
    let theirs: Vec<String> = acme.orders().into_iter().map(|o| o.reference).collect();
    assert!(!ours.is_empty(), "HZ got purchase orders");
    assert_eq!(theirs.len(), ours.len(), "one ACME order per PO");
    assert_eq!(theirs.into_iter().collect::<HashSet<_>>(), ours, "ACME holds exactly HZ's POs");

    // A forged webhook is refused by the plugin and changes nothing.
    let webhook = format!("{}/callbacks/HZ/shipments", w.host.url);
    let o = acme.orders()[0].clone();
    let forged = acme::shipment_xml(&o, "FORGED0001");
    let r = reqwest::Client::new()
        .post(&webhook)
        .header("x-acme-signature", acme::sign("not-the-key", forged.as_bytes()))
        .body(forged)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401, "a webhook with a wrong signature is refused");

    let statuses = acme.ship_all(&webhook, acme::WEBHOOK_SECRET).await;
    assert!(statuses.iter().all(|s| *s == 200), "ACME's signed webhooks are taken: {statuses:?}");
    let _ = w.sims.values().map(|s| s.ship_all()).sum::<usize>();
    w.wait_written_back(at_suppliers).await;
    let acme_tracking: Vec<String> = acme.orders().into_iter().filter_map(|o| o.tracking).collect();
    w.check_end_state_with(&acme_tracking).await;
    assert!(!w.kd.with(|s| s.outstocks.iter().any(|d| d["FCarriageNO"] == "FORGED0001")));
}

/// The ERP cancels sales orders whose POs the suppliers already accepted:
/// each supplier is asked to cancel through its own binding
/// (`cancel-order`), the POs end cancelled, nothing of them ships or is
/// written back; an order cancelled after its goods shipped is an operator
/// event, never a silent change.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn orders_cancelled_in_the_erp_are_cancelled_at_their_suppliers() {
    let w = World::start(200, 8, |_| {}).await;
    let at_suppliers = w.wait_accepted().await;
    let acked = w.host.get("/orders?state=acknowledged&limit=10").await;
    let victims: Vec<(i64, i64)> = acked
        .as_array()
        .unwrap()
        .iter()
        .map(|o| (o["id"].as_i64().unwrap(), o["external_id"].as_str().unwrap().parse().unwrap()))
        .collect();
    assert_eq!(victims.len(), 10);
    // Their PUR_PurchaseOrders exist first, so cancelling must take them back.
    let mut victim_pos: Vec<String> = Vec::new();
    for (id, _) in &victims {
        let pos = w.host.get(&format!("/purchase-orders?limit=100&order={id}")).await;
        victim_pos.extend(
            pos["purchase_orders"].as_array().unwrap().iter().map(|p| p["po_number"].as_str().unwrap().to_string()),
        );
    }
    let in_erp = |w: &World, pos: &[String]| -> Vec<String> {
        w.kd.with(|s| {
            s.purchase_orders
                .docs
                .iter()
                .filter_map(|d| d["F_DAIFA_PoNo"].as_str().map(str::to_string))
                .filter(|p| pos.contains(p))
                .collect()
        })
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    while in_erp(&w, &victim_pos).len() < victim_pos.len() {
        assert!(Instant::now() < deadline, "PUR_PurchaseOrders of {victim_pos:?} not made");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    for (_, fid) in &victims {
        assert!(w.kd.modify(*fid, |o| o.cancel_status = "B".into()));
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut cancelled_pos = Vec::new();
    for (id, _) in &victims {
        loop {
            let o = w.host.get(&format!("/orders/{id}")).await;
            let pos = w.host.get(&format!("/purchase-orders?limit=100&order={id}")).await;
            let pos = pos["purchase_orders"].as_array().cloned().unwrap_or_default();
            let mine: Vec<&Value> = pos.iter().filter(|p| p["order"] == *id).collect();
            if o["state"] == "cancelled" && !mine.is_empty() && mine.iter().all(|p| p["state"] == "cancelled") {
                cancelled_pos.extend(mine.iter().map(|p| p["po_number"].as_str().unwrap().to_string()));
                break;
            }
            assert!(Instant::now() < deadline, "order {id} not cancelled at its suppliers: {o} {mine:?}");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    // The ERP stops buying them: each cancelled PO's document is deleted
    // and its sales-order lines count nothing as bought.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let left = in_erp(&w, &cancelled_pos);
        if left.is_empty() {
            break;
        }
        assert!(Instant::now() < deadline, "PUR_PurchaseOrders of cancelled POs still in the ERP: {left:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let bought: Vec<String> = w.kd.with(|s| {
        s.sale_orders
            .iter()
            .filter(|o| victims.iter().any(|(_, fid)| *fid == o.fid))
            .flat_map(|o| o.lines.iter().map(|l| l.pur_qty))
            .filter(|q| !q.is_zero())
            .map(|q| q.to_string())
            .collect()
    });
    assert!(bought.is_empty(), "cancelled orders still count as bought: {bought:?}");
    let shipped: usize = w.sims.values().map(|s| s.ship_all()).sum();
    assert!(shipped > 0);
    w.wait_written_back(at_suppliers - victims.len() as i64).await;
    w.check_end_state().await;
    // The suppliers shipped none of the cancelled POs.
    let issued: HashSet<String> = w.sims.values().flat_map(|s| s.tracking_numbers()).map(|(po, _)| po).collect();
    for po in &cancelled_pos {
        assert!(!issued.contains(po), "{po} was cancelled but shipped");
    }
    // Cancelled after shipping: a person has to act, and is told.
    let done = w.host.get("/orders?state=written_back&limit=1").await;
    let fid: i64 = done[0]["external_id"].as_str().unwrap().parse().unwrap();
    w.kd.modify(fid, |o| o.cancel_status = "B".into());
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let events = w.host.get("/operator-events").await;
        let found = events.as_array().unwrap().iter().any(|e| e["kind"] == "cancelled_after_shipping");
        if found {
            break;
        }
        assert!(Instant::now() < deadline, "no operator event for an order cancelled after shipping: {events}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A bad version deployed as a canary (its calls miss their deadline) takes
/// half of the submits, is judged and rolled back by the host on its own,
/// and no order is lost or doubled: its failed submits are retried on the
/// stable version with the same idempotency keys.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_bad_canary_is_rolled_back_with_no_order_lost() {
    // Slow suppliers keep dispatch going while the canary starts.
    let slow = |_: &str, sim: &SupplierSim| sim.set_latency(150);
    let w = World::start_with(400, 4, &[], slow, |c| {
        c.canary.check_secs = 1;
        c.canary.min_calls = 10;
        c.canary.promote_after_calls = 0;
        c.dispatch.backoff.base_ms = 100;
    })
    .await;
    let mut m = common::manifest("plugins/rest-json/manifest.toml");
    m.version = "9.9.9".parse().unwrap();
    m.limits.timeout_ms = 1;
    let bad = daifa_host::plugins::PluginPackage::pack(m, common::component("rest_json"));
    let client = w.host.client();
    client.install(&bad, &common::config(&[("base_url", "http://127.0.0.1:9")]), false).await.unwrap();
    let started = client.start_canary("rest-json", "9.9.9", 50).await.unwrap();
    assert_eq!(started["percent"], 50, "{started}");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let events = w.host.get("/operator-events?limit=100").await;
        let rolled = events
            .as_array()
            .into_iter()
            .flatten()
            .any(|e| e["kind"] == "canary" && e["message"].as_str().unwrap_or("").contains("canary rolled_back"));
        if rolled {
            break;
        }
        assert!(Instant::now() < deadline, "no rollback recorded: {events}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let plugins = w.host.get("/plugins").await;
    assert!(plugins[0]["canary"].is_null(), "{plugins}");
    let bad_calls =
        plugins[0]["versions"].as_array().unwrap().iter().find(|v| v["version"] == "9.9.9").unwrap()["stats"]["calls"]
            .as_u64()
            .unwrap();
    assert!(bad_calls > 10, "the canary did take calls: {bad_calls}");
    for s in w.sims.values() {
        s.set_latency(0);
    }
    let at_suppliers = w.wait_accepted().await;
    let _ = w.sims.values().map(|s| s.ship_all()).sum::<usize>();
    w.wait_written_back(at_suppliers).await;
    w.check_end_state().await;
}

/// The console, end to end in headless Chromium: an operator logs in with
/// a plugin-deployer token of their own, sees the flow, finds an order by
/// its ERP bill number, reads its timeline and routing, and rolls back the
/// plugin version deployed last. The host's state shows the rollback and
/// the audit trail names the operator's token. Screenshots of each step go
/// to `target/console-screenshots/`.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_console_finds_an_order_reads_its_timeline_and_rolls_back_a_plugin() {
    use common::browser::Browser;
    use fantoccini::Locator;

    let w = World::start_without(60, 8, &[], |_| {}).await;
    let at_suppliers = w.wait_accepted().await;
    let _ = w.sims.values().map(|s| s.ship_all()).sum::<usize>();
    w.wait_written_back(at_suppliers).await;
    let admin = w.host.client();
    // A newer rest-json goes live: the version the operator will roll back.
    let mut manifest = common::manifest("plugins/rest-json/manifest.toml");
    let stable = manifest.version.clone();
    manifest.version = semver::Version::new(stable.major, stable.minor, stable.patch + 1);
    let newer = daifa_host::plugins::PluginPackage::pack(manifest, common::component("rest_json"));
    let base = common::config(&[("base_url", "http://127.0.0.1:9")]);
    admin.install(&newer, &base, true).await.expect("install the newer rest-json");
    let token = admin
        .call(Method::POST, "/tokens", Some(&json!({ "name": "console-e2e", "role": "plugin-deployer" })))
        .await
        .expect("a plugin-deployer token")["token"]
        .as_str()
        .unwrap()
        .to_string();
    let one = w.host.get("/orders?state=written_back&limit=1").await;
    let (order_id, bill_no) = (one[0]["id"].as_i64().unwrap(), one[0]["bill_no"].as_str().unwrap().to_string());

    let shots = common::repo_root().join("target/console-screenshots");
    let b = Browser::start(shots).await;
    let c = &b.client;
    c.goto(&format!("{}/console", w.host.url)).await.expect("open the console");
    // A wrong token is refused on the page, in Chinese (the default).
    b.wait_for("#token").await.send_keys("daifa_nope_nope").await.unwrap();
    c.find(Locator::Css("#login")).await.unwrap().click().await.unwrap();
    let refused = b.wait_for("#login-error").await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while refused.text().await.unwrap_or_default().is_empty() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(b.wait_for("#login-error").await.text().await.unwrap(), "令牌无效或已吊销");
    b.wait_for("#token").await.send_keys(&token).await.unwrap();
    c.find(Locator::Css("#login")).await.unwrap().click().await.unwrap();
    b.wait_for("#orders-by-state svg").await;
    let overview = c.find(Locator::Css("#orders-by-state")).await.unwrap().text().await.unwrap();
    assert!(overview.contains("written_back") && overview.contains("60"), "the flow overview: {overview}");
    b.screenshot("1-overview").await;

    // Find the order by its bill number and open it.
    c.goto(&format!("{}/console#/orders", w.host.url)).await.unwrap();
    b.wait_for("#order-search").await.send_keys(&bill_no).await.unwrap();
    c.find(Locator::Css("#order-search-go")).await.unwrap().click().await.unwrap();
    let link = b.wait_for(&format!("#order-results[data-q='{bill_no}'] a[href='#/orders/{order_id}']")).await;
    assert_eq!(link.text().await.unwrap(), bill_no);
    link.click().await.unwrap();
    b.wait_for("#order-timeline li").await;
    let mut steps = Vec::new();
    for li in c.find_all(Locator::Css("#order-timeline li")).await.unwrap() {
        steps.push(li.attr("data-to").await.unwrap().unwrap_or_default());
    }
    for s in ["received", "routed", "dispatched", "shipped", "written_back"] {
        assert!(steps.iter().any(|x| x == s), "the timeline shows `{s}`: {steps:?}");
    }
    let explained = w.host.get(&format!("/orders/{order_id}/routing")).await;
    let first = &explained["decisions"][0]["decision"]["allocations"][0];
    let routing = b.wait_for("#order-routing table.allocations").await.text().await.unwrap();
    for want in [first["supplier"].as_str().unwrap(), first["supplier_sku"].as_str().unwrap()] {
        assert!(routing.contains(want), "the routing explanation shows `{want}`: {routing}");
    }
    b.wait_for("#order-routing table.candidates .badge[data-state='chosen']").await;
    b.screenshot("2-order-timeline").await;

    // Every other page renders from the API for this role, with no error.
    for (view, css) in [
        ("suppliers", ".supplier[data-supplier] dl"),
        ("dead-letters", "#dead-letters"),
        ("routing", "#policy-text"),
        ("alerts", "#alerts"),
        ("audit", "#audit"),
    ] {
        c.goto(&format!("{}/console#/{view}", w.host.url)).await.unwrap();
        b.wait_for(css).await;
        assert!(c.find(Locator::Css("#view-error")).await.is_err(), "{view} shows an error");
        if view == "routing" {
            // The current policy, compared with itself: nothing moves.
            c.find(Locator::Css("#what-if-run")).await.unwrap().click().await.unwrap();
            let summary = b.wait_for("#what-if-summary").await.text().await.unwrap();
            assert!(summary.contains(": 0 / 60"), "what-if of the same policy: {summary}");
            let versions = c.find_all(Locator::Css("#policy-versions button.load-version")).await.unwrap();
            assert!(!versions.is_empty(), "the policy versions are listed");
        }
        b.screenshot(&format!("2-{view}")).await;
        if view == "suppliers" {
            let cards = c.find_all(Locator::Css(".supplier[data-supplier]")).await.unwrap().len();
            assert_eq!(cards, w.sims.len(), "a card per supplier");
        }
    }

    // Deploy a package from files, as an integration developer hands it
    // over: installed (validated, compiled, dry-run), not yet active.
    let mut manifest = common::manifest("plugins/rest-json/manifest.toml");
    manifest.version = semver::Version::new(stable.major, stable.minor, stable.patch + 2);
    let third = daifa_host::plugins::PluginPackage::pack(manifest, common::component("rest_json"));
    let pkg_dir = tempfile::tempdir().unwrap();
    third.write_dir(pkg_dir.path()).unwrap();
    c.goto(&format!("{}/console#/plugins", w.host.url)).await.unwrap();
    b.wait_for("details.install summary").await.click().await.unwrap();
    let path = |f: &str| pkg_dir.path().join(f).display().to_string();
    b.wait_for("#pkg-manifest").await.send_keys(&path("manifest.toml")).await.unwrap();
    c.find(Locator::Css("#pkg-component")).await.unwrap().send_keys(&path("component.wasm")).await.unwrap();
    c.find(Locator::Css("#pkg-config")).await.unwrap().send_keys("base_url = http://127.0.0.1:9").await.unwrap();
    c.find(Locator::Css("#pkg-install")).await.unwrap().click().await.unwrap();
    let want = third.manifest.version.to_string();
    b.wait_for(&format!(".plugin[data-name='rest-json'] button.activate[data-version='{want}']")).await;
    let listed = w.host.get("/plugins").await;
    assert_eq!(listed[0]["active"], newer.manifest.version.to_string(), "installed, not activated");
    b.screenshot("3-deployed").await;

    // Roll back the plugin: the button asks once more, then acts.
    c.goto(&format!("{}/console#/plugins", w.host.url)).await.unwrap();
    let rollback = b.wait_for(".plugin[data-name='rest-json'] button.rollback").await;
    rollback.click().await.unwrap();
    assert_eq!(w.host.get("/plugins").await[0]["active"], newer.manifest.version.to_string(), "one click acts not");
    rollback.click().await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let plugins = w.host.get("/plugins").await;
        let p = plugins.as_array().unwrap().iter().find(|p| p["name"] == "rest-json").unwrap().clone();
        if p["active"] == stable.to_string() {
            break;
        }
        assert!(Instant::now() < deadline, "the console rolled nothing back: {p}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    b.wait_for(".plugin[data-name='rest-json'] .active-version").await;
    b.screenshot("3-rolled-back").await;
    let audit = w.host.get("/audit?limit=50").await;
    let by_console = audit["entries"].as_array().unwrap().iter().find(|e| {
        e["path"].as_str().is_some_and(|p| p.ends_with("/plugins/rest-json/rollback"))
            && e["actor"].as_str().is_some_and(|a| a.contains("console-e2e"))
            && e["status"] == 200
    });
    let entry = by_console.unwrap_or_else(|| panic!("the rollback is audited under the operator's token: {audit}"));
    assert_eq!(entry["before"]["active"], newer.manifest.version.to_string(), "{entry}");
    assert_eq!(entry["after"]["active"], stable.to_string(), "{entry}");

    // English on request; the choice is kept.
    c.find(Locator::Css("#lang")).await.unwrap().click().await.unwrap();
    b.wait_for("a[href='#/orders']").await;
    let nav = c.find(Locator::Css("#nav")).await.unwrap().text().await.unwrap();
    assert!(nav.contains("Orders") && nav.contains("Dead letters"), "English navigation: {nav}");
    b.screenshot("4-english").await;
    // The page's assets are the binary's, under a policy that runs no inline script.
    let page = reqwest::get(format!("{}/console", w.host.url)).await.unwrap();
    let csp = page.headers()["content-security-policy"].to_str().unwrap().to_string();
    assert!(csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"), "{csp}");
}

/// `daifa` run as a plugin author would, in `dir`; panics with its output
/// unless it exits as `ok` says.
fn author(args: &[&str], ok: bool) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_daifa"))
        .args(args)
        // The template's dependencies are those of the bundled plugins:
        // share their build instead of compiling them again.
        .env("CARGO_TARGET_DIR", common::repo_root().join("plugins/target"))
        .output()
        .expect("run daifa");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert_eq!(out.status.success(), ok, "daifa {args:?}:\n{text}");
    text
}

/// The guide's steps (docs/writing-a-plugin.md): a new crate from the
/// template, built, its fixtures run offline, deployed to a running
/// `daifa serve` with the CLI, a supplier connected to it — and that
/// supplier's orders flow through the new adapter to shipped and written
/// back, with no code outside the plugin.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_guide_new_build_test_deploy_and_orders_flow_through_the_new_adapter() {
    let work = tempfile::tempdir().unwrap();
    let crate_dir = work.path().join("guide-adapter");
    let crate_arg = crate_dir.display().to_string();
    author(&["plugin", "new", "guide-adapter", "--dir", &crate_arg], true);
    let built = author(&["plugin", "build", &crate_arg], true);
    assert!(built.contains("built guide-adapter@0.1.0"), "{built}");
    let tested = author(&["plugin", "test", &crate_arg], true);
    assert!(tested.contains("2 fixture(s), 0 failed"), "{tested}");
    // `invoke` takes the crate itself too (built and packed first).
    let described = author(&["plugin", "invoke", &crate_arg, "describe", "-c", "base_url=https://x.example"], true);
    assert!(described.contains("\"ok\": true") && described.contains("SUBMIT"), "{described}");
    // Its unit tests run natively against the SDK's mock host.
    let unit = Command::new("cargo")
        .args(["test", "--manifest-path"])
        .arg(crate_dir.join("Cargo.toml"))
        .env("CARGO_TARGET_DIR", common::repo_root().join("plugins/target"))
        .output()
        .expect("cargo test");
    let unit_text = String::from_utf8_lossy(&unit.stdout);
    assert!(
        unit.status.success() && unit_text.contains("2 passed"),
        "{unit_text}{}",
        String::from_utf8_lossy(&unit.stderr)
    );

    // A fixture that expects what the adapter does not answer fails, by name.
    let broken = crate_dir.join("fixtures/zz-wrong.toml");
    let text = std::fs::read_to_string(crate_dir.join("fixtures/query-stock.toml")).unwrap();
    std::fs::write(&broken, text.replace("available: 7", "available: 8")).unwrap();
    let failed = author(&["plugin", "test", &crate_arg], false);
    assert!(failed.contains("FAILED zz-wrong") && failed.contains("available: 8"), "{failed}");
    std::fs::remove_file(&broken).unwrap();

    // Deploy to a running host and connect supplier HZ to the new adapter.
    let w = World::start_without(200, 8, &["HZ"], |_| {}).await;
    let hz = SupplierSim::start(SupplierSimConfig { token: Some("token-guide".into()), ..Default::default() }, 0)
        .await
        .unwrap();
    let package = crate_dir.join("target/daifa-package");
    let package_arg = package.display().to_string();
    let installed = author(
        &[
            "plugin",
            "install",
            &package_arg,
            "-c",
            "base_url=http://127.0.0.1:9",
            "--activate",
            "--server",
            &w.host.url,
            "--token",
            TOKEN,
        ],
        true,
    );
    assert!(installed.contains("guide-adapter"), "{installed}");
    let body = json!({
        "plugin": "guide-adapter",
        "config": { "base_url": hz.base_url() },
        "secrets": { "api_token": "token-guide" },
        "poll_interval_ms": 200,
    });
    w.host.client().call(Method::PUT, "/suppliers/HZ/connection", Some(&body)).await.expect("connect HZ");
    let at_suppliers = w.wait_accepted().await;
    let ours = w.sent_to("HZ").await;
    let theirs: Vec<String> = hz.orders().into_iter().map(|o| o.0).collect();
    assert!(!ours.is_empty(), "HZ got purchase orders");
    assert_eq!(theirs.len(), ours.len(), "one order per PO at HZ");
    assert_eq!(theirs.into_iter().collect::<HashSet<_>>(), ours, "HZ holds exactly its POs");

    hz.ship_all();
    let _ = w.sims.values().map(|s| s.ship_all()).sum::<usize>();
    w.wait_written_back(at_suppliers).await;
    let hz_tracking: Vec<String> = hz.tracking_numbers().into_iter().map(|t| t.1).collect();
    w.check_end_state_with(&hz_tracking).await;
    // What the new adapter logged is there for its author.
    let logs = w.host.client().logs("guide-adapter", 0).await.unwrap();
    assert!(logs.to_string().contains("submitted PO"), "{logs}");
}

/// Supplier HZ is an EDI X12 partner behind a drop box (`edi-x12`): 850s
/// out; 997s, 855s and 856s back. The partner corrupts some of its
/// documents (our 997 rejects them, it sends them again corrected),
/// replays some (skipped), and refuses a few 850s outright (those POs are
/// cancelled at HZ and their lines routed elsewhere). At the end: one
/// order per accepted PO at the partner, a 997 for every document it sent,
/// every order written back with exactly the tracking numbers issued.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_edi_partner_takes_850s_and_answers_with_997_855_and_856() {
    use daifa_host::sim::edi_supplier::{EdiSim, EdiSimConfig};
    let w = World::start_without(300, 8, &["HZ"], |_| {}).await;
    // Several-line orders ship line by line: partial shipments, one 856 each.
    let hz = EdiSim::start(EdiSimConfig { backorder_every: 7, split_shipments: true, ..Default::default() }, 0)
        .await
        .unwrap();
    hz.corrupt_next(3);
    hz.replay_next(3);
    hz.refuse_next_850s(2);
    let client = w.host.client();
    let placeholders = common::config(&[("base_url", "http://127.0.0.1:9"), ("receiver_id", "-")]);
    client.install(&common::edi_x12_package(), &placeholders, true).await.expect("install edi-x12");
    let body = json!({
        "plugin": "edi-x12",
        "config": { "base_url": hz.base_url(), "receiver_id": "PARTNER" },
        "secrets": { "api_token": "edi-token" },
        "poll_interval_ms": 200,
        // More than the adapter allows: its manifest caps a connection at
        // one submit at a time (control numbers from a kv counter).
        "max_in_flight": 8,
    });
    client.call(Method::PUT, "/suppliers/HZ/connection", Some(&body)).await.expect("connect HZ to edi-x12");
    let at_suppliers = w.wait_accepted().await;

    let sent = w.sent_to("HZ").await;
    let pos = w.host.get("/purchase-orders?supplier=HZ&limit=10000").await;
    let pos = pos["purchase_orders"].as_array().unwrap().clone();
    let refused: HashSet<String> = pos
        .iter()
        .filter(|p| p["state"] == "cancelled")
        .map(|p| p["po_number"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(refused.len(), 2, "the two 850s the partner refused are cancelled at HZ: {refused:?}");
    let theirs: Vec<String> = hz.orders().into_iter().map(|o| o.po).collect();
    assert!(!theirs.is_empty(), "HZ got orders");
    assert_eq!(theirs.len(), theirs.iter().collect::<HashSet<_>>().len(), "one order per PO at the partner");
    let expected: HashSet<String> = sent.difference(&refused).cloned().collect();
    assert_eq!(theirs.into_iter().collect::<HashSet<_>>(), expected, "the partner holds exactly HZ's accepted POs");
    let c = hz.counts();
    assert_eq!((c.conflicting_850s, c.unreadable), (0, 0), "{c:?}");

    // An 856 for a PO never sent to HZ: an exception, nothing changes.
    let bogus = hz.ship_unknown("PO-NEVER-SENT");
    hz.ship_all();
    let _ = w.sims.values().map(|s| s.ship_all()).sum::<usize>();
    w.wait_written_back(at_suppliers).await;
    let hz_tracking: Vec<String> = hz.tracking_numbers().into_iter().map(|t| t.1).collect();
    w.check_end_state_with(&hz_tracking).await;
    let events = w.host.get("/operator-events?limit=1000").await;
    assert!(
        events.to_string().contains("PO-NEVER-SENT") && events.to_string().contains("never sent to HZ"),
        "an 856 for a PO never sent is an exception: {events}"
    );
    assert!(!w.kd.with(|s| s.outstocks.iter().any(|d| d["FCarriageNO"].as_str() == Some(bogus.as_str()))));
    // Every document the partner sent was answered by a 997: the three
    // corrupted ones rejected (and sent again), the rest accepted.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let c = hz.counts();
        if c.unacknowledged == 0 {
            assert_eq!(c.rejected_by_daifa, 3, "{c:?}");
            break;
        }
        assert!(Instant::now() < deadline, "documents without a 997: {c:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Supplier HZ runs Kingdee K3Cloud itself (`kingdee-supplier`, the
/// simulator's second-company mode with its strictness on): each PO
/// becomes one SAL_SaleOrder there (Save, Submit, Audit; our PO number in
/// its custom field), its warehouse ships with SAL_OUTSTOCKs carrying the
/// tracking number, and those come back as our shipments and are written
/// back to our ERP. A material its master data lacks is refused: that PO
/// is rejected at HZ and its lines go to other suppliers.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_supplier_running_kingdee_takes_pos_as_sales_orders_and_ships_them() {
    use daifa_host::sim::kingdee::{KingdeeSim, KingdeeSimConfig};
    let w = World::start_without(300, 8, &["HZ"], |_| {}).await;
    let catalog = daifa_host::sim::catalog::demo_catalog_toml(5_000, 7);
    let offers = daifa_host::routing::CatalogFile::from_toml(&catalog).unwrap().offers;
    let mut materials: Vec<String> = offers
        .iter()
        .filter(|o| o.supplier == "HZ")
        .map(|o| o.supplier_sku.clone().unwrap_or_else(|| o.sku.clone()))
        .collect();
    materials.sort();
    // Its master data lacks every tenth of our SKUs.
    let unknown: HashSet<String> = materials.iter().step_by(10).cloned().collect();
    let known: Vec<String> = materials.iter().filter(|m| !unknown.contains(*m)).cloned().collect();
    let cfg = KingdeeSimConfig::supplier_company(known);
    let app = cfg.app.clone();
    let hz = KingdeeSim::start(cfg, 0).await.unwrap();
    let client = w.host.client();
    let placeholders = common::config(&[
        ("server_url", "http://127.0.0.1:9/k3cloud/"),
        ("acct_id", "-"),
        ("user_name", "-"),
        ("app_id", "-"),
        ("app_secret", "-"),
        ("customer", "-"),
    ]);
    client.install(&common::kingdee_supplier_package(), &placeholders, true).await.expect("install kingdee-supplier");
    let body = json!({
        "plugin": "kingdee-supplier",
        "config": { "server_url": hz.server_url(), "acct_id": app.acct_id, "user_name": app.user_name, "app_id": app.app_id, "customer": "DAIFA" },
        "secrets": { "app_secret": app.app_secret },
        "poll_interval_ms": 300,
    });
    client.call(Method::PUT, "/suppliers/HZ/connection", Some(&body)).await.expect("connect HZ to kingdee-supplier");
    let at_suppliers = w.wait_accepted().await;

    let pos = w.host.get("/purchase-orders?supplier=HZ&limit=10000").await;
    let pos = pos["purchase_orders"].as_array().unwrap().clone();
    let accepted: HashSet<String> = pos
        .iter()
        .filter(|p| p["supplier_ref"].as_str().is_some_and(|r| r.starts_with("XSDD")))
        .map(|p| p["po_number"].as_str().unwrap().to_string())
        .collect();
    let refused = pos.iter().filter(|p| p["state"] == "rejected").count();
    let theirs: Vec<(String, String)> = hz.with(|s| {
        s.sale_orders
            .iter()
            .map(|o| {
                (o.bill_no.clone(), o.extra.get("F_SUP_CustPoNo").and_then(|v| v.as_str()).unwrap_or("").to_string())
            })
            .collect()
    });
    assert!(!accepted.is_empty(), "HZ took sales orders");
    assert!(refused > 0, "POs with a material HZ does not know are rejected (every tenth SKU)");
    let their_pos: Vec<&String> = theirs.iter().map(|t| &t.1).collect();
    assert_eq!(their_pos.len(), their_pos.iter().collect::<HashSet<_>>().len(), "one sales order per PO at HZ");
    assert_eq!(their_pos.into_iter().cloned().collect::<HashSet<_>>(), accepted, "HZ holds exactly its accepted POs");
    assert!(hz.with(|s| s.sale_orders.iter().all(|o| o.status == "C")), "every sales order audited");

    // HZ's warehouse ships each one with a tracking number.
    let mut tracking = Vec::new();
    for (i, (bill, _)) in theirs.iter().enumerate() {
        let t = format!("SFK3{i:08}");
        hz.ship_sale_order(bill, "SF", &t).expect("ship");
        tracking.push(t);
    }
    let _ = w.sims.values().map(|s| s.ship_all()).sum::<usize>();
    w.wait_written_back(at_suppliers).await;
    w.check_end_state_with(&tracking).await;
}
