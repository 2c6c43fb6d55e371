//! Kingdee ingestion against the K3Cloud simulator over real HTTP, into a
//! real SQLite file: exactly once across pages, with concurrent edits, a
//! session expiry and a crash between fetch and commit.

use std::collections::HashMap;
use std::sync::Arc;

use daifa_host::domain::{OrderState, Sku};
use daifa_host::erp::kingdee::{AuthMode, KingdeeClient, KingdeeConfig};
use daifa_host::ingest::kingdee::{KingdeeIngestConfig, KingdeeIngester};
use daifa_host::sim::kingdee::{Faults, KingdeeSim, KingdeeSimConfig, SimSaleOrder};
use daifa_host::store::{Store, StoreConfig};
use rust_decimal::Decimal;

async fn store(dir: &tempfile::TempDir) -> Store {
    let url = format!("sqlite:{}", dir.path().join("daifa.db").display());
    Store::open(&StoreConfig { url, ..Default::default() }).await.unwrap()
}

fn client(sim: &KingdeeSim, auth: AuthMode) -> Arc<KingdeeClient> {
    Arc::new(
        KingdeeClient::new(KingdeeConfig {
            server_url: sim.server_url(),
            credentials: sim.credentials(),
            auth,
            timeout_ms: 30_000,
        })
        .unwrap(),
    )
}

fn cfg(page: i64) -> KingdeeIngestConfig {
    KingdeeIngestConfig { page_size: page, ..Default::default() }
}

