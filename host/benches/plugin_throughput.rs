//! Calls/s with 8 concurrent callers through the full host path, and the
//! latency distribution in steady state vs during continuous hot swaps.
//!
//! Run: `cargo bench -p daifa-host --bench plugin_throughput`

#[path = "../tests/common/mod.rs"]
mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use daifa_host::plugins::Registry;

const CALLERS: usize = 8;

async fn run(reg: Arc<Registry>, secs: u64, swap: bool) -> (f64, Vec<Duration>, u32) {
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    for c in 0..CALLERS {
        let (reg, stop) = (reg.clone(), stop.clone());
        tasks.push(tokio::spawn(async move {
            let order = common::order(&format!("PO-T{c}"), 6);
            let mut lat = Vec::with_capacity(200_000);
            while !stop.load(Ordering::Relaxed) {
                let t = Instant::now();
                let p = reg.get("hostile").expect("active plugin");
                p.submit_order(&order).await.expect("call succeeds");
                lat.push(t.elapsed());
            }
            lat
        }));
    }
    let started = Instant::now();
    let mut swaps = 0u32;
    while started.elapsed() < Duration::from_secs(secs) {
        tokio::time::sleep(Duration::from_millis(50)).await;
        if swap {
            let v = if swaps.is_multiple_of(2) { "2.0.0" } else { "1.0.0" };
            reg.activate("hostile", &v.parse().unwrap()).await.unwrap();
            swaps += 1;
        }
    }
    stop.store(true, Ordering::Relaxed);
    let elapsed = started.elapsed().as_secs_f64();
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    all.sort();
    (all.len() as f64 / elapsed, all, swaps)
}

fn pct(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * p) as usize]
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` would too. Keep it quick under test.
    let quick = std::env::args().any(|a| a == "--test");
    let secs = if quick { 1 } else { 10 };
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let reg = Arc::new(common::registry().await);
        for v in ["1.0.0", "2.0.0"] {
            reg.install(&common::hostile_package(v), &common::config(&[])).await.unwrap();
        }
        reg.activate("hostile", &"1.0.0".parse().unwrap()).await.unwrap();
        // Warm up: pool slots, caches.
        run(reg.clone(), 1, false).await;

        let (steady_rate, steady, _) = run(reg.clone(), secs, false).await;
        let (swap_rate, swapping, swaps) = run(reg.clone(), secs, true).await;
        println!("{CALLERS} concurrent callers, full host path, submit-order with a ~1 KB order, {secs} s each:");
        println!(
            "  steady : {:>8.0} calls/s  p50 {:>7.1?}  p99 {:>7.1?}  max {:>7.1?}",
            steady_rate,
            pct(&steady, 0.5),
            pct(&steady, 0.99),
            steady.last().unwrap()
        );
        println!(
            "  hot swap every 50 ms ({swaps} swaps): {:>8.0} calls/s  p50 {:>7.1?}  p99 {:>7.1?}  max {:>7.1?}",
            swap_rate,
            pct(&swapping, 0.5),
            pct(&swapping, 0.99),
            swapping.last().unwrap()
        );
        let ratio = pct(&swapping, 0.99).as_secs_f64() / pct(&steady, 0.99).as_secs_f64();
        println!("  p99 during swap / steady p99 = {ratio:.2}");
    });
}
