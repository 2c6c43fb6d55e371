//! Kingdee ingestion under the settings and faults a real installation has
//! (issue 8): a server row cap below our page size, ERP clocks that are
//! slow or in another time zone, mappings with empty or wrong fields, and
//! torn orders from an earlier run. Real HTTP to the K3Cloud simulator, a
//! real SQLite file.

use std::collections::BTreeMap;
use std::sync::Arc;

use daifa_host::domain::Actor;
use daifa_host::erp::kingdee::{AuthMode, KingdeeClient, KingdeeConfig};
use daifa_host::ingest::IngestError;
use daifa_host::ingest::kingdee::{KingdeeIngestConfig, KingdeeIngester};
use daifa_host::sim::kingdee::{KingdeeSim, KingdeeSimConfig, SimSaleOrder};
use daifa_host::store::{Store, StoreConfig};

async fn store(dir: &tempfile::TempDir) -> Store {
    let url = format!("sqlite:{}", dir.path().join("daifa.db").display());
    Store::open(&StoreConfig { url, ..Default::default() }).await.unwrap()
}

fn client(sim: &KingdeeSim) -> Arc<KingdeeClient> {
    Arc::new(
        KingdeeClient::new(KingdeeConfig {
            server_url: sim.server_url(),
            credentials: sim.credentials(),
            auth: AuthMode::Signed,
            timeout_ms: 30_000,
        })
        .unwrap(),
    )
}

fn approved(sim: &KingdeeSim) -> Vec<SimSaleOrder> {
    sim.with(|s| s.sale_orders.iter().filter(|o| o.status == "C" && o.dropship == "1").cloned().collect())
}

