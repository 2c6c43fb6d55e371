//! The outbox read as a log by named consumers, each with its own cursor, so
//! several consumers (the performance feed now; tracking and write-back
//! later) each see every row once without taking rows from one another.
//! A consumer moves its cursor in the same transaction as the work the rows
//! caused, and only if nobody moved it meanwhile (compare-and-set), so two
//! hosts running the same consumer never both apply a row.

use std::collections::HashMap;

use sqlx::{AssertSqlSafe, Row};

use super::routing::insert_supplier_events;
use super::{Store, StoreError};
use crate::domain::{OrderId, SupplierId};
use crate::routing::performance::Event;

/// One outbox row as a consumer reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxRow {
    pub id: i64,
    /// `order.<state>` for order state changes.
    pub topic: String,
    pub order: Option<OrderId>,
    /// JSON: `{"from": state, "reason": ...}` for state changes.
    pub payload: String,
    pub created_at: i64,
}

impl Store {
    /// The consumer's cursor (0 for a new consumer, which then reads the
    /// whole outbox from the start).
    pub async fn outbox_cursor(&self, consumer: &str) -> Result<i64, StoreError> {
        let row = sqlx::query("SELECT last_id FROM outbox_cursors WHERE consumer = $1")
            .bind(consumer)
            .fetch_optional(&self.pool)
            .await?;
        Ok(match row {
            Some(r) => r.try_get("last_id")?,
            None => 0,
        })
    }

    /// Per consumer, when the oldest row it has not read yet was written
    /// (`routing` for the orders waiting to be routed): how far behind it
    /// is. Consumers with nothing to read are left out.
    pub async fn outbox_oldest(&self) -> Result<Vec<(String, i64)>, StoreError> {
        let mut out = Vec::new();
        let routing: Option<i64> =
            sqlx::query_scalar("SELECT MIN(created_at) FROM outbox WHERE done_at IS NULL AND topic = 'order.received'")
                .fetch_one(&self.pool)
                .await?;
        if let Some(at) = routing {
            out.push(("routing".to_string(), at));
        }
        let cursors: Vec<(String, i64)> =
            sqlx::query_as("SELECT consumer, last_id FROM outbox_cursors ORDER BY consumer")
                .fetch_all(&self.pool)
                .await?;
        for (consumer, last_id) in cursors {
            let next: Option<i64> =
                sqlx::query_scalar("SELECT created_at FROM outbox WHERE id > $1 ORDER BY id LIMIT 1")
                    .bind(last_id)
                    .fetch_optional(&self.pool)
                    .await?;
            if let Some(at) = next {
                out.push((consumer, at));
            }
        }
        Ok(out)
    }

    /// Rows after `after`, oldest first, stopping at the first row created
    /// after `settled_before`. On PostgreSQL ids are handed out before commit,
    /// so a row with a lower id can become visible after a higher one;
    /// waiting until rows have settled keeps the cursor from passing it.
    pub async fn outbox_after(
        &self,
        after: i64,
        settled_before: i64,
        limit: i64,
    ) -> Result<Vec<OutboxRow>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, topic, order_id, payload, created_at FROM outbox WHERE id > $1 ORDER BY id LIMIT $2",
        )
        .bind(after)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        let mut out = Vec::with_capacity(rows.len());
        for r in rows {
            let created_at: i64 = r.try_get("created_at")?;
            if created_at > settled_before {
                break;
            }
            out.push(OutboxRow {
                id: r.try_get("id")?,
                topic: r.try_get("topic")?,
                order: r.try_get::<Option<i64>, _>("order_id")?.map(OrderId),
                payload: r.try_get("payload")?,
                created_at,
            });
        }
        Ok(out)
    }

    /// Moves `consumer`'s cursor from `from` to `to` and records `events`, in
    /// one transaction. False (and nothing written) if the cursor is no
    /// longer at `from`: another instance consumed these rows.
    pub async fn advance_with_events(
        &self,
        consumer: &str,
        from: i64,
        to: i64,
        events: &[(SupplierId, Event)],
        now: i64,
    ) -> Result<bool, StoreError> {
        let _w = self.writer().await;
        let mut tx = self.begin_write().await?;
        let moved = if from == 0 {
            sqlx::query(
                "INSERT INTO outbox_cursors (consumer, last_id, updated_at) VALUES ($1, $2, $3) \
                 ON CONFLICT (consumer) DO NOTHING",
            )
            .bind(consumer)
            .bind(to)
            .bind(now)
            .execute(&mut *tx)
            .await?
        } else {
            sqlx::query("UPDATE outbox_cursors SET last_id = $1, updated_at = $2 WHERE consumer = $3 AND last_id = $4")
                .bind(to)
                .bind(now)
                .bind(consumer)
                .bind(from)
                .execute(&mut *tx)
                .await?
        };
        if moved.rows_affected() != 1 {
            tx.rollback().await?;
            return Ok(false);
        }
        insert_supplier_events(&mut tx, events).await?;
        tx.commit().await?;
        Ok(true)
    }

    /// When each of these orders last entered `dispatched` (unix ms).
    pub async fn dispatched_at(&self, ids: &[OrderId]) -> Result<HashMap<OrderId, i64>, StoreError> {
        let mut out = HashMap::new();
        let pos = self.positional();
        for chunk in ids.chunks(400) {
            let list = super::in_list(pos, chunk.len());
            let mut q = sqlx::query(AssertSqlSafe(format!(
                "SELECT order_id, MAX(at) AS at FROM order_history WHERE to_state = 'dispatched' \
                 AND order_id IN ({list}) GROUP BY order_id"
            )));
            for id in chunk {
                q = q.bind(id.0);
            }
            for r in q.fetch_all(&self.pool).await? {
                out.insert(OrderId(r.try_get("order_id")?), r.try_get("at")?);
            }
        }
        Ok(out)
    }
}
