//! Routing policies: versioned, declarative (TOML), validated on load with
//! errors that name the line and field. Conditional rule sets in order, then
//! a fallback; each says which candidates qualify and how to score them.

use std::collections::BTreeMap;

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use super::toml_at::{Seg, at_line};

/// A whole policy file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    /// Bumped on every change; recorded with each decision.
    pub version: u32,
    /// Product categories for `when.category`: name → SKUs, where a
    /// trailing `*` matches a prefix (`"MAT*"`).
    #[serde(default)]
    pub categories: BTreeMap<String, Vec<String>>,
    #[serde(default, rename = "rule_set")]
    pub rule_sets: Vec<RuleSet>,
    pub fallback: RuleSet,
}

/// When a rule set applies (all given conditions must hold).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct When {
    pub province: Vec<String>,
    pub customer: Vec<String>,
    /// The intake channel (`kingdee`, a REST source name, ...).
    pub source: Vec<String>,
    /// The ERP's selling organisation (Kingdee `FSaleOrgId`).
    pub sales_org: Vec<String>,
    /// The marketplace the order came from (Tmall, JD, Douyin, ...).
    pub platform: Vec<String>,
    /// Any line's SKU starts with one of these.
    pub sku_prefix: Vec<String>,
    /// Any line's SKU is in one of these categories (see `[categories]`).
    pub category: Vec<String>,
    pub min_order_value: Option<Decimal>,
    pub max_order_value: Option<Decimal>,
}

/// Which candidates qualify.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Filter {
    /// Stock ≥ quantity + safety stock (unknown stock passes).
    InStock,
    /// Ships to the order's province / city.
    ServesRegion,
    /// Daily capacity left.
    Capacity,
    /// Not paused or circuit-open, and healthy enough.
    Healthy,
}

/// Keep an order with one supplier?
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KeepTogether {
    /// One supplier or hold the order.
    Required,
    /// Splits cost `split_penalty` each.
    Preferred,
    /// Splits cost nothing extra beyond their shipping.
    Free,
}

/// What to do with lines nobody can ship now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnShortage {
    /// Route what can ship; the rest is backordered with its best supplier.
    Backorder,
    /// Hold the whole order.
    Hold,
}

/// How plans with equal effective cost are ordered, in the rule set's order;
/// after them the plan found first (catalog order) wins, so ties are
/// deterministic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TieBreaker {
    /// Fewer suppliers (fewer parcels).
    FewerSuppliers,
    /// Higher total supplier priority.
    Priority,
    /// Higher mean performance score of the suppliers used.
    Performance,
    /// Shorter longest lead time.
    LeadTime,
}

/// Score weights: lower effective cost wins.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Weights {
    /// Effective cost = landed cost × (1 + performance × (1 − score)).
    pub performance: Decimal,
    /// Apply the supplier's preference multiplier.
    pub preference: bool,
}

impl Default for Weights {
    fn default() -> Self {
        Weights { performance: Decimal::new(5, 1), preference: true }
    }
}

/// One rule set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleSet {
    pub name: String,
    #[serde(default)]
    pub when: When,
    #[serde(default = "default_filters")]
    pub filters: Vec<Filter>,
    #[serde(default)]
    pub safety_stock: u32,
    #[serde(default)]
    pub weights: Weights,
    #[serde(default = "default_keep")]
    pub keep_together: KeepTogether,
    #[serde(default)]
    pub split_penalty: Decimal,
    /// Most extra suppliers per order (0 = no splits).
    #[serde(default = "default_max_splits")]
    pub max_splits: u32,
    #[serde(default = "default_shortage")]
    pub on_shortage: OnShortage,
    /// Suppliers below this performance score are excluded by `healthy`.
    #[serde(default)]
    pub min_performance: Decimal,
    #[serde(default = "default_tie_breakers")]
    pub tie_breakers: Vec<TieBreaker>,
    /// A stock figure confirmed longer ago than this is not trusted: the
    /// `in_stock` filter treats it as unknown. Absent: figures never age.
    #[serde(default)]
    pub stock_max_age_hours: Option<u32>,
}

