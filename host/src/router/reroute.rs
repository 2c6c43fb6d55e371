//! Re-routing: lines a supplier rejected, left backordered past the
//! deadline, or could not take because its circuit opened move to the next
//! candidate. Only the affected lines move; the others keep their supplier.
//! Each (line, supplier) that failed is never offered that line again in
//! this order's later attempts, and attempts are bounded: past
//! `max_attempts` the order is held for a person, with the reason.

use std::collections::HashSet;

use rust_decimal::Decimal;
use serde::Serialize;

use super::{Router, RouterError, count_capacity, write_for};
use crate::domain::{OrderId, OrderState, SupplierId};
use crate::routing::{Decision, LineAllocation, Outcome, route_excluding};

/// What a re-route did.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case", tag = "result")]
pub enum RerouteResult {
    /// The lines have new suppliers.
    Rerouted { attempt: u32, reason: String },
    /// No other supplier can take them, or attempts ran out.
    OnHold { attempt: u32, reason: String },
}

impl Router {
    /// Moves `lines` of `order` (every line it has at `supplier` if `None`)
    /// away from `supplier`.
    pub async fn reroute(
        &self,
        order: OrderId,
        supplier: &SupplierId,
        lines: Option<&[String]>,
        cause: &str,
        now: i64,
    ) -> Result<RerouteResult, RouterError> {
        let latest = self.latest(order).await?;
        let at_supplier: Vec<String> = latest
            .decision
            .allocations
            .iter()
            .filter(|a| &a.supplier == supplier && lines.is_none_or(|l| l.contains(&a.line_id)))
            .map(|a| a.line_id.clone())
            .collect();
        if at_supplier.is_empty() {
            return Err(RouterError::Refused(format!(
                "order {order}: no{} line is allocated to supplier {supplier}",
                if lines.is_some() { " given" } else { "" }
            )));
        }
        let pairs = at_supplier.into_iter().map(|l| (l, supplier.clone())).collect();
        self.reroute_pairs(order, pairs, cause, now).await
    }

    /// Re-routes every order backordered longer than the deadline.
    pub async fn sweep_backorders(&self, now: i64) -> Result<usize, RouterError> {
        let overdue =
            self.store.orders_in_state_since(OrderState::Backordered, now - self.cfg.backorder_deadline_ms).await?;
        let mut n = 0;
        for id in overdue {
            let latest = self.latest(id).await?;
            // The lines flagged as backordered if routing knew; otherwise the
            // supplier backordered the whole order.
            let flagged: Vec<&LineAllocation> = latest.decision.allocations.iter().filter(|a| a.backordered).collect();
            let pick: Vec<&LineAllocation> =
                if flagged.is_empty() { latest.decision.allocations.iter().collect() } else { flagged };
            let pairs = pick.iter().map(|a| (a.line_id.clone(), a.supplier.clone())).collect();
            let hours = self.cfg.backorder_deadline_ms / 3_600_000;
            self.reroute_pairs(id, pairs, &format!("backordered for more than {hours} h"), now).await?;
            n += 1;
        }
        Ok(n)
    }

    /// Opens or closes a supplier's circuit. Opening it removes the supplier
    /// from candidates and re-routes its routed, not yet dispatched orders;
    /// returns how many orders moved.
    pub async fn set_circuit(&self, supplier: &SupplierId, open: bool, now: i64) -> Result<usize, RouterError> {
        self.mark_circuit(supplier, open).await;
        if !open {
            return Ok(0);
        }
        let mut moved = 0;
        for id in self.store.orders_at_supplier(supplier, OrderState::Routed).await? {
            match self.reroute(id, supplier, None, &format!("circuit open at {supplier}"), now).await {
                Ok(_) => moved += 1,
                // Changed hands meanwhile (dispatched, cancelled): not ours to move.
                Err(RouterError::Refused(why)) => tracing::debug!("not re-routed: {why}"),
                Err(e) => return Err(e),
            }
        }
        Ok(moved)
    }

    /// Records whether a supplier's dispatch circuit is open, so routing
    /// sends new orders elsewhere while it is; orders already allocated
    /// stay (dispatch withdraws the ones never sent).
    pub async fn mark_circuit(&self, supplier: &SupplierId, open: bool) {
        let mut snap = self.snap.lock().await;
        if open {
            snap.open_circuits.insert(supplier.clone());
        } else {
            snap.open_circuits.remove(supplier);
        }
        if let Some(p) = snap.catalog.supplier_mut(supplier) {
            p.circuit_open = open;
        }
    }

