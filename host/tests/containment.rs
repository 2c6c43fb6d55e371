//! The containment suite: one test per hostile case. Each installs a
//! well-behaved plugin (the real rest-json adapter against a supplier
//! simulator) and one hostile plugin that passed every install check, calls
//! the hostile one twice while four callers keep the healthy one busy, and
//! checks that the case was stopped by the limit meant for it, within its
//! deadline, counted against the hostile plugin only, that the healthy
//! plugin answered every call meanwhile, and that a version that hit a
//! limit or trapped is quarantined. Each prints its row of the matrix
//! (`cargo test --test containment -- --nocapture --test-threads 1`).

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use common::*;
use daifa_host::plugins::{CallError, LimitKind};
use daifa_host::sim::rest_supplier::{SupplierSim, SupplierSimConfig};

#[derive(Debug, Clone, Copy)]
enum Expect {
    Limit(LimitKind),
    Denied(&'static str),
    Trap(&'static str),
}

/// What a case's config needs from the simulator.
enum Target {
    None,
    /// `target` = this path on the simulator, allowed.
    Sim(&'static str),
    /// `target` = this URL, the simulator allowed.
    Url(&'static str),
    /// `target` = the simulator redirecting to 127.0.0.2 (not allowed).
    RedirectOut,
}

struct Case {
    name: &'static str,
    mode: &'static str,
    extra: &'static [(&'static str, &'static str)],
    target: Target,
    memory: Option<u64>,
    expect: Expect,
}

async fn run(case: Case) {
    let sim = SupplierSim::start(SupplierSimConfig::default(), 0).await.unwrap();
    let base = sim.base_url();
    let reg = Arc::new(registry().await);
    let good = rest_json_package();
    reg.install(&good, &config(&[("base_url", &base), ("api_token", "sim-token")])).await.unwrap();
    reg.activate("rest-json", &good.manifest.version).await.unwrap();

    let pkg = hostile_named(case.name, |m| {
        if let Some(mem) = case.memory {
            m.limits.memory_bytes = mem;
        }
    });
    let mut cfg = config(&[("mode", case.mode)]);
    for (k, v) in case.extra {
        cfg.insert(k.to_string(), v.to_string());
    }
    let target = match case.target {
        Target::None => None,
        Target::Sim(path) => Some(format!("{base}{path}")),
        Target::Url(url) => Some(url.to_string()),
        Target::RedirectOut => Some(format!("{base}/redirect?to=http://127.0.0.2:{}/stock", sim.addr().port())),
    };
    if let Some(t) = target {
        cfg.insert("target".into(), t);
        cfg.insert("allowed".into(), base.clone());
    }
    reg.install(&pkg, &cfg).await.unwrap_or_else(|e| panic!("{}: install: {e}", case.name));
    reg.activate(case.name, &pkg.manifest.version).await.unwrap();

    let stop = Arc::new(AtomicBool::new(false));
    let served = Arc::new(AtomicU64::new(0));
    let mut callers = Vec::new();
    for c in 0..4 {
        let (reg, stop, served) = (reg.clone(), stop.clone(), served.clone());
        callers.push(tokio::spawn(async move {
            let mut failures = Vec::new();
            let mut i = 0;
            while !stop.load(Ordering::Relaxed) {
                match reg.get("rest-json").unwrap().submit_order(&order(&format!("GOOD-{c}-{i}"), 3)).await {
                    Ok(r) if r.lines.len() == 3 => {
                        served.fetch_add(1, Ordering::Relaxed);
                    }
                    other => failures.push(format!("{other:?}")),
                }
                i += 1;
            }
            failures
        }));
    }

    let started = Instant::now();
    let plugin = reg.get(case.name).unwrap();
    let deadline = plugin.manifest.limits.timeout();
    let mut observed = String::new();
    let mut slowest = Duration::ZERO;
    for round in 0..2 {
        let t = Instant::now();
        let result = plugin.submit_order(&order(&format!("BAD-{round}"), 2)).await;
        slowest = slowest.max(t.elapsed());
        let matched = match (case.expect, &result) {
            (Expect::Limit(k), Err(CallError::LimitExceeded { kind, .. })) => k == *kind,
            (Expect::Denied(t), Err(CallError::CapabilityDenied { target, .. })) => target.contains(t),
            (Expect::Trap(r), Err(CallError::Trap { reason, .. })) => reason.contains(r),
            _ => false,
        };
        assert!(matched, "{}: expected {:?}, got {result:?}", case.name, case.expect);
        observed = match &result {
            Ok(_) => "answered".into(),
            Err(e) => e.to_string().chars().take(90).collect(),
        };
    }
    // The healthy callers get at least 300 ms in all, however fast the case.
    tokio::time::sleep_until((started + Duration::from_millis(300)).into()).await;
    stop.store(true, Ordering::Relaxed);
    let mut failures = Vec::new();
    for c in callers {
        failures.extend(c.await.unwrap());
    }
    let served = served.load(Ordering::Relaxed);

    // Its own deadline (the quarantine's spacing included) plus slack for a loaded 2-core machine.
    assert!(
        slowest <= deadline + Duration::from_millis(1_500),
        "{}: took {slowest:?} (deadline {deadline:?})",
        case.name
    );
    assert!(failures.is_empty(), "{}: the healthy plugin failed meanwhile: {failures:?}", case.name);
    assert!(served > 5, "{}: the healthy plugin served only {served} calls", case.name);
    let s = plugin.stats.snapshot();
    assert_eq!((s.calls, s.ok), (3, 1), "{}: the dry run and two refused calls: {s:?}", case.name);
    match case.expect {
        Expect::Limit(k) => assert_eq!(s.limits, vec![(k, 2)], "{}: {s:?}", case.name),
        Expect::Denied(_) => assert_eq!(s.denied, 2, "{}: {s:?}", case.name),
        Expect::Trap(_) => assert_eq!(s.traps, 2, "{}: {s:?}", case.name),
    }
    let g = reg.get("rest-json").unwrap().stats.snapshot();
    assert_eq!(g.calls, g.ok, "the healthy plugin's own counts: {g:?}");
    let listed = reg.list();
    let quarantine = listed.iter().find(|p| p.name == case.name).and_then(|p| p.versions[0].quarantine.clone());
    match case.expect {
        Expect::Limit(_) | Expect::Trap(_) => {
            assert!(quarantine.as_ref().is_some_and(|q| q.remaining_ms > 0), "{}: quarantined", case.name)
        }
        Expect::Denied(_) => assert!(quarantine.is_none(), "{}: a refused request is not a limit", case.name),
    }
    // Nothing is left poisoned.
    plugin.describe().await.unwrap_or_else(|e| panic!("{} after abuse: {e}", case.name));
    println!(
        "| {} | {:?} | {observed} (slowest {slowest:.1?}) | yes: healthy plugin {served} calls, 0 failed; quarantined: {} |",
        case.name,
        case.expect,
        quarantine.is_some()
    );
}

macro_rules! case {
    ($test:ident, $name:literal, $mode:literal, $extra:expr, $target:expr, $memory:expr, $expect:expr) => {
        #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
        async fn $test() {
            run(Case { name: $name, mode: $mode, extra: $extra, target: $target, memory: $memory, expect: $expect })
                .await;
        }
    };
}

case!(a_guest_spinning_to_its_deadline, "h-loop", "loop", &[], Target::None, None, Expect::Limit(LimitKind::Deadline));
case!(
    a_guest_growing_memory_past_its_cap,
    "h-memory",
    "memory",
    &[],
    Target::None,
    None,
    Expect::Limit(LimitKind::Memory)
);
case!(
    a_guest_recursing_without_end,
    "h-recursion",
    "recursion",
    &[],
    Target::None,
    None,
    Expect::Limit(LimitKind::Stack)
);
case!(a_guest_that_panics, "h-panic", "panic", &[], Target::None, None, Expect::Trap("panicked on purpose"));
case!(
    a_request_to_a_host_outside_the_allowlist,
    "h-http-direct",
    "http",
    &[],
    Target::Url("http://example.com/"),
    None,
    Expect::Denied("example.com")
);
case!(
    a_redirect_to_a_host_outside_the_allowlist,
    "h-http-redirect",
    "http",
    &[],
    Target::RedirectOut,
    None,
    Expect::Denied("127.0.0.2")
);
case!(
    a_100_mb_response,
    "h-http-100mb",
    "http",
    &[],
    Target::Sim("/big?bytes=100000000"),
    None,
    Expect::Limit(LimitKind::HttpResponseBytes)
);
case!(a_log_flood, "h-log-flood", "log-flood", &[], Target::None, None, Expect::Limit(LimitKind::LogBytes));
case!(
    a_4_mb_answer,
    "h-huge-output",
    "huge-output",
    &[("size", "4194304")],
    Target::None,
    Some(64 << 20),
    Expect::Limit(LimitKind::OutputBytes)
);

/// A package whose component would take the instance pool every plugin
/// shares (one memory per core instance, past the per-component maximum)
/// is refused at install, naming the count and the maximum.
#[tokio::test]
async fn a_component_that_would_take_the_shared_instance_pool() {
    use daifa_host::plugins::runtime::MAX_MEMORIES_PER_COMPONENT;
    let n = MAX_MEMORIES_PER_COMPONENT as usize + 1;
    let instances: String = (0..n).map(|i| format!("(core instance $i{i} (instantiate $m))")).collect();
    let component =
        wat::parse_str(format!("(component (core module $m (memory 1) (func (export \"f\"))) {instances})")).unwrap();
    let manifest = hostile_named("h-pool-grab", |_| {}).manifest;
    let pkg = daifa_host::plugins::PluginPackage::pack(manifest, component);
    let reg = registry().await;
    let err = reg.install(&pkg, &config(&[("mode", "ok")])).await.expect_err("refused").to_string();
    assert!(err.contains("shared by every plugin") && err.contains(&format!("{n} Wasm linear memories")), "{err}");
    assert!(reg.get("h-pool-grab").is_err(), "nothing installed");
    println!(
        "| h-pool-grab | per-component memories ({MAX_MEMORIES_PER_COMPONENT}) | refused at install: {} | yes: never ran |",
        err.chars().take(90).collect::<String>()
    );
}

/// A plugin filling its kv store stops at its total quota: its writes past
/// it are refused (the plugin is told, and carries on), nothing past the
/// quota is stored.
#[tokio::test]
async fn a_kv_flood_stops_at_its_quota() {
    let reg = registry().await;
    let pkg = hostile_named("h-kv-flood", |m| m.limits.kv_max_total_bytes = 64 << 10);
    reg.install(&pkg, &config(&[("mode", "kv-flood"), ("size", "16000"), ("keys", "100")])).await.unwrap();
    reg.activate("h-kv-flood", &pkg.manifest.version).await.unwrap();
    let r = reg.get("h-kv-flood").unwrap().submit_order(&order("KV-1", 1)).await.unwrap();
    assert!(
        r.supplier_ref.starts_with("wrote 4:") && r.supplier_ref.contains("the limit is 65536"),
        "{}",
        r.supplier_ref
    );
    println!(
        "| h-kv-flood | kv_max_total_bytes (65536) | {} | yes: 4 of 100 values stored |",
        r.supplier_ref.chars().take(90).collect::<String>()
    );
}
