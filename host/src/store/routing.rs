//! Routing's tables: the catalog (suppliers, offers), policy versions,
//! decisions with explanations, line allocations, supplier events and score
//! changes. A routing decision, its order's state change, history and outbox
//! row, and the consumed `order.received` outbox rows commit together.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use sqlx::{AssertSqlSafe, Row};

use super::orders::dec;
use super::{Store, StoreError};
use super::{Val, insert_rows, select_in, values_statement};
use crate::domain::*;
use crate::routing::performance::{Event, ScoreChange};
use crate::routing::{Catalog, Decision, LoadedCatalog, SupplierProfile};

/// A decision as stored: which attempt, what caused it, the (line, supplier)
/// pairs excluded because they failed in earlier attempts, and the decision
/// with every candidate's explanation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredDecision {
    pub order: OrderId,
    pub attempt: u32,
    /// `received`, `rejected by S1: ...`, `backordered past deadline`, ...
    pub cause: String,
    pub tried: Vec<(String, SupplierId)>,
    /// Re-routes since the order was last routed from `received`.
    #[serde(default)]
    pub reroutes: u32,
    pub decision: Decision,
    pub at: i64,
}

/// One routed order to write.
#[derive(Debug, Clone)]
pub struct RoutingWrite {
    /// The state the order was in when routed; the write is skipped if it
    /// changed meanwhile.
    pub from: OrderState,
    pub to: OrderState,
    pub reason: String,
    pub stored: StoredDecision,
}

/// What a routing write did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RoutingApplied {
    pub applied: usize,
    /// Orders whose state changed between read and write (left alone).
    pub skipped: usize,
    /// Which writes were skipped (indexes into the batch).
    pub skipped_at: Vec<usize>,
}

/// A supplier with its routing profile, as listed.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SupplierRow {
    pub supplier: Supplier,
    pub profile: SupplierProfile,
    pub offers: i64,
}

const CATALOG_REV: &str = "catalog_rev";

impl Store {
    /// Replaces the catalog with `c` in one transaction. Stock figures the
    /// file leaves out keep the last value a supplier confirmed. Suppliers
    /// left out of the file are removed with their offers.
    pub async fn replace_catalog(&self, c: &LoadedCatalog, now: i64) -> Result<(), StoreError> {
        let _w = self.writer().await;
        let mut tx = self.begin_write().await?;
        let mut kept: HashMap<(String, String), (Option<i64>, Option<i64>)> = HashMap::new();
        for r in sqlx::query("SELECT supplier, sku, stock, stock_confirmed_at FROM catalog_offers")
            .fetch_all(&mut *tx)
            .await?
        {
            kept.insert(
                (r.try_get("supplier")?, r.try_get("sku")?),
                (r.try_get("stock")?, r.try_get("stock_confirmed_at")?),
            );
        }
        sqlx::query("DELETE FROM catalog_offers").execute(&mut *tx).await?;
        sqlx::query("DELETE FROM suppliers").execute(&mut *tx).await?;
        for (s, p) in &c.suppliers {
            sqlx::query("INSERT INTO suppliers (id, name, plugin, profile, updated_at) VALUES ($1, $2, $3, $4, $5)")
                .bind(s.id.as_str())
                .bind(&s.name)
                .bind(&s.plugin)
                .bind(json(p)?)
                .bind(now)
                .execute(&mut *tx)
                .await?;
        }
        // One statement per few hundred offers: a 16,000-offer catalog
        // written row by row held the write lock for ~0.5 s at every start,
        // while the first orders waited to be stored.
        let rows: Vec<Vec<Val>> = c
            .entries
            .iter()
            .map(|e| {
                let (stock, at) = match e.stock {
                    Some(n) => (Some(i64::from(n)), e.stock_confirmed_at),
                    None => kept.get(&(e.supplier.0.clone(), e.sku.0.clone())).copied().unwrap_or((None, None)),
                };
                vec![
                    e.supplier.as_str().into(),
                    e.sku.as_str().into(),
                    e.supplier_sku.as_str().into(),
                    e.unit_cost.to_string().into(),
                    e.currency.as_str().into(),
                    Val::Int(i64::from(e.lead_time_days)),
                    stock.into(),
                    at.into(),
                    Val::Int(now),
                ]
            })
            .collect();
        insert_rows(
            &mut tx,
            "catalog_offers (supplier, sku, supplier_sku, unit_cost, currency, lead_time_days, stock, \
             stock_confirmed_at, updated_at)",
            "",
            9,
            &rows,
        )
        .await?;
        bump(&mut tx, CATALOG_REV).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Changes one supplier's routing profile (pause, capacity, ...).
    pub async fn update_supplier_profile(&self, profile: &SupplierProfile, now: i64) -> Result<(), StoreError> {
        let _w = self.writer().await;
        let mut tx = self.begin_write().await?;
        let done = sqlx::query("UPDATE suppliers SET profile = $1, updated_at = $2 WHERE id = $3")
            .bind(json(profile)?)
            .bind(now)
            .bind(profile.id.as_str())
            .execute(&mut *tx)
            .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound(format!("supplier {}", profile.id)));
        }
        bump(&mut tx, CATALOG_REV).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Records confirmed stock levels; returns how many offers matched.
    /// Levels for SKUs the supplier does not offer are ignored.
    pub async fn update_stock(&self, levels: &[(SupplierId, SupplierSku, u32)], now: i64) -> Result<usize, StoreError> {
        if levels.is_empty() {
            return Ok(0);
        }
        let _w = self.writer().await;
        let mut tx = self.begin_write().await?;
        let mut n = 0;
        for (s, sku, stock) in levels {
            n += sqlx::query(
                "UPDATE catalog_offers SET stock = $1, stock_confirmed_at = $2, updated_at = $2 \
                 WHERE supplier = $3 AND supplier_sku = $4",
            )
            .bind(i64::from(*stock))
            .bind(now)
            .bind(s.as_str())
            .bind(sku.as_str())
            .execute(&mut *tx)
            .await?
            .rows_affected() as usize;
        }
        bump(&mut tx, CATALOG_REV).await?;
        tx.commit().await?;
        Ok(n)
    }

