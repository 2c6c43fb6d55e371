//! Orders: the batched ingest upsert, reads with history, transitions. A
//! state change, its history row and its outbox row commit together.

use std::collections::{BTreeMap, HashMap};
use std::str::FromStr;

use rust_decimal::Decimal;
use serde::Serialize;
use sqlx::any::AnyRow;
use sqlx::{Any, AssertSqlSafe, Row};

use super::{Store, StoreError, Val, placeholders};
use crate::domain::values::storable;
use crate::domain::*;

/// Orders per multi-row INSERT: ~20 parameters each stays far below both
/// backends' parameter limits.
const CHUNK: usize = 400;

/// What one ingest batch did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct IngestOutcome {
    /// New orders, `received`.
    pub received: usize,
    /// New orders with bad data, stored in `exception` with the reason.
    pub exceptions: usize,
    /// Known orders whose content changed before dispatch (updated in place).
    pub updated: usize,
    /// Known orders seen again with the same stamp and content (overlap / replay).
    pub unchanged: usize,
    /// Dispatched orders changed in the ERP in a way that matters: raised as exceptions.
    pub raised: usize,
    /// Routed orders changed before dispatch: back to `received` to be routed again.
    #[serde(default)]
    pub rerouted: usize,
    /// Revisions not applied (older than the stored one, or an id twice in
    /// one batch), each with the reason; also kept in `ingest_rejects`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub refused: Vec<Refusal>,
}

/// A revision the store did not apply.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Refusal {
    pub external_id: String,
    pub reason: String,
}

impl IngestOutcome {
    fn refuse(&mut self, c: &OrderContent, reason: String) {
        self.refused.push(Refusal { external_id: c.external_id.to_string(), reason });
    }

    /// Adds another batch's counts and refusals to these.
    pub fn add(&mut self, o: &IngestOutcome) {
        self.received += o.received;
        self.exceptions += o.exceptions;
        self.updated += o.updated;
        self.unchanged += o.unchanged;
        self.raised += o.raised;
        self.rerouted += o.rerouted;
        self.refused.extend(o.refused.iter().cloned());
    }
}

/// One row of an order listing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OrderSummary {
    pub id: OrderId,
    pub source: String,
    pub external_id: String,
    pub bill_no: String,
    pub state: OrderState,
    pub state_reason: String,
}

fn summary_from(r: &AnyRow) -> Result<OrderSummary, StoreError> {
    Ok(OrderSummary {
        id: OrderId(r.try_get("id")?),
        source: r.try_get("source")?,
        external_id: r.try_get("external_id")?,
        bill_no: r.try_get("bill_no")?,
        state: state(&r.try_get::<String, _>("state")?)?,
        state_reason: r.try_get("state_reason")?,
    })
}

struct Known {
    id: i64,
    source_modified: String,
    content_hash: String,
    revision_hash: String,
    state: OrderState,
}

impl Known {
    /// The same revision read again: same stamp and the same whole content.
    /// Rows stored before whole-content hashes existed compare on the
    /// material hash.
    fn same_revision(&self, c: &OrderContent) -> bool {
        self.source_modified == c.source_modified
            && if self.revision_hash.is_empty() {
                self.content_hash == c.content_hash()
            } else {
                self.revision_hash == c.revision_hash()
            }
    }
}

const ORDER_COLS: &str = "source, external_id, bill_no, platform_order_no, customer, sales_org, platform, \
    ship_name, ship_phone, ship_province, ship_city, ship_district, ship_street, ship_postcode, ship_country, remark, \
    source_modified, cancelled, content_hash, revision_hash, state, state_reason, created_at, updated_at";
const ORDER_NCOLS: usize = 24;

impl Store {
    /// Upserts a batch of orders in one transaction: new ones are inserted
    /// (received, or exception with the reason); a known one is skipped when
    /// its stamp and whole content are unchanged, refused when its stamp is
    /// older than the stored one, and otherwise updated — re-routed if it was
    /// routed, raised as an exception if a supplier already has it. An id
    /// that appears twice in one batch is refused, never silently picked.
    pub async fn ingest_batch(
        &self,
        batch: Vec<OrderContent>,
        actor: &Actor,
        now: i64,
    ) -> Result<IngestOutcome, StoreError> {
        let r = self.ingest_batch_inner(batch, actor, now).await;
        self.observed(r)
    }

