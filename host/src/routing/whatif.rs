//! What-if: route a batch of orders under the current policy and under a
//! proposed one, and report the difference — supplier shares, cost totals,
//! held orders and which orders move. Pure, like the rest of routing.

use std::collections::{BTreeMap, HashMap};

use rust_decimal::Decimal;
use serde::Serialize;

use super::allocate::{Decision, Outcome, route};
use super::catalog::Catalog;
use super::policy::Policy;
use crate::domain::{OrderContent, SupplierId};

/// How one policy routes the batch.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Summary {
    pub policy_version: u32,
    pub routed: usize,
    pub partly_backordered: usize,
    pub on_hold: usize,
    /// Lines per supplier.
    pub lines_by_supplier: BTreeMap<SupplierId, usize>,
    /// Share of routed lines per supplier, in percent (2 decimals).
    pub share_percent: BTreeMap<SupplierId, Decimal>,
    /// Landed cost (goods + shipping) of everything routed.
    pub landed_cost: Decimal,
    /// Orders split across more than one supplier.
    pub split_orders: usize,
}

/// One order whose routing differs.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Moved {
    /// The caller's label (e.g. bill number).
    pub order: String,
    pub current: String,
    pub proposed: String,
    pub current_cost: Decimal,
    pub proposed_cost: Decimal,
}

/// The comparison.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WhatIf {
    pub orders: usize,
    pub current: Summary,
    pub proposed: Summary,
    /// Proposed minus current landed cost (negative = cheaper).
    pub cost_delta: Decimal,
    pub moved_count: usize,
    /// The first `limit` orders that move.
    pub moved: Vec<Moved>,
}

/// Routes every order under both policies.
pub fn compare(
    orders: &[(String, OrderContent)],
    catalog: &Catalog,
    current: &Policy,
    proposed: &Policy,
    performance: &HashMap<SupplierId, Decimal>,
    limit: usize,
) -> WhatIf {
    let mut a = Summary { policy_version: current.version, ..Default::default() };
    let mut b = Summary { policy_version: proposed.version, ..Default::default() };
    let mut moved = Vec::new();
    let mut moved_count = 0;
    for (label, order) in orders {
        let da = route(order, catalog, current, performance);
        let db = route(order, catalog, proposed, performance);
        tally(&mut a, &da);
        tally(&mut b, &db);
        let (pa, pb) = (plan(&da), plan(&db));
        if pa != pb {
            moved_count += 1;
            if moved.len() < limit {
                moved.push(Moved {
                    order: label.clone(),
                    current: pa,
                    proposed: pb,
                    current_cost: da.landed_cost,
                    proposed_cost: db.landed_cost,
                });
            }
        }
    }
    share(&mut a);
    share(&mut b);
    WhatIf {
        orders: orders.len(),
        cost_delta: b.landed_cost - a.landed_cost,
        current: a,
        proposed: b,
        moved_count,
        moved,
    }
}

fn tally(s: &mut Summary, d: &Decision) {
    match &d.outcome {
        Outcome::Routed => s.routed += 1,
        Outcome::PartlyBackordered => s.partly_backordered += 1,
        Outcome::OnHold(_) => {
            s.on_hold += 1;
            return;
        }
    }
    s.landed_cost += d.landed_cost;
    if d.suppliers.len() > 1 {
        s.split_orders += 1;
    }
    for a in &d.allocations {
        *s.lines_by_supplier.entry(a.supplier.clone()).or_default() += 1;
    }
}

fn share(s: &mut Summary) {
    let total: usize = s.lines_by_supplier.values().sum();
    if total == 0 {
        return;
    }
    for (k, n) in &s.lines_by_supplier {
        let pct = (Decimal::from(*n as u64) * Decimal::ONE_HUNDRED / Decimal::from(total as u64)).round_dp(2);
        s.share_percent.insert(k.clone(), pct);
    }
}

/// A decision in words: `line→supplier, …` or `on hold: reason`.
fn plan(d: &Decision) -> String {
    match &d.outcome {
        Outcome::OnHold(why) => format!("on hold: {why}"),
        _ => d
            .allocations
            .iter()
            .map(|a| format!("{}→{}{}", a.line_id, a.supplier, if a.backordered { " (backorder)" } else { "" }))
            .collect::<Vec<_>>()
            .join(", "),
    }
}
