//! Routing scenarios (table-driven) and properties: each line to at most one
//! supplier, quantities conserved, excluded suppliers never chosen.

use std::collections::{HashMap, HashSet};
use std::str::FromStr;

use daifa_host::domain::*;
use daifa_host::routing::{Catalog, Exclusion, Outcome, Policy, SupplierProfile, route, route_excluding};
use proptest::prelude::*;
use rust_decimal::Decimal;

fn d(s: &str) -> Decimal {
    Decimal::from_str(s).unwrap()
}

fn supplier(id: &str, coverage: Coverage, ship: &str) -> SupplierProfile {
    SupplierProfile {
        id: SupplierId(id.into()),
        enabled: true,
        paused: false,
        circuit_open: false,
        coverage,
        shipping: HashMap::new(),
        default_shipping: d(ship),
        daily_capacity: None,
        used_today: 0,
        priority: 0,
        preference: Decimal::ONE,
        erp: Default::default(),
    }
}

fn offer(sup: &str, sku: &str, cost: &str, stock: Option<u32>) -> CatalogEntry {
    CatalogEntry {
        supplier: SupplierId(sup.into()),
        sku: Sku(sku.into()),
        supplier_sku: SupplierSku(format!("{sup}-{sku}")),
        unit_cost: d(cost),
        currency: "CNY".into(),
        lead_time_days: 2,
        stock,
        stock_confirmed_at: None,
        coverage: Coverage::Except(vec![]),
    }
}

fn order(province: &str, lines: &[(&str, u32)]) -> OrderContent {
    OrderContent {
        source: "kingdee".into(),
        external_id: "1".into(),
        bill_no: "XSDD1".into(),
        platform_order_no: None,
        customer: "C1".into(),
        sales_org: String::new(),
        platform: String::new(),
        ship_to: ShipTo { province: province.into(), city: "某市".into(), ..Default::default() },
        lines: lines
            .iter()
            .enumerate()
            .map(|(i, (sku, q))| OrderLine {
                erp_line_id: ErpLineId(format!("L{}", i + 1)),
                sku: Sku(sku.to_string()),
                quantity: Decimal::from(*q),
                unit_price: d("100"),
                tax_rate: d("13"),
                unit: String::new(),
            })
            .collect(),
        remark: String::new(),
        source_modified: "t".into(),
        cancelled: false,
        intake_problems: vec![],
    }
}

const POLICY: &str = r#"
version = 7

[[rule_set]]
name = "xinjiang-only-together"
when = { province = ["新疆维吾尔自治区"] }
keep_together = "required"
max_splits = 0

[[rule_set]]
name = "no-splits-big-customer"
when = { customer = ["VIP"] }
max_splits = 0
on_shortage = "hold"

[fallback]
name = "default"
keep_together = "preferred"
split_penalty = "10"
max_splits = 1
safety_stock = 1
"#;

fn policy() -> Policy {
    Policy::from_toml(POLICY).unwrap()
}

fn chosen(dec: &daifa_host::routing::Decision) -> Vec<(String, String)> {
    dec.allocations.iter().map(|a| (a.line_id.clone(), a.supplier.0.clone())).collect()
}

fn pairs(v: &[(&str, &str)]) -> Vec<(String, String)> {
    v.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect()
}

