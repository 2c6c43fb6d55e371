//! Routing throughput: 10,000 orders (1–5 lines) against 20 suppliers and
//! 5,000 SKUs, on one core.
//!
//! Run: `cargo bench -p daifa-host --bench routing`

use std::collections::HashMap;
use std::str::FromStr;
use std::time::Instant;

use daifa_host::domain::*;
use daifa_host::routing::{Catalog, Outcome, Policy, SupplierProfile, route};
use daifa_host::sim::orders::Gen;
use rust_decimal::Decimal;

const POLICY: &str = r#"
version = 1
[[rule_set]]
name = "remote-together"
when = { province = ["新疆维吾尔自治区", "西藏自治区"] }
keep_together = "required"
max_splits = 0
[fallback]
name = "default"
split_penalty = "8"
max_splits = 2
safety_stock = 1
"#;

fn main() {
    let mut g = Gen::new(42);
    let provinces = ["广东省", "浙江省", "江苏省", "四川省", "北京市", "上海市", "湖北省", "山东省"];
    let suppliers: Vec<SupplierProfile> = (0..20)
        .map(|i| SupplierProfile {
            id: SupplierId(format!("S{i:02}")),
            enabled: true,
            paused: false,
            circuit_open: false,
            coverage: if i % 5 == 0 {
                Coverage::Only(provinces[..4].iter().map(|p| p.to_string()).collect())
            } else {
                Coverage::Except(vec!["西藏自治区".into()])
            },
            shipping: provinces.iter().map(|p| (p.to_string(), Decimal::from(5 + g.below(10)))).collect(),
            default_shipping: Decimal::from(12),
            daily_capacity: None,
            used_today: 0,
            priority: i % 3,
            preference: Decimal::ONE,
            erp: Default::default(),
        })
        .collect();
    let mut entries = Vec::new();
    for sku in 0..5_000u64 {
        for _ in 0..(2 + g.below(4)) {
            let s = g.below(20);
            entries.push(CatalogEntry {
                supplier: SupplierId(format!("S{s:02}")),
                sku: Sku(format!("MAT{sku:05}")),
                supplier_sku: SupplierSku(format!("S{s:02}-{sku}")),
                unit_cost: Decimal::new(500 + g.below(20_000) as i64, 2),
                currency: "CNY".into(),
                lead_time_days: 2,
                stock: if g.below(10) == 0 { Some(g.below(3) as u32) } else { Some(100) },
                stock_confirmed_at: None,
                coverage: Coverage::Except(vec![]),
            });
        }
    }
    let catalog = Catalog::new(suppliers, entries);
    let policy = Policy::from_toml(POLICY).unwrap();
    let perf: HashMap<SupplierId, Decimal> =
        (0..20).map(|i| (SupplierId(format!("S{i:02}")), Decimal::from_str("0.9").unwrap())).collect();
    let orders: Vec<OrderContent> = (0..10_000u64)
        .map(|n| {
            let po = g.purchase_order(n, 5_000);
            OrderContent {
                source: "kingdee".into(),
                external_id: ExternalId(n.to_string()),
                bill_no: BillNo(format!("XSDD{n}")),
                platform_order_no: None,
                customer: "C".into(),
                sales_org: String::new(),
                platform: String::new(),
                ship_to: ShipTo {
                    province: provinces[g.below(provinces.len() as u64) as usize].into(),
                    city: po.ship_to.city.clone(),
                    ..Default::default()
                },
                lines: po
                    .lines
                    .iter()
                    .map(|l| OrderLine {
                        erp_line_id: ErpLineId(l.line_id.clone()),
                        sku: Sku(l.our_sku.clone()),
                        quantity: Decimal::from(l.quantity),
                        unit_price: Decimal::from(100),
                        tax_rate: Decimal::from(13),
                        unit: String::new(),
                    })
                    .collect(),
                remark: String::new(),
                source_modified: String::new(),
                cancelled: false,
                intake_problems: vec![],
            }
        })
        .collect();
    let lines: usize = orders.iter().map(|o| o.lines.len()).sum();
    // Warm up, then measure three passes on this one thread.
    let mut routed = 0;
    for o in orders.iter().take(1_000) {
        routed += usize::from(!matches!(route(o, &catalog, &policy, &perf).outcome, Outcome::OnHold(_)));
    }
    let mut best = f64::MAX;
    for _ in 0..3 {
        routed = 0;
        let t = Instant::now();
        for o in &orders {
            let d = route(o, &catalog, &policy, &perf);
            routed += usize::from(!matches!(d.outcome, Outcome::OnHold(_)));
        }
        best = best.min(t.elapsed().as_secs_f64());
    }
    println!(
        "routed {} orders ({lines} lines; {routed} routed, {} on hold) against 20 suppliers / 5,000 SKUs in {:.3} s on one core = {:.0} decisions/s",
        orders.len(),
        orders.len() - routed,
        best,
        orders.len() as f64 / best
    );
}