    async fn ingest_batch_inner(
        &self,
        batch: Vec<OrderContent>,
        actor: &Actor,
        now: i64,
    ) -> Result<IngestOutcome, StoreError> {
        let mut out = IngestOutcome::default();
        if batch.is_empty() {
            return Ok(out);
        }
        // Every source ends here, so this is where text no store can keep
        // is dealt with, the same way on both backends: marked in the
        // order, which goes to exception naming the field; an identity that
        // cannot be stored is refused (and kept in the rejects list).
        let mut unstorable = Vec::new();
        let batch: Vec<OrderContent> = batch
            .into_iter()
            .filter_map(|mut c| match c.identity_problem() {
                Some(reason) => {
                    out.refuse(&c, reason.clone());
                    unstorable.push((c, reason));
                    None
                }
                None => {
                    c.scrub_text();
                    Some(c)
                }
            })
            .collect();
        let mut count: HashMap<(Source, ExternalId), usize> = HashMap::with_capacity(batch.len());
        for c in &batch {
            *count.entry((c.source.clone(), c.external_id.clone())).or_default() += 1;
        }
        let mut by_source: BTreeMap<Source, Vec<OrderContent>> = BTreeMap::new();
        for c in batch {
            let n = count.get(&(c.source.clone(), c.external_id.clone())).copied().unwrap_or(1);
            if n > 1 {
                out.refuse(
                    &c,
                    format!("external_id {} appears {n} times in one batch; send one revision", c.external_id),
                );
                continue;
            }
            by_source.entry(c.source.clone()).or_default().push(c);
        }

        let pos = self.positional();
        let revise = Revise { positional: pos, cancel_deadline_ms: self.dispatch_settings().submit_deadline_ms };
        let _w = self.writer().await;
        let mut tx = self.begin_write().await?;
        for (c, reason) in &unstorable {
            reject(&mut tx, c.source.as_str(), c, reason, now).await?;
        }
        for (source, mut contents) in by_source {
            contents.sort_by(|a, b| a.external_id.cmp(&b.external_id));
            for chunk in contents.chunks(CHUNK) {
                let known = load_known(&mut tx, &source, chunk, pos).await?;
                let mut fresh = Vec::new();
                for c in chunk {
                    let Some(k) = known.get(c.external_id.as_str()) else {
                        fresh.push(SalesOrder::receive(c.clone(), actor, now));
                        continue;
                    };
                    match revision_cmp(&k.source_modified, &c.source_modified) {
                        Some(std::cmp::Ordering::Less) => {
                            let reason = format!(
                                "revision {} is older than the stored revision {}; not applied",
                                c.source_modified, k.source_modified
                            );
                            reject(&mut tx, source.as_str(), c, &reason, now).await?;
                            out.refuse(c, reason);
                        }
                        None if is_orderable(&k.source_modified) && !k.same_revision(c) => {
                            // The stored revision is stamped; one that cannot
                            // be ordered against it might be a stale retry.
                            let reason = format!(
                                "revision `{}` cannot be ordered against the stored revision `{}` (a different kind \
                                 of stamp, or none); not applied",
                                c.source_modified, k.source_modified
                            );
                            reject(&mut tx, source.as_str(), c, &reason, now).await?;
                            out.refuse(c, reason);
                        }
                        _ if k.same_revision(c) => out.unchanged += 1,
                        _ => apply_revision(&mut tx, k, c, actor, now, &mut out, &revise).await?,
                    }
                }
                insert_new(&mut tx, &fresh, now, &mut out, pos).await?;
            }
        }
        tx.commit().await?;
        Ok(out)
    }

    /// One order with lines and history.
    pub async fn order(&self, id: OrderId) -> Result<SalesOrder, StoreError> {
        let row = sqlx::query(AssertSqlSafe(format!("SELECT id, {ORDER_COLS} FROM sales_orders WHERE id = $1")))
            .bind(id.0)
            .fetch_optional(&self.pool)
            .await?
            .ok_or_else(|| StoreError::NotFound(id.to_string()))?;
        self.hydrate(row).await
    }

    /// Many orders' content and state at once, without history (for routing
    /// batches); missing ids are left out.
    pub async fn orders_content(
        &self,
        ids: &[OrderId],
    ) -> Result<Vec<(OrderId, OrderState, OrderContent)>, StoreError> {
        self.orders_read(ids, true).await
    }

    /// Like [`Store::orders_content`], but each content's `lines` is left
    /// empty: for callers that need the header only (a submit sends the
    /// PO's own lines; an ERP document cites the source and bill number),
    /// where reading every order line was the bulk of the rows they read.
    pub async fn orders_header(&self, ids: &[OrderId]) -> Result<Vec<(OrderId, OrderState, OrderContent)>, StoreError> {
        self.orders_read(ids, false).await
    }

    async fn orders_read(
        &self,
        ids: &[OrderId],
        with_lines: bool,
    ) -> Result<Vec<(OrderId, OrderState, OrderContent)>, StoreError> {
        let pos = self.positional();
        let mut out = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(CHUNK) {
            let list = super::in_list(pos, chunk.len());
            let bind_all = |sql: String| {
                let mut q = sqlx::query(AssertSqlSafe(sql));
                for id in chunk {
                    q = q.bind(id.0);
                }
                q
            };
            let mut lines: HashMap<i64, Vec<OrderLine>> = HashMap::new();
            let line_rows = if with_lines {
                bind_all(format!(
                    "SELECT order_id, erp_line_id, sku, quantity, unit_price, tax_rate, unit FROM order_lines \
                     WHERE order_id IN ({list}) ORDER BY order_id, line_no"
                ))
                .fetch_all(&self.pool)
                .await?
            } else {
                Vec::new()
            };
            for l in line_rows {
                lines.entry(l.try_get("order_id")?).or_default().push(line_from_row(&l)?);
            }
            for r in bind_all(format!("SELECT id, {ORDER_COLS} FROM sales_orders WHERE id IN ({list}) ORDER BY id"))
                .fetch_all(&self.pool)
                .await?
            {
                let id: i64 = r.try_get("id")?;
                let content = content_from_row(&r, lines.remove(&id).unwrap_or_default())?;
                out.push((OrderId(id), state(&r.try_get::<String, _>("state")?)?, content));
            }
        }
        Ok(out)
    }

