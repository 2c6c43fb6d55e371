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
        erp: Default::default(),
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
            sku: Sku(format!("K{}", n % 10)),
            quantity: Decimal::ONE,
            unit_price: Decimal::from(150),
            tax_rate: Decimal::from(13),
            unit: String::new(),
        }],
        remark: String::new(),
        source_modified: String::new(),
        cancelled: false,
        intake_problems: vec![],
    }
}

#[test]
fn slow_supplier_loses_share_and_regains_it_gradually() {
    // C is cheapest for every SKU, by 1 % (K0) to 10 % (K9); D is next for
    // the even SKUs, E for the odd ones. As C's score recovers step by step,
    // it wins back the SKUs where it is cheapest by most first.
    let mut entries = Vec::new();
    for k in 0..10 {
        let sku = format!("K{k}");
        let (next, last) = if k % 2 == 0 { ("D", "E") } else { ("E", "D") };
        entries.push(entry("C", &sku, 100));
        entries.push(entry(next, &sku, 101 + k));
        entries.push(entry(last, &sku, 120));
    }
    let catalog = Catalog::new(vec![sup("C"), sup("D"), sup("E")], entries);
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
            *share.entry(hour / 12).or_default().entry(s.0).or_default() += 1;
        }
    }

    // Half-day periods: 240 orders each.
    println!("  day | share C | share D | share E | C score at period end");
    let pct = |p: i64, s: &str| f64::from(share[&p].get(s).copied().unwrap_or(0)) / 240.0 * 100.0;
    for p in 0..28 {
        let c_score = perf
            .changes
            .iter()
            .rfind(|c| c.supplier.0 == "C" && c.at < (p + 1) * 12 * HOUR)
            .map_or("1".to_string(), |c| c.to.to_string());
        let day = p as f64 / 2.0;
        println!("{day:>5.1} | {:>6.1}% | {:>6.1}% | {:>6.1}% | {c_score}", pct(p, "C"), pct(p, "D"), pct(p, "E"));
    }
    for c in perf.changes.iter().filter(|c| c.supplier.0 == "C") {
        println!("  {:>5.2} d  C {} → {}: {}", c.at as f64 / (24 * HOUR) as f64, c.from, c.to, c.cause);
    }

    let day = |d: f64| (d * 2.0) as i64;
    assert!(pct(day(1.0), "C") > 99.0, "before the slowdown the cheapest supplier gets everything");
    // Slow shipments surface 60 h after the slowdown starts (day 4.5); within
    // the 48 h window C has lost its volume to both D and E.
    assert!(pct(day(6.0), "C") < 10.0, "C keeps {:.1} % on day 6", pct(day(6.0), "C"));
    assert!(pct(day(6.0), "D") > 30.0 && pct(day(6.0), "E") > 30.0, "both D and E take over");
    // After recovery (day 7) C comes back step by step: at least two half-days
    // with a partial share on the way up, before it has everything again.
    let full = (day(7.0)..28).find(|p| pct(*p, "C") > 99.0).expect("C regains its share");
    let partial = (day(7.0)..full).filter(|p| (15.0..85.0).contains(&pct(*p, "C"))).count();
    assert!(partial >= 2, "regained gradually: {partial} partial half-days before day {}", full as f64 / 2.0);
    assert!(pct(27, "C") > 95.0, "fully back by the end");
    // Every automatic change carries its cause.
    assert!(perf.changes.iter().all(|c| !c.cause.is_empty()));
    assert!(perf.changes.iter().any(|c| c.supplier.0 == "C" && c.cause.contains("median time to shipped 60.0 h")));
}
