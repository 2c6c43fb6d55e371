//! Line-level allocation: every line to at most one supplier, minimising
//! landed cost (goods + one parcel's shipping per supplier used), weighted by
//! performance and preference, plus the split penalty — under the rule set's
//! filters, keep-together and max-splits. Exact over supplier sets when at
//! most `EXACT_SUPPLIERS` suppliers qualify; beyond that the search keeps the
//! best `EXACT_SUPPLIERS` (most lines covered, then cheapest) — bounded.
//! Every candidate considered is recorded with its score parts or exclusion.

use std::collections::{HashMap, HashSet};

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use super::catalog::Catalog;
use super::policy::{Filter, KeepTogether, OnShortage, OrderContext, Policy, RuleSet, TieBreaker};
use crate::domain::{OrderContent, SupplierId};

/// Supplier sets larger than this are searched in a bounded way.
pub const EXACT_SUPPLIERS: usize = 8;

/// Why a candidate was not eligible.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "reason")]
pub enum Exclusion {
    Disabled,
    Paused,
    CircuitOpen,
    NotServingRegion,
    /// Already tried for this line in an earlier attempt (rejected, overdue).
    TriedBefore,
    OutOfStock {
        available: u32,
        needed: Decimal,
    },
    NoCapacity,
    LowPerformance {
        score: Decimal,
    },
}

/// One (line, supplier) pair considered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Candidate {
    pub line_id: String,
    pub supplier: SupplierId,
    /// unit cost × quantity.
    pub goods_cost: Decimal,
    /// One parcel to the ship-to province (counted once per supplier used).
    pub shipping: Decimal,
    pub performance: Decimal,
    pub preference: Decimal,
    /// The multiplier applied to this supplier's costs.
    pub factor: Decimal,
    pub excluded: Option<Exclusion>,
    pub chosen: bool,
}

/// Where one line goes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LineAllocation {
    pub line_id: String,
    pub supplier: SupplierId,
    pub supplier_sku: String,
    pub unit_cost: Decimal,
    /// No stock now: the line waits at this supplier.
    pub backordered: bool,
}

/// The result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind", content = "reason")]
pub enum Outcome {
    Routed,
    /// Routed, with some lines backordered.
    PartlyBackordered,
    OnHold(String),
}

/// A routing decision with its explanation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Decision {
    pub policy_version: u32,
    pub rule_set: String,
    pub outcome: Outcome,
    pub allocations: Vec<LineAllocation>,
    pub candidates: Vec<Candidate>,
    /// Effective cost of the chosen plan (what was minimised).
    pub score: Decimal,
    /// Plain landed cost (goods + shipping) of the chosen plan.
    pub landed_cost: Decimal,
    pub suppliers: Vec<SupplierId>,
}

struct Offer {
    sup: usize,
    supplier_sku: String,
    unit_cost: Decimal,
    goods: Decimal,
    lead_time_days: u32,
}

/// Routes one order. `performance` maps suppliers to a 0–1 score (missing = 1).
pub fn route(
    order: &OrderContent,
    catalog: &Catalog,
    policy: &Policy,
    performance: &HashMap<SupplierId, Decimal>,
) -> Decision {
    route_excluding(order, catalog, policy, performance, &HashSet::new())
}

