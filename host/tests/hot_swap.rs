//! Hot swap under load: 8 callers while versions are swapped and rolled
//! back 40 times; no call lost or failed, each answered by exactly one
//! version, and an activation under load costs about what it costs idle
//! (no starvation). Then a restart comes back with the same active version.

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use common::*;
use daifa_host::plugins::Registry;

fn median(mut d: Vec<Duration>) -> Duration {
    d.sort_unstable();
    d[d.len() / 2]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn swap_under_load_loses_nothing_and_survives_restart() {
    let dir = tempfile::tempdir().unwrap();
    let reg = Arc::new(Registry::open(runtime(), Some(dir.path().to_path_buf())).await.unwrap());
    let versions = ["1.0.0", "1.1.0", "2.0.0"];
    for v in versions {
        // Same code, a different `tag` per version: the answer itself says
        // which version's instance produced it.
        reg.install(&hostile_package(v), &config(&[("tag", &format!("v{v}"))])).await.unwrap();
    }
    // What an activation costs on this machine with nothing else running
    // (it persists the state with an fsync): the yardstick for under load.
    let mut idle = Vec::new();
    for k in 0..9 {
        let t = Instant::now();
        reg.activate("hostile", &versions[k % 3].parse().unwrap()).await.unwrap();
        idle.push(t.elapsed());
    }
    let idle = median(idle);
    reg.activate("hostile", &"1.0.0".parse().unwrap()).await.unwrap();

    let stop = Arc::new(AtomicBool::new(false));
    let calls = Arc::new(AtomicU64::new(0));
    let mut callers = Vec::new();
    for c in 0..8 {
        let (reg, stop, calls) = (reg.clone(), stop.clone(), calls.clone());
        callers.push(tokio::spawn(async move {
            let mut by_version: BTreeMap<String, u64> = BTreeMap::new();
            let mut failures = Vec::new();
            let mut i = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let po = format!("C{c}-{i}");
                match reg.get("hostile") {
                    Err(e) => failures.push(format!("{po}: no plugin: {e}")),
                    Ok(plugin) => {
                        let version = plugin.manifest.version.to_string();
                        match plugin.submit_order(&order(&po, 2)).await {
                            Ok(r) if r.supplier_ref == format!("v{version}:{po}") => {
                                *by_version.entry(version).or_default() += 1;
                            }
                            other => failures.push(format!("{po} on {version}: {other:?}")),
                        }
                    }
                }
                i += 1;
                calls.fetch_add(1, Ordering::Relaxed);
            }
            (i, by_version, failures)
        }));
    }
    // The callers are busy before the first swap.
    let warm = Instant::now();
    while calls.load(Ordering::Relaxed) < 200 && warm.elapsed() < Duration::from_secs(60) {
        std::thread::sleep(Duration::from_millis(5));
    }

    // 40 swaps with rollbacks mixed in, each timed. The pause between them
    // is a thread sleep: a tokio timer here would measure how late the
    // busy workers service timers, not the registry.
    let mut loaded = Vec::new();
    let mut rollbacks = 0u32;
    for swap in 0..40usize {
        let t = Instant::now();
        if swap % 5 == 4 {
            reg.rollback("hostile").await.unwrap();
            rollbacks += 1;
        } else {
            reg.activate("hostile", &versions[swap % versions.len()].parse().unwrap()).await.unwrap();
        }
        loaded.push(t.elapsed());
        std::thread::sleep(Duration::from_millis(5));
    }
    let swaps = loaded.len();
    let slowest = loaded.iter().max().copied().unwrap_or_default();
    let loaded = median(loaded);
    stop.store(true, Ordering::Relaxed);

    let mut attempted = 0;
    let mut answered: BTreeMap<String, u64> = BTreeMap::new();
    let mut failures = Vec::new();
    for c in callers {
        let (n, by_version, f) = c.await.unwrap();
        attempted += n;
        for (v, k) in by_version {
            *answered.entry(v).or_default() += k;
        }
        failures.extend(f);
    }
    let total: u64 = answered.values().sum();
    println!(
        "{attempted} calls, {swaps} swaps ({rollbacks} rollbacks), answered by version: {answered:?}; \
         activation median idle {idle:?}, under load {loaded:?} (slowest {slowest:?})"
    );
    assert!(failures.is_empty(), "{} failed calls, e.g. {:?}", failures.len(), &failures[..failures.len().min(5)]);
    assert_eq!(total, attempted, "every call answered exactly once");
    assert_eq!(answered.len(), 3, "all versions served traffic: {answered:?}");
    // Starved (an activation waiting behind the callers, as before calls
    // counted tokio's budget) costs hundreds of ms over its idle cost; a
    // fair scheduler keeps it near the idle cost whatever the disk.
    assert!(
        loaded <= idle * 10 + Duration::from_millis(50),
        "admin operations starve under load: median activation {loaded:?} under load vs {idle:?} idle"
    );

    // Explicit rollback semantics.
    reg.activate("hostile", &"2.0.0".parse().unwrap()).await.unwrap();
    reg.activate("hostile", &"1.1.0".parse().unwrap()).await.unwrap();
    assert_eq!(reg.rollback("hostile").await.unwrap().to_string(), "2.0.0");
    assert_eq!(reg.get("hostile").unwrap().manifest.version.to_string(), "2.0.0");
    let rollback_before = reg.list()[0].rollback_to.clone();
    assert!(rollback_before.is_some());

    // Restart: a new registry (and runtime) over the same directory.
    drop(reg);
    let rt2 = daifa_host::plugins::PluginRuntime::new(daifa_host::plugins::RuntimeConfig {
        max_concurrent_calls: 4,
        egress_allow_ips: vec!["127.0.0.0/8".into()],
        ..Default::default()
    })
    .unwrap();
    let reg2 = Registry::open(rt2, Some(dir.path().to_path_buf())).await.unwrap();
    let p = reg2.get("hostile").unwrap();
    assert_eq!(p.manifest.version.to_string(), "2.0.0", "restart keeps the active version");
    assert_eq!(p.submit_order(&order("AFTER", 1)).await.unwrap().supplier_ref, "v2.0.0:AFTER");
    let summary = &reg2.list()[0];
    assert_eq!(summary.versions.len(), 3);
    assert_eq!(summary.rollback_to, rollback_before, "rollback history survives too");

    // Disable stops new calls; activate brings it back.
    reg2.disable("hostile").await.unwrap();
    assert!(reg2.get("hostile").is_err());
    reg2.activate("hostile", &"1.0.0".parse().unwrap()).await.unwrap();
    assert!(reg2.get("hostile").is_ok());
}