    /// The order with this bill number (the newest if sources share one).
    pub async fn order_id_by_bill(&self, bill_no: &str) -> Result<Option<OrderId>, StoreError> {
        let row = sqlx::query("SELECT id FROM sales_orders WHERE bill_no = $1 ORDER BY id DESC LIMIT 1")
            .bind(bill_no)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| Ok(OrderId(r.try_get("id")?))).transpose()
    }

    /// The order a source knows by `external_id`.
    pub async fn order_by_external(&self, source: &str, external_id: &str) -> Result<Option<SalesOrder>, StoreError> {
        let row = sqlx::query(AssertSqlSafe(format!(
            "SELECT id, {ORDER_COLS} FROM sales_orders WHERE source = $1 AND external_id = $2"
        )))
        .bind(source)
        .bind(external_id)
        .fetch_optional(&self.pool)
        .await?;
        match row {
            Some(r) => Ok(Some(self.hydrate(r).await?)),
            None => Ok(None),
        }
    }

    async fn hydrate(&self, row: AnyRow) -> Result<SalesOrder, StoreError> {
        let id: i64 = row.try_get("id")?;
        let lines = sqlx::query(
            "SELECT erp_line_id, sku, quantity, unit_price, tax_rate, unit FROM order_lines WHERE order_id = $1 \
             ORDER BY line_no",
        )
        .bind(id)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(line_from_row)
        .collect::<Result<Vec<_>, StoreError>>()?;
        let history = sqlx::query(
            "SELECT from_state, to_state, actor, reason, at FROM order_history WHERE order_id = $1 ORDER BY id",
        )
        .bind(id)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(|h| {
            let from: Option<String> = h.try_get("from_state")?;
            Ok(HistoryEntry {
                from: from.map(|f| state(&f)).transpose()?,
                to: state(&h.try_get::<String, _>("to_state")?)?,
                actor: h.try_get("actor")?,
                reason: h.try_get("reason")?,
                at: h.try_get("at")?,
            })
        })
        .collect::<Result<Vec<_>, StoreError>>()?;
        Ok(SalesOrder {
            id: Some(OrderId(id)),
            content: content_from_row(&row, lines)?,
            state: state(&row.try_get::<String, _>("state")?)?,
            state_reason: row.try_get("state_reason")?,
            history,
        })
    }

    /// Moves an order to `to`, recording history and an outbox row in the
    /// same transaction. Refuses illegal transitions and concurrent changes.
    pub async fn transition(
        &self,
        id: OrderId,
        to: OrderState,
        actor: &Actor,
        reason: &str,
        now: i64,
    ) -> Result<SalesOrder, StoreError> {
        let r = self.transition_inner(id, to, actor, reason, now).await;
        self.observed(r)
    }

    async fn transition_inner(
        &self,
        id: OrderId,
        to: OrderState,
        actor: &Actor,
        reason: &str,
        now: i64,
    ) -> Result<SalesOrder, StoreError> {
        let mut order = self.order(id).await?;
        let from = order.state;
        order.transition(to, actor, reason, now)?;
        let _w = self.writer().await;
        let mut tx = self.begin_write().await?;
        let done = sqlx::query(
            "UPDATE sales_orders SET state = $1, state_reason = $2, updated_at = $3 WHERE id = $4 AND state = $5",
        )
        .bind(to.as_str())
        .bind(reason)
        .bind(now)
        .bind(id.0)
        .bind(from.as_str())
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() != 1 {
            return Err(StoreError::Conflict(id.to_string()));
        }
        record(&mut tx, id.0, Some(from), to, &actor.to_string(), reason, now).await?;
        tx.commit().await?;
        Ok(order)
    }

    /// Replaces an order's data (an operator's fix). In exception and now
    /// valid, the order returns to `received`; routed or on hold with a
    /// material change, it goes back to `received` to be routed again; if
    /// the new data has problems it goes to exception. One transaction.
    pub async fn fix_content(
        &self,
        id: OrderId,
        content: OrderContent,
        actor: &Actor,
        now: i64,
    ) -> Result<SalesOrder, StoreError> {
        let r = self.fix_content_inner(id, content, actor, now).await;
        self.observed(r)
    }

    async fn fix_content_inner(
        &self,
        id: OrderId,
        mut content: OrderContent,
        actor: &Actor,
        now: i64,
    ) -> Result<SalesOrder, StoreError> {
        // The identity is not rewritten here; the rest is marked as at intake.
        content.scrub_text();
        let order = self.order(id).await?;
        if order.state.is_dispatched() {
            return Err(StoreError::Conflict(format!("{id} is already dispatched; its data can no longer be edited")));
        }
        if order.state == OrderState::Cancelled {
            return Err(StoreError::Conflict(format!("{id} is cancelled; its data can no longer be edited")));
        }
        let problems = content.problems();
        let material = order.content.content_hash() != content.content_hash();
        let next = if !problems.is_empty() {
            Some((OrderState::Exception, problems.join("; ")))
        } else if order.state == OrderState::Exception {
            Some((OrderState::Received, "data fixed; retrying".to_string()))
        } else if material && matches!(order.state, OrderState::Routed | OrderState::OnHold) {
            let changes = order.content.material_changes(&content).join(", ");
            Some((OrderState::Received, format!("data fixed by an operator ({changes}); routing again")))
        } else {
            None
        };
        {
            let _w = self.writer().await;
            let mut tx = self.begin_write().await?;
            // Compare-and-set on the state read above: a router or poller
            // that moved the order meanwhile makes this a conflict, not a
            // silent overwrite.
            let same = sqlx::query("UPDATE sales_orders SET updated_at = $1 WHERE id = $2 AND state = $3")
                .bind(now)
                .bind(id.0)
                .bind(order.state.as_str())
                .execute(&mut *tx)
                .await?;
            if same.rows_affected() != 1 {
                return Err(StoreError::Conflict(id.to_string()));
            }
            write_content(&mut tx, id.0, &content, now, self.positional()).await?;
            match next {
                Some((to, reason)) if to != order.state && order.state.can_go_to(to) => {
                    set_state(&mut tx, id.0, to, &reason, now).await?;
                    record(&mut tx, id.0, Some(order.state), to, &actor.to_string(), &reason, now).await?;
                }
                Some((to, reason)) if to == order.state => set_state(&mut tx, id.0, to, &reason, now).await?,
                _ if material => {
                    let changes = order.content.material_changes(&content).join(", ");
                    let reason = format!("data edited by an operator ({changes})");
                    note(&mut tx, id.0, order.state, &actor.to_string(), &reason, now).await?;
                }
                _ => {}
            }
            tx.commit().await?;
        }
        self.order(id).await
    }

    /// `(id, state, reason)` of orders a source knows by these ids.
    pub async fn states_of(
        &self,
        source: &str,
        external_ids: &[String],
    ) -> Result<HashMap<String, (OrderId, OrderState, String)>, StoreError> {
        let mut out = HashMap::new();
        let pos = self.positional();
        for chunk in external_ids.chunks(CHUNK) {
            let list = (0..chunk.len()).map(|i| super::ph(pos, i + 2)).collect::<Vec<_>>().join(", ");
            let sql = format!(
                "SELECT id, external_id, state, state_reason FROM sales_orders WHERE source = {} AND external_id IN ({list})",
                super::ph(pos, 1)
            );
            let mut q = sqlx::query(AssertSqlSafe(sql)).bind(source);
            for id in chunk {
                q = q.bind(id.as_str());
            }
            for r in q.fetch_all(&self.pool).await? {
                out.insert(
                    r.try_get("external_id")?,
                    (OrderId(r.try_get("id")?), state(&r.try_get::<String, _>("state")?)?, r.try_get("state_reason")?),
                );
            }
        }
        Ok(out)
    }

    /// How many orders are in each state.
    pub async fn count_by_state(&self) -> Result<BTreeMap<OrderState, i64>, StoreError> {
        let rows =
            sqlx::query("SELECT state, COUNT(*) AS n FROM sales_orders GROUP BY state").fetch_all(&self.pool).await?;
        rows.iter().map(|r| Ok((state(&r.try_get::<String, _>("state")?)?, r.try_get::<i64, _>("n")?))).collect()
    }

    /// Orders in `state` (all states if `None`), oldest first.
    pub async fn list_orders(&self, st: Option<OrderState>, limit: i64) -> Result<Vec<OrderSummary>, StoreError> {
        let q = "SELECT id, source, external_id, bill_no, state, state_reason FROM sales_orders";
        let rows = match st {
            Some(s) => sqlx::query(AssertSqlSafe(format!("{q} WHERE state = $1 ORDER BY id LIMIT $2")))
                .bind(s.as_str())
                .bind(limit),
            None => sqlx::query(AssertSqlSafe(format!("{q} ORDER BY id LIMIT $1"))).bind(limit),
        }
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(summary_from).collect()
    }

    /// Orders whose ERP bill number or external id starts with `term` (an
    /// operator pastes what a customer or the ERP shows), or whose id is
    /// `term`, newest first.
    pub async fn search_orders(&self, term: &str, limit: i64) -> Result<Vec<OrderSummary>, StoreError> {
        let escaped: String =
            term.chars().flat_map(|c| if matches!(c, '%' | '_' | '\\') { vec!['\\', c] } else { vec![c] }).collect();
        let pattern = format!("{escaped}%");
        let id: i64 = term.parse().unwrap_or(-1);
        let rows = sqlx::query(
            "SELECT id, source, external_id, bill_no, state, state_reason FROM sales_orders \
             WHERE bill_no LIKE $1 ESCAPE '\\' OR external_id LIKE $1 ESCAPE '\\' OR id = $2 \
             ORDER BY id DESC LIMIT $3",
        )
        .bind(pattern)
        .bind(id)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(summary_from).collect()
    }

    /// The ingest cursor of `source`.
    pub async fn cursor(&self, source: &str) -> Result<Option<String>, StoreError> {
        Ok(sqlx::query("SELECT value FROM ingest_cursors WHERE source = $1")
            .bind(source)
            .fetch_optional(&self.pool)
            .await?
            .map(|r| r.try_get("value"))
            .transpose()?)
    }

    /// Moves the ingest cursor of `source`.
    pub async fn set_cursor(&self, source: &str, value: &str, now: i64) -> Result<(), StoreError> {
        let _w = self.writer().await;
        let r = sqlx::query(
            "INSERT INTO ingest_cursors (source, value, updated_at) VALUES ($1, $2, $3) \
             ON CONFLICT (source) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
        )
        .bind(source)
        .bind(value)
        .bind(now)
        .execute(&self.pool)
        .await
        .map(|_| ())
        .map_err(StoreError::from);
        self.observed(r)
    }

    /// Keeps a row that could not become an order at all (no usable id), so
    /// nothing is dropped silently. Text no store can keep is marked
    /// (U+FFFD), never a reason to lose the row.
    pub async fn reject_row(&self, source: &str, raw: &str, reason: &str, now: i64) -> Result<(), StoreError> {
        let _w = self.writer().await;
        sqlx::query("INSERT INTO ingest_rejects (source, raw, reason, at) VALUES ($1, $2, $3, $4)")
            .bind(storable(source).into_owned())
            .bind(storable(raw).into_owned())
            .bind(storable(reason).into_owned())
            .bind(now)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Rows that could not become orders, newest first.
    pub async fn rejects(&self, limit: i64) -> Result<Vec<(String, String, String)>, StoreError> {
        let rows = sqlx::query("SELECT source, raw, reason FROM ingest_rejects ORDER BY id DESC LIMIT $1")
            .bind(limit)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(|r| Ok((r.try_get("source")?, r.try_get("raw")?, r.try_get("reason")?))).collect()
    }

    /// Outbox rows not yet handled, oldest first: `(id, topic, order_id)`.
    pub async fn pending_outbox(&self, limit: i64) -> Result<Vec<(i64, String, Option<i64>)>, StoreError> {
        let rows = sqlx::query("SELECT id, topic, order_id FROM outbox WHERE done_at IS NULL ORDER BY id LIMIT $1")
            .bind(limit)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(|r| Ok((r.try_get("id")?, r.try_get("topic")?, r.try_get("order_id")?))).collect()
    }
}

