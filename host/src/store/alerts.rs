//! Alert episodes: fired, resolved, and what the notifiers answered.

use serde::Serialize;
use sqlx::FromRow;

use super::{Store, StoreError};

/// One alert episode.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, FromRow)]
pub struct AlertRow {
    pub id: i64,
    pub rule: String,
    /// What it is about: a supplier, a job kind, `store`, ...
    pub subject: String,
    /// `firing` or `resolved`.
    pub state: String,
    pub message: String,
    pub fired_at: i64,
    pub resolved_at: Option<i64>,
    /// The notifiers' answers to the latest message about it.
    pub notified: String,
}

const COLUMNS: &str = "id, rule, subject, state, message, fired_at, resolved_at, notified";

impl Store {
    /// Alerts firing now.
    pub async fn firing_alerts(&self) -> Result<Vec<AlertRow>, StoreError> {
        Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM alerts WHERE state = 'firing' ORDER BY id"
        )))
        .fetch_all(&self.pool)
        .await?)
    }

    /// Records a new firing alert; its id.
    pub async fn fire_alert(&self, rule: &str, subject: &str, message: &str, now: i64) -> Result<i64, StoreError> {
        let _w = self.writer().await;
        let mut tx = self.begin_write().await?;
        let (id,): (i64,) = sqlx::query_as(
            "INSERT INTO alerts (rule, subject, state, message, fired_at, resolved_at, notified) \
             VALUES ($1, $2, 'firing', $3, $4, NULL, '') RETURNING id",
        )
        .bind(rule)
        .bind(subject)
        .bind(message)
        .bind(now)
        .fetch_one(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(id)
    }

    /// Marks an alert resolved.
    pub async fn resolve_alert(&self, id: i64, now: i64) -> Result<(), StoreError> {
        let _w = self.writer().await;
        let mut tx = self.begin_write().await?;
        sqlx::query("UPDATE alerts SET state = 'resolved', resolved_at = $1 WHERE id = $2 AND state = 'firing'")
            .bind(now)
            .bind(id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Notes what the notifiers answered about these alerts.
    pub async fn note_alerts_notified(&self, ids: &[i64], answers: &str) -> Result<(), StoreError> {
        let _w = self.writer().await;
        let mut tx = self.begin_write().await?;
        for id in ids {
            sqlx::query("UPDATE alerts SET notified = $1 WHERE id = $2")
                .bind(answers)
                .bind(id)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// The latest alerts, newest first.
    pub async fn alerts(&self, limit: i64) -> Result<Vec<AlertRow>, StoreError> {
        Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!("SELECT {COLUMNS} FROM alerts ORDER BY id DESC LIMIT $1")))
            .bind(limit)
            .fetch_all(&self.pool)
            .await?)
    }

    /// Per supplier, POs sent before `before` and not shipped yet: how many,
    /// and when the oldest was sent.
    pub async fn unshipped_since(&self, before: i64) -> Result<Vec<(String, i64, i64)>, StoreError> {
        Ok(sqlx::query_as(
            "SELECT supplier, COUNT(*), MIN(dispatched_at) FROM purchase_orders \
             WHERE state IN ('submitted', 'acknowledged', 'backordered', 'partially_shipped') \
             AND dispatched_at IS NOT NULL AND dispatched_at < $1 GROUP BY supplier ORDER BY supplier",
        )
        .bind(before)
        .fetch_all(&self.pool)
        .await?)
    }
}