#[tokio::test]
async fn kv_is_shared_by_versions_and_persists() {
    let dir = tempfile::tempdir().unwrap();
    let reg = Registry::open(runtime(), Some(dir.path().to_path_buf())).await.unwrap();
    reg.install(&hostile_package("1.0.0"), &config(&[])).await.unwrap();
    reg.activate("hostile", &"1.0.0".parse().unwrap()).await.unwrap();
    reg.get("hostile").unwrap().poll_updates(Some("7")).await.unwrap();
    drop(reg);
    use std::os::unix::fs::PermissionsExt;
    let cfg = std::fs::metadata(dir.path().join("plugins/hostile/1.0.0/config.json")).unwrap();
    assert_eq!(cfg.permissions().mode() & 0o777, 0o600, "config (secrets) is owner-only");
    assert_eq!(kv_value(dir.path(), "hostile", "last-cursor").await.as_deref(), Some(&b"7"[..]));
}

/// The dry run at install (and at every restart) runs `describe` on a
/// scratch kv: a version never activated cannot write the live plugin's.
#[tokio::test]
async fn dry_runs_never_write_the_live_kv() {
    let dir = tempfile::tempdir().unwrap();
    let reg = Registry::open(runtime(), Some(dir.path().to_path_buf())).await.unwrap();
    reg.install(&hostile_package("1.0.0"), &config(&[])).await.unwrap();
    reg.activate("hostile", &"1.0.0".parse().unwrap()).await.unwrap();
    reg.get("hostile").unwrap().poll_updates(Some("7")).await.unwrap();
    reg.install(&hostile_package("1.1.0"), &config(&[("mode", "kv-describe")])).await.unwrap();
    drop(reg);
    let reg = Registry::open(runtime(), Some(dir.path().to_path_buf())).await.unwrap();
    assert_eq!(reg.list()[0].versions.len(), 2);
    assert!(kv_value(dir.path(), "hostile", "last-cursor").await.is_some(), "the live plugin's own writes stay");
    assert_eq!(kv_value(dir.path(), "hostile", "written-by-describe").await, None, "a dry run wrote the live kv");
}