/// The store holds exactly the ERP's approved drop-ship orders, each with
/// every line, at its latest revision.
async fn assert_exact(sim: &KingdeeSim, store: &Store) {
    let expected = approved(sim);
    let listed = store.list_orders(None, 1_000_000).await.unwrap();
    assert_eq!(listed.len(), expected.len(), "every approved drop-ship order, once");
    for o in &expected {
        let got = store.order_by_external("kingdee", &o.fid.to_string()).await.unwrap().expect("ingested");
        assert_eq!(got.content.lines.len(), o.lines.len(), "every line of {}", o.fid);
        assert_eq!(got.content.source_modified, o.modify_date, "latest revision of {}", o.fid);
        for (g, l) in got.content.lines.iter().zip(&o.lines) {
            assert_eq!(g.sku.as_str(), l.material);
        }
        assert_eq!(got.content.ship_to.street, o.street);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_row_cap_below_the_page_size_loses_nothing() {
    // The simulator caps every answer at 10,000 rows; we ask for 25,000.
    let sim = KingdeeSim::start(KingdeeSimConfig::default(), 0).await.unwrap();
    sim.generate(6_000);
    let rows: usize = approved(&sim).iter().map(|o| o.lines.len()).sum();
    assert!(rows > 10_000, "the test needs more rows ({rows}) than the cap");
    let dir = tempfile::tempdir().unwrap();
    let store = store(&dir).await;
    let cfg = KingdeeIngestConfig { page_size: 25_000, ..Default::default() };
    let ing = KingdeeIngester::new(client(&sim), store.clone(), cfg);
    let r = ing.scan().await.unwrap();
    assert!(r.pages >= 3, "the short first page was not taken as the last: {r:?}");
    assert_exact(&sim, &store).await;
}

async fn new_orders_after_a_scan_are_found(clock_offset_secs: i64) {
    let sim = KingdeeSim::start(KingdeeSimConfig { clock_offset_secs, ..Default::default() }, 0).await.unwrap();
    sim.generate(200);
    let dir = tempfile::tempdir().unwrap();
    let store = store(&dir).await;
    // The host assumes the usual UTC+8 for the ERP.
    let ing = KingdeeIngester::new(client(&sim), store.clone(), KingdeeIngestConfig::default());
    ing.scan().await.unwrap();
    assert_exact(&sim, &store).await;
    // New orders and edits, stamped by the ERP's own (wrong) clock.
    sim.generate(50);
    let fids: Vec<i64> = approved(&sim).iter().map(|o| o.fid).take(10).collect();
    for fid in fids {
        sim.modify(fid, |o| o.street = format!("{}（改）", o.street));
    }
    let r = ing.scan().await.unwrap();
    assert!(r.outcome.received >= 40, "{r:?}");
    assert_exact(&sim, &store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_erp_clock_five_minutes_slow_misses_nothing() {
    new_orders_after_a_scan_are_found(8 * 3600 - 300).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_erp_in_utc_while_the_host_assumes_utc8_misses_nothing() {
    new_orders_after_a_scan_are_found(0).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unmapped_optional_field_shifts_no_column() {
    let sim = KingdeeSim::start(KingdeeSimConfig::default(), 0).await.unwrap();
    sim.generate(50);
    let dir = tempfile::tempdir().unwrap();
    let store = store(&dir).await;
    let mapping: BTreeMap<String, String> =
        [("ship_postcode".to_string(), String::new()), ("remark".to_string(), String::new())].into();
    let cfg = KingdeeIngestConfig { mapping, ..Default::default() };
    KingdeeIngester::new(client(&sim), store.clone(), cfg).scan().await.unwrap();
    assert_exact(&sim, &store).await;
    let o = &approved(&sim)[0];
    let got = store.order_by_external("kingdee", &o.fid.to_string()).await.unwrap().unwrap();
    assert_eq!(got.content.ship_to.postcode, "");
    assert_eq!(got.content.lines[0].quantity.to_string(), o.lines[0].qty);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_mapping_stops_ingestion_naming_the_field_and_stores_nothing() {
    let sim = KingdeeSim::start(KingdeeSimConfig::default(), 0).await.unwrap();
    sim.generate(50);
    let dir = tempfile::tempdir().unwrap();
    let store = store(&dir).await;
    let cases: [(&[(&str, &str)], &str); 5] = [
        (&[("quantity", "")], "mapping.quantity is empty"),
        (&[("ship_city", "F_DAIFA_Province")], "mapping.ship_province and mapping.ship_city"),
        (&[("ship_name", "F_NoSuchField")], "mapping.ship_name: the ERP has no field `F_NoSuchField`"),
        (&[("qty", "FQty")], "mapping.qty is not a mapping field"),
        // Two fields swapped by mistake: quantities read from the SKU column.
        (&[("quantity", "FMaterialId.FNumber"), ("material", "FQty")], "mapping.quantity"),
    ];
    for (pairs, want) in cases {
        let mapping = pairs.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect();
        let cfg = KingdeeIngestConfig { mapping, ..Default::default() };
        let err = KingdeeIngester::new(client(&sim), store.clone(), cfg).scan().await.unwrap_err();
        assert!(matches!(err, IngestError::Mapping(_)), "{err}");
        assert!(err.to_string().contains(want), "`{err}` should contain `{want}`");
    }
    assert!(store.list_orders(None, 10).await.unwrap().is_empty(), "nothing stored");
    assert_eq!(store.cursor("kingdee").await.unwrap(), None, "the cursor did not move");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_torn_order_from_an_earlier_run_is_repaired_by_the_next_scan() {
    let sim = KingdeeSim::start(KingdeeSimConfig::default(), 0).await.unwrap();
    sim.generate(30);
    let dir = tempfile::tempdir().unwrap();
    let store = store(&dir).await;
    let ing = KingdeeIngester::new(client(&sim), store.clone(), KingdeeIngestConfig::default());
    ing.scan().await.unwrap();
    // What the old poller left behind: one order stored with only its first
    // line, at the ERP's stamp.
    let big = approved(&sim).into_iter().find(|o| o.lines.len() >= 2).expect("a multi-line order");
    let mut torn = store.order_by_external("kingdee", &big.fid.to_string()).await.unwrap().unwrap().content;
    torn.lines.truncate(1);
    let id = store.order_by_external("kingdee", &big.fid.to_string()).await.unwrap().unwrap().id.unwrap();
    store.fix_content(id, torn, &Actor::Operator("old-poller".into()), 1).await.unwrap();
    assert_eq!(store.order(id).await.unwrap().content.lines.len(), 1);
    // Re-read from the start (as `daifa ingest kingdee --since` does).
    store.set_cursor("kingdee", "2000-01-01 00:00:00", 2).await.unwrap();
    let r = ing.scan().await.unwrap();
    assert_eq!(r.outcome.updated, 1, "{r:?}");
    assert_eq!(store.order(id).await.unwrap().content.lines.len(), big.lines.len());
    assert_exact(&sim, &store).await;
}

mod property {
    use proptest::prelude::*;

    use super::*;
    use daifa_host::sim::kingdee::Faults;

    /// What a case does to the ERP between and during scans.
    #[derive(Debug, Clone)]
    struct Case {
        orders: usize,
        page_size: i64,
        /// The server's row cap (may be far below `page_size`).
        row_cap: usize,
        clock_offset_secs: i64,
        /// (after this many queries of the first scan, modify this many orders and add as many)
        during_scan: Option<(u64, usize)>,
        edits: Vec<(usize, u8)>,
        added: usize,
    }

    fn case() -> impl Strategy<Value = Case> {
        (
            20usize..150,
            // Pages from smaller than one order (1 row) to larger than the whole set.
            prop_oneof![1i64..6, 6i64..60, Just(100_000i64)],
            // The ERP's clock: UTC+8 or UTC, up to 10 minutes wrong either way.
            (prop_oneof![Just(8 * 3600i64), Just(0i64)], -600i64..600),
            proptest::option::of((1u64..6, 1usize..20)),
            proptest::collection::vec((0usize..1000, 0u8..5), 0..30),
            (0usize..40, 3usize..60),
        )
            .prop_map(|(orders, page_size, (tz, skew), during_scan, edits, (added, row_cap))| Case {
                orders,
                page_size,
                row_cap,
                clock_offset_secs: tz + skew,
                during_scan,
                edits,
                added,
            })
    }

    async fn run(c: Case) {
        let sim = KingdeeSim::start(
            KingdeeSimConfig {
                clock_offset_secs: c.clock_offset_secs,
                seed: c.orders as u64 + 1,
                ..Default::default()
            },
            0,
        )
        .await
        .unwrap();
        sim.generate(c.orders);
        sim.with(|s| s.row_cap = c.row_cap);
        if let Some(d) = c.during_scan {
            sim.with(|s| s.faults = Faults { modify_during_scan: Some(d), ..Default::default() });
        }
        let dir = tempfile::tempdir().unwrap();
        let store = store(&dir).await;
        let cfg = KingdeeIngestConfig { page_size: c.page_size, ..Default::default() };
        let ing = KingdeeIngester::new(client(&sim), store.clone(), cfg);
        ing.scan().await.unwrap();
        sim.with(|s| s.faults = Faults::default());
        // Between scans: edits of every kind, approvals withdrawn and given
        // (with or without a new FModifyDate),
        // drop-ship flags changed, new orders.
        let fids: Vec<i64> = sim.with(|s| s.sale_orders.iter().map(|o| o.fid).collect());
        for (i, kind) in &c.edits {
            let fid = fids[i % fids.len()];
            if *kind == 4 {
                // Audited again: a new FApproveDate, FModifyDate untouched.
                sim.reapprove(fid);
                continue;
            }
            sim.modify(fid, |o| match kind {
                0 => o.street = format!("{}（改）", o.street),
                1 => o.status = if o.status == "C" { "B".into() } else { "C".into() },
                2 => o.dropship = if o.dropship == "1" { "0".into() } else { "1".into() },
                _ => {
                    if let Some(l) = o.lines.first_mut() {
                        l.qty = "7".into();
                    }
                }
            });
        }
        sim.generate(c.added);
        ing.scan().await.unwrap();
        // Withdrawn approvals and drop-ship flags leave the stored order as it
        // was (the ERP no longer shows it to us); compare only what it shows.
        let expected = approved(&sim);
        for o in &expected {
            let got = store.order_by_external("kingdee", &o.fid.to_string()).await.unwrap().expect("ingested");
            assert_eq!(got.content.lines.len(), o.lines.len(), "every line of {}", o.fid);
            assert_eq!(got.content.source_modified, o.modify_date, "latest revision of {}", o.fid);
            for (g, l) in got.content.lines.iter().zip(&o.lines) {
                assert_eq!(g.quantity.to_string(), l.qty);
            }
            assert_eq!(got.content.ship_to.street, o.street);
        }
        let listed = store.list_orders(None, 1_000_000).await.unwrap();
        let mut ids: Vec<&str> = listed.iter().map(|o| o.external_id.as_str()).collect();
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), listed.len(), "no order twice");
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 12, ..ProptestConfig::default() })]
        #[test]
        fn after_two_scans_the_store_mirrors_the_erp(c in case()) {
            let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
            rt.block_on(run(c));
        }
    }
}

/// A stock K3Cloud (no custom fields) with the `standard` preset: the
/// drop-ship marker is the bill type, the receiver is FLinkMan/FLinkPhone,
/// one FReceiveAddress is split into its parts; the server caps answers at
/// 700 rows while we ask for 2,000.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stock_k3cloud_with_the_standard_preset_and_a_low_row_cap() {
    use daifa_host::ingest::mapping::MappingPreset;
    let sim = KingdeeSim::start(KingdeeSimConfig::stock(), 0).await.unwrap();
    let fids = sim.generate(600);
    sim.with(|s| s.row_cap = 700);
    for fid in fids.iter().step_by(7) {
        sim.modify(*fid, |o| o.dropship = "0".into());
    }
    let dir = tempfile::tempdir().unwrap();
    let store = store(&dir).await;
    let cfg = KingdeeIngestConfig { preset: MappingPreset::Standard, page_size: 2_000, ..Default::default() };
    let r = KingdeeIngester::new(client(&sim), store.clone(), cfg).scan().await.unwrap();
    assert!(r.pages >= 3, "{r:?}");
    assert_exact(&sim, &store).await;
    for o in approved(&sim).iter().take(50) {
        let got = store.order_by_external("kingdee", &o.fid.to_string()).await.unwrap().unwrap();
        let a = &got.content.ship_to;
        assert_eq!((&a.province, &a.city, &a.district), (&o.province, &o.city, &o.district), "{}", o.full_address());
        assert_eq!((&a.name, &a.phone), (&o.receiver_name, &o.receiver_phone));
        assert_eq!(got.content.lines[0].unit, "Pcs");
    }

    // The custom-fields preset against the same stock ERP stops at once,
    // naming the field the installation does not have.
    let err =
        KingdeeIngester::new(client(&sim), store.clone(), KingdeeIngestConfig::default()).scan().await.unwrap_err();
    assert!(err.to_string().contains("F_DAIFA_"), "{err}");
}

/// An order audited later without a new FModifyDate (K3Cloud's audit sets
/// only FApproveDate) is found by the next scan.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_order_approved_without_a_new_modify_date_is_found() {
    let sim = KingdeeSim::start(KingdeeSimConfig::default(), 0).await.unwrap();
    let fids = sim.generate(40);
    // Ten orders wait in approval (status B), their stamps old.
    sim.with(|s| {
        for o in s.sale_orders.iter_mut().take(10) {
            o.status = "B".into();
            o.approve_date = None;
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let store = store(&dir).await;
    let ing = KingdeeIngester::new(client(&sim), store.clone(), KingdeeIngestConfig::default());
    ing.scan().await.unwrap();
    assert_eq!(store.list_orders(None, 1_000).await.unwrap().len(), 30);
    // Their last edit lies far behind the cursor (entered long ago); now a
    // reviewer audits them, which stamps FApproveDate only.
    sim.with(|s| {
        for o in s.sale_orders.iter_mut().take(10) {
            o.modify_date = o.modify_date.replacen("20", "19", 1);
        }
    });
    for fid in &fids[..10] {
        assert!(sim.reapprove(*fid));
    }
    let r = ing.scan().await.unwrap();
    assert_eq!(r.outcome.received, 10, "{r:?}");
    assert_exact(&sim, &store).await;
}

/// An ERP answering one request in five with HTTP 503: each read is retried
/// within the scan, and one scan still reads everything.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transient_read_failures_are_retried_within_a_scan() {
    let sim = KingdeeSim::start(KingdeeSimConfig::default(), 0).await.unwrap();
    sim.generate(300);
    sim.with(|s| s.faults.fail_per_mille = 200);
    let dir = tempfile::tempdir().unwrap();
    let store = store(&dir).await;
    let cfg = KingdeeIngestConfig { page_size: 100, ..Default::default() };
    let r = KingdeeIngester::new(client(&sim), store.clone(), cfg).scan().await.unwrap();
    assert!(r.pages > 5, "{r:?}");
    let (requests, pages) = (sim.with(|s| s.requests), r.pages as u64);
    assert!(requests > pages, "some requests failed and were retried: {requests} for {pages} pages");
    assert_exact(&sim, &store).await;
}
