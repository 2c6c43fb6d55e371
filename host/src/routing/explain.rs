//! Decisions in words, for people: `daifa route explain ORDER` prints this.
//! The API serves the same decisions as JSON.

use std::fmt::Write as _;

use super::allocate::{Decision, Exclusion, Outcome};

/// One decision attempt as text: a header line and a candidate table.
pub fn render(attempt: u32, cause: &str, tried: &[(String, crate::domain::SupplierId)], d: &Decision) -> String {
    let mut out = String::new();
    let outcome = match &d.outcome {
        Outcome::Routed => "routed".to_string(),
        Outcome::PartlyBackordered => "routed with backorders".to_string(),
        Outcome::OnHold(why) => format!("on hold: {why}"),
    };
    let _ = writeln!(
        out,
        "attempt {attempt} ({cause}) · policy v{} · rule set `{}` · {outcome}",
        d.policy_version, d.rule_set
    );
    if !d.suppliers.is_empty() {
        let plan: Vec<String> = d
            .allocations
            .iter()
            .map(|a| format!("{}→{}{}", a.line_id, a.supplier, if a.backordered { " (backorder)" } else { "" }))
            .collect();
        let _ = writeln!(
            out,
            "  plan: {} · landed cost {} · score {}",
            plan.join(", "),
            d.landed_cost,
            d.score.round_dp(2)
        );
    }
    if !tried.is_empty() {
        let t: Vec<String> = tried.iter().map(|(l, s)| format!("{l}@{s}")).collect();
        let _ = writeln!(out, "  not offered again (failed before): {}", t.join(", "));
    }
    let _ = writeln!(
        out,
        "  {:<14} {:<12} {:>10} {:>9} {:>6} {:>6} {:>7}  result",
        "line", "supplier", "goods", "shipping", "perf", "pref", "factor"
    );
    for c in &d.candidates {
        let result = match (&c.excluded, c.chosen) {
            (_, true) => "CHOSEN".to_string(),
            (Some(e), _) => format!("excluded: {}", exclusion(e)),
            (None, false) => "eligible, costlier plan".to_string(),
        };
        let _ = writeln!(
            out,
            "  {:<14} {:<12} {:>10} {:>9} {:>6} {:>6} {:>7}  {result}",
            c.line_id,
            c.supplier.as_str(),
            c.goods_cost.round_dp(2),
            c.shipping.round_dp(2),
            c.performance.round_dp(3),
            c.preference.round_dp(2),
            c.factor.round_dp(3),
        );
    }
    out
}

/// An exclusion reason in words.
pub fn exclusion(e: &Exclusion) -> String {
    match e {
        Exclusion::Disabled => "supplier disabled".into(),
        Exclusion::Paused => "supplier paused".into(),
        Exclusion::CircuitOpen => "circuit open".into(),
        Exclusion::NotServingRegion => "does not ship to this region".into(),
        Exclusion::TriedBefore => "failed this line in an earlier attempt".into(),
        Exclusion::OutOfStock { available, needed } => format!("stock {available} < {needed} needed"),
        Exclusion::NoCapacity => "daily capacity used up".into(),
        Exclusion::LowPerformance { score } => format!("performance {score} below the rule set's minimum"),
    }
}