async fn load_known(
    tx: &mut super::Tx,
    source: &Source,
    chunk: &[OrderContent],
    pos: bool,
) -> Result<HashMap<String, Known>, StoreError> {
    let list = (0..chunk.len()).map(|i| super::ph(pos, i + 2)).collect::<Vec<_>>().join(", ");
    let first = super::ph(pos, 1);
    let sql = format!(
        "SELECT id, external_id, source_modified, content_hash, revision_hash, state FROM sales_orders \
         WHERE source = {first} AND external_id IN ({list})"
    );
    let mut q = sqlx::query(AssertSqlSafe(sql)).bind(source.as_str());
    for c in chunk {
        q = q.bind(c.external_id.as_str());
    }
    let mut known = HashMap::new();
    for r in q.fetch_all(&mut **tx).await? {
        known.insert(
            r.try_get::<String, _>("external_id")?,
            Known {
                id: r.try_get("id")?,
                source_modified: r.try_get("source_modified")?,
                content_hash: r.try_get("content_hash")?,
                revision_hash: r.try_get("revision_hash")?,
                state: state(&r.try_get::<String, _>("state")?)?,
            },
        );
    }
    Ok(known)
}

/// How revisions are applied in this store.
struct Revise {
    /// Numbered placeholders (PostgreSQL) or positional ones.
    positional: bool,
    /// How long a cancel job may keep asking a supplier.
    cancel_deadline_ms: i64,
}