#[test]
fn scenarios() {
    let everywhere = || Coverage::Except(vec![]);
    let cat = Catalog::new(
        vec![
            supplier("A", everywhere(), "8"),
            supplier("B", Coverage::Only(vec!["广东省".into(), "浙江省/杭州市".into()]), "5"),
            supplier("C", Coverage::Except(vec!["新疆维吾尔自治区".into()]), "6"),
        ],
        vec![
            offer("A", "X", "50", Some(100)),
            offer("B", "X", "45", Some(100)),
            offer("C", "X", "47", Some(100)),
            offer("A", "Y", "30", Some(100)),
            offer("C", "Y", "20", Some(100)),
            offer("B", "Z", "10", Some(2)),
            offer("C", "Z", "12", None),
        ],
    );
    let none = HashMap::new();
    let p = policy();

    // Cheapest landed cost in Guangdong: B (45 + 5) beats C (47 + 6) and A (50 + 8).
    let dec = route(&order("广东省", &[("X", 1)]), &cat, &p, &none);
    assert_eq!(chosen(&dec), pairs(&[("L1", "B")]));
    assert_eq!(dec.landed_cost, d("50"));
    assert_eq!(dec.rule_set, "default");
    assert_eq!(dec.policy_version, 7);

    // Region: B does not serve Sichuan (excluded, with the reason).
    let dec = route(&order("四川省", &[("X", 1)]), &cat, &p, &none);
    assert_eq!(chosen(&dec), pairs(&[("L1", "C")]));
    let b = dec.candidates.iter().find(|c| c.supplier.0 == "B").unwrap();
    assert_eq!(b.excluded, Some(Exclusion::NotServingRegion));

    // City-level coverage: B serves Hangzhou only within Zhejiang.
    let mut o = order("浙江省", &[("X", 1)]);
    o.ship_to.city = "杭州市".into();
    assert_eq!(chosen(&route(&o, &cat, &p, &none)), pairs(&[("L1", "B")]));
    o.ship_to.city = "宁波市".into();
    assert_eq!(chosen(&route(&o, &cat, &p, &none)), pairs(&[("L1", "C")]));

    // Keep together preferred: X+Y split B(45+5)+C(20+6)=76+penalty 10 = 86
    // vs all at C: 47+20+6 = 73 → C for both.
    let dec = route(&order("广东省", &[("X", 1), ("Y", 1)]), &cat, &p, &none);
    assert_eq!(chosen(&dec), pairs(&[("L1", "C"), ("L2", "C")]));
    assert_eq!(dec.suppliers.len(), 1);

    // Stock with safety stock 1: Z qty 2 needs 3 at B (has 2) → C (unknown stock passes).
    let dec = route(&order("广东省", &[("Z", 2)]), &cat, &p, &none);
    assert_eq!(chosen(&dec), pairs(&[("L1", "C")]));
    let b = dec.candidates.iter().find(|c| c.supplier.0 == "B").unwrap();
    assert!(matches!(b.excluded, Some(Exclusion::OutOfStock { available: 2, .. })));

    // Required keep-together (Xinjiang rule set): only A ships there and carries X and Y.
    let dec = route(&order("新疆维吾尔自治区", &[("X", 1), ("Y", 1)]), &cat, &p, &none);
    assert_eq!(dec.rule_set, "xinjiang-only-together");
    assert_eq!(chosen(&dec), pairs(&[("L1", "A"), ("L2", "A")]));
    // ... and with Z (nobody ships Z there): on hold with the reason.
    let dec = route(&order("新疆维吾尔自治区", &[("X", 1), ("Z", 1)]), &cat, &p, &none);
    assert!(matches!(&dec.outcome, Outcome::OnHold(r) if r.contains("line L2")), "{:?}", dec.outcome);

    // Unknown SKU: on hold naming it.
    let dec = route(&order("广东省", &[("NOPE", 1)]), &cat, &p, &none);
    assert!(matches!(&dec.outcome, Outcome::OnHold(r) if r.contains("no supplier carries SKU NOPE")));

    // Shortage: backorder by default (fallback), hold for the VIP rule set.
    let cat2 = Catalog::new(vec![supplier("B", Coverage::Except(vec![]), "5")], vec![offer("B", "Z", "10", Some(0))]);
    let dec = route(&order("广东省", &[("Z", 1)]), &cat2, &p, &none);
    assert_eq!(dec.outcome, Outcome::PartlyBackordered);
    assert!(dec.allocations[0].backordered);
    let mut vip = order("广东省", &[("Z", 1)]);
    vip.customer = "VIP".into();
    assert!(matches!(route(&vip, &cat2, &p, &none).outcome, Outcome::OnHold(_)));

    // Max splits: with max_splits = 1 a 3-supplier-only order cannot route.
    let cat3 = Catalog::new(
        vec![supplier("P", everywhere(), "1"), supplier("Q", everywhere(), "1"), supplier("R", everywhere(), "1")],
        vec![offer("P", "a", "1", None), offer("Q", "b", "1", None), offer("R", "c", "1", None)],
    );
    let dec = route(&order("广东省", &[("a", 1), ("b", 1)]), &cat3, &p, &none);
    assert_eq!(dec.suppliers.len(), 2, "one split allowed");
    let dec = route(&order("广东省", &[("a", 1), ("b", 1), ("c", 1)]), &cat3, &p, &none);
    assert!(matches!(&dec.outcome, Outcome::OnHold(r) if r.contains("at most 1 split")), "{:?}", dec.outcome);

    // Cost tie: priority, then id decide, deterministically.
    let mut s1 = supplier("T1", everywhere(), "5");
    let mut s2 = supplier("T2", everywhere(), "5");
    s1.priority = 0;
    s2.priority = 5;
    let cat4 = Catalog::new(vec![s1, s2], vec![offer("T1", "k", "10", None), offer("T2", "k", "10", None)]);
    assert_eq!(chosen(&route(&order("广东省", &[("k", 1)]), &cat4, &p, &none)), pairs(&[("L1", "T2")]));

    // Performance: a slow supplier's costs weigh more (weight 0.5 × (1 − 0.2) = +40 %).
    let perf: HashMap<SupplierId, Decimal> = [(SupplierId("B".into()), d("0.2"))].into_iter().collect();
    let dec = route(&order("广东省", &[("X", 1)]), &cat, &p, &perf);
    assert_eq!(chosen(&dec), pairs(&[("L1", "C")]), "B's 50 × 1.4 = 70 loses to C's 53");

    // Paused suppliers are excluded as such.
    let mut paused = supplier("B", everywhere(), "5");
    paused.paused = true;
    let cat5 = Catalog::new(
        vec![paused, supplier("C", everywhere(), "6")],
        vec![offer("B", "X", "1", None), offer("C", "X", "99", None)],
    );
    let dec = route(&order("广东省", &[("X", 1)]), &cat5, &p, &none);
    assert_eq!(chosen(&dec), pairs(&[("L1", "C")]));
    assert!(dec.candidates.iter().any(|c| c.supplier.0 == "B" && c.excluded == Some(Exclusion::Paused)));
}

