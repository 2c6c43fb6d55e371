//! A plugin's kv store under a plugin that fills it: the total-size quota
//! holds, what was stored survives a restart, and a small write costs a
//! small write. The first version kept every store in host memory and
//! rewrote it whole, hex-encoded, on every `set`.
//!
//! One test per file on purpose: it reads the process's own write counter
//! (`/proc/self/io`), which a test running beside it would disturb.

mod common;

use common::*;
use daifa_host::plugins::Registry;
use daifa_host::plugins::kv::{KvDb, KvUsage};

/// Bytes this process has passed to `write` and friends so far.
fn written_bytes() -> u64 {
    let io = std::fs::read_to_string("/proc/self/io").expect("/proc/self/io");
    io.lines()
        .find_map(|l| l.strip_prefix("wchar: "))
        .and_then(|v| v.trim().parse().ok())
        .expect("wchar in /proc/self/io")
}

#[tokio::test]
async fn kv_quota_is_on_total_bytes_and_a_small_write_costs_a_small_write() {
    let dir = tempfile::tempdir().unwrap();
    let reg = Registry::open(runtime(), Some(dir.path().to_path_buf())).await.unwrap();

    // The total quota: 16,000-byte values under 64 KiB in all stop at the
    // fifth key (4 × 16,002 = 64,008 bytes fit; 80,010 would not).
    let pkg = hostile_named("h-kv-total", |m| m.limits.kv_max_total_bytes = 64 << 10);
    reg.install(&pkg, &config(&[("mode", "kv-flood"), ("size", "16000"), ("keys", "100")])).await.unwrap();
    reg.activate("h-kv-total", &pkg.manifest.version).await.unwrap();
    let r = reg.get("h-kv-total").unwrap().submit_order(&order("KV-1", 1)).await.unwrap();
    assert!(
        r.supplier_ref.starts_with("wrote 4:") && r.supplier_ref.contains("80010 bytes; the limit is 65536"),
        "{}",
        r.supplier_ref
    );

    // ~1 MB stored, then 200 small writes of a cursor.
    let pkg = hostile_named("h-kv-rewrite", |_| {});
    let cfg = config(&[("mode", "kv-flood"), ("size", "16000"), ("keys", "64"), ("rewrites", "200")]);
    reg.install(&pkg, &cfg).await.unwrap();
    reg.activate("h-kv-rewrite", &pkg.manifest.version).await.unwrap();
    let before = written_bytes();
    let r = reg.get("h-kv-rewrite").unwrap().submit_order(&order("KV-2", 1)).await.unwrap();
    let written = written_bytes() - before;
    assert_eq!(r.supplier_ref, "wrote 64");
    let keys: u64 = (0..64).map(|i| format!("k{i}").len() as u64).sum();
    let stored = 64 * 16_000 + keys + "cursor".len() as u64 + "199".len() as u64;
    println!("kv: {stored} bytes stored, {written} bytes written for it and 200 rewrites of a 3-byte cursor");
    // Rewriting the whole store on each set wrote 200 × 2 MB (hex); a row
    // per key writes the data once plus a few pages per set.
    assert!(written < stored * 3 + 200 * 16 * 1024, "{written} bytes written for {stored} bytes stored");
    drop(reg);

    // A restart finds both stores as they were, the quota counted from disk.
    let reg = Registry::open(runtime(), Some(dir.path().to_path_buf())).await.unwrap();
    let db = KvDb::open(&dir.path().join("kv.sqlite")).await.unwrap();
    assert_eq!(db.scope("h-kv-total").usage().await.unwrap(), KvUsage { keys: 4, bytes: 4 * 16_002 });
    assert_eq!(db.scope("h-kv-rewrite").usage().await.unwrap(), KvUsage { keys: 65, bytes: stored });
    assert_eq!(kv_value(dir.path(), "h-kv-rewrite", "cursor").await.as_deref(), Some(&b"199"[..]));
    let r = reg.get("h-kv-total").unwrap().submit_order(&order("KV-3", 1)).await.unwrap();
    assert!(r.supplier_ref.starts_with("wrote 4:"), "overwrites fit, a fifth key still does not: {}", r.supplier_ref);
}