/// A known order came again with a newer (or unorderable) stamp, or with
/// the same stamp and different content (a torn read being repaired).
async fn apply_revision(
    tx: &mut super::Tx,
    k: &Known,
    c: &OrderContent,
    actor: &Actor,
    now: i64,
    out: &mut IngestOutcome,
    how: &Revise,
) -> Result<(), StoreError> {
    let (pos, cancel_deadline_ms) = (how.positional, how.cancel_deadline_ms);
    let actor_s = actor.to_string();
    let with_supplier = k.state.is_dispatched() || matches!(k.state, OrderState::Cancelled);
    if c.content_hash() == k.content_hash && with_supplier {
        // Noise for a supplier that already has the order (remark, prices):
        // keep the newer stamp, nothing to decide.
        sqlx::query(
            "UPDATE sales_orders SET source_modified = $1, remark = $2, revision_hash = $3, updated_at = $4 \
             WHERE id = $5",
        )
        .bind(&c.source_modified)
        .bind(&c.remark)
        .bind(c.revision_hash())
        .bind(now)
        .bind(k.id)
        .execute(&mut **tx)
        .await?;
        out.unchanged += 1;
        return Ok(());
    }
    if with_supplier && c.cancelled && k.state != OrderState::Cancelled && k.state.can_go_to(OrderState::Cancelled) {
        // Cancelled at the source after dispatch: the ERP's word is final.
        // The order is cancelled here at once and each supplier still
        // holding a PO is asked to cancel it (a cancel job per PO).
        let reason = format!("cancelled at the source ({}) after dispatch; cancelling at the suppliers", c.source);
        sqlx::query(
            "UPDATE sales_orders SET source_modified = $1, revision_hash = $2, state = $3, state_reason = $4, \
             updated_at = $5 WHERE id = $6",
        )
        .bind(&c.source_modified)
        .bind(c.revision_hash())
        .bind(OrderState::Cancelled.as_str())
        .bind(&reason)
        .bind(now)
        .bind(k.id)
        .execute(&mut **tx)
        .await?;
        record(tx, k.id, Some(k.state), OrderState::Cancelled, &actor_s, &reason, now).await?;
        super::updates::request_cancels(tx, k.id, now, cancel_deadline_ms).await?;
        out.updated += 1;
        return Ok(());
    }
    if with_supplier {
        // A supplier already has it: a human decides. Keep what was sent,
        // park the new revision beside it.
        let reason = if c.cancelled {
            format!(
                "cancelled at the source ({}) after its goods shipped (revision {}); a person must stop or take \
                 back the goods",
                c.source, c.source_modified
            )
        } else {
            format!(
                "changed at the source ({}) after dispatch (revision {}); needs review",
                c.source, c.source_modified
            )
        };
        if c.cancelled {
            // Shipped POs become operator events; any still open are asked.
            super::updates::request_cancels(tx, k.id, now, cancel_deadline_ms).await?;
        }
        let revision = serde_json::to_string(c).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        sqlx::query(
            "UPDATE sales_orders SET source_modified = $1, pending_revision = $2, state = $3, state_reason = $4, \
             updated_at = $5 WHERE id = $6",
        )
        .bind(&c.source_modified)
        .bind(revision)
        .bind(if k.state == OrderState::Cancelled { k.state.as_str() } else { OrderState::Exception.as_str() })
        .bind(&reason)
        .bind(now)
        .bind(k.id)
        .execute(&mut **tx)
        .await?;
        if k.state != OrderState::Cancelled && k.state.can_go_to(OrderState::Exception) {
            record(tx, k.id, Some(k.state), OrderState::Exception, &actor_s, &reason, now).await?;
        }
        out.raised += 1;
        return Ok(());
    }
    // Not yet with a supplier: take the new data and re-check it.
    let material = c.content_hash() != k.content_hash;
    let changes = if material {
        let old = load_content(tx, k.id).await?;
        old.material_changes(c).join(", ")
    } else {
        String::new()
    };
    write_content(tx, k.id, c, now, pos).await?;
    let problems = c.problems();
    let next = if c.cancelled {
        Some((OrderState::Cancelled, format!("cancelled at the source ({})", c.source)))
    } else if !problems.is_empty() {
        Some((OrderState::Exception, problems.join("; ")))
    } else if k.state == OrderState::Exception {
        Some((OrderState::Received, format!("data fixed at the source ({})", c.source)))
    } else if material && matches!(k.state, OrderState::Routed | OrderState::OnHold) {
        // The allocation was made for the old content: route again.
        out.rerouted += 1;
        Some((
            OrderState::Received,
            format!(
                "changed at the source ({}) before dispatch (revision {}: {changes}); routing again",
                c.source, c.source_modified
            ),
        ))
    } else {
        None
    };
    match next {
        Some((to, reason)) if to != k.state && k.state.can_go_to(to) => {
            set_state(tx, k.id, to, &reason, now).await?;
            record(tx, k.id, Some(k.state), to, &actor_s, &reason, now).await?;
        }
        Some((to, reason)) if to == k.state => set_state(tx, k.id, to, &reason, now).await?,
        // Same state, new data: the history still says what changed.
        _ if material => {
            let reason = format!("revised at the source ({}) (revision {}: {changes})", c.source, c.source_modified);
            note(tx, k.id, k.state, &actor_s, &reason, now).await?;
        }
        _ => {}
    }
    out.updated += 1;
    Ok(())
}

