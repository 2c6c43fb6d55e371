//! Ingest 10,000 orders (~30,000 line rows) from the K3Cloud simulator over
//! HTTP into SQLite and into PostgreSQL: orders/s for one full scan and the
//! requests it made; then the same at 2,000 rows per page with 150 ms of
//! latency per answer, where the requests, not the host, should be the limit.
//!
//! Last, 6,000 purchase orders through `ensure_purchase_order` (marker
//! lookup, Save, Submit, Audit): the rate of the first and last thousand
//! shows whether the simulator's marker lookups stay indexed.
//!
//! Run: `cargo bench -p daifa-host --bench ingest`

use std::sync::Arc;
use std::time::Instant;

use daifa_host::erp::kingdee::{AuthMode, KingdeeClient, KingdeeConfig};
use daifa_host::ingest::kingdee::{KingdeeIngestConfig, KingdeeIngester};
use daifa_host::sim::kingdee::{KingdeeSim, KingdeeSimConfig};
use daifa_host::store::{Store, StoreConfig};

const ORDERS: usize = 10_000;

fn client(sim: &KingdeeSim) -> Arc<KingdeeClient> {
    Arc::new(
        KingdeeClient::new(KingdeeConfig {
            server_url: sim.server_url(),
            credentials: sim.credentials(),
            auth: AuthMode::Signed,
            timeout_ms: 60_000,
        })
        .unwrap(),
    )
}

async fn run(name: &str, store: Store, sim: &KingdeeSim, page_size: i64) {
    let client = client(sim);
    let ing = KingdeeIngester::new(client, store.clone(), KingdeeIngestConfig { page_size, ..Default::default() });
    let requests_before = sim.with(|s| s.requests);
    let t = Instant::now();
    let r = ing.scan().await.unwrap();
    let secs = t.elapsed().as_secs_f64();
    let requests = sim.with(|s| s.requests) - requests_before;
    assert_eq!(r.outcome.received, ORDERS);
    println!(
        "{name:>10}: {} orders ({} line rows, {} pages of {page_size}, {requests} requests) in {:.2} s = {:.0} orders/s",
        r.orders,
        r.rows,
        r.pages,
        secs,
        r.orders as f64 / secs
    );
    // A second scan of the same window: everything is a dedup hit.
    let t = Instant::now();
    let r = ing.scan().await.unwrap();
    println!("{name:>10}: re-scan, {} unchanged, in {:.2} s", r.outcome.unchanged, t.elapsed().as_secs_f64());
}

async fn purchase_orders(sim: &KingdeeSim) {
    use daifa_host::erp::kingdee::documents::{PoLine, PurchaseOrderSettings, ensure_purchase_order};
    use futures::StreamExt;
    let client = client(sim);
    let settings = PurchaseOrderSettings::default();
    let line = PoLine {
        material: "MAT00001".into(),
        quantity: 2.into(),
        unit_price: rust_decimal::Decimal::new(1880, 2),
        tax_rate: 13.into(),
        note: String::new(),
        sale_entry: None,
    };
    let mut rates = Vec::new();
    for chunk in 0..6 {
        let t = Instant::now();
        let done: Vec<_> =
            futures::stream::iter(chunk * 1_000..(chunk + 1) * 1_000)
                .map(|i| {
                    let (client, settings, line) = (client.clone(), settings.clone(), line.clone());
                    async move {
                        ensure_purchase_order(&client, &settings, &format!("PO-BENCH-{i}"), "VEN01", &[line]).await
                    }
                })
                .buffer_unordered(8)
                .collect()
                .await;
        assert!(done.iter().all(Result::is_ok));
        rates.push(1_000.0 / t.elapsed().as_secs_f64());
    }
    println!(
        "purchase orders: 6,000 created (4 requests each); first 1,000 at {:.0}/s, last 1,000 at {:.0}/s",
        rates[0], rates[5]
    );
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let sim = KingdeeSim::start(KingdeeSimConfig::default(), 0).await.unwrap();
        sim.generate(ORDERS);
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite:{}", dir.path().join("bench.db").display());
        run("sqlite", Store::open(&StoreConfig { url, ..Default::default() }).await.unwrap(), &sim, 10_000).await;
        let url = format!("sqlite:{}", dir.path().join("bench-2000.db").display());
        run("sqlite", Store::open(&StoreConfig { url, ..Default::default() }).await.unwrap(), &sim, 2_000).await;
        sim.with(|s| s.faults.slow_ms = 150);
        let url = format!("sqlite:{}", dir.path().join("bench-latency.db").display());
        let store = Store::open(&StoreConfig { url, ..Default::default() }).await.unwrap();
        println!("with 150 ms per answer:");
        run("sqlite", store, &sim, 2_000).await;
        sim.with(|s| s.faults.slow_ms = 0);
        purchase_orders(&sim).await;
        let pg =
            std::env::var("DAIFA_TEST_PG_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
        let schema = format!("daifa_bench_{}", std::process::id());
        let store = Store::open(&StoreConfig {
            url: pg.clone(),
            schema: Some(schema.clone()),
            max_connections: 4,
            ..Default::default()
        })
        .await
        .unwrap();
        run("postgres", store.clone(), &sim, 10_000).await;
        store.close().await;
        let pool = sqlx::any::AnyPoolOptions::new().max_connections(1).connect(&pg).await.unwrap();
        sqlx::query(sqlx::AssertSqlSafe(format!("DROP SCHEMA \"{schema}\" CASCADE"))).execute(&pool).await.unwrap();
    });
}
