//! Per-call cost of `submit-order` with a ~1 KB order:
//! - `full_path`: what production does — permit, fresh `Store` with limits
//!   and deadline, instantiate from `InstancePre`, call, type conversion,
//!   output check, stats;
//! - `bare_reused_instance`: a plain wasmtime call into one long-lived
//!   instance of the same component.
//!
//! Run: `cargo bench -p daifa-host --bench plugin_call`
//! (the concurrent and hot-swap numbers: `--bench plugin_throughput`).

#[path = "../tests/common/mod.rs"]
mod common;

use criterion::{Criterion, criterion_group, criterion_main};

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let (reg, order) = rt.block_on(async {
        let reg = common::registry().await;
        let pkg = common::hostile_package("1.0.0");
        reg.install(&pkg, &common::config(&[])).await.unwrap();
        reg.activate("hostile", &pkg.manifest.version).await.unwrap();
        (reg, common::order("PO-BENCH-000001", 6))
    });
    println!("order payload ≈ {} bytes as JSON", order_json_len(&order));

    let mut g = c.benchmark_group("submit_order_1kb");
    g.bench_function("full_path", |b| {
        b.to_async(&rt).iter(|| async {
            let p = reg.get("hostile").unwrap();
            p.submit_order(&order).await.unwrap()
        })
    });
    let mut pinned = rt.block_on(async { reg.get("hostile").unwrap().pinned_instance().await.unwrap() });
    g.bench_function("bare_reused_instance", |b| b.iter(|| rt.block_on(pinned.submit_order(&order)).unwrap().unwrap()));
    g.finish();
}

fn order_json_len(o: &daifa_host::plugins::bindings::PurchaseOrder) -> usize {
    let lines: usize =
        o.lines.iter().map(|l| l.line_id.len() + l.our_sku.len() + l.supplier_sku.len() + l.unit_cost.len() + 60).sum();
    let a = &o.ship_to;
    lines
        + o.po_number.len()
        + o.idempotency_key.len()
        + a.name.len()
        + a.phone.len()
        + a.province.len()
        + a.city.len()
        + a.district.len()
        + a.street.len()
        + a.postcode.len()
        + a.country.len()
        + 200
}

criterion_group!(benches, bench);
criterion_main!(benches);