fn default_filters() -> Vec<Filter> {
    vec![Filter::ServesRegion, Filter::InStock, Filter::Capacity, Filter::Healthy]
}
fn default_tie_breakers() -> Vec<TieBreaker> {
    vec![TieBreaker::FewerSuppliers, TieBreaker::Priority, TieBreaker::Performance, TieBreaker::LeadTime]
}
fn default_keep() -> KeepTogether {
    KeepTogether::Preferred
}
fn default_max_splits() -> u32 {
    2
}
fn default_shortage() -> OnShortage {
    OnShortage::Backorder
}

/// A policy that failed to load.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct PolicyError(pub String);

impl Policy {
    /// Parses and validates a policy; errors name the line and field.
    pub fn from_toml(text: &str) -> Result<Policy, PolicyError> {
        let p: Policy = toml::from_str(text).map_err(|e| PolicyError(format!("routing policy: {e}")))?;
        p.validate(text)?;
        Ok(p)
    }

    fn validate(&self, text: &str) -> Result<(), PolicyError> {
        for (name, skus) in &self.categories {
            if skus.iter().any(|s| s.trim_end_matches('*').is_empty()) {
                let at = at_line(text, &[Seg::Key("categories"), Seg::Key(name)]);
                return Err(PolicyError(format!("routing policy: {at}categories.{name}: an empty SKU pattern")));
            }
        }
        let n = self.rule_sets.len();
        for (i, rs) in self.rule_sets.iter().chain(std::iter::once(&self.fallback)).enumerate() {
            let (label, table): (String, Vec<Seg<'_>>) = if i < n {
                (format!("rule_set[{i}] `{}`", rs.name), vec![Seg::Key("rule_set"), Seg::Index(i)])
            } else {
                ("fallback".to_string(), vec![Seg::Key("fallback")])
            };
            let fail = |field: &[&str], why: String| {
                let mut path = table.clone();
                path.extend(field.iter().map(|f| Seg::Key(f)));
                PolicyError(format!("routing policy: {}{label}: {why}", at_line(text, &path)))
            };
            if rs.split_penalty < Decimal::ZERO {
                return Err(fail(&["split_penalty"], "split_penalty must not be negative".into()));
            }
            if rs.weights.performance < Decimal::ZERO {
                return Err(fail(&["weights", "performance"], "weights.performance must not be negative".into()));
            }
            if rs.min_performance < Decimal::ZERO || rs.min_performance > Decimal::ONE {
                return Err(fail(&["min_performance"], "min_performance must be between 0 and 1".into()));
            }
            if rs.keep_together == KeepTogether::Required && rs.max_splits > 0 {
                return Err(fail(
                    &["max_splits"],
                    format!("keep_together = \"required\" contradicts max_splits = {}", rs.max_splits),
                ));
            }
            if let (Some(lo), Some(hi)) = (rs.when.min_order_value, rs.when.max_order_value)
                && lo > hi
            {
                return Err(fail(
                    &["when", "min_order_value"],
                    format!("when.min_order_value {lo} is above max_order_value {hi}"),
                ));
            }
            if let Some(c) = rs.when.category.iter().find(|c| !self.categories.contains_key(*c)) {
                return Err(fail(&["when", "category"], format!("when.category `{c}` is not defined in [categories]")));
            }
            if rs.stock_max_age_hours == Some(0) {
                return Err(fail(&["stock_max_age_hours"], "stock_max_age_hours must be above 0".into()));
            }
            if let Some(t) = rs.tie_breakers.iter().enumerate().find(|(j, t)| rs.tie_breakers[..*j].contains(t)) {
                return Err(fail(&["tie_breakers"], format!("tie_breakers lists {:?} twice", t.1)));
            }
        }
        Ok(())
    }

    /// Is `sku` in category `name`?
    fn in_category(&self, name: &str, sku: &str) -> bool {
        self.categories.get(name).is_some_and(|pats| {
            pats.iter().any(|p| match p.strip_suffix('*') {
                Some(prefix) => sku.starts_with(prefix),
                None => sku == p,
            })
        })
    }