/// `daifa plugin remove`: an inactive version goes with its files, for
/// good (a restart does not bring it back); the active one is refused
/// while it serves; the last version takes the plugin with it.
#[tokio::test]
async fn versions_can_be_removed_but_not_the_one_serving() {
    let dir = tempfile::tempdir().unwrap();
    let reg = Registry::open(runtime(), Some(dir.path().to_path_buf())).await.unwrap();
    for v in ["1.0.0", "1.1.0"] {
        reg.install(&hostile_package(v), &config(&[])).await.unwrap();
    }
    reg.activate("hostile", &"1.0.0".parse().unwrap()).await.unwrap();
    reg.activate("hostile", &"1.1.0".parse().unwrap()).await.unwrap();
    let err = reg.remove("hostile", &"1.1.0".parse().unwrap()).await.unwrap_err().to_string();
    assert!(err.contains("active version"), "{err}");
    reg.remove("hostile", &"1.0.0".parse().unwrap()).await.unwrap();
    assert!(!dir.path().join("plugins/hostile/1.0.0").exists(), "its files are gone");
    assert!(reg.rollback("hostile").await.is_err(), "nothing to roll back to");
    assert!(reg.remove("hostile", &"9.9.9".parse().unwrap()).await.is_err());
    drop(reg);

    let reg = Registry::open(runtime(), Some(dir.path().to_path_buf())).await.unwrap();
    let listed = &reg.list()[0];
    assert_eq!(listed.versions.len(), 1, "a restart does not bring it back");
    assert_eq!(reg.get("hostile").unwrap().manifest.version.to_string(), "1.1.0");
    reg.disable("hostile").await.unwrap();
    reg.remove("hostile", &"1.1.0".parse().unwrap()).await.unwrap();
    assert!(reg.list().is_empty(), "the last version took the plugin");
    assert!(!dir.path().join("plugins/hostile").exists());
    drop(reg);
    let reg = Registry::open(runtime(), Some(dir.path().to_path_buf())).await.unwrap();
    assert!(reg.list().is_empty());
}

#[tokio::test]
async fn restart_loads_compiled_code_from_the_cache() {
    use daifa_host::plugins::{PluginRuntime, RuntimeConfig};
    let dir = tempfile::tempdir().unwrap();
    let cfg = RuntimeConfig {
        max_concurrent_calls: 4,
        cache_dir: Some(dir.path().join("cache")),
        egress_allow_ips: vec!["127.0.0.0/8".into()],
        ..Default::default()
    };
    let rt = PluginRuntime::new(cfg.clone()).unwrap();
    let reg = Registry::open(rt.clone(), Some(dir.path().join("reg"))).await.unwrap();
    reg.install(&hostile_package("1.0.0"), &config(&[])).await.unwrap();
    reg.activate("hostile", &"1.0.0".parse().unwrap()).await.unwrap();
    let (compiled, hits) = rt.compile_counts();
    assert!(compiled >= 1, "first start compiles");
    assert_eq!((compiled, hits), (1, 0), "one compile per package, no second validation");
    drop(reg);
    drop(rt);

    let rt2 = PluginRuntime::new(cfg).unwrap();
    let reg2 = Registry::open(rt2.clone(), Some(dir.path().join("reg"))).await.unwrap();
    assert_eq!(rt2.compile_counts(), (0, 1), "restart loads from the cache, compiles nothing");
    let r = reg2.get("hostile").unwrap().submit_order(&order("CACHED", 1)).await.unwrap();
    assert_eq!(r.supplier_ref, "hostile:CACHED");
}