    /// The catalog's revision: changes whenever any part of it does.
    pub async fn catalog_rev(&self) -> Result<i64, StoreError> {
        meta(&self.pool, CATALOG_REV).await
    }

    /// The (file hash, catalog revision) recorded when a catalog file was
    /// last loaded; (0, 0) if none was.
    pub async fn catalog_file_mark(&self) -> Result<(i64, i64), StoreError> {
        Ok((meta(&self.pool, "catalog_file_hash").await?, meta(&self.pool, "catalog_file_rev").await?))
    }

    /// Records that the catalog file hashing to `hash` is what revision
    /// `rev` holds.
    pub async fn set_catalog_file_mark(&self, hash: i64, rev: i64) -> Result<(), StoreError> {
        let _w = self.writer().await;
        let mut tx = self.begin_write().await?;
        for (name, value) in [("catalog_file_hash", hash), ("catalog_file_rev", rev)] {
            sqlx::query("DELETE FROM routing_meta WHERE name = $1").bind(name).execute(&mut *tx).await?;
            sqlx::query("INSERT INTO routing_meta (name, value) VALUES ($1, $2)")
                .bind(name)
                .bind(value)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Suppliers with their profiles and offer counts.
    pub async fn suppliers(&self) -> Result<Vec<SupplierRow>, StoreError> {
        let rows = sqlx::query(
            "SELECT s.id, s.name, s.plugin, s.profile, (SELECT COUNT(*) FROM catalog_offers o WHERE o.supplier = s.id) \
             AS offers FROM suppliers s ORDER BY s.id",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                let profile: SupplierProfile = from_json(&r.try_get::<String, _>("profile")?)?;
                Ok(SupplierRow {
                    supplier: Supplier {
                        id: SupplierId(r.try_get("id")?),
                        name: r.try_get("name")?,
                        plugin: r.try_get("plugin")?,
                        enabled: profile.enabled,
                        daily_capacity: profile.daily_capacity,
                    },
                    profile,
                    offers: r.try_get("offers")?,
                })
            })
            .collect()
    }

    /// The whole catalog, ready for routing, with its revision.
    pub async fn load_catalog(&self) -> Result<(i64, Vec<Supplier>, Catalog), StoreError> {
        let rev = self.catalog_rev().await?;
        let rows = self.suppliers().await?;
        let coverage: HashMap<SupplierId, Coverage> =
            rows.iter().map(|r| (r.supplier.id.clone(), r.profile.coverage.clone())).collect();
        let mut entries = Vec::new();
        for r in sqlx::query(
            "SELECT supplier, sku, supplier_sku, unit_cost, currency, lead_time_days, stock, stock_confirmed_at \
             FROM catalog_offers ORDER BY supplier, sku",
        )
        .fetch_all(&self.pool)
        .await?
        {
            let supplier = SupplierId(r.try_get("supplier")?);
            let stock: Option<i64> = r.try_get("stock")?;
            entries.push(CatalogEntry {
                coverage: coverage.get(&supplier).cloned().unwrap_or(Coverage::Except(vec![])),
                supplier,
                sku: Sku(r.try_get("sku")?),
                supplier_sku: SupplierSku(r.try_get("supplier_sku")?),
                unit_cost: dec(r.try_get("unit_cost")?)?,
                currency: r.try_get("currency")?,
                lead_time_days: u32::try_from(r.try_get::<i64, _>("lead_time_days")?).unwrap_or(0),
                stock: stock.map(|s| u32::try_from(s.max(0)).unwrap_or(u32::MAX)),
                stock_confirmed_at: r.try_get("stock_confirmed_at")?,
            });
        }
        let suppliers = rows.iter().map(|r| r.supplier.clone()).collect();
        let profiles = rows.into_iter().map(|r| r.profile).collect();
        Ok((rev, suppliers, Catalog::new(profiles, entries)))
    }

    /// One supplier's routing profile (ERP number, currency, ...).
    pub async fn supplier_profile(&self, id: &SupplierId) -> Result<Option<SupplierProfile>, StoreError> {
        let body: Option<String> = sqlx::query_scalar("SELECT profile FROM suppliers WHERE id = $1")
            .bind(id.as_str())
            .fetch_optional(&self.pool)
            .await?;
        body.map(|b| from_json(&b)).transpose()
    }

    /// Stores a validated policy and makes it the active one. Versions must
    /// go up, so every decision's `policy_version` names one text.
    pub async fn put_policy(&self, version: u32, body: &str, by: &str, now: i64) -> Result<(), StoreError> {
        let _w = self.writer().await;
        let mut tx = self.begin_write().await?;
        let top: Option<i64> =
            sqlx::query("SELECT MAX(version) AS v FROM routing_policies").fetch_one(&mut *tx).await?.try_get("v")?;
        if let Some(top) = top
            && i64::from(version) <= top
        {
            return Err(StoreError::Conflict(format!(
                "routing policy version {version}: version {top} is already loaded; bump `version`"
            )));
        }
        sqlx::query("UPDATE routing_policies SET active = 0").execute(&mut *tx).await?;
        sqlx::query(
            "INSERT INTO routing_policies (version, body, active, loaded_by, loaded_at) VALUES ($1, $2, 1, $3, $4)",
        )
        .bind(i64::from(version))
        .bind(body)
        .bind(by)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// The active policy: `(version, text)`.
    pub async fn active_policy(&self) -> Result<Option<(u32, String)>, StoreError> {
        let row = sqlx::query("SELECT version, body FROM routing_policies WHERE active = 1")
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| Ok((u32::try_from(r.try_get::<i64, _>("version")?).unwrap_or(0), r.try_get("body")?))).transpose()
    }

    /// Every policy version loaded, newest first: (version, active, loaded
    /// by, loaded at, TOML text).
    pub async fn policy_versions(&self, limit: i64) -> Result<Vec<PolicyVersion>, StoreError> {
        let rows = sqlx::query(
            "SELECT version, active, loaded_by, loaded_at, body FROM routing_policies ORDER BY version DESC LIMIT $1",
        )
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(PolicyVersion {
                    version: u32::try_from(r.try_get::<i64, _>("version")?).unwrap_or(0),
                    active: r.try_get::<i64, _>("active")? != 0,
                    loaded_by: r.try_get("loaded_by")?,
                    loaded_at: r.try_get("loaded_at")?,
                    body: r.try_get("body")?,
                })
            })
            .collect()
    }

    /// `order.received` outbox rows not yet routed: `(outbox id, order id)`.
    pub async fn pending_routing(&self, limit: i64) -> Result<Vec<(i64, OrderId)>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, order_id FROM outbox WHERE done_at IS NULL AND topic = 'order.received' ORDER BY id LIMIT $1",
        )
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| Ok((r.try_get("id")?, OrderId(r.try_get::<Option<i64>, _>("order_id")?.unwrap_or(0)))))
            .collect()
    }

    /// Writes routing decisions and marks `outbox_done` consumed, in one
    /// transaction. An order whose state is no longer `from` is skipped.
    pub async fn apply_routing(
        &self,
        writes: &[RoutingWrite],
        outbox_done: &[i64],
        now: i64,
    ) -> Result<RoutingApplied, StoreError> {
        let mut seen = std::collections::HashSet::new();
        for w in writes {
            let id = w.stored.order.0;
            // Routed → routed is a re-route (a supplier's circuit opened
            // before dispatch); everything else follows the state machine.
            if !(w.from.can_go_to(w.to) || (w.from == OrderState::Routed && w.to == OrderState::Routed)) {
                return Err(StoreError::Transition(IllegalTransition {
                    order: id.to_string(),
                    from: w.from,
                    to: w.to,
                }));
            }
            if !seen.insert(id) {
                return Err(StoreError::Conflict(format!("order {id} appears twice in one routing write")));
            }
        }
        let _w = self.writer().await;
        let mut tx = self.begin_write().await?;
        let mut out = RoutingApplied::default();
        let actor = Actor::Router.to_string();
        // Set-based, a fixed handful of statements per batch: one statement
        // per row cost ~20 round trips to the database thread per order,
        // all under the write lock ingestion and dispatch wait on.
        // Each order moves only from the state it was read in; the others
        // changed meanwhile and are left alone.
        let rows: Vec<Vec<Val>> = writes
            .iter()
            .map(|w| {
                vec![
                    Val::Int(w.stored.order.0),
                    w.to.as_str().into(),
                    w.reason.as_str().into(),
                    Val::Int(now),
                    w.from.as_str().into(),
                ]
            })
            .collect();
        let moved = values_statement(
            &mut tx,
            "UPDATE sales_orders SET state = v.column2, state_reason = v.column3, updated_at = v.column4 FROM",
            "WHERE sales_orders.id = v.column1 AND sales_orders.state = v.column5 RETURNING id",
            5,
            &rows,
        )
        .await?;
        let moved: std::collections::HashSet<i64> = super::returned(&moved, "id")?;
        let mut decisions = Vec::new();
        let mut replaced = Vec::new();
        let mut allocations = Vec::new();
        let mut history = Vec::new();
        let mut outbox = Vec::new();
        let mut new_pos = Vec::new();
        for (i, w) in writes.iter().enumerate() {
            let id = w.stored.order.0;
            if !moved.contains(&id) {
                out.skipped += 1;
                out.skipped_at.push(i);
                continue;
            }
            let d = &w.stored.decision;
            decisions.push(vec![
                Val::Int(id),
                Val::Int(i64::from(w.stored.attempt)),
                Val::Int(i64::from(d.policy_version)),
                d.rule_set.as_str().into(),
                outcome_word(d).into(),
                d.suppliers.iter().map(|s| s.0.as_str()).collect::<Vec<_>>().join(",").into(),
                d.landed_cost.to_string().into(),
                w.stored.cause.as_str().into(),
                json(&w.stored)?.into(),
                Val::Int(now),
            ]);
            if !d.allocations.is_empty() {
                replaced.push(Val::Int(id));
            }
            for a in &d.allocations {
                allocations.push(vec![
                    Val::Int(id),
                    a.line_id.as_str().into(),
                    Val::Int(i64::from(w.stored.attempt)),
                    a.supplier.as_str().into(),
                    a.supplier_sku.as_str().into(),
                    a.unit_cost.to_string().into(),
                    Val::Int(i64::from(a.backordered)),
                    Val::Int(now),
                ]);
            }
            history.push(vec![
                Val::Int(id),
                w.from.as_str().into(),
                w.to.as_str().into(),
                actor.as_str().into(),
                w.reason.as_str().into(),
                Val::Int(now),
            ]);
            let payload = serde_json::json!({ "from": w.from.as_str(), "reason": w.reason });
            outbox.push(vec![
                format!("order.{}", w.to.as_str()).into(),
                Val::Int(id),
                payload.to_string().into(),
                Val::Int(now),
            ]);
            if w.to == OrderState::Routed {
                new_pos.push((id, w.stored.attempt, d.allocations.as_slice()));
            }
            out.applied += 1;
        }
        insert_rows(
            &mut tx,
            "routing_decisions (order_id, attempt, policy_version, rule_set, outcome, suppliers, landed_cost, \
             cause, decision, created_at)",
            "",
            10,
            &decisions,
        )
        .await?;
        let positional = tx.positional();
        if !replaced.is_empty() {
            select_in(&mut tx, positional, "DELETE FROM line_allocations WHERE order_id IN", "", &replaced).await?;
        }
        insert_rows(
            &mut tx,
            "line_allocations (order_id, line_id, attempt, supplier, supplier_sku, unit_cost, backordered, created_at)",
            "",
            8,
            &allocations,
        )
        .await?;
        insert_rows(&mut tx, "order_history (order_id, from_state, to_state, actor, reason, at)", "", 6, &history)
            .await?;
        insert_rows(&mut tx, "outbox (topic, order_id, payload, created_at)", "", 4, &outbox).await?;
        if let Some(settings) = &self.dispatch {
            super::purchase::create_pos_many(&mut tx, settings, &new_pos, now).await?;
        }
        let done: Vec<Vec<Val>> = outbox_done.iter().map(|id| vec![Val::Int(*id), Val::Int(now)]).collect();
        values_statement(
            &mut tx,
            "UPDATE outbox SET done_at = v.column2 FROM",
            "WHERE outbox.id = v.column1",
            2,
            &done,
        )
        .await?;
        tx.commit().await?;
        Ok(out)
    }

    /// Every routing decision of an order, oldest first.
    pub async fn decisions(&self, order: OrderId) -> Result<Vec<StoredDecision>, StoreError> {
        let rows = sqlx::query("SELECT decision FROM routing_decisions WHERE order_id = $1 ORDER BY attempt")
            .bind(order.0)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(|r| from_json(&r.try_get::<String, _>("decision")?)).collect()
    }

    /// Every decision of each of these orders, oldest attempt first.
    pub async fn decisions_of(&self, ids: &[OrderId]) -> Result<HashMap<OrderId, Vec<StoredDecision>>, StoreError> {
        let mut out: HashMap<OrderId, Vec<StoredDecision>> = HashMap::new();
        let pos = self.positional();
        for chunk in ids.chunks(400) {
            let list = super::in_list(pos, chunk.len());
            let mut q = sqlx::query(AssertSqlSafe(format!(
                "SELECT decision FROM routing_decisions WHERE order_id IN ({list}) ORDER BY order_id, attempt"
            )));
            for id in chunk {
                q = q.bind(id.0);
            }
            for r in q.fetch_all(&self.pool).await? {
                let d: StoredDecision = from_json(&r.try_get::<String, _>("decision")?)?;
                out.entry(d.order).or_default().push(d);
            }
        }
        Ok(out)
    }

    /// The latest decision of each of these orders that has one.
    pub async fn latest_decisions(&self, ids: &[OrderId]) -> Result<HashMap<OrderId, StoredDecision>, StoreError> {
        // Most orders have one attempt, so reading them all costs little.
        Ok(self.decisions_of(ids).await?.into_iter().filter_map(|(id, mut all)| Some((id, all.pop()?))).collect())
    }

    /// Orders given to each supplier since `since` (capacity accounting).
    pub async fn orders_per_supplier_since(&self, since: i64) -> Result<HashMap<SupplierId, u32>, StoreError> {
        let rows = sqlx::query(
            "SELECT supplier, COUNT(DISTINCT order_id) AS n FROM line_allocations WHERE created_at >= $1 GROUP BY supplier",
        )
        .bind(since)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok((SupplierId(r.try_get("supplier")?), u32::try_from(r.try_get::<i64, _>("n")?).unwrap_or(u32::MAX)))
            })
            .collect()
    }

    /// Orders in `st` with at least one line allocated to `supplier`.
    pub async fn orders_at_supplier(&self, supplier: &SupplierId, st: OrderState) -> Result<Vec<OrderId>, StoreError> {
        let rows = sqlx::query(
            "SELECT DISTINCT o.id FROM sales_orders o JOIN line_allocations a ON a.order_id = o.id \
             WHERE a.supplier = $1 AND o.state = $2 ORDER BY o.id",
        )
        .bind(supplier.as_str())
        .bind(st.as_str())
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(|r| Ok(OrderId(r.try_get("id")?))).collect()
    }

    /// Orders that entered `st` before `before` (by their last change).
    pub async fn orders_in_state_since(&self, st: OrderState, before: i64) -> Result<Vec<OrderId>, StoreError> {
        let rows = sqlx::query("SELECT id FROM sales_orders WHERE state = $1 AND updated_at < $2 ORDER BY id")
            .bind(st.as_str())
            .bind(before)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(|r| Ok(OrderId(r.try_get("id")?))).collect()
    }

    /// Stores supplier events for the performance loop.
    pub async fn record_supplier_events(&self, events: &[(SupplierId, Event)]) -> Result<(), StoreError> {
        let _w = self.writer().await;
        let mut tx = self.begin_write().await?;
        insert_supplier_events(&mut tx, events).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Supplier events after `since`, oldest first.
    pub async fn supplier_events_since(&self, since: i64) -> Result<Vec<(SupplierId, Event)>, StoreError> {
        let rows = sqlx::query("SELECT supplier, event FROM supplier_events WHERE at > $1 ORDER BY at, id")
            .bind(since)
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| Ok((SupplierId(r.try_get("supplier")?), from_json(&r.try_get::<String, _>("event")?)?)))
            .collect()
    }

    /// Events dispatch recorded after id `after`, oldest first, stopping at
    /// the first recorded after `settled_before` (ids are handed out before
    /// commit on PostgreSQL; see `outbox_after`).
    pub async fn dispatch_events_after(
        &self,
        after: i64,
        settled_before: i64,
        limit: i64,
    ) -> Result<Vec<(i64, SupplierId, Event)>, StoreError> {
        let rows: Vec<(i64, String, String, i64)> = sqlx::query_as(
            "SELECT id, supplier, event, at FROM supplier_events WHERE origin = 'dispatch' AND id > $1 ORDER BY id LIMIT $2",
        )
        .bind(after)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        let mut out = Vec::with_capacity(rows.len());
        for (id, s, e, at) in rows {
            if at > settled_before {
                break;
            }
            out.push((id, SupplierId(s), from_json(&e)?));
        }
        Ok(out)
    }

    /// Records automatic score changes.
    pub async fn record_score_changes(&self, changes: &[ScoreChange]) -> Result<(), StoreError> {
        if changes.is_empty() {
            return Ok(());
        }
        let _w = self.writer().await;
        let mut tx = self.begin_write().await?;
        for c in changes {
            sqlx::query(
                "INSERT INTO score_changes (supplier, from_score, to_score, cause, at) VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(c.supplier.as_str())
            .bind(c.from.to_string())
            .bind(c.to.to_string())
            .bind(&c.cause)
            .bind(c.at)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Score changes, newest first (of one supplier, or all).
    pub async fn score_changes(
        &self,
        supplier: Option<&SupplierId>,
        limit: i64,
    ) -> Result<Vec<ScoreChange>, StoreError> {
        let q = "SELECT supplier, from_score, to_score, cause, at FROM score_changes";
        let rows = match supplier {
            Some(s) => sqlx::query(AssertSqlSafe(format!("{q} WHERE supplier = $1 ORDER BY id DESC LIMIT $2")))
                .bind(s.as_str())
                .bind(limit),
            None => sqlx::query(AssertSqlSafe(format!("{q} ORDER BY id DESC LIMIT $1"))).bind(limit),
        }
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(ScoreChange {
                    supplier: SupplierId(r.try_get("supplier")?),
                    from: dec(r.try_get("from_score")?)?,
                    to: dec(r.try_get("to_score")?)?,
                    cause: r.try_get("cause")?,
                    at: r.try_get("at")?,
                })
            })
            .collect()
    }

    /// Each supplier's latest score (restored by routers after a restart).
    pub async fn latest_scores(&self) -> Result<HashMap<SupplierId, rust_decimal::Decimal>, StoreError> {
        let rows = sqlx::query(
            "SELECT supplier, to_score FROM score_changes c WHERE id = \
             (SELECT MAX(id) FROM score_changes d WHERE d.supplier = c.supplier)",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(|r| Ok((SupplierId(r.try_get("supplier")?), dec(r.try_get("to_score")?)?))).collect()
    }

    /// Lines routed to each supplier since `since` (for share reports).
    pub async fn lines_per_supplier_since(&self, since: i64) -> Result<Vec<(SupplierId, i64)>, StoreError> {
        let rows = sqlx::query(
            "SELECT supplier, COUNT(*) AS n FROM line_allocations WHERE created_at >= $1 GROUP BY supplier ORDER BY supplier",
        )
        .bind(since)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(|r| Ok((SupplierId(r.try_get("supplier")?), r.try_get("n")?))).collect()
    }
}

fn outcome_word(d: &Decision) -> &'static str {
    match d.outcome {
        crate::routing::Outcome::Routed => "routed",
        crate::routing::Outcome::PartlyBackordered => "partly_backordered",
        crate::routing::Outcome::OnHold(_) => "on_hold",
    }
}

