//! Retention: what the store may forget, and when. Only what no unfinished
//! order needs: outbox rows every consumer has read and that are done;
//! history and superseded routing decisions of orders that reached a final
//! state (written back, cancelled, rejected); and old audit, alert,
//! operator-event and circuit-transition rows. Each `*_days` of 0 keeps that
//! kind forever.

use serde::{Deserialize, Serialize};

use super::{Store, StoreError};

/// `[retention]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RetentionConfig {
    /// How often the host prunes (0: never by itself; `daifa prune` still can).
    pub interval_secs: u64,
    pub outbox_days: u32,
    /// History of orders in a final state.
    pub history_days: u32,
    /// Routing decisions of orders in a final state, but for the last one.
    pub decisions_days: u32,
    pub audit_days: u32,
    /// Resolved alerts, operator events, circuit transitions.
    pub events_days: u32,
}

impl Default for RetentionConfig {
    fn default() -> Self {
        RetentionConfig {
            interval_secs: 3_600,
            outbox_days: 7,
            history_days: 0,
            decisions_days: 180,
            audit_days: 400,
            events_days: 90,
        }
    }
}

/// Rows removed by one pruning, by kind.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Pruned {
    pub outbox: u64,
    pub history: u64,
    pub decisions: u64,
    pub audit: u64,
    pub events: u64,
}

const FINAL: &str = "('written_back', 'cancelled', 'rejected')";
const DAY_MS: i64 = 86_400_000;

impl Store {
    /// Removes what `cfg` lets go of as of `now`, in one transaction.
    pub async fn prune(&self, cfg: &RetentionConfig, now: i64) -> Result<Pruned, StoreError> {
        let cutoff = |days: u32| (days > 0).then(|| now - i64::from(days) * DAY_MS);
        let _w = self.writer().await;
        let mut tx = self.begin_write().await?;
        let mut p = Pruned::default();
        let mut run = async |sql: &str, cut: Option<i64>| -> Result<u64, StoreError> {
            let Some(cut) = cut else { return Ok(0) };
            Ok(sqlx::query(sqlx::AssertSqlSafe(sql.to_string())).bind(cut).execute(&mut *tx).await?.rows_affected())
        };
        // Done, and behind every consumer's read position.
        p.outbox = run(
            "DELETE FROM outbox WHERE done_at IS NOT NULL AND done_at < $1 \
             AND NOT EXISTS (SELECT 1 FROM outbox_cursors c WHERE c.last_id < outbox.id)",
            cutoff(cfg.outbox_days),
        )
        .await?;
        p.history = run(
            &format!(
                "DELETE FROM order_history WHERE at < $1 \
                 AND order_id IN (SELECT id FROM sales_orders WHERE state IN {FINAL})"
            ),
            cutoff(cfg.history_days),
        )
        .await?;
        p.decisions = run(
            &format!(
                "DELETE FROM routing_decisions WHERE created_at < $1 \
                 AND order_id IN (SELECT id FROM sales_orders WHERE state IN {FINAL}) \
                 AND attempt < (SELECT MAX(d.attempt) FROM routing_decisions d WHERE d.order_id = routing_decisions.order_id)"
            ),
            cutoff(cfg.decisions_days),
        )
        .await?;
        p.audit = run("DELETE FROM audit_log WHERE at < $1", cutoff(cfg.audit_days)).await?;
        let events = cutoff(cfg.events_days);
        p.events = run("DELETE FROM alerts WHERE state = 'resolved' AND resolved_at < $1", events).await?
            + run("DELETE FROM operator_events WHERE at < $1", events).await?
            + run("DELETE FROM circuit_transitions WHERE at < $1", events).await?;
        tx.commit().await?;
        Ok(p)
    }
}
