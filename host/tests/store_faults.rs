//! Storage faults on a real, tiny filesystem: a tmpfs mounted for the test
//! (the tests run as root, as CI does; without the right to mount they fail
//! rather than skip). The intake API is driven over real HTTP.
//!
//! What must hold: an order answered `received` is on disk (read back
//! through a fresh connection after a restart); while the store cannot write
//! the API answers 503 `store-unavailable` and confirms nothing; when the
//! fault clears the store writes again by itself. (A read-only remount
//! cannot be tested this way: the kernel refuses it while SQLite holds the
//! file open for writing.)

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use daifa_host::api;
use daifa_host::plugins::{PluginRuntime, Registry, RuntimeConfig};
use daifa_host::store::{Store, StoreConfig};
use serde_json::{Value, json};

const TOKEN: &str = "fault-test-token-0123456789";

/// A tmpfs of `size` mounted at a fresh directory; unmounted on drop.
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    fn mount(size: &str) -> Tmpfs {
        let dir = tempfile::tempdir().unwrap();
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        assert!(ok, "mounting a tmpfs failed: these storage-fault tests need root (CI runs as root)");
        Tmpfs { dir }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(self.path()).status();
    }
}

async fn open(dir: &Path) -> Store {
    let url = format!("sqlite:{}", dir.join("daifa.db").display());
    Store::open(&StoreConfig { url, ..Default::default() }).await.unwrap()
}

async fn serve(store: Store) -> String {
    let rt = PluginRuntime::new(RuntimeConfig {
        max_concurrent_calls: 2,
        egress_allow_ips: vec!["127.0.0.0/8".into()],
        ..Default::default()
    })
    .unwrap();
    let registry = Arc::new(Registry::open(rt, None).await.unwrap());
    let state = api::ApiState::new(registry, TOKEN).unwrap().with_store(store);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, api::router(state)).await });
    url
}

fn order(id: &str) -> Value {
    json!({
        "external_id": id, "customer": "shop-1",
        // Long text so that a few hundred orders fill a small disk.
        "remark": "备注".repeat(200),
        "ship_to": { "name": "王五", "phone": "13700137000", "province": "四川省", "city": "成都市",
                     "district": "武侯区", "street": "人民南路四段 1 号", "postcode": "610041" },
        "lines": [{ "line_id": "1", "sku": "MAT00001", "quantity": 2, "unit_price": "59.90", "tax_rate": 13 }],
    })
}