/// Every approved drop-ship order in the ERP is in the store exactly once,
/// at its latest revision, with its lines.
async fn assert_mirrors(sim: &KingdeeSim, store: &Store) {
    let expected: Vec<SimSaleOrder> =
        sim.with(|s| s.sale_orders.iter().filter(|o| o.status == "C" && o.dropship == "1").cloned().collect());
    let listed = store.list_orders(None, 1_000_000).await.unwrap();
    let by_ext: HashMap<&str, usize> = listed.iter().map(|o| (o.external_id.as_str(), 1)).collect();
    assert_eq!(listed.len(), by_ext.len(), "no duplicates");
    assert_eq!(listed.len(), expected.len(), "every approved drop-ship order, and nothing else");
    // Spot-check contents (all of them for small sets).
    for o in expected.iter().step_by((expected.len() / 300).max(1)) {
        let got = store.order_by_external("kingdee", &o.fid.to_string()).await.unwrap().expect("ingested");
        assert_eq!(got.content.source_modified, o.modify_date, "latest revision of {}", o.fid);
        assert_eq!(got.content.lines.len(), o.lines.len(), "all lines of {}", o.fid);
        for (g, l) in got.content.lines.iter().zip(&o.lines) {
            assert_eq!(g.sku, Sku(l.material.clone()));
            assert_eq!(g.quantity, l.qty.parse::<Decimal>().unwrap());
        }
        assert_eq!(got.content.ship_to.city, o.city);
        // What routing rules match on: the selling organisation and marketplace.
        assert_eq!(
            (got.content.sales_org.as_str(), got.content.platform.as_str()),
            (o.sale_org.as_str(), o.platform.as_str())
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_orders_exactly_once_with_edits_and_session_expiry() {
    let sim = KingdeeSim::start(KingdeeSimConfig::default(), 0).await.unwrap();
    sim.generate(10_000);
    // Some orders the poller must not take: in approval, and not drop-ship.
    let fids: Vec<i64> = sim.with(|s| s.sale_orders.iter().map(|o| o.fid).collect());
    for fid in fids.iter().step_by(97) {
        sim.modify(*fid, |o| o.status = "B".into());
    }
    for fid in fids.iter().skip(5).step_by(89) {
        sim.modify(*fid, |o| o.dropship = "0".into());
    }
    // While the first scan runs: 300 edits and 300 new orders after the 3rd
    // page, and every session dropped after the 5th authenticated request.
    sim.with(|s| {
        s.faults = Faults { modify_during_scan: Some((3, 300)), expire_sessions_after: Some(5), ..Default::default() }
    });
    let dir = tempfile::tempdir().unwrap();
    let store = store(&dir).await;
    let ing = KingdeeIngester::new(client(&sim, AuthMode::AppSecret), store.clone(), cfg(2000));

    let first = ing.scan().await.unwrap();
    println!("scan 1: {first:?}");
    assert!(first.pages > 10, "paged over ~25,000 line rows: {first:?}");
    let second = ing.scan().await.unwrap();
    println!("scan 2: {second:?}");
    assert!(
        second.outcome.updated + second.outcome.received > 0,
        "edits behind the scan position are caught next time"
    );
    let third = ing.scan().await.unwrap();
    println!("scan 3: {third:?}");
    assert_eq!((third.outcome.received, third.outcome.updated), (0, 0), "nothing new: {third:?}");
    assert_mirrors(&sim, &store).await;
    let requests = sim.with(|s| s.requests);
    println!("{requests} HTTP requests to the simulator");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_between_fetch_and_commit_loses_and_duplicates_nothing() {
    let sim = KingdeeSim::start(KingdeeSimConfig::default(), 0).await.unwrap();
    sim.generate(1_500);
    let dir = tempfile::tempdir().unwrap();
    let store = store(&dir).await;

    // The first ingester dies after fetching page 3, before committing it.
    let crashing = KingdeeIngester::new(client(&sim, AuthMode::Signed), store.clone(), cfg(500))
        .with_before_commit(Arc::new(|page| assert!(page < 3, "simulated crash after fetching page {page}")));
    let died = tokio::spawn(async move { crashing.scan().await }).await;
    assert!(died.is_err(), "the ingester task died");
    let partial = store.list_orders(None, 100_000).await.unwrap().len();
    assert!(partial > 0 && partial < 1_500, "pages 1-2 were committed, page 3 was not: {partial}");
    assert_eq!(store.cursor("kingdee").await.unwrap(), None, "the cursor did not move");

    // A fresh ingester (a restart) finishes the job.
    let ing = KingdeeIngester::new(client(&sim, AuthMode::Signed), store.clone(), cfg(500));
    let r = ing.scan().await.unwrap();
    assert_eq!(r.outcome.unchanged, partial, "already-committed orders are recognised: {r:?}");
    assert_eq!(r.outcome.received, 1_500 - partial);
    assert_mirrors(&sim, &store).await;
}

#[tokio::test]
async fn bad_rows_become_visible_exceptions_and_the_poller_moves_on() {
    let sim = KingdeeSim::start(KingdeeSimConfig::default(), 0).await.unwrap();
    let fids = sim.generate(20);
    sim.modify(fids[2], |o| o.city.clear());
    sim.modify(fids[5], |o| o.lines[0].qty = "-3".into());
    sim.modify(fids[8], |o| o.lines[0].qty = "lots".into());
    sim.modify(fids[11], |o| o.lines[0].material = "NOPE-1".into());
    let dir = tempfile::tempdir().unwrap();
    let store = store(&dir).await;
    let known: std::collections::HashSet<String> = sim.with(|s| {
        s.sale_orders
            .iter()
            .flat_map(|o| o.lines.iter().map(|l| l.material.clone()))
            .filter(|m| m != "NOPE-1")
            .collect()
    });
    let ing =
        KingdeeIngester::new(client(&sim, AuthMode::Signed), store.clone(), cfg(7)).with_known_skus(Arc::new(known));
    let r = ing.scan().await.unwrap();
    assert_eq!((r.outcome.received, r.outcome.exceptions), (16, 4), "{r:?}");
    let reason = |fid: i64| {
        let store = store.clone();
        async move { store.order_by_external("kingdee", &fid.to_string()).await.unwrap().unwrap() }
    };
    let o = reason(fids[2]).await;
    assert_eq!(o.state, OrderState::Exception);
    assert!(o.state_reason.contains("ship_to.city is missing"), "{}", o.state_reason);
    assert!(reason(fids[5]).await.state_reason.contains("quantity -3 is not positive"));
    assert!(reason(fids[8]).await.state_reason.contains("`lots` is not a number"));
    assert!(reason(fids[11]).await.state_reason.contains("unknown SKU NOPE-1"));

    // Fixed in the ERP: retried automatically on the next scan.
    sim.modify(fids[2], |o| o.city = "杭州市".into());
    ing.scan().await.unwrap();
    assert_eq!(reason(fids[2]).await.state, OrderState::Received);
}

#[tokio::test]
async fn edits_after_dispatch_raise_exceptions() {
    let sim = KingdeeSim::start(KingdeeSimConfig::default(), 0).await.unwrap();
    let fids = sim.generate(3);
    let dir = tempfile::tempdir().unwrap();
    let store = store(&dir).await;
    let ing = KingdeeIngester::new(client(&sim, AuthMode::Password("888888".into())), store.clone(), cfg(100));
    ing.scan().await.unwrap();
    let o = store.order_by_external("kingdee", &fids[0].to_string()).await.unwrap().unwrap();
    let id = o.id.unwrap();
    let dispatcher = daifa_host::domain::Actor::Dispatcher;
    store.transition(id, OrderState::Routed, &dispatcher, "r", 1).await.unwrap();
    store.transition(id, OrderState::Dispatched, &dispatcher, "d", 2).await.unwrap();
    sim.modify(fids[0], |o| o.lines[0].qty = "99".into());
    sim.modify(fids[1], |o| o.cancel_status = "B".into());
    let r = ing.scan().await.unwrap();
    assert_eq!((r.outcome.raised, r.outcome.updated), (1, 1), "{r:?}");
    let o = store.order(id).await.unwrap();
    assert_eq!(o.state, OrderState::Exception);
    assert!(o.state_reason.contains("after dispatch"), "{}", o.state_reason);
    assert_eq!(
        store.order_by_external("kingdee", &fids[1].to_string()).await.unwrap().unwrap().state,
        OrderState::Cancelled
    );
}

#[tokio::test]
async fn revoked_credentials_are_reported_not_retried() {
    let sim = KingdeeSim::start(KingdeeSimConfig::default(), 0).await.unwrap();
    sim.generate(5);
    sim.with(|s| s.faults.reject_signatures = true);
    let dir = tempfile::tempdir().unwrap();
    let store = store(&dir).await;
    let ing = KingdeeIngester::new(client(&sim, AuthMode::AppSecret), store.clone(), cfg(100));
    let err = ing.scan().await.unwrap_err().to_string();
    assert!(err.contains("credentials"), "{err}");
}

#[tokio::test]
async fn an_order_larger_than_a_page_is_read_whole() {
    let sim = KingdeeSim::start(KingdeeSimConfig::default(), 0).await.unwrap();
    let fids = sim.generate(6);
    // Order 3 gets 11 lines: more than two pages of 4 rows.
    sim.modify(fids[2], |o| {
        let proto = o.lines[0].clone();
        o.lines = (0..11)
            .map(|i| daifa_host::sim::kingdee::SimLine {
                entry_id: 900_000 + i,
                material: format!("MAT9{i:04}"),
                ..proto.clone()
            })
            .collect();
    });
    let dir = tempfile::tempdir().unwrap();
    let store = store(&dir).await;
    let r = KingdeeIngester::new(client(&sim, AuthMode::Signed), store.clone(), cfg(4)).scan().await.unwrap();
    assert_eq!(r.outcome.received, 6, "{r:?}");
    let big = store.order_by_external("kingdee", &fids[2].to_string()).await.unwrap().unwrap();
    assert_eq!(big.content.lines.len(), 11);
    assert_mirrors(&sim, &store).await;
}

/// The real thing: the `daifa` process is killed with SIGKILL after fetching
/// a page and before committing it, then started again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_between_fetch_and_commit_then_restart() {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};

    let sim = KingdeeSim::start(KingdeeSimConfig::default(), 0).await.unwrap();
    sim.generate(1_200);
    let dir = tempfile::tempdir().unwrap();
    let c = sim.credentials();
    let config = format!(
        "data_dir = \"{d}\"\n[store]\nurl = \"sqlite:{d}/daifa.db\"\n[kingdee.client]\nserver_url = \"{url}\"\nauth = \"signed\"\n\
         timeout_ms = 30000\n[kingdee.client.credentials]\nacct_id = \"{}\"\nuser_name = \"{}\"\napp_id = \"{}\"\napp_secret = \"{}\"\n\
         lcid = 2052\norg_num = 0\n[kingdee.ingest]\npage_size = 500\n",
        c.acct_id,
        c.user_name,
        c.app_id,
        c.app_secret,
        d = dir.path().display(),
        url = sim.server_url()
    );
    let cfg_path = dir.path().join("daifa.toml");
    std::fs::write(&cfg_path, config).unwrap();
    let daifa = env!("CARGO_BIN_EXE_daifa");

    let mut child = Command::new(daifa)
        .args(["--config", cfg_path.to_str().unwrap(), "ingest", "kingdee"])
        .env("DAIFA_FAULT_STALL_BEFORE_COMMIT", "3")
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let stalled = tokio::task::spawn_blocking(move || {
        BufReader::new(stderr).lines().map_while(Result::ok).any(|l| l.contains("stalled before committing page 3"))
    });
    assert!(tokio::time::timeout(std::time::Duration::from_secs(60), stalled).await.unwrap().unwrap());
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();

    let store = store(&dir).await;
    let partial = store.list_orders(None, 100_000).await.unwrap().len();
    assert!(partial > 0 && partial < 1_200, "pages 1-2 committed, page 3 not: {partial}");

    let out = Command::new(daifa).args(["--config", cfg_path.to_str().unwrap(), "ingest", "kingdee"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["outcome"]["unchanged"], partial as u64, "{report}");
    assert_eq!(report["outcome"]["received"], (1_200 - partial) as u64, "{report}");
    assert_mirrors(&sim, &store).await;
}

/// Between full scans a poll reads only what is new since the cursor (a
/// burst is not re-read every second); the periodic full scan still finds a
/// late commit, an order stamped before the cursor.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn polls_between_rescans_read_only_what_is_new() {
    let sim = KingdeeSim::start(KingdeeSimConfig::default(), 0).await.unwrap();
    sim.generate(2_000);
    let dir = tempfile::tempdir().unwrap();
    let store = store(&dir).await;
    let ing = KingdeeIngester::new(client(&sim, AuthMode::AppSecret), store.clone(), cfg(2000));
    let first = ing.scan().await.unwrap();
    assert_eq!(first.outcome.received, 2_000, "{first:?}");

    sim.generate(5);
    let poll = ing.scan_new().await.unwrap();
    assert_eq!(poll.outcome.received, 5, "the new orders: {poll:?}");
    // The cursor is whole seconds and the simulator stamps an order every
    // 10 ms, so the cursor's own second (at most 100 orders) is read again.
    assert!(poll.orders <= 105, "the 2,000 behind the cursor were not read again: {poll:?}");
    let full = ing.scan().await.unwrap();
    assert!(full.orders > 1_000, "a full scan re-reads the overlap: {full:?}");

    // A late commit: a new order stamped a few seconds before the cursor
    // (its transaction committed after our read), which the cheap poll
    // cannot see and the full scan must.
    let cursor = store.cursor("kingdee").await.unwrap().unwrap();
    let stamp = daifa_host::erp::time::format(daifa_host::erp::time::parse(&cursor).unwrap() - 5);
    let late = sim.generate(1)[0];
    sim.with(|s| {
        let o = s.sale_orders.iter_mut().find(|o| o.fid == late).unwrap();
        o.approve_date = Some(stamp.clone());
        o.modify_date = stamp;
    });
    let poll = ing.scan_new().await.unwrap();
    assert_eq!(poll.outcome.received, 0, "{poll:?}");
    let full = ing.scan().await.unwrap();
    assert_eq!(full.outcome.received, 1, "the late commit is found by the full scan: {full:?}");
    assert!(store.order_by_external("kingdee", &late.to_string()).await.unwrap().is_some());
    assert_mirrors(&sim, &store).await;
}