    async fn latest(&self, order: OrderId) -> Result<crate::store::StoredDecision, RouterError> {
        self.store
            .decisions(order)
            .await?
            .pop()
            .ok_or_else(|| RouterError::Refused(format!("order {order} has never been routed")))
    }

    async fn reroute_pairs(
        &self,
        id: OrderId,
        pairs: Vec<(String, SupplierId)>,
        cause: &str,
        now: i64,
    ) -> Result<RerouteResult, RouterError> {
        let order = self.store.order(id).await?;
        if !matches!(order.state, OrderState::Routed | OrderState::Rejected | OrderState::Backordered) {
            return Err(RouterError::Refused(format!(
                "order {id} is {}; only routed, rejected or backordered orders are re-routed",
                order.state.as_str()
            )));
        }
        let latest = self.latest(id).await?;
        let mut tried = latest.tried.clone();
        for p in &pairs {
            if !tried.contains(p) {
                tried.push(p.clone());
            }
        }
        let attempt = latest.attempt + 1;
        let reroutes = latest.reroutes + 1;
        let moving: HashSet<&str> = pairs.iter().map(|p| p.0.as_str()).collect();
        let mut snap = self.snap.lock().await;
        self.refresh(&mut snap, now).await?;
        let snap = &mut *snap;
        let policy = snap.policy.as_ref().ok_or(RouterError::NoPolicy)?;
        let cause = format!("re-route {reroutes}: {cause}");
        let decision = if reroutes >= self.cfg.max_attempts {
            hold(
                &latest.decision,
                format!(
                    "{cause}; gave up after {} attempts (max_attempts = {}); needs a person",
                    reroutes, self.cfg.max_attempts
                ),
            )
        } else {
            let mut sub = order.content.clone();
            sub.lines.retain(|l| moving.contains(l.erp_line_id.0.as_str()));
            let tried_set: HashSet<(String, SupplierId)> = tried.iter().cloned().collect();
            let d = route_excluding(&sub, &snap.catalog, policy, snap.perf.scores(), &tried_set);
            match &d.outcome {
                Outcome::OnHold(why) => hold(&d, format!("{cause}; {why}")),
                _ => merge(&latest.decision, d, &moving, &order.content, &snap.catalog),
            }
        };
        count_capacity(&mut snap.catalog, &decision, 1);
        let mut w = write_for(id, order.state, attempt, cause, tried, decision, now);
        w.stored.reroutes = reroutes;
        let result = match w.to {
            OrderState::OnHold => RerouteResult::OnHold { attempt, reason: w.reason.clone() },
            _ => RerouteResult::Rerouted { attempt, reason: w.reason.clone() },
        };
        let applied = self.store.apply_routing(&[w], &[], now).await?;
        if applied.applied == 0 {
            return Err(RouterError::Refused(format!("order {id} changed while being re-routed; try again")));
        }
        Ok(result)
    }
}

/// A hold decision that keeps the explanation of `from`.
fn hold(from: &Decision, reason: String) -> Decision {
    Decision {
        outcome: Outcome::OnHold(reason),
        allocations: vec![],
        score: Decimal::ZERO,
        landed_cost: Decimal::ZERO,
        suppliers: vec![],
        ..from.clone()
    }
}

/// The old plan with the moved lines replaced by the new plan's.
fn merge(
    old: &Decision,
    new: Decision,
    moving: &HashSet<&str>,
    content: &crate::domain::OrderContent,
    catalog: &crate::routing::Catalog,
) -> Decision {
    let mut allocations = Vec::with_capacity(content.lines.len());
    for line in &content.lines {
        let id = line.erp_line_id.0.as_str();
        let from = if moving.contains(id) { &new.allocations } else { &old.allocations };
        if let Some(a) = from.iter().find(|a| a.line_id == id) {
            allocations.push(a.clone());
        }
    }
    let mut suppliers: Vec<SupplierId> = Vec::new();
    let mut landed = Decimal::ZERO;
    for a in &allocations {
        if let Some(l) = content.lines.iter().find(|l| l.erp_line_id.0 == a.line_id) {
            landed += a.unit_cost * l.quantity;
        }
        if !suppliers.contains(&a.supplier) {
            landed += catalog.supplier(&a.supplier).map_or(Decimal::ZERO, |s| s.shipping_to(&content.ship_to.province));
            suppliers.push(a.supplier.clone());
        }
    }
    let backordered = allocations.iter().any(|a| a.backordered);
    Decision {
        outcome: if backordered { Outcome::PartlyBackordered } else { Outcome::Routed },
        allocations,
        landed_cost: landed,
        suppliers,
        ..new
    }
}
