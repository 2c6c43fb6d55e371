//! A supplier catalog for `daifa demo` and the routing benchmarks: five
//! warehouses (regional and nationwide) over the K3Cloud simulator's SKUs
//! (`MAT00000`…), as the TOML text an operator would load. Deterministic
//! from a seed. Supplier SKUs follow the REST supplier simulator's
//! `SKU-nnnnn` form, so its stock and unknown-SKU rules apply.

use std::fmt::Write as _;

use super::orders::Gen;

/// (id, name, regions or `None` = everywhere, except, default shipping,
/// per-province shipping, cost factor %, share of SKUs carried %)
type Warehouse = (
    &'static str,
    &'static str,
    Option<&'static [&'static str]>,
    &'static [&'static str],
    u32,
    &'static [(&'static str, u32)],
    u64,
    u64,
);

const WAREHOUSES: &[Warehouse] = &[
    (
        "HZ",
        "杭州仓",
        Some(&["浙江省", "江苏省", "上海市", "安徽省", "福建省", "山东省"]),
        &[],
        4,
        &[("上海市", 3)],
        100,
        60,
    ),
    (
        "GZ",
        "广州仓",
        Some(&["广东省", "广西壮族自治区", "海南省", "福建省", "湖南省"]),
        &[],
        4,
        &[("广东省", 3)],
        98,
        60,
    ),
    ("BJ", "北京仓", Some(&["北京市", "天津市", "河北省", "山东省", "山西省", "辽宁省"]), &[], 5, &[], 103, 50),
    (
        "CD",
        "成都仓",
        None,
        &["新疆维吾尔自治区", "西藏自治区"],
        9,
        &[("四川省", 3), ("陕西省", 5), ("湖北省", 6)],
        95,
        50,
    ),
    ("QG", "全国仓", None, &[], 12, &[], 108, 100),
];

/// The catalog as TOML: `skus` SKUs, every one carried by the nationwide
/// warehouse and about half by each regional one; a few with little stock.
pub fn demo_catalog_toml(skus: u64, seed: u64) -> String {
    let mut g = Gen::new(seed);
    let mut t = String::from("# daifa demo catalog: five warehouses, generated\n");
    for (id, name, regions, except, ship, per_province, _, _) in WAREHOUSES {
        let _ = write!(t, "\n[[supplier]]\nid = \"{id}\"\nname = \"{name}\"\nplugin = \"rest-json\"\n");
        let list = |v: &[&str]| v.iter().map(|r| format!("\"{r}\"")).collect::<Vec<_>>().join(", ");
        match regions {
            Some(r) => {
                let _ = writeln!(t, "regions = [{}]", list(r));
            }
            None if !except.is_empty() => {
                let _ = writeln!(t, "except_regions = [{}]", list(except));
            }
            None => {}
        }
        let _ = writeln!(t, "default_shipping = \"{ship}\"");
        if !per_province.is_empty() {
            let s: Vec<String> = per_province.iter().map(|(p, c)| format!("\"{p}\" = \"{c}\"")).collect();
            let _ = writeln!(t, "shipping = {{ {} }}", s.join(", "));
        }
    }
    for n in 0..skus {
        // One base cost per SKU (5.00–200.00), each warehouse's own markup.
        let base = 500 + g.below(19_500);
        for (id, _, _, _, _, _, factor, carries) in WAREHOUSES {
            if g.below(100) >= *carries {
                continue;
            }
            let cents = base * factor / 100 + g.below(base / 20 + 1);
            let _ = write!(
                t,
                "\n[[offer]]\nsupplier = \"{id}\"\nsku = \"MAT{n:05}\"\nsupplier_sku = \"SKU-{n:05}\"\nunit_cost = \"{}.{:02}\"\nlead_time_days = {}\n",
                cents / 100,
                cents % 100,
                1 + g.below(4)
            );
            // A few offers with a confirmed low stock figure; the rest unknown.
            if g.below(20) == 0 {
                let _ = writeln!(t, "stock = {}", g.below(3));
            }
        }
    }
    t
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_demo_catalog_loads() {
        let text = super::demo_catalog_toml(200, 7);
        let c = crate::routing::CatalogFile::load_toml(&text, 0).unwrap();
        assert_eq!(c.suppliers.len(), 5);
        // The nationwide warehouse carries everything.
        assert_eq!(c.entries.iter().filter(|e| e.supplier.0 == "QG").count(), 200);
        assert!(c.entries.len() > 200 + 4 * 80, "regional warehouses carry about half: {}", c.entries.len());
    }
}