async fn bump(tx: &mut super::Tx, name: &str) -> Result<(), StoreError> {
    let done =
        sqlx::query("UPDATE routing_meta SET value = value + 1 WHERE name = $1").bind(name).execute(&mut **tx).await?;
    if done.rows_affected() == 0 {
        sqlx::query("INSERT INTO routing_meta (name, value) VALUES ($1, 1)").bind(name).execute(&mut **tx).await?;
    }
    Ok(())
}

async fn meta(pool: &sqlx::AnyPool, name: &str) -> Result<i64, StoreError> {
    let row = sqlx::query("SELECT value FROM routing_meta WHERE name = $1").bind(name).fetch_optional(pool).await?;
    Ok(match row {
        Some(r) => r.try_get("value")?,
        None => 0,
    })
}

pub(super) async fn insert_supplier_events(
    tx: &mut super::Tx,
    events: &[(SupplierId, Event)],
) -> Result<(), StoreError> {
    insert_events_from(tx, events, "feed").await
}

/// Supplier events with where they came from (`feed`: the router's outbox
/// feed; `dispatch`: recorded per PO as it happened).
pub(super) async fn insert_events_from(
    tx: &mut super::Tx,
    events: &[(SupplierId, Event)],
    origin: &str,
) -> Result<(), StoreError> {
    for (s, e) in events {
        sqlx::query("INSERT INTO supplier_events (supplier, event, at, origin) VALUES ($1, $2, $3, $4)")
            .bind(s.as_str())
            .bind(json(e)?)
            .bind(e.at())
            .bind(origin)
            .execute(&mut **tx)
            .await?;
    }
    Ok(())
}

fn json<T: Serialize>(v: &T) -> Result<String, StoreError> {
    serde_json::to_string(v).map_err(|e| StoreError::Corrupt(e.to_string()))
}

fn from_json<T: for<'de> Deserialize<'de>>(s: &str) -> Result<T, StoreError> {
    serde_json::from_str(s).map_err(|e| StoreError::Corrupt(format!("stored JSON: {e}")))
}

/// One loaded routing policy version.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct PolicyVersion {
    pub version: u32,
    pub active: bool,
    pub loaded_by: String,
    pub loaded_at: i64,
    /// The TOML text as loaded.
    pub body: String,
}