/// Routes one order, never giving a line to a supplier listed with it in
/// `tried` (`(line id, supplier)`: rejected or overdue in an earlier attempt).
pub fn route_excluding(
    order: &OrderContent,
    catalog: &Catalog,
    policy: &Policy,
    performance: &HashMap<SupplierId, Decimal>,
    tried: &HashSet<(String, SupplierId)>,
) -> Decision {
    let value: Decimal = order.lines.iter().map(|l| l.unit_price * l.quantity).sum();
    let ctx = OrderContext {
        province: &order.ship_to.province,
        customer: &order.customer,
        source: order.source.as_str(),
        sales_org: &order.sales_org,
        platform: &order.platform,
        skus: order.lines.iter().map(|l| l.sku.as_str()).collect(),
        value,
    };
    let rs = policy.select(&ctx);
    let province = order.ship_to.province.as_str();
    let perf = |s: &SupplierId| performance.get(s).copied().unwrap_or(Decimal::ONE);
    let factor = |i: usize| {
        let s = &catalog.suppliers[i];
        let p = perf(&s.id);
        let pref = if rs.weights.preference { s.preference } else { Decimal::ONE };
        pref * (Decimal::ONE + rs.weights.performance * (Decimal::ONE - p))
    };

    let mut candidates = Vec::new();
    // Per line: eligible offers, and offers blocked only by stock (backorder).
    let mut eligible: Vec<Vec<Offer>> = Vec::with_capacity(order.lines.len());
    let mut stock_blocked: Vec<Vec<Offer>> = Vec::with_capacity(order.lines.len());
    for line in &order.lines {
        let mut ok = Vec::new();
        let mut later = Vec::new();
        for (i, entry) in catalog.offers(line.sku.as_str()) {
            let s = &catalog.suppliers[*i];
            let failed_before = !tried.is_empty() && tried.contains(&(line.erp_line_id.0.clone(), s.id.clone()));
            let excluded =
                exclusion(rs, s, failed_before, entry.stock, line.quantity, province, &order.ship_to.city, perf(&s.id));
            let offer = Offer {
                sup: *i,
                supplier_sku: entry.supplier_sku.0.clone(),
                unit_cost: entry.unit_cost,
                goods: entry.unit_cost * line.quantity,
                lead_time_days: entry.lead_time_days,
            };
            candidates.push(Candidate {
                line_id: line.erp_line_id.0.clone(),
                supplier: s.id.clone(),
                goods_cost: offer.goods,
                shipping: s.shipping_to(province),
                performance: perf(&s.id),
                preference: s.preference,
                factor: factor(*i),
                excluded: excluded.clone(),
                chosen: false,
            });
            match excluded {
                None => ok.push(offer),
                Some(Exclusion::OutOfStock { .. }) => later.push(offer),
                Some(_) => {}
            }
        }
        eligible.push(ok);
        stock_blocked.push(later);
    }

    let hold = |reason: String, candidates: Vec<Candidate>| Decision {
        policy_version: policy.version,
        rule_set: rs.name.clone(),
        outcome: Outcome::OnHold(reason),
        allocations: vec![],
        candidates,
        score: Decimal::ZERO,
        landed_cost: Decimal::ZERO,
        suppliers: vec![],
    };

    // Lines nobody can ship now: backorder them or hold the order.
    let mut backorder = vec![false; order.lines.len()];
    for (i, line) in order.lines.iter().enumerate() {
        if eligible[i].is_empty() {
            if catalog.offers(line.sku.as_str()).is_empty() {
                return hold(format!("no supplier carries SKU {} (line {})", line.sku, line.erp_line_id), candidates);
            }
            if rs.on_shortage == OnShortage::Hold || stock_blocked[i].is_empty() {
                return hold(
                    format!(
                        "no eligible supplier for line {} ({}) under rule set `{}`",
                        line.erp_line_id, line.sku, rs.name
                    ),
                    candidates,
                );
            }
            backorder[i] = true;
            eligible[i] = std::mem::take(&mut stock_blocked[i]);
        }
    }

    let max_sets = match rs.keep_together {
        KeepTogether::Required => 1,
        _ => rs.max_splits as usize + 1,
    };
    let Some(plan) = best_plan(&eligible, max_sets, rs, catalog, province, &factor, &perf) else {
        let why = if rs.keep_together == KeepTogether::Required {
            "keep-together is required and no single supplier can ship every line".to_string()
        } else {
            format!("no plan with at most {} split(s) covers every line", rs.max_splits)
        };
        return hold(why, candidates);
    };

    let mut allocations = Vec::with_capacity(order.lines.len());
    let mut landed = Decimal::ZERO;
    let mut used: Vec<usize> = Vec::new();
    for (i, line) in order.lines.iter().enumerate() {
        let o = &eligible[i][plan.choice[i]];
        landed += o.goods;
        if !used.contains(&o.sup) {
            used.push(o.sup);
            landed += catalog.suppliers[o.sup].shipping_to(province);
        }
        let sid = &catalog.suppliers[o.sup].id;
        if let Some(c) = candidates.iter_mut().find(|c| c.line_id == line.erp_line_id.0 && &c.supplier == sid) {
            c.chosen = true;
        }
        allocations.push(LineAllocation {
            line_id: line.erp_line_id.0.clone(),
            supplier: sid.clone(),
            supplier_sku: o.supplier_sku.clone(),
            unit_cost: o.unit_cost,
            backordered: backorder[i],
        });
    }
    Decision {
        policy_version: policy.version,
        rule_set: rs.name.clone(),
        outcome: if backorder.iter().any(|b| *b) { Outcome::PartlyBackordered } else { Outcome::Routed },
        allocations,
        candidates,
        score: plan.score,
        landed_cost: landed,
        suppliers: used.iter().map(|&i| catalog.suppliers[i].id.clone()).collect(),
    }
}