/// Keeps a refused revision where operators can see it.
async fn reject(tx: &mut super::Tx, source: &str, c: &OrderContent, reason: &str, now: i64) -> Result<(), StoreError> {
    // JSON escapes control characters, so `raw` is storable as it is.
    let raw = serde_json::to_string(c).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    sqlx::query("INSERT INTO ingest_rejects (source, raw, reason, at) VALUES ($1, $2, $3, $4)")
        .bind(storable(source).into_owned())
        .bind(raw)
        .bind(storable(&format!("{}: {reason}", c.external_id)).into_owned())
        .bind(now)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// One order's stored content, read inside a transaction.
async fn load_content(tx: &mut super::Tx, id: i64) -> Result<OrderContent, StoreError> {
    let row = sqlx::query(AssertSqlSafe(format!("SELECT id, {ORDER_COLS} FROM sales_orders WHERE id = $1")))
        .bind(id)
        .fetch_one(&mut **tx)
        .await?;
    let lines = sqlx::query(
        "SELECT erp_line_id, sku, quantity, unit_price, tax_rate, unit FROM order_lines WHERE order_id = $1 \
         ORDER BY line_no",
    )
    .bind(id)
    .fetch_all(&mut **tx)
    .await?
    .iter()
    .map(line_from_row)
    .collect::<Result<Vec<_>, StoreError>>()?;
    content_from_row(&row, lines)
}

fn line_from_row(l: &AnyRow) -> Result<OrderLine, StoreError> {
    Ok(OrderLine {
        erp_line_id: ErpLineId(l.try_get("erp_line_id")?),
        sku: Sku(l.try_get("sku")?),
        quantity: dec(l.try_get("quantity")?)?,
        unit_price: dec(l.try_get("unit_price")?)?,
        tax_rate: dec(l.try_get("tax_rate")?)?,
        unit: l.try_get("unit")?,
    })
}

async fn set_state(tx: &mut super::Tx, id: i64, to: OrderState, reason: &str, now: i64) -> Result<(), StoreError> {
    sqlx::query("UPDATE sales_orders SET state = $1, state_reason = $2, updated_at = $3 WHERE id = $4")
        .bind(to.as_str())
        .bind(reason)
        .bind(now)
        .bind(id)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

async fn write_content(tx: &mut super::Tx, id: i64, c: &OrderContent, now: i64, pos: bool) -> Result<(), StoreError> {
    bind_content(sqlx::query(
        "UPDATE sales_orders SET bill_no = $1, platform_order_no = $2, customer = $3, sales_org = $4, platform = $5, \
         ship_name = $6, ship_phone = $7, ship_province = $8, ship_city = $9, ship_district = $10, ship_street = $11, \
         ship_postcode = $12, ship_country = $13, remark = $14, source_modified = $15, cancelled = $16, \
         content_hash = $17, revision_hash = $18, updated_at = $19 WHERE id = $20",
    ), c)
    .bind(now)
    .bind(id)
    .execute(&mut **tx)
    .await?;
    sqlx::query("DELETE FROM order_lines WHERE order_id = $1").bind(id).execute(&mut **tx).await?;
    insert_lines(tx, &[(id, &c.lines)], pos).await
}

type AnyQuery<'q> = sqlx::query::Query<'q, Any, <Any as sqlx::Database>::Arguments>;

/// Binds the content columns `bill_no` … `revision_hash`, in the order both
/// `ORDER_COLS` and the UPDATE in `write_content` list them.
fn bind_content<'q>(q: AnyQuery<'q>, c: &'q OrderContent) -> AnyQuery<'q> {
    let a = &c.ship_to;
    q.bind(c.bill_no.as_str())
        .bind(c.platform_order_no.clone())
        .bind(&c.customer)
        .bind(&c.sales_org)
        .bind(&c.platform)
        .bind(&a.name)
        .bind(&a.phone)
        .bind(&a.province)
        .bind(&a.city)
        .bind(&a.district)
        .bind(&a.street)
        .bind(&a.postcode)
        .bind(&a.country)
        .bind(&c.remark)
        .bind(&c.source_modified)
        .bind(c.cancelled as i64)
        .bind(c.content_hash())
        .bind(c.revision_hash())
}

async fn insert_new(
    tx: &mut super::Tx,
    fresh: &[SalesOrder],
    now: i64,
    out: &mut IngestOutcome,
    pos: bool,
) -> Result<(), StoreError> {
    if fresh.is_empty() {
        return Ok(());
    }
    let sql = format!(
        "INSERT INTO sales_orders ({ORDER_COLS}) VALUES {} ON CONFLICT (source, external_id) DO NOTHING \
         RETURNING id, external_id",
        placeholders(fresh.len(), ORDER_NCOLS, 0, pos)
    );
    let mut q = sqlx::query(AssertSqlSafe(sql));
    for o in fresh {
        let c = &o.content;
        q = bind_content(q.bind(c.source.as_str()).bind(c.external_id.as_str()), c)
            .bind(o.state.as_str())
            .bind(&o.state_reason)
            .bind(now)
            .bind(now);
    }
    let mut ids: HashMap<String, i64> = HashMap::with_capacity(fresh.len());
    for r in q.fetch_all(&mut **tx).await? {
        ids.insert(r.try_get("external_id")?, r.try_get("id")?);
    }
    // Rows another host inserted meanwhile were skipped by ON CONFLICT; the
    // next poll sees them as known.
    let inserted: Vec<(&SalesOrder, i64)> =
        fresh.iter().filter_map(|o| ids.get(o.content.external_id.as_str()).map(|id| (o, *id))).collect();
    let lines: Vec<(i64, &Vec<OrderLine>)> = inserted.iter().map(|(o, id)| (*id, &o.content.lines)).collect();
    insert_lines(tx, &lines, pos).await?;

    for chunk in inserted.chunks(CHUNK) {
        let sql = format!(
            "INSERT INTO order_history (order_id, from_state, to_state, actor, reason, at) VALUES {}",
            placeholders(chunk.len(), 6, 0, pos)
        );
        let mut q = sqlx::query(AssertSqlSafe(sql));
        for (o, id) in chunk {
            let h = &o.history[0];
            q = q.bind(*id).bind(None::<String>).bind(h.to.as_str()).bind(&h.actor).bind(&h.reason).bind(h.at);
        }
        q.execute(&mut **tx).await?;
        let received: Vec<_> = chunk.iter().filter(|(o, _)| o.state == OrderState::Received).collect();
        if !received.is_empty() {
            let sql = format!(
                "INSERT INTO outbox (topic, order_id, payload, created_at) VALUES {}",
                placeholders(received.len(), 4, 0, pos)
            );
            let mut q = sqlx::query(AssertSqlSafe(sql));
            for (_, id) in &received {
                q = q.bind("order.received").bind(*id).bind("{}").bind(now);
            }
            q.execute(&mut **tx).await?;
        }
    }
    for (o, _) in &inserted {
        if o.state == OrderState::Exception {
            out.exceptions += 1;
        } else {
            out.received += 1;
        }
    }
    out.unchanged += fresh.len() - inserted.len();
    Ok(())
}

async fn insert_lines(tx: &mut super::Tx, orders: &[(i64, &Vec<OrderLine>)], pos: bool) -> Result<(), StoreError> {
    let rows: Vec<(i64, usize, &OrderLine)> =
        orders.iter().flat_map(|(id, lines)| lines.iter().enumerate().map(move |(n, l)| (*id, n, l))).collect();
    for chunk in rows.chunks(CHUNK * 2) {
        let sql = format!(
            "INSERT INTO order_lines (order_id, line_no, erp_line_id, sku, quantity, unit_price, tax_rate, unit) \
             VALUES {}",
            placeholders(chunk.len(), 8, 0, pos)
        );
        let mut q = sqlx::query(AssertSqlSafe(sql));
        for (id, n, l) in chunk {
            q = q
                .bind(*id)
                .bind(*n as i64)
                .bind(l.erp_line_id.as_str())
                .bind(l.sku.as_str())
                .bind(l.quantity.to_string())
                .bind(l.unit_price.to_string())
                .bind(l.tax_rate.to_string())
                .bind(l.unit.as_str());
        }
        q.execute(&mut **tx).await?;
    }
    Ok(())
}

/// A history row for a change of data without a change of state (no
/// outbox event: nothing downstream acts on it).
async fn note(
    tx: &mut super::Tx,
    id: i64,
    state: OrderState,
    actor: &str,
    reason: &str,
    now: i64,
) -> Result<(), StoreError> {
    history_row(tx, id, Some(state), state, actor, reason, now).await
}

async fn history_row(
    tx: &mut super::Tx,
    id: i64,
    from: Option<OrderState>,
    to: OrderState,
    actor: &str,
    reason: &str,
    now: i64,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO order_history (order_id, from_state, to_state, actor, reason, at) VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(id)
    .bind(from.map(|f| f.as_str().to_string()))
    .bind(to.as_str())
    .bind(actor)
    .bind(reason)
    .bind(now)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

pub(super) async fn record(
    tx: &mut super::Tx,
    id: i64,
    from: Option<OrderState>,
    to: OrderState,
    actor: &str,
    reason: &str,
    now: i64,
) -> Result<(), StoreError> {
    history_row(tx, id, from, to, actor, reason, now).await?;
    let payload = serde_json::json!({ "from": from.map(|f| f.as_str()), "reason": reason });
    sqlx::query("INSERT INTO outbox (topic, order_id, payload, created_at) VALUES ($1, $2, $3, $4)")
        .bind(format!("order.{}", to.as_str()))
        .bind(id)
        .bind(payload.to_string())
        .bind(now)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// History rows for changes derived from orders' purchase orders, in two
/// statements (history, outbox), each order's hops in the order given. The
/// outbox rows say `derived`, because the supplier events behind them were
/// recorded per PO already and the performance feed must not count them
/// again.
pub(super) async fn record_derived_many(
    tx: &mut super::Tx,
    hops: &[(i64, OrderState, OrderState, &str)],
    actor: &str,
    now: i64,
) -> Result<(), StoreError> {
    if hops.is_empty() {
        return Ok(());
    }
    let mut history = Vec::with_capacity(hops.len());
    let mut outbox = Vec::with_capacity(hops.len());
    for (id, from, to, reason) in hops {
        history.push(vec![
            Val::Int(*id),
            from.as_str().into(),
            to.as_str().into(),
            actor.into(),
            (*reason).into(),
            Val::Int(now),
        ]);
        let payload = serde_json::json!({ "from": from.as_str(), "reason": reason, "derived": true });
        outbox.push(vec![
            format!("order.{}", to.as_str()).into(),
            Val::Int(*id),
            payload.to_string().into(),
            Val::Int(now),
        ]);
    }
    super::insert_rows(tx, "order_history (order_id, from_state, to_state, actor, reason, at)", "", 6, &history)
        .await?;
    super::insert_rows(tx, "outbox (topic, order_id, payload, created_at)", "", 4, &outbox).await?;
    Ok(())
}

fn content_from_row(r: &AnyRow, lines: Vec<OrderLine>) -> Result<OrderContent, StoreError> {
    Ok(OrderContent {
        source: Source(r.try_get("source")?),
        external_id: ExternalId(r.try_get("external_id")?),
        bill_no: BillNo(r.try_get("bill_no")?),
        platform_order_no: r.try_get("platform_order_no")?,
        customer: r.try_get("customer")?,
        sales_org: r.try_get("sales_org")?,
        platform: r.try_get("platform")?,
        ship_to: ShipTo {
            name: r.try_get("ship_name")?,
            phone: r.try_get("ship_phone")?,
            province: r.try_get("ship_province")?,
            city: r.try_get("ship_city")?,
            district: r.try_get("ship_district")?,
            street: r.try_get("ship_street")?,
            postcode: r.try_get("ship_postcode")?,
            country: r.try_get("ship_country")?,
        },
        lines,
        remark: r.try_get("remark")?,
        source_modified: r.try_get("source_modified")?,
        cancelled: r.try_get::<i64, _>("cancelled")? != 0,
        intake_problems: Vec::new(),
    })
}

pub(super) fn state(s: &str) -> Result<OrderState, StoreError> {
    OrderState::from_str(s).map_err(StoreError::Corrupt)
}

pub(super) fn dec(s: String) -> Result<Decimal, StoreError> {
    Decimal::from_str(&s).map_err(|e| StoreError::Corrupt(format!("decimal `{s}`: {e}")))
}
