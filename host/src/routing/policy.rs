//! Routing policies: versioned, declarative (TOML), validated on load with
//! errors that name the line and field. Conditional rule sets in order, then
//! a fallback; each says which candidates qualify and how to score them.

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

/// A whole policy file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    /// Bumped on every change; recorded with each decision.
    pub version: u32,
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
    pub source: Vec<String>,
    pub sku_prefix: Vec<String>,
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
}

fn default_filters() -> Vec<Filter> {
    vec![Filter::ServesRegion, Filter::InStock, Filter::Capacity, Filter::Healthy]
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
        for (i, rs) in p.rule_sets.iter().chain(std::iter::once(&p.fallback)).enumerate() {
            let at =
                if i < p.rule_sets.len() { format!("rule_set[{i}] `{}`", rs.name) } else { "fallback".to_string() };
            if rs.split_penalty < Decimal::ZERO {
                return Err(PolicyError(format!("{at}: split_penalty must not be negative")));
            }
            if rs.weights.performance < Decimal::ZERO {
                return Err(PolicyError(format!("{at}: weights.performance must not be negative")));
            }
            if rs.keep_together == KeepTogether::Required && rs.max_splits > 0 {
                return Err(PolicyError(format!(
                    "{at}: keep_together = \"required\" contradicts max_splits = {}",
                    rs.max_splits
                )));
            }
            if let (Some(lo), Some(hi)) = (rs.when.min_order_value, rs.when.max_order_value)
                && lo > hi
            {
                return Err(PolicyError(format!("{at}: when.min_order_value {lo} is above max_order_value {hi}")));
            }
        }
        Ok(p)
    }

    /// The first rule set whose conditions hold, else the fallback.
    pub fn select(&self, ctx: &OrderContext<'_>) -> &RuleSet {
        self.rule_sets.iter().find(|rs| rs.when.matches(ctx)).unwrap_or(&self.fallback)
    }
}

/// What rule conditions look at.
pub struct OrderContext<'a> {
    pub province: &'a str,
    pub customer: &'a str,
    pub source: &'a str,
    pub skus: Vec<&'a str>,
    pub value: Decimal,
}

impl When {
    fn matches(&self, c: &OrderContext<'_>) -> bool {
        (self.province.is_empty() || self.province.iter().any(|p| p == c.province))
            && (self.customer.is_empty() || self.customer.iter().any(|x| x == c.customer))
            && (self.source.is_empty() || self.source.iter().any(|x| x == c.source))
            && (self.sku_prefix.is_empty()
                || c.skus.iter().any(|s| self.sku_prefix.iter().any(|p| s.starts_with(p.as_str()))))
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
        assert!(e.0.contains("fallback: split_penalty"), "{e}");
        let e =
            Policy::from_toml("version = 1\n[fallback]\nname = \"f\"\nkeep_together = \"required\"\nmax_splits = 1\n")
                .unwrap_err();
        assert!(e.0.contains("contradicts"), "{e}");
        let e = Policy::from_toml("version = 1\n[fallback]\nnam = \"f\"\n").unwrap_err();
        assert!(e.0.contains("nam"), "{e}");
    }
}