/// An install whose dry run hangs (until its 2 s deadline) holds up no one:
/// an emergency `disable` of another plugin, and of the same plugin, go
/// through at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_operations_do_not_wait_behind_a_slow_dry_run() {
    let reg = Arc::new(registry().await);
    for name in ["other", "slowpoke"] {
        let pkg = hostile_named(name, |_| {});
        reg.install(&pkg, &config(&[])).await.unwrap();
        reg.activate(name, &pkg.manifest.version).await.unwrap();
    }
    let slow = {
        let reg = reg.clone();
        tokio::spawn(async move {
            let pkg = hostile_named("slowpoke", |m| m.version = "2.0.0".parse().unwrap());
            reg.install(&pkg, &config(&[("mode", "describe-spin")])).await
        })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    for name in ["other", "slowpoke"] {
        let t = Instant::now();
        reg.disable(name).await.unwrap();
        assert!(t.elapsed() < Duration::from_millis(500), "disable {name} waited {:?}", t.elapsed());
    }
    let refused = slow.await.unwrap().unwrap_err().to_string();
    assert!(refused.contains("deadline") || refused.contains("dry-run"), "{refused}");
}

/// At start the host opens the registry at once and loads installed
/// versions in the background, several at a time: three versions whose dry
/// runs each wait 1.5 s on the network load in about 1.5 s, not 4.5 s, and
/// a version becomes callable as soon as it is loaded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn installed_versions_load_in_parallel_after_open() {
    let sim = daifa_host::sim::rest_supplier::SupplierSim::start(Default::default(), 0).await.unwrap();
    let base = sim.base_url();
    let slow = format!("{base}/slow?ms=1500");
    let dir = tempfile::tempdir().unwrap();
    let reg = Registry::open(runtime(), Some(dir.path().to_path_buf())).await.unwrap();
    for v in ["1.0.0", "1.1.0", "1.2.0"] {
        let cfg = config(&[("mode", "describe-sleep"), ("target", &slow), ("allowed", &base)]);
        reg.install(&hostile_package(v), &cfg).await.unwrap();
    }
    reg.activate("hostile", &"1.2.0".parse().unwrap()).await.unwrap();
    drop(reg);

    let t = Instant::now();
    let reg = Arc::new(Registry::open_deferred(runtime(), Some(dir.path().to_path_buf())).await.unwrap());
    assert!(t.elapsed() < Duration::from_millis(500), "open took {:?}", t.elapsed());
    assert_eq!(reg.loaded(), (0, 3));
    assert!(reg.get("hostile").is_err(), "not callable before it is loaded");
    // The API answers meanwhile, and says it is not ready.
    let state = daifa_host::api::ApiState::new(reg.clone(), "test-admin-token-0123456789").unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let readyz = format!("http://{}/readyz", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, daifa_host::api::router(state)).await });
    let loading = {
        let reg = reg.clone();
        tokio::spawn(async move {
            let t = Instant::now();
            reg.load_installed().await;
            t.elapsed()
        })
    };
    let r = reqwest::get(&readyz).await.unwrap();
    assert_eq!(r.status(), 503);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["waiting_for"][0], "plugins: 0 of 3 installed versions loaded", "{body}");
    let took = loading.await.unwrap();
    assert_eq!(reg.loaded(), (3, 3));
    assert!(took < Duration::from_millis(3_000), "three 1.5 s dry runs took {took:?}: not in parallel");
    assert_eq!(reqwest::get(&readyz).await.unwrap().status(), 200);
    let r = reg.get("hostile").unwrap().submit_order(&order("AFTER", 1)).await.unwrap();
    assert_eq!(r.supplier_ref, "hostile:AFTER");
}

