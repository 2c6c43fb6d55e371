//! The seed's story: supplier C's shipping slows, its share moves to D and E
//! within the window; when C recovers it regains share gradually. Prints the
//! share-over-time table.

use std::collections::{BTreeMap, HashMap};

use daifa_host::domain::*;
use daifa_host::routing::performance::{Event, Performance, PerformanceConfig};
use daifa_host::routing::{Catalog, Policy, SupplierProfile, route};
use rust_decimal::Decimal;

const HOUR: i64 = 3_600_000;

fn sup(id: &str) -> SupplierProfile {
    SupplierProfile {
        id: SupplierId(id.into()),
        enabled: true,
        paused: false,
        circuit_open: false,
        coverage: Coverage::Except(vec![]),
        shipping: HashMap::new(),
        default_shipping: Decimal::from(5),
        daily_capacity: None,
        used_today: 0,
        priority: 0,
        preference: Decimal::ONE,
    }
}

fn entry(s: &str, sku: &str, cost: i64) -> CatalogEntry {
    CatalogEntry {
        supplier: SupplierId(s.into()),
        sku: Sku(sku.into()),
        supplier_sku: SupplierSku(format!("{s}-{sku}")),
        unit_cost: Decimal::from(cost),
        currency: "CNY".into(),
        lead_time_days: 2,
        stock: None,
        stock_confirmed_at: None,
        coverage: Coverage::Except(vec![]),
    }
}

fn order(n: i64) -> OrderContent {
    OrderContent {
        source: "kingdee".into(),
        external_id: ExternalId(n.to_string()),
        bill_no: BillNo(n.to_string()),
        platform_order_no: None,
        customer: "C".into(),
        sales_org: String::new(),
        platform: String::new(),
        ship_to: ShipTo { province: "广东省".into(), city: "深圳市".into(), ..Default::default() },
        lines: vec![OrderLine {
            erp_line_id: ErpLineId("1".into()),
            sku: Sku(if n % 2 == 0 { "K1" } else { "K2" }.into()),
            quantity: Decimal::ONE,
            unit_price: Decimal::from(150),
            tax_rate: Decimal::from(13),
        }],
        remark: String::new(),
        source_modified: String::new(),
        cancelled: false,
        intake_problems: vec![],
    }
}

#[test]
fn slow_supplier_loses_share_and_regains_it_gradually() {
    // C is cheapest for both SKUs; D is next for K1, E for K2.
    let catalog = Catalog::new(
        vec![sup("C"), sup("D"), sup("E")],
        vec![
            entry("C", "K1", 100),
            entry("D", "K1", 104),
            entry("E", "K1", 110),
            entry("C", "K2", 100),
            entry("E", "K2", 104),
            entry("D", "K2", 110),
        ],
    );
    let policy = Policy::from_toml("version = 1\n[fallback]\nname = \"default\"\nmax_splits = 0\n").unwrap();
    let cfg = PerformanceConfig { window_ms: 48 * HOUR, ..Default::default() };
    let mut perf = Performance::new(cfg);
    // C ships in 20 h, except from day 2 to day 7 when it takes 60 h.
    let ship_hours = |s: &str, hour: i64| if s == "C" && (48..168).contains(&hour) { 60 } else { 20 };

    let mut pending: Vec<(i64, SupplierId, i64)> = Vec::new(); // (ship time, supplier, after)
    let mut share: BTreeMap<i64, BTreeMap<String, u32>> = BTreeMap::new();
    let mut n = 0;
    for hour in 0..(14 * 24) {
        let now = hour * HOUR;
        pending.retain(|(at, s, after)| {
            if *at <= now {
                perf.record(s, Event::Shipped { at: *at, after_ms: *after });
                false
            } else {
                true
            }
        });
        if hour % 6 == 0 {
            perf.evaluate(now);
        }
        for _ in 0..20 {
            n += 1;
            let d = route(&order(n), &catalog, &policy, perf.scores());
            let s = d.allocations[0].supplier.clone();
            perf.record(&s, Event::Dispatched { at: now });
            perf.record(&s, Event::Acknowledged { at: now + HOUR, after_ms: HOUR });
            let after = ship_hours(s.as_str(), hour) * HOUR;
            pending.push((now + after, s.clone(), after));
            *share.entry(hour / 24).or_default().entry(s.0).or_default() += 1;
        }
    }

    println!("day | share C | share D | share E | C score at day end");
    let pct = |day: i64, s: &str| f64::from(share[&day].get(s).copied().unwrap_or(0)) / 480.0 * 100.0;
    for day in 0..14 {
        let c_score = perf
            .changes
            .iter()
            .rfind(|c| c.supplier.0 == "C" && c.at < (day + 1) * 24 * HOUR)
            .map_or("1".to_string(), |c| c.to.to_string());
        println!("{day:>3} | {:>6.1}% | {:>6.1}% | {:>6.1}% | {c_score}", pct(day, "C"), pct(day, "D"), pct(day, "E"));
    }
    for c in perf.changes.iter().filter(|c| c.supplier.0 == "C").take(4) {
        println!("  C {} → {}: {}", c.from, c.to, c.cause);
    }

    assert!(pct(1, "C") > 99.0, "before the slowdown the cheapest supplier gets everything");
    // Slow shipments surface 60 h after the slowdown starts (day 4.5); within
    // the 48 h window C has lost its volume to both D and E.
    assert!(pct(6, "C") < 10.0, "C keeps {:.1} % on day 6", pct(6, "C"));
    assert!(pct(6, "D") > 30.0 && pct(6, "E") > 30.0, "both D and E take over");
    // After recovery (day 7) C comes back, and not all at once.
    let back = (7..14).find(|d| pct(*d, "C") > 50.0).expect("C regains its share");
    assert!(back > 8, "regained gradually, on day {back}");
    assert!(pct(13, "C") > 95.0, "fully back by the end");
    // Every automatic change carries its cause.
    assert!(perf.changes.iter().all(|c| !c.cause.is_empty()));
    assert!(perf.changes.iter().any(|c| c.supplier.0 == "C" && c.cause.contains("median time to shipped 60.0 h")));
}
