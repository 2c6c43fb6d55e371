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

struct Offer<'a> {
    sup: usize,
    supplier_sku: &'a str,
    unit_cost: Decimal,
    goods: Decimal,
    lead_time_days: u32,
    /// Its entry in the decision's candidate list.
    cand: usize,
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
    let max_stock_age = rs.stock_max_age_hours.map(|h| i64::from(h) * 3_600_000);
    // A supplier's terms are the same for every line: worked out once per
    // order, when the supplier first appears.
    let compute = |i: usize| {
        let s = &catalog.suppliers[i];
        let perf = performance.get(&s.id).copied().unwrap_or(Decimal::ONE);
        let pref = if rs.weights.preference { s.preference } else { Decimal::ONE };
        Terms {
            perf,
            factor: pref * (Decimal::ONE + rs.weights.performance * (Decimal::ONE - perf)),
            shipping: s.shipping_to(province),
        }
    };
    let mut cache: Vec<Option<Terms>> = vec![None; catalog.suppliers.len()];

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
            let stock = catalog.trusted_stock(entry, max_stock_age);
            let t = *cache[*i].get_or_insert_with(|| compute(*i));
            let excluded = exclusion(rs, s, failed_before, stock, line.quantity, province, &order.ship_to.city, t.perf);
            let offer = Offer {
                sup: *i,
                supplier_sku: entry.supplier_sku.as_str(),
                unit_cost: entry.unit_cost,
                goods: entry.unit_cost * line.quantity,
                lead_time_days: entry.lead_time_days,
                cand: candidates.len(),
            };
            candidates.push(Candidate {
                line_id: line.erp_line_id.0.clone(),
                supplier: s.id.clone(),
                goods_cost: offer.goods,
                shipping: t.shipping,
                performance: t.perf,
                preference: s.preference,
                factor: t.factor,
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
    let terms = |i: usize| cache[i].unwrap_or_else(|| compute(i));
    let Some(plan) = best_plan(&eligible, max_sets, rs, catalog, &terms) else {
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
            landed += terms(o.sup).shipping;
        }
        let sid = &catalog.suppliers[o.sup].id;
        candidates[o.cand].chosen = true;
        allocations.push(LineAllocation {
            line_id: line.erp_line_id.0.clone(),
            supplier: sid.clone(),
            supplier_sku: o.supplier_sku.to_string(),
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

/// What a supplier brings to every line of one order.
#[derive(Debug, Clone, Copy)]
struct Terms {
    perf: Decimal,
    /// The multiplier on its costs (performance and preference).
    factor: Decimal,
    /// One parcel to the order's province.
    shipping: Decimal,
}

struct Plan {
    /// Per line: index into its eligible offers.
    choice: Vec<usize>,
    score: Decimal,
    suppliers: usize,
    priority: i64,
    /// Sum of the performance scores of the suppliers used (the mean is
    /// only needed to break ties, so it is not divided out here).
    perf_sum: Decimal,
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
                // Higher mean first: compare sum_a / n_a with sum_b / n_b
                // without dividing.
                TieBreaker::Performance => (other.perf_sum * Decimal::from(self.suppliers))
                    .cmp(&(self.perf_sum * Decimal::from(other.suppliers))),
                TieBreaker::LeadTime => self.lead_time_days.cmp(&other.lead_time_days),
            };
        }
        ord == Less
    }
}

/// Searches supplier sets of size ≤ `max_sets` for the cheapest full cover.
/// Everything that does not depend on the set (each offer's weighted cost,
/// each supplier's weighted shipping) is computed once per order, so a set
/// costs a pass over the lines' offers with a bitmask test.
fn best_plan(
    eligible: &[Vec<Offer<'_>>],
    max_sets: usize,
    rs: &RuleSet,
    catalog: &Catalog,
    terms: &dyn Fn(usize) -> Terms,
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
    let pool_terms: Vec<Terms> = sups.iter().map(|&s| terms(s)).collect();
    let shipping: Vec<Decimal> = pool_terms.iter().map(|t| t.shipping * t.factor).collect();
    // Per line: (pool position, weighted cost, offer index) of offers in the pool.
    let options: Vec<Vec<(usize, Decimal, usize)>> = eligible
        .iter()
        .map(|line| {
            line.iter()
                .enumerate()
                .filter_map(|(oi, o)| {
                    let pos = sups.iter().position(|&s| s == o.sup)?;
                    Some((pos, o.goods * pool_terms[pos].factor, oi))
                })
                .collect()
        })
        .collect();

    let mut best: Option<Plan> = None;
    let mut choice = Vec::with_capacity(eligible.len());
    let mut evaluate = |mask: u32| {
        choice.clear();
        let mut used = 0u32;
        let mut score = Decimal::ZERO;
        let mut lead_time_days = 0;
        for (li, opts) in options.iter().enumerate() {
            let mut pick: Option<(usize, Decimal, usize)> = None;
            for &(pos, cost, oi) in opts {
                if mask & (1 << pos) != 0 && pick.is_none_or(|(_, c, _)| cost < c) {
                    pick = Some((pos, cost, oi));
                }
            }
            let (pos, cost, oi) = pick?;
            lead_time_days = lead_time_days.max(eligible[li][oi].lead_time_days);
            choice.push(oi);
            used |= 1 << pos;
            score += cost;
        }
        let (mut count, mut priority, mut perf_sum) = (0, 0i64, Decimal::ZERO);
        for p in (0..sups.len()).filter(|p| used & (1 << p) != 0) {
            count += 1;
            score += shipping[p];
            priority += i64::from(catalog.suppliers[sups[p]].priority);
            perf_sum += pool_terms[p].perf;
        }
        if rs.keep_together == KeepTogether::Preferred && count > 1 {
            score += rs.split_penalty * Decimal::from(count - 1);
        }
        let plan = Plan { choice: Vec::new(), score, suppliers: count, priority, perf_sum, lead_time_days };
        if best.as_ref().is_none_or(|b| plan.beats(b, &rs.tie_breakers)) {
            best = Some(Plan { choice: choice.clone(), ..plan });
        }
        Some(())
    };
    // Every set of 1..=max_sets pool suppliers, as bitmasks, in lexicographic
    // order (so among equal plans the first found, in pool order, wins).
    let n = sups.len();
    fn combos(n: usize, k: usize, start: usize, mask: u32, size: usize, f: &mut dyn FnMut(u32)) {
        if size > 0 {
            f(mask);
        }
        if size == k {
            return;
        }
        for i in start..n {
            combos(n, k, i + 1, mask | (1 << i), size + 1, f);
        }
    }
    combos(n, max_sets.min(n), 0, 0, 0, &mut |m| {
        evaluate(m);
    });
    best
}
