//! Hostile components in real wasmtime: each misbehaviour gets its typed
//! error within its deadline, while a well-behaved plugin (rest-json against
//! the supplier simulator over real HTTP) keeps serving with zero failures.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use common::*;
use daifa_host::plugins::{CallError, LimitKind, PluginRuntime, Registry, RuntimeConfig};
use daifa_host::sim::rest_supplier::{SupplierSim, SupplierSimConfig};

/// (plugin name, mode, extra config, memory limit, expected error)
type Case<'a> = (&'static str, &'static str, Vec<(&'static str, &'a str)>, Option<u64>, Expect);

#[derive(Debug, Clone)]
enum Expect {
    Limit(LimitKind),
    Denied(&'static str),
    Trap(&'static str),
}

async fn install_hostile(reg: &Registry, name: &str, mode: &str, extra: &[(&str, &str)], memory: Option<u64>) {
    let pkg = hostile_named(name, |m| {
        if let Some(mem) = memory {
            m.limits.memory_bytes = mem;
        }
    });
    let mut cfg = config(&[("mode", mode)]);
    for (k, v) in extra {
        cfg.insert(k.to_string(), v.to_string());
    }
    reg.install(&pkg, &cfg).await.unwrap_or_else(|e| panic!("install {name}: {e}"));
    reg.activate(name, &pkg.manifest.version).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn hostile_plugins_fail_alone_while_a_good_plugin_keeps_serving() {
    let sim = SupplierSim::start(SupplierSimConfig::default(), 0).await.unwrap();
    let base = sim.base_url();
    let reg = Arc::new(registry().await);

    let good = rest_json_package();
    reg.install(&good, &config(&[("base_url", &base), ("api_token", "sim-token")])).await.unwrap();
    reg.activate("rest-json", &good.manifest.version).await.unwrap();

    // A host outside the allowlist: 127.0.0.2 is loopback too, but not granted.
    let outside = format!("http://127.0.0.2:{}/stock", sim.addr().port());
    let via_redirect = format!("{base}/redirect?to={outside}");
    let huge_body = format!("{base}/big?bytes=100000000");
    let cases: Vec<Case> = vec![
        ("h-loop", "loop", vec![], None, Expect::Limit(LimitKind::Deadline)),
        ("h-memory", "memory", vec![], None, Expect::Limit(LimitKind::Memory)),
        ("h-recursion", "recursion", vec![], None, Expect::Limit(LimitKind::Stack)),
        ("h-panic", "panic", vec![], None, Expect::Trap("panicked on purpose")),
        (
            "h-http-direct",
            "http",
            vec![("target", "http://example.com/"), ("allowed", &base)],
            None,
            Expect::Denied("example.com"),
        ),
        (
            "h-http-redirect",
            "http",
            vec![("target", &via_redirect), ("allowed", &base)],
            None,
            Expect::Denied("127.0.0.2"),
        ),
        (
            "h-http-100mb",
            "http",
            vec![("target", &huge_body), ("allowed", &base)],
            None,
            Expect::Limit(LimitKind::HttpResponseBytes),
        ),
        ("h-log-flood", "log-flood", vec![], None, Expect::Limit(LimitKind::LogBytes)),
        (
            "h-huge-output",
            "huge-output",
            vec![("size", "4194304")],
            Some(64 << 20),
            Expect::Limit(LimitKind::OutputBytes),
        ),
    ];
    for (name, mode, extra, mem, _) in &cases {
        install_hostile(&reg, name, mode, extra, *mem).await;
    }

    // The well-behaved plugin serves continuously from 4 callers.
    let stop = Arc::new(AtomicBool::new(false));
    let ok = Arc::new(AtomicU64::new(0));
    let mut good_callers = Vec::new();
    for c in 0..4 {
        let (reg, stop, ok) = (reg.clone(), stop.clone(), ok.clone());
        good_callers.push(tokio::spawn(async move {
            let mut failures = Vec::new();
            let mut i = 0;
            while !stop.load(Ordering::Relaxed) {
                let po = format!("GOOD-{c}-{i}");
                let plugin = reg.get("rest-json").unwrap();
                match plugin.submit_order(&order(&po, 3)).await {
                    Ok(r) if r.supplier_ref.starts_with("SUP-") && r.lines.len() == 3 => {
                        ok.fetch_add(1, Ordering::Relaxed);
                    }
                    other => failures.push(format!("{po}: {other:?}")),
                }
                i += 1;
            }
            failures
        }));
    }

    // Every hostile plugin at once, twice each.
    let mut hostile = Vec::new();
    for round in 0..2 {
        for (name, _, _, _, expect) in cases.clone() {
            let reg = reg.clone();
            hostile.push(tokio::spawn(async move {
                let plugin = reg.get(name).unwrap();
                let deadline = plugin.manifest.limits.timeout();
                let started = Instant::now();
                let result = plugin.submit_order(&order(&format!("BAD-{name}-{round}"), 2)).await;
                (name, expect, result, started.elapsed(), deadline)
            }));
        }
    }
    let mut problems = Vec::new();
    let mut matrix = vec!["| case | limit | observed | contained |".to_string(), "|---|---|---|---|".to_string()];
    for h in hostile {
        let (name, expect, result, elapsed, deadline) = h.await.unwrap();
        // Its own deadline plus scheduling slack on a loaded 2-core machine.
        if elapsed > deadline + Duration::from_millis(1500) {
            problems.push(format!("{name}: took {elapsed:?} (deadline {deadline:?})"));
        }
        let matched = match (&expect, &result) {
            (Expect::Limit(k), Err(CallError::LimitExceeded { kind, .. })) => k == kind,
            (Expect::Denied(t), Err(CallError::CapabilityDenied { target, .. })) => target.contains(t),
            (Expect::Trap(r), Err(CallError::Trap { reason, .. })) => reason.contains(r),
            _ => false,
        };
        let observed = match &result {
            Ok(r) => format!("answered {:?}", r.supplier_ref),
            Err(e) => format!("{e}"),
        };
        if !matched {
            problems.push(format!("{name}: expected {expect:?}, got {result:?}"));
        }
        matrix.push(format!(
            "| {name} | {expect:?} | {} in {elapsed:.1?} | {} |",
            observed.chars().take(90).collect::<String>(),
            if matched { "yes" } else { "NO" }
        ));
    }
    stop.store(true, Ordering::Relaxed);
    for c in good_callers {
        let failures = c.await.unwrap();
        problems.extend(failures.into_iter().map(|f| format!("good plugin failed: {f}")));
    }
    assert!(problems.is_empty(), "problems:\n{}", problems.join("\n"));
    let served = ok.load(Ordering::Relaxed);
    assert!(served > 10, "the good plugin served only {served} calls");
    matrix.sort();
    println!("{}", matrix.join("\n"));
    println!("good plugin served {served} calls with zero failures meanwhile");

    // Every failure was counted against its own plugin, and only there.
    for (name, _, _, _, expect) in &cases {
        let s = reg.get(name).unwrap().stats.snapshot();
        assert_eq!(s.calls, 3, "{name}: describe dry run + 2 calls: {s:?}");
        assert_eq!(s.ok, 1, "{name}: only the dry run succeeded: {s:?}");
        match expect {
            Expect::Limit(k) => assert_eq!(s.limits, vec![(*k, 2)], "{name}: {s:?}"),
            Expect::Denied(_) => assert_eq!(s.denied, 2, "{name}: {s:?}"),
            Expect::Trap(_) => assert_eq!(s.traps, 2, "{name}: {s:?}"),
        }
    }
    let g = reg.get("rest-json").unwrap().stats.snapshot();
    assert_eq!(g.calls, g.ok, "good plugin: {g:?}");

    // Nothing is left poisoned: the hostile plugins still answer `describe`.
    for (name, ..) in &cases {
        reg.get(name).unwrap().describe().await.unwrap_or_else(|e| panic!("{name} after abuse: {e}"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fuel_budget_stops_a_spinning_plugin() {
    // A separate engine with fuel metering, as a host configured for it.
    let rt = PluginRuntime::new(RuntimeConfig {
        fuel: true,
        max_concurrent_calls: 4,
        egress_allow_ips: vec!["127.0.0.0/8".into()],
        ..Default::default()
    })
    .unwrap();
    let reg = Registry::open(rt, None).await.unwrap();
    let pkg = hostile_named("h-fuel", |m| m.limits.fuel = Some(50_000_000));
    reg.install(&pkg, &config(&[("mode", "loop")])).await.unwrap();
    reg.activate("h-fuel", &pkg.manifest.version).await.unwrap();
    let err = reg.get("h-fuel").unwrap().submit_order(&order("FUEL-1", 1)).await.unwrap_err();
    assert!(matches!(err, CallError::LimitExceeded { kind: LimitKind::Fuel, .. }), "{err:?}");
    let s = reg.get("h-fuel").unwrap().stats.snapshot();
    assert!(s.fuel_consumed >= 50_000_000, "fuel is reported per call: {s:?}");
}

#[tokio::test]
async fn adapter_errors_and_kv_pass_through() {
    let reg = registry().await;
    let pkg = hostile_named("h-error", |_| {});
    reg.install(&pkg, &config(&[("mode", "error")])).await.unwrap();
    reg.activate("h-error", &pkg.manifest.version).await.unwrap();
    let p = reg.get("h-error").unwrap();
    match p.submit_order(&order("E-1", 1)).await {
        Err(CallError::Adapter {
            error: daifa_host::plugins::AdapterErrorKind::Transient { retry_after, .. }, ..
        }) => {
            assert_eq!(retry_after, Some(Duration::from_millis(1500)));
        }
        other => panic!("expected a transient adapter error, got {other:?}"),
    }
    let batch = p.poll_updates(Some("41")).await.unwrap();
    assert_eq!(batch.next_cursor.as_deref(), Some("42"));
}

/// A stock answer is bounded by what was asked: one SKU asked cannot come
/// back as thousands of entries (each a stock update in the host).
#[tokio::test]
async fn stock_answers_are_bounded_by_what_was_asked() {
    let reg = registry().await;
    let pkg = hostile_named("h-stock", |_| {});
    reg.install(&pkg, &config(&[("mode", "stock-flood"), ("size", "20000")])).await.unwrap();
    reg.activate("h-stock", &pkg.manifest.version).await.unwrap();
    let p = reg.get("h-stock").unwrap();
    let err = match p.query_stock(&["A".into()]).await {
        Ok(v) => panic!("{} entries accepted for one SKU asked", v.len()),
        Err(e) => e,
    };
    assert!(
        matches!(&err, CallError::LimitExceeded { kind: LimitKind::OutputBytes, detail, .. }
            if detail.contains("20001 entries for 1 SKU(s) asked")),
        "{err:?}"
    );
    assert_eq!(p.stats.snapshot().limits, vec![(LimitKind::OutputBytes, 1)], "counted as the plugin's limit hit");
    // Exactly what was asked passes.
    let pkg2 = hostile_named("h-stock2", |_| {});
    reg.install(&pkg2, &config(&[("mode", "stock-flood"), ("size", "0")])).await.unwrap();
    reg.activate("h-stock2", &pkg2.manifest.version).await.unwrap();
    let ok = reg.get("h-stock2").unwrap().query_stock(&["A".into(), "B".into()]).await.unwrap();
    assert_eq!(ok.iter().map(|l| l.supplier_sku.as_str()).collect::<Vec<_>>(), ["A", "B"]);
}

#[tokio::test]
async fn undeclared_operations_are_incompatible() {
    let reg = registry().await;
    let pkg = hostile_named("h-caps", |_| {});
    reg.install(&pkg, &config(&[])).await.unwrap();
    reg.activate("h-caps", &pkg.manifest.version).await.unwrap();
    let p = reg.get("h-caps").unwrap();
    // The fixture declares submit and poll only.
    let err = p.cancel_order("PO-1", None, "test").await.unwrap_err();
    assert!(matches!(&err, CallError::Incompatible { detail, .. } if detail.contains("`cancel`")), "{err:?}");
    assert!(matches!(p.query_stock(&["A".into()]).await, Err(CallError::Incompatible { .. })));
    assert_eq!(p.stats.snapshot().incompatible, 2);
}

/// What a request looked like when it arrived: method, headers, body.
async fn echo(req: axum::extract::Request) -> String {
    let method = req.method().to_string();
    let headers: Vec<String> =
        req.headers().iter().map(|(k, v)| format!("{k}: {}", v.to_str().unwrap_or("?"))).collect();
    let body = axum::body::to_bytes(req.into_body(), 1 << 20).await.unwrap_or_default();
    format!("{method}\n{}\n\n{}", headers.join("\n"), String::from_utf8_lossy(&body))
}

/// An origin on 127.0.0.1 serving `/echo`, and `/jump` answering 307 to `to`.
async fn origin(to: Option<String>) -> String {
    use axum::routing::any;
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://127.0.0.1:{}", l.local_addr().unwrap().port());
    let jump = move || {
        let to = to.clone().unwrap_or_default();
        async move { (axum::http::StatusCode::TEMPORARY_REDIRECT, [(axum::http::header::LOCATION, to)]) }
    };
    let app = axum::Router::new().route("/echo", any(echo)).route("/jump", any(jump));
    tokio::spawn(async move { axum::serve(l, app).await });
    url
}

/// A 307 to another origin replays neither the body nor anything that
/// looks like a credential (the same origin gets both); a plugin cannot set
/// the headers the host owns (`Host`, framing, hop-by-hop).
#[tokio::test]
async fn cross_origin_redirects_keep_credentials_and_bodies_home() {
    let b = origin(None).await;
    let a = origin(Some(format!("{b}/echo"))).await;
    let reg = registry().await;
    let (a2, b2) = (a.clone(), b.clone());
    let pkg = hostile_named("poster", move |m| m.permissions.allowed_outbound_hosts = vec![a2, b2]);
    let version = pkg.manifest.version.clone();
    for (name, target) in [("same", format!("{a}/echo")), ("cross", format!("{a}/jump"))] {
        let pkg = hostile_named(&format!("poster-{name}"), |m| m.permissions = pkg.manifest.permissions.clone());
        reg.install(&pkg, &config(&[("mode", "http-post"), ("target", &target)])).await.unwrap();
        reg.activate(&format!("poster-{name}"), &version).await.unwrap();
    }
    let same = reg.get("poster-same").unwrap().submit_order(&order("S-1", 1)).await.unwrap().supplier_ref;
    for sent in
        ["POST", "x-api-key: k-secret", "cookie: session=c-secret", "authorization: Bearer t-secret", "body-secret"]
    {
        assert!(same.contains(sent), "same origin gets {sent:?}: {same}");
    }
    let cross = reg.get("poster-cross").unwrap().submit_order(&order("C-1", 1)).await.unwrap().supplier_ref;
    assert!(cross.starts_with("GET\n"), "303 semantics across origins: {cross}");
    assert!(cross.contains("x-trace: keep-me"), "{cross}");
    for secret in ["k-secret", "c-secret", "t-secret", "body-secret"] {
        assert!(!cross.contains(secret), "{secret} followed the redirect to another origin: {cross}");
    }

    for header in ["Host", "Transfer-Encoding", "Connection", "Content-Length", "X-Forwarded-For"] {
        let name = format!("h-{}", header.to_ascii_lowercase());
        let pkg = hostile_named(&name, |m| m.permissions = pkg.manifest.permissions.clone());
        reg.install(&pkg, &config(&[("mode", "http-header"), ("target", &format!("{a}/echo")), ("name", header)]))
            .await
            .unwrap();
        reg.activate(&name, &version).await.unwrap();
        let err = reg.get(&name).unwrap().submit_order(&order("H-1", 1)).await.unwrap_err().to_string();
        assert!(err.contains(header) && err.contains("set by the host"), "{header}: {err}");
    }
}

/// Response headers count against the plugin's response-bytes cap: a
/// server answering a tiny body under 100 KB of headers cannot hand a
/// plugin capped at 1,000 bytes more than that.
#[tokio::test]
async fn response_headers_count_against_the_response_cap() {
    use axum::routing::get;
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://127.0.0.1:{}", l.local_addr().unwrap().port());
    let fat = || async {
        let mut h = axum::http::HeaderMap::new();
        for i in 0..50 {
            let name = axum::http::HeaderName::from_bytes(format!("x-fat-{i}").as_bytes()).unwrap();
            h.insert(name, axum::http::HeaderValue::from_str(&"f".repeat(2000)).unwrap());
        }
        (h, "ok")
    };
    let app = axum::Router::new().route("/fat", get(fat)).route("/thin", get(|| async { "ok" }));
    tokio::spawn(async move { axum::serve(l, app).await });
    let reg = registry().await;
    for (name, path) in [("fat", "/fat"), ("thin", "/thin")] {
        let b = base.clone();
        let pkg = hostile_named(name, move |m| {
            m.permissions.allowed_outbound_hosts = vec![b];
            m.limits.http_response_bytes = 1000;
        });
        reg.install(&pkg, &config(&[("mode", "http"), ("target", &format!("{base}{path}"))])).await.unwrap();
        reg.activate(name, &pkg.manifest.version).await.unwrap();
    }
    let ok = reg.get("thin").unwrap().submit_order(&order("T-1", 1)).await.unwrap();
    assert_eq!(ok.supplier_ref, "fetched 2 bytes", "a small answer passes");
    let err = reg.get("fat").unwrap().submit_order(&order("F-1", 1)).await.unwrap_err();
    assert!(
        matches!(&err, CallError::LimitExceeded { kind: LimitKind::HttpResponseBytes, .. }),
        "100 KB of headers under a 1,000-byte cap: {err:?}"
    );
}

/// An allowlist entry built from a secret config value is listed as its
/// template, never expanded: the secret does not leak through GET /plugins.
#[tokio::test]
async fn allowlist_entries_from_secrets_are_listed_as_templates() {
    let reg = registry().await;
    let pkg = hostile_named("secretive", |m| {
        m.permissions.allowed_outbound_hosts = vec!["{{ allowed }}".into(), "https://open.example".into()];
        let f = m.config.get_mut("allowed").unwrap();
        f.secret = true;
        f.default = None;
    });
    reg.install(&pkg, &config(&[("allowed", "https://tenant-8f3a9c.example:8443")])).await.unwrap();
    let listed = reg.list().into_iter().find(|p| p.name == "secretive").unwrap();
    let shown = &listed.versions[0].allowed_outbound_hosts;
    assert!(!shown.contains("tenant-8f3a9c"), "the secret leaked: {shown}");
    assert_eq!(shown, "{{ allowed }}, https://open.example:443");
    assert_eq!(listed.versions[0].config.get("allowed").map(String::as_str), Some("***"));
}

/// A plugin whose calls hang (each waits 3 s on its supplier) cannot take
/// every call slot: a healthy plugin called meanwhile starts at once. With
/// the share set to all slots, the healthy plugin's call that gets none
/// fails naming the holder, and is not counted as its own error.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_plugin_whose_calls_hang_cannot_take_every_call_slot() {
    let sim = SupplierSim::start(SupplierSimConfig::default(), 0).await.unwrap();
    let base = sim.base_url();
    for (per_plugin, starved) in [(None, false), (Some(8), true)] {
        let rt = PluginRuntime::new(RuntimeConfig {
            max_concurrent_calls: 8,
            max_calls_per_plugin: per_plugin,
            egress_allow_ips: vec!["127.0.0.0/8".into()],
            ..RuntimeConfig::default()
        })
        .unwrap();
        let reg = Arc::new(Registry::open(rt, None).await.unwrap());
        let good = hostile_named("h-good", |m| m.limits.timeout_ms = 1_000);
        reg.install(&good, &config(&[])).await.unwrap();
        reg.activate("h-good", &good.manifest.version).await.unwrap();
        let hog = hostile_named("h-hang", |m| m.limits.timeout_ms = 5_000);
        let slow = format!("{base}/slow?ms=3000");
        reg.install(&hog, &config(&[("mode", "http"), ("target", &slow), ("allowed", &base)])).await.unwrap();
        reg.activate("h-hang", &hog.manifest.version).await.unwrap();

        let hanging: Vec<_> = (0..20)
            .map(|i| {
                let reg = reg.clone();
                tokio::spawn(
                    async move { reg.get("h-hang").unwrap().submit_order(&order(&format!("HANG-{i}"), 1)).await },
                )
            })
            .collect();
        tokio::time::sleep(Duration::from_millis(300)).await;
        let share = reg.list().into_iter().find(|p| p.name == "h-hang").unwrap().call_slots;
        let good = reg.get("h-good").unwrap();
        let before = good.stats.snapshot();
        let started = Instant::now();
        let result = good.submit_order(&order("GOOD-1", 1)).await;
        let waited = started.elapsed();
        if starved {
            assert_eq!(share.in_use, 8, "{share:?}");
            let err = result.expect_err("no slot was free");
            assert!(
                matches!(&err, CallError::Crowded { holder, detail, .. }
                    if holder == "h-hang" && detail.contains("`h-hang` holds 8 of 8")),
                "{err:?}"
            );
            let s = good.stats.snapshot();
            assert_eq!((s.calls, s.host_errors), (before.calls, 0), "not the healthy plugin's error: {s:?}");
            let slots = reg.list().into_iter().find(|p| p.name == "h-hang").unwrap().call_slots;
            assert_eq!(slots.crowded_others, 1, "{slots:?}");
        } else {
            assert_eq!(share.in_use, 6, "three quarters of the slots at most: {share:?}");
            assert!(result.is_ok(), "{result:?}");
            assert!(waited < Duration::from_millis(500), "the healthy call waited {waited:?}");
        }
        for h in hanging {
            // Hung calls wait their turn; none is lost.
            let _ = h.await.unwrap();
        }
    }
}

/// The allowlist names hosts; the address a connection uses is checked too.
/// A plugin allowed `localhost` or `127.0.0.1` (or a name re-pointed there)
/// reaches nothing on this machine — the admin API listens there — nor a
/// cloud metadata address, unless the operator allows the range.
#[tokio::test]
async fn loopback_and_metadata_addresses_are_refused_unless_the_operator_allows_them() {
    let sim = SupplierSim::start(SupplierSimConfig::default(), 0).await.unwrap();
    let port = sim.addr().port();
    let cases = [
        (format!("http://localhost:{port}"), format!("http://localhost:{port}/stock"), "loopback"),
        (format!("http://127.0.0.1:{port}"), format!("http://127.0.0.1:{port}/stock"), "127.0.0.1 is a loopback"),
        ("http://169.254.169.254".to_string(), "http://169.254.169.254/latest/meta-data/".to_string(), "metadata"),
        ("http://10.0.0.1".to_string(), "http://10.0.0.1/".to_string(), "private"),
    ];
    for allow in [vec![], vec!["127.0.0.1/32".to_string()]] {
        let open = !allow.is_empty();
        let rt = PluginRuntime::new(RuntimeConfig {
            max_concurrent_calls: 4,
            egress_allow_ips: allow,
            ..Default::default()
        })
        .unwrap();
        let reg = Registry::open(rt, None).await.unwrap();
        for (i, (allowed, target, why)) in cases.iter().enumerate() {
            let name = format!("h-egress-{i}");
            let pkg = hostile_named(&name, |_| {});
            reg.install(&pkg, &config(&[("mode", "http"), ("target", target), ("allowed", allowed)])).await.unwrap();
            reg.activate(&name, &pkg.manifest.version).await.unwrap();
            let result = reg.get(&name).unwrap().submit_order(&order("EGRESS-1", 1)).await;
            match (open && i < 2, &result) {
                (true, Ok(r)) => assert!(r.supplier_ref.starts_with("fetched"), "{r:?}"),
                (false, Err(CallError::CapabilityDenied { target, .. })) => {
                    assert!(target.contains(why) && target.contains("egress_allow_ips"), "{name}: {target}");
                }
                _ => panic!("{name} (allowed by operator: {open}): {result:?}"),
            }
        }
    }
}

/// A version whose call spun to its deadline is quarantined: while it
/// lasts, that version runs one call at a time (the others wait their turn
/// within their own deadline, or give up as crowded, not as its failure),
/// `GET /plugins` shows why, and a healthy plugin beside it is untouched.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_version_that_hits_a_limit_is_quarantined_to_one_call_at_a_time() {
    let reg = Arc::new(registry().await);
    let pkg = hostile_named("h-spin", |m| m.limits.timeout_ms = 400);
    reg.install(&pkg, &config(&[("mode", "loop")])).await.unwrap();
    reg.activate("h-spin", &pkg.manifest.version).await.unwrap();
    let good = hostile_named("h-good", |_| {});
    reg.install(&good, &config(&[])).await.unwrap();
    reg.activate("h-good", &good.manifest.version).await.unwrap();

    let spin = reg.get("h-spin").unwrap();
    match spin.submit_order(&order("Q-1", 1)).await {
        Err(CallError::LimitExceeded { kind: LimitKind::Deadline, .. }) => {}
        other => panic!("expected the deadline, got {other:?}"),
    }
    let listed = reg.list();
    let q = listed.iter().find(|p| p.name == "h-spin").unwrap().versions[0].quarantine.clone().expect("quarantined");
    assert!(q.remaining_ms > 20_000 && q.calls == 1 && q.reason.contains("deadline"), "{q:?}");

    // Four callers at once: one runs, the next waits its turn, the rest give up crowded.
    let started = Instant::now();
    let mut calls = Vec::new();
    for i in 0..4 {
        let spin = spin.clone();
        calls.push(tokio::spawn(async move { spin.submit_order(&order(&format!("Q-{i}"), 1)).await }));
    }
    let mut deadline = 0;
    let mut crowded = 0;
    for c in calls {
        match c.await.unwrap() {
            Err(CallError::LimitExceeded { kind: LimitKind::Deadline, .. }) => deadline += 1,
            Err(CallError::Crowded { detail, .. }) => {
                assert!(detail.contains("quarantined"), "{detail}");
                crowded += 1
            }
            other => panic!("unexpected: {other:?}"),
        }
    }
    assert!(deadline >= 1 && crowded >= 1 && deadline + crowded == 4, "{deadline} ran, {crowded} crowded out");
    assert!(started.elapsed() >= Duration::from_millis(390), "they did not all run at once");
    assert!(deadline <= 2, "at most one at a time within a 400 ms wait: {deadline} ran");

    // The healthy plugin is not held back.
    let g = reg.get("h-good").unwrap();
    let t = Instant::now();
    let mut ok = Vec::new();
    for i in 0..4 {
        let g = g.clone();
        ok.push(tokio::spawn(async move { g.submit_order(&order(&format!("G-{i}"), 1)).await }));
    }
    for c in ok {
        c.await.unwrap().expect("the healthy plugin serves");
    }
    assert!(t.elapsed() < Duration::from_secs(2));
    assert!(reg.list().iter().find(|p| p.name == "h-good").unwrap().versions[0].quarantine.is_none());
}