/// Why `s` may not take a line, if it may not: the supplier's own state
/// first (disabled, circuit open), then an earlier failure of this line, then
/// the rule set's filters in order.
#[allow(clippy::too_many_arguments)]
fn exclusion(
    rs: &RuleSet,
    s: &super::catalog::SupplierProfile,
    failed_before: bool,
    stock: Option<u32>,
    qty: Decimal,
    province: &str,
    city: &str,
    perf: Decimal,
) -> Option<Exclusion> {
    if !s.enabled {
        return Some(Exclusion::Disabled);
    }
    // An open circuit removes a supplier whatever the rule set's filters say.
    if s.circuit_open {
        return Some(Exclusion::CircuitOpen);
    }
    if failed_before {
        return Some(Exclusion::TriedBefore);
    }
    for f in &rs.filters {
        match f {
            Filter::Healthy if s.paused => return Some(Exclusion::Paused),
            Filter::Healthy if perf < rs.min_performance => return Some(Exclusion::LowPerformance { score: perf }),
            Filter::ServesRegion if !s.serves(province, city) => return Some(Exclusion::NotServingRegion),
            Filter::Capacity if !s.has_capacity() => return Some(Exclusion::NoCapacity),
            Filter::InStock => {
                if let Some(avail) = stock
                    && Decimal::from(avail) < qty + Decimal::from(rs.safety_stock)
                {
                    return Some(Exclusion::OutOfStock {
                        available: avail,
                        needed: qty + Decimal::from(rs.safety_stock),
                    });
                }
            }
            _ => {}
        }
    }
    None
}

struct Plan {
    /// Per line: index into its eligible offers.
    choice: Vec<usize>,
    score: Decimal,
    suppliers: usize,
    priority: i64,
    /// Mean performance score of the suppliers used.
    performance: Decimal,
    /// Longest lead time of the chosen offers.
    lead_time_days: u32,
}

impl Plan {
    /// Is this plan strictly better than `other`: cheaper, or as cheap and
    /// ahead on the rule set's tie-breakers in order?
    fn beats(&self, other: &Plan, tie_breakers: &[TieBreaker]) -> bool {
        use std::cmp::Ordering::*;
        let mut ord = self.score.cmp(&other.score);
        for t in tie_breakers {
            if ord != Equal {
                break;
            }
            ord = match t {
                TieBreaker::FewerSuppliers => self.suppliers.cmp(&other.suppliers),
                TieBreaker::Priority => other.priority.cmp(&self.priority),
                TieBreaker::Performance => other.performance.cmp(&self.performance),
                TieBreaker::LeadTime => self.lead_time_days.cmp(&other.lead_time_days),
            };
        }
        ord == Less
    }
}