/// Posts one batch; returns (HTTP status, ids answered `received`, body).
async fn post(http: &reqwest::Client, url: &str, ids: &[String]) -> (u16, Vec<String>, Value) {
    let orders: Vec<Value> = ids.iter().map(|i| order(i)).collect();
    let r = http
        .post(format!("{url}/api/v1/orders"))
        .bearer_auth(TOKEN)
        .json(&json!({ "source": "shop", "orders": orders }))
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let body: Value = r.json().await.unwrap_or(Value::Null);
    let received = body["results"]
        .as_array()
        .map(|rs| {
            rs.iter()
                .filter(|r| r["status"] == "received")
                .filter_map(|r| r["external_id"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    (status, received, body)
}

/// Every id confirmed is in the store as seen by a brand-new connection
/// pool, and nothing unconfirmed is.
async fn assert_on_disk(dir: &Path, confirmed: &[String]) {
    let fresh = open(dir).await;
    let listed = fresh.list_orders(None, 1_000_000).await.unwrap();
    let mut on_disk: Vec<String> = listed.into_iter().map(|o| o.external_id).collect();
    on_disk.sort();
    let mut want = confirmed.to_vec();
    want.sort();
    assert_eq!(on_disk.len(), want.len(), "confirmed orders vs orders on disk");
    assert_eq!(on_disk, want);
    fresh.close().await;
}

fn ids(batch: usize, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("B{batch:04}-{i:03}")).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disk_full_confirms_nothing_it_did_not_keep_and_recovers() {
    let fs = Tmpfs::mount("3m");
    let dir: PathBuf = fs.path().join("data");
    let store = open(&dir).await;
    let url = serve(store.clone()).await;
    let http = reqwest::Client::new();
    // Leave a little room, then fill it with orders until the disk is full.
    let filler = fs.path().join("filler");
    let free = fs2_free(fs.path());
    std::fs::write(&filler, vec![0u8; free.saturating_sub(600 * 1024) as usize]).unwrap();

    let mut confirmed = Vec::new();
    let mut refusals = 0;
    for batch in 0..400 {
        let (status, received, body) = post(&http, &url, &ids(batch, 20)).await;
        match status {
            200 => confirmed.extend(received),
            503 => {
                assert_eq!(body["kind"], "store-unavailable", "{body}");
                assert!(received.is_empty());
                refusals += 1;
                if refusals >= 5 {
                    break;
                }
            }
            other => panic!("unexpected HTTP {other}: {body}"),
        }
    }
    assert!(refusals >= 5, "the disk never filled ({} orders confirmed)", confirmed.len());
    assert!(!store.health().writable, "health reports the fault");
    assert!(!confirmed.is_empty());

    // Free the space: the same host writes again without a restart.
    std::fs::remove_file(&filler).unwrap();
    let mut recovered = false;
    for attempt in 0..50 {
        let (status, received, body) = post(&http, &url, &ids(10_000 + attempt, 5)).await;
        if status == 200 {
            assert_eq!(received.len(), 5, "{body}");
            confirmed.extend(received);
            recovered = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(recovered, "the store did not recover after space was freed");
    assert!(store.health().writable);
    // Every connection of the pool is usable: many more batches, all kept.
    for batch in 0..20 {
        let (status, received, body) = post(&http, &url, &ids(20_000 + batch, 5)).await;
        assert_eq!(status, 200, "{body}");
        confirmed.extend(received);
    }
    store.close().await;
    assert_on_disk(&dir, &confirmed).await;
}

/// Free bytes on the file system holding `p` (`df` in 1K blocks).
fn fs2_free(p: &Path) -> u64 {
    let out = Command::new("df").args(["-k", "--output=avail"]).arg(p).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines().nth(1).and_then(|l| l.trim().parse::<u64>().ok()).unwrap() * 1024
}

/// PostgreSQL: another session holds a table lock. Intake does not wait for
/// as long as the lock: after `lock_timeout` it answers 503 with nothing
/// saved, and the next request after the lock is gone succeeds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_locked_table_answers_503_not_a_hang() {
    let url = std::env::var("DAIFA_TEST_PG_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
    let schema = format!("daifa_lock_{}", std::process::id());
    let store = Store::open(&StoreConfig {
        url: url.clone(),
        schema: Some(schema.clone()),
        max_connections: 4,
        ..Default::default()
    })
    .await
    .expect("PostgreSQL at 127.0.0.1:5432 must be reachable");
    let api = serve(store.clone()).await;
    let http = reqwest::Client::new();
    assert_eq!(post(&http, &api, &ids(0, 1)).await.0, 200);

    sqlx::any::install_default_drivers();
    let other = sqlx::any::AnyPoolOptions::new().max_connections(1).connect(&url).await.unwrap();
    let mut holder = other.begin().await.unwrap();
    sqlx::query(sqlx::AssertSqlSafe(format!("LOCK TABLE \"{schema}\".sales_orders IN ACCESS EXCLUSIVE MODE")))
        .execute(&mut *holder)
        .await
        .unwrap();
    let t = std::time::Instant::now();
    let (status, received, body) = post(&http, &api, &ids(1, 1)).await;
    let waited = t.elapsed();
    assert_eq!((status, body["kind"].as_str()), (503, Some("store-unavailable")), "{body}");
    assert!(received.is_empty());
    assert!(waited < std::time::Duration::from_secs(25), "bounded wait: {waited:?}");
    holder.rollback().await.unwrap();
    let (status, received, _) = post(&http, &api, &ids(1, 1)).await;
    assert_eq!((status, received.len()), (200, 1), "recovers once the lock is gone");
    assert_eq!(store.list_orders(None, 100).await.unwrap().len(), 2);
    store.close().await;
    sqlx::query(sqlx::AssertSqlSafe(format!("DROP SCHEMA \"{schema}\" CASCADE"))).execute(&other).await.unwrap();
}