/// Ties broken in the rule set's order (lead time before priority here), and
/// rule sets chosen by marketplace, selling organisation and category, with
/// the fallback taking the rest.
#[test]
fn tie_breakers_and_order_attributes() {
    let everywhere = || Coverage::Except(vec![]);
    let mut fast = offer("FAST", "MAT1", "10", None);
    fast.lead_time_days = 1;
    let mut slow = offer("SLOW", "MAT1", "10", None);
    slow.lead_time_days = 5;
    let mut high = supplier("SLOW", everywhere(), "5");
    high.priority = 9;
    let cat = Catalog::new(vec![supplier("FAST", everywhere(), "5"), high], vec![fast, slow]);
    let none = HashMap::new();
    let policy = |tie: &str| {
        Policy::from_toml(&format!(
            r#"version = 1
[categories]
beds = ["MAT*"]

[[rule_set]]
name = "jd-beds-org100"
when = {{ platform = ["jd"], sales_org = ["100"], category = ["beds"] }}
tie_breakers = [{tie}]

[fallback]
name = "rest"
tie_breakers = ["priority"]
"#
        ))
        .unwrap()
    };
    let mut o = order("广东省", &[("MAT1", 1)]);
    o.platform = "jd".into();
    o.sales_org = "100".into();
    // Same landed cost (10 + 5): lead time first → FAST; priority first → SLOW.
    let dec = route(&o, &cat, &policy("\"lead_time\", \"priority\""), &none);
    assert_eq!((dec.rule_set.as_str(), chosen(&dec)), ("jd-beds-org100", pairs(&[("L1", "FAST")])));
    let dec = route(&o, &cat, &policy("\"priority\", \"lead_time\""), &none);
    assert_eq!(chosen(&dec), pairs(&[("L1", "SLOW")]));
    // Another marketplace or organisation: the fallback (priority) decides.
    for (platform, org) in [("tmall", "100"), ("jd", "200")] {
        o.platform = platform.into();
        o.sales_org = org.into();
        let dec = route(&o, &cat, &policy("\"lead_time\""), &none);
        assert_eq!((dec.rule_set.as_str(), chosen(&dec)), ("rest", pairs(&[("L1", "SLOW")])), "{platform} {org}");
    }
}

/// A stock figure older than the rule set's `stock_max_age_hours` is not
/// trusted: the line is routed as if stock were unknown.
#[test]
fn stale_stock_is_not_trusted() {
    let mut e = offer("A", "K", "10", Some(0));
    e.stock_confirmed_at = Some(0);
    let mut cat = Catalog::new(vec![supplier("A", Coverage::Except(vec![]), "5")], vec![e]);
    cat.as_of = Some(10 * 3_600_000);
    let none = HashMap::new();
    let o = order("广东省", &[("K", 1)]);
    let trusting = Policy::from_toml("version = 1\n[fallback]\nname = \"f\"\non_shortage = \"hold\"\n").unwrap();
    let dec = route(&o, &cat, &trusting, &none);
    assert!(matches!(dec.outcome, Outcome::OnHold(_)), "0 in stock, confirmed 10 h ago: {:?}", dec.outcome);
    let aging =
        Policy::from_toml("version = 1\n[fallback]\nname = \"f\"\non_shortage = \"hold\"\nstock_max_age_hours = 4\n")
            .unwrap();
    let dec = route(&o, &cat, &aging, &none);
    assert_eq!(chosen(&dec), pairs(&[("L1", "A")]));
    // Confirmed 2 h ago: trusted again.
    cat.as_of = Some(2 * 3_600_000);
    assert!(matches!(route(&o, &cat, &aging, &none).outcome, Outcome::OnHold(_)));
}