/// A canary takes its share of calls beside the active version; one that
/// fails is rolled back, one that does well is promoted; the choice
/// survives a restart; what makes no sense is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_canary_is_rolled_back_and_a_good_one_promoted() {
    use daifa_host::plugins::CanaryPolicy;
    let dir = tempfile::tempdir().unwrap();
    let reg = Registry::open(runtime(), Some(dir.path().to_path_buf())).await.unwrap();
    reg.install(&hostile_package("1.0.0"), &config(&[("tag", "v1")])).await.unwrap();
    reg.install(&hostile_package("2.0.0"), &config(&[("mode", "error")])).await.unwrap();
    reg.install(&hostile_package("3.0.0"), &config(&[("tag", "v3")])).await.unwrap();
    let v = |s: &str| s.parse::<semver::Version>().unwrap();
    reg.activate("hostile", &v("1.0.0")).await.unwrap();

    for (version, pct, why) in [("2.0.0", 0, "1-99"), ("2.0.0", 100, "1-99"), ("1.0.0", 30, "already the active")] {
        let e = reg.start_canary("hostile", &v(version), pct).await.unwrap_err().to_string();
        assert!(e.contains(why), "{version} {pct}: {e}");
    }
    reg.start_canary("hostile", &v("2.0.0"), 30).await.unwrap();
    assert_eq!(reg.list()[0].canary.as_ref().map(|c| c.percent), Some(30));
    let e = reg.remove("hostile", &v("2.0.0")).await.unwrap_err().to_string();
    assert!(e.contains("is the canary"), "{e}");

    // A restart keeps the canary running.
    drop(reg);
    let reg = Registry::open(runtime(), Some(dir.path().to_path_buf())).await.unwrap();
    let mut failed = 0;
    for i in 0..300 {
        if reg.get("hostile").unwrap().submit_order(&order(&format!("C-{i}"), 1)).await.is_err() {
            failed += 1;
        }
    }
    assert!((45..=135).contains(&failed), "about 30 % of 300 calls went to the canary: {failed}");

    let policy = CanaryPolicy { min_calls: 20, promote_after_calls: 100, ..CanaryPolicy::default() };
    let decided = reg.judge_canaries(&policy).await;
    assert_eq!(decided.len(), 1, "{decided:?}");
    assert_eq!((decided[0].action, decided[0].version.as_str()), ("rolled_back", "2.0.0"));
    assert!(decided[0].reason.contains("canary calls failed (100.0 %) against 0.0 % for 1.0.0"), "{decided:?}");
    assert!(reg.list()[0].canary.is_none());
    for i in 0..50 {
        let r = reg.get("hostile").unwrap().submit_order(&order(&format!("D-{i}"), 1)).await.unwrap();
        assert!(r.supplier_ref.starts_with("v1:"), "all on the stable version after the rollback");
    }

    // A good canary is promoted once it has made enough calls.
    reg.start_canary("hostile", &v("3.0.0"), 50).await.unwrap();
    assert!(reg.judge_canaries(&policy).await.is_empty(), "no verdict before min_calls");
    for i in 0..400 {
        reg.get("hostile").unwrap().submit_order(&order(&format!("E-{i}"), 1)).await.unwrap();
    }
    let decided = reg.judge_canaries(&policy).await;
    assert_eq!((decided[0].action, decided[0].version.as_str()), ("promoted", "3.0.0"), "{decided:?}");
    let summary = &reg.list()[0];
    assert_eq!((summary.active.as_deref(), summary.canary.is_none()), (Some("3.0.0"), true));
    let r = reg.get("hostile").unwrap().submit_order(&order("F-1", 1)).await.unwrap();
    assert!(r.supplier_ref.starts_with("v3:"), "{r:?}");
}