    /// The first rule set whose conditions hold, else the fallback.
    pub fn select(&self, ctx: &OrderContext<'_>) -> &RuleSet {
        self.rule_sets.iter().find(|rs| rs.when.matches(ctx, self)).unwrap_or(&self.fallback)
    }
}

/// What rule conditions look at.
pub struct OrderContext<'a> {
    pub province: &'a str,
    pub customer: &'a str,
    pub source: &'a str,
    pub sales_org: &'a str,
    pub platform: &'a str,
    pub skus: Vec<&'a str>,
    pub value: Decimal,
}

impl When {
    fn matches(&self, c: &OrderContext<'_>, policy: &Policy) -> bool {
        let one_of = |list: &[String], v: &str| list.is_empty() || list.iter().any(|x| x == v);
        one_of(&self.province, c.province)
            && one_of(&self.customer, c.customer)
            && one_of(&self.source, c.source)
            && one_of(&self.sales_org, c.sales_org)
            && one_of(&self.platform, c.platform)
            && (self.sku_prefix.is_empty()
                || c.skus.iter().any(|s| self.sku_prefix.iter().any(|p| s.starts_with(p.as_str()))))
            && (self.category.is_empty()
                || c.skus.iter().any(|s| self.category.iter().any(|cat| policy.in_category(cat, s))))
            && self.min_order_value.is_none_or(|m| c.value >= m)
            && self.max_order_value.is_none_or(|m| c.value <= m)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_name_line_and_field() {
        let e = Policy::from_toml("version = 1\n[fallback]\nname = \"f\"\nfilters = [\"in_stock\", \"teleport\"]\n")
            .unwrap_err();
        assert!(e.0.contains("line 4") && e.0.contains("teleport"), "{e}");
        let e = Policy::from_toml("version = 1\n[fallback]\nname = \"f\"\nsplit_penalty = \"-1\"\n").unwrap_err();
        assert!(e.0.contains("line 4, fallback: split_penalty"), "{e}");
        let e = Policy::from_toml(
            "version = 1\n[categories]\nbeds = [\"MAT*\"]\n\n[[rule_set]]\nname = \"r\"\nwhen = { category = [\"sofas\"] }\n[fallback]\nname = \"f\"\n",
        )
        .unwrap_err();
        assert!(e.0.contains("line 7, rule_set[0] `r`: when.category `sofas` is not defined"), "{e}");
        let e = Policy::from_toml(
            "version = 1\n[fallback]\nname = \"f\"\ntie_breakers = [\"priority\", \"lead_time\", \"priority\"]\n",
        )
        .unwrap_err();
        assert!(e.0.contains("line 4, fallback: tie_breakers lists Priority twice"), "{e}");
        let e =
            Policy::from_toml("version = 1\n[fallback]\nname = \"f\"\nkeep_together = \"required\"\nmax_splits = 1\n")
                .unwrap_err();
        assert!(e.0.contains("contradicts"), "{e}");
        let e = Policy::from_toml("version = 1\n[fallback]\nnam = \"f\"\n").unwrap_err();
        assert!(e.0.contains("nam"), "{e}");
    }

    #[test]
    fn rule_sets_match_on_org_platform_and_category() {
        let p = Policy::from_toml(
            "version = 1\n[categories]\nbeds = [\"MAT*\", \"PIL001\"]\n\n[[rule_set]]\nname = \"jd-beds\"\n\
             when = { platform = [\"jd\"], sales_org = [\"100\"], category = [\"beds\"] }\n[fallback]\nname = \"f\"\n",
        )
        .unwrap();
        let ctx = |org, platform, sku| OrderContext {
            province: "浙江省",
            customer: "C1",
            source: "kingdee",
            sales_org: org,
            platform,
            skus: vec![sku],
            value: Decimal::ONE,
        };
        assert_eq!(p.select(&ctx("100", "jd", "MAT00001")).name, "jd-beds");
        assert_eq!(p.select(&ctx("100", "jd", "PIL001")).name, "jd-beds");
        assert_eq!(p.select(&ctx("100", "jd", "PIL0011")).name, "f");
        assert_eq!(p.select(&ctx("200", "jd", "MAT00001")).name, "f");
        assert_eq!(p.select(&ctx("100", "tmall", "MAT00001")).name, "f");
    }
}