/// (suppliers: enabled, serves Guangdong, shipping), (offers: supplier,
/// sku, cost, stock), (lines: sku, quantity).
type World = (Vec<(bool, bool, u8)>, Vec<(u8, u8, u16, Option<u8>)>, Vec<(u8, u8)>);

fn arb_world() -> impl Strategy<Value = World> {
    (
        // suppliers: (enabled, serves Guangdong, shipping)
        prop::collection::vec((any::<bool>(), any::<bool>(), 0u8..20), 1..12),
        // offers: (supplier idx, sku idx, cost, stock)
        prop::collection::vec((0u8..12, 0u8..8, 1u16..500, prop::option::of(0u8..10)), 0..60),
        // order lines: (sku idx, qty)
        prop::collection::vec((0u8..8, 1u8..5), 1..6),
    )
}

proptest! {
    #[test]
    fn allocations_are_sound((sups, offers, lines) in arb_world()) {
        let suppliers: Vec<SupplierProfile> = sups.iter().enumerate().map(|(i, (en, gd, ship))| {
            let mut s = supplier(&format!("S{i}"), if *gd { Coverage::Except(vec![]) } else { Coverage::Only(vec!["浙江省".into()]) }, &ship.to_string());
            s.enabled = *en;
            s
        }).collect();
        let entries: Vec<CatalogEntry> = offers.iter().filter(|(s, ..)| (*s as usize) < sups.len())
            .map(|(s, k, c, st)| offer(&format!("S{s}"), &format!("K{k}"), &c.to_string(), st.map(u32::from))).collect();
        let cat = Catalog::new(suppliers, entries);
        let skus: Vec<(String, u32)> = lines.iter().map(|(k, q)| (format!("K{k}"), u32::from(*q))).collect();
        let refs: Vec<(&str, u32)> = skus.iter().map(|(k, q)| (k.as_str(), *q)).collect();
        let o = order("广东省", &refs);
        let dec = route(&o, &cat, &policy(), &HashMap::new());
        match dec.outcome {
            Outcome::OnHold(_) => prop_assert!(dec.allocations.is_empty()),
            _ => {
                // Every line exactly once, to one supplier; quantities conserved.
                prop_assert_eq!(dec.allocations.len(), o.lines.len());
                for (a, l) in dec.allocations.iter().zip(&o.lines) {
                    prop_assert_eq!(&a.line_id, &l.erp_line_id.0);
                    let offered = cat.offers(l.sku.as_str()).iter().any(|(_, e)| e.supplier == a.supplier);
                    prop_assert!(offered, "allocated to a supplier that does not carry the SKU");
                    // Never an excluded candidate — unless backordered for stock alone.
                    let c = dec.candidates.iter().find(|c| c.line_id == a.line_id && c.supplier == a.supplier).unwrap();
                    match &c.excluded {
                        None => prop_assert!(!a.backordered),
                        Some(Exclusion::OutOfStock { .. }) => prop_assert!(a.backordered),
                        Some(other) => prop_assert!(false, "excluded supplier chosen: {:?}", other),
                    }
                    prop_assert!(c.chosen);
                }
                prop_assert!(dec.suppliers.len() <= 2, "max_splits = 1");
                // Re-routing: every (line, supplier) of this plan failed; the
                // next attempt never offers a line to its failed supplier.
                let tried: HashSet<(String, SupplierId)> =
                    dec.allocations.iter().map(|a| (a.line_id.clone(), a.supplier.clone())).collect();
                let again = route_excluding(&o, &cat, &policy(), &HashMap::new(), &tried);
                for a in &again.allocations {
                    prop_assert!(!tried.contains(&(a.line_id.clone(), a.supplier.clone())), "failed pair offered again");
                }
            }
        }
    }
}