/// Searches supplier sets of size ≤ `max_sets` for the cheapest full cover.
fn best_plan(
    eligible: &[Vec<Offer>],
    max_sets: usize,
    rs: &RuleSet,
    catalog: &Catalog,
    province: &str,
    factor: &dyn Fn(usize) -> Decimal,
    perf: &dyn Fn(&SupplierId) -> Decimal,
) -> Option<Plan> {
    // Candidate suppliers, best first: most lines covered, then cheapest.
    let mut pool: Vec<(usize, usize, Decimal)> = Vec::new();
    for line in eligible {
        for o in line {
            match pool.iter_mut().find(|(s, _, _)| *s == o.sup) {
                Some(p) => {
                    p.1 += 1;
                    p.2 += o.goods;
                }
                None => pool.push((o.sup, 1, o.goods)),
            }
        }
    }
    pool.sort_by(|a, b| b.1.cmp(&a.1).then(a.2.cmp(&b.2)).then(a.0.cmp(&b.0)));
    pool.truncate(EXACT_SUPPLIERS);
    let sups: Vec<usize> = pool.iter().map(|p| p.0).collect();
    let factors: Vec<Decimal> = sups.iter().map(|&s| factor(s)).collect();

    let mut best: Option<Plan> = None;
    let n = sups.len();
    let mut set: Vec<usize> = Vec::with_capacity(max_sets);
    // Enumerate combinations of size 1..=max_sets in lexicographic order.
    fn combos(n: usize, k: usize, start: usize, set: &mut Vec<usize>, f: &mut dyn FnMut(&[usize])) {
        if !set.is_empty() {
            f(set);
        }
        if set.len() == k {
            return;
        }
        for i in start..n {
            set.push(i);
            combos(n, k, i + 1, set, f);
            set.pop();
        }
    }
    let evaluate = |set: &[usize]| {
        let mut choice = Vec::with_capacity(eligible.len());
        let mut used = [false; EXACT_SUPPLIERS];
        let mut score = Decimal::ZERO;
        let mut lead_time_days = 0;
        for line in eligible {
            let mut pick: Option<(usize, usize, Decimal)> = None; // (offer idx, set pos, cost)
            for (oi, o) in line.iter().enumerate() {
                if let Some(pos) = set.iter().position(|&p| sups[p] == o.sup) {
                    let cost = o.goods * factors[set[pos]];
                    if pick.is_none_or(|(_, _, c)| cost < c) {
                        pick = Some((oi, set[pos], cost));
                    }
                }
            }
            let (oi, p, cost) = pick?;
            lead_time_days = lead_time_days.max(line[oi].lead_time_days);
            choice.push(oi);
            used[p] = true;
            score += cost;
        }
        let mut count = 0;
        let mut priority = 0i64;
        let mut perf_sum = Decimal::ZERO;
        for (p, u) in used.iter().enumerate().take(n) {
            if *u {
                count += 1;
                let s = &catalog.suppliers[sups[p]];
                score += s.shipping_to(province) * factors[p];
                priority += i64::from(s.priority);
                perf_sum += perf(&s.id);
            }
        }
        if rs.keep_together == KeepTogether::Preferred && count > 1 {
            score += rs.split_penalty * Decimal::from(count - 1);
        }
        let performance = perf_sum / Decimal::from(count.max(1));
        Some(Plan { choice, score, suppliers: count, priority, performance, lead_time_days })
    };
    combos(n, max_sets.min(n), 0, &mut set, &mut |s| {
        if let Some(p) = evaluate(s)
            && best.as_ref().is_none_or(|b| p.beats(b, &rs.tie_breakers))
        {
            best = Some(p);
        }
    });
    best
}
