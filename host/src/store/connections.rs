//! Supplier connections (which plugin reaches a supplier, with what
//! configuration and limits), circuit breakers with their transitions, poll
//! cursors and operator events.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use sqlx::FromRow;

use super::jobs::{JobKind, insert_job};
use super::{Store, StoreError};
use crate::domain::SupplierId;

/// How daifa reaches one supplier.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Connection {
    pub supplier: SupplierId,
    pub plugin: String,
    /// `None` follows the plugin's active version (hot swaps apply at once).
    pub pinned_version: Option<String>,
    /// Plain configuration values.
    pub config: BTreeMap<String, String>,
    /// Secret values, kept in the store and never shown.
    pub secrets: BTreeMap<String, String>,
    /// Secrets the host reads itself when it binds: `env:NAME` or `file:/path`.
    pub secret_refs: BTreeMap<String, String>,
    /// Calls to this supplier in flight at once (per host).
    pub max_in_flight: u32,
    /// Calls per second started (per host); 0 = no limit.
    pub rate_per_sec: u32,
    /// Pause between polls of its update feed.
    pub poll_interval_ms: i64,
    /// Set when the supplier refused our credentials; dispatch waits.
    pub paused_reason: Option<String>,
    /// Grows with every change, so bound plugins know to rebind.
    pub revision: i64,
    pub updated_at: i64,
}

#[derive(FromRow)]
struct ConnectionRow {
    supplier: String,
    plugin: String,
    pinned_version: Option<String>,
    config: String,
    secrets: String,
    secret_refs: String,
    max_in_flight: i64,
    rate_per_sec: i64,
    poll_interval_ms: i64,
    paused_reason: Option<String>,
    revision: i64,
    updated_at: i64,
}

impl TryFrom<ConnectionRow> for Connection {
    type Error = StoreError;
    fn try_from(r: ConnectionRow) -> Result<Connection, StoreError> {
        let map = |s: &str| -> Result<BTreeMap<String, String>, StoreError> {
            serde_json::from_str(s).map_err(|e| StoreError::Corrupt(format!("connection {}: {e}", r.supplier)))
        };
        Ok(Connection {
            config: map(&r.config)?,
            secrets: map(&r.secrets)?,
            secret_refs: map(&r.secret_refs)?,
            supplier: SupplierId(r.supplier),
            plugin: r.plugin,
            pinned_version: r.pinned_version,
            max_in_flight: u32::try_from(r.max_in_flight).unwrap_or(1),
            rate_per_sec: u32::try_from(r.rate_per_sec).unwrap_or(0),
            poll_interval_ms: r.poll_interval_ms,
            paused_reason: r.paused_reason,
            revision: r.revision,
            updated_at: r.updated_at,
        })
    }
}

/// The states of a circuit breaker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CircuitState {
    /// Calls flow.
    Closed,
    /// Calls wait until `retry_at`; the router sends new orders elsewhere.
    Open,
    /// A trial: the next result closes or re-opens it.
    HalfOpen,
}

impl CircuitState {
    pub fn as_str(self) -> &'static str {
        match self {
            CircuitState::Closed => "closed",
            CircuitState::Open => "open",
            CircuitState::HalfOpen => "half_open",
        }
    }

    fn parse(s: &str) -> Result<CircuitState, StoreError> {
        match s {
            "closed" => Ok(CircuitState::Closed),
            "open" => Ok(CircuitState::Open),
            "half_open" => Ok(CircuitState::HalfOpen),
            _ => Err(StoreError::Corrupt(format!("circuit state `{s}`"))),
        }
    }
}

/// One supplier's breaker as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Circuit {
    pub supplier: SupplierId,
    pub state: CircuitState,
    /// Consecutive failures counted while closed.
    pub failures: u32,
    pub opened_at: Option<i64>,
    /// While open: when a trial call may go.
    pub retry_at: Option<i64>,
    pub updated_at: i64,
}

impl Circuit {
    /// A breaker never tripped (no row yet).
    pub(crate) fn closed(supplier: &SupplierId) -> Circuit {
        Circuit {
            supplier: supplier.clone(),
            state: CircuitState::Closed,
            failures: 0,
            opened_at: None,
            retry_at: None,
            updated_at: 0,
        }
    }
}

#[derive(FromRow)]
struct CircuitRow {
    supplier: String,
    state: String,
    failures: i64,
    opened_at: Option<i64>,
    retry_at: Option<i64>,
    updated_at: i64,
}

/// One recorded breaker transition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, FromRow)]
pub struct CircuitTransition {
    pub supplier: String,
    pub from_state: String,
    pub to_state: String,
    pub reason: String,
    pub at: i64,
}

/// Something that needs a person.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, FromRow)]
pub struct OperatorEvent {
    pub id: i64,
    /// `unauthorized`, `dead_letter`, `unknown_po`, `unknown_line`, `over_shipped`, ...
    pub kind: String,
    pub supplier: String,
    /// The PO number, job or line it is about.
    pub subject: String,
    pub message: String,
    pub at: i64,
}

const CONNECTION_COLUMNS: &str = "supplier, plugin, pinned_version, config, secrets, secret_refs, max_in_flight, \
     rate_per_sec, poll_interval_ms, paused_reason, revision, updated_at";

fn to_json(m: &BTreeMap<String, String>) -> String {
    serde_json::to_string(m).unwrap_or_else(|_| "{}".into())
}

impl Store {
    /// Creates or replaces a supplier's connection (un-pausing it) and makes
    /// sure its update feed is polled.
    pub async fn put_connection(&self, c: &Connection, now: i64) -> Result<Connection, StoreError> {
        let _w = self.writer().await;
        let mut tx = self.begin_write().await?;
        let revision: i64 = sqlx::query_scalar("SELECT revision FROM supplier_connections WHERE supplier = $1")
            .bind(c.supplier.as_str())
            .fetch_optional(&mut *tx)
            .await?
            .unwrap_or(0)
            + 1;
        sqlx::query("DELETE FROM supplier_connections WHERE supplier = $1")
            .bind(c.supplier.as_str())
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "INSERT INTO supplier_connections (supplier, plugin, pinned_version, config, secrets, secret_refs, \
             max_in_flight, rate_per_sec, poll_interval_ms, paused_reason, revision, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, NULL, $10, $11)",
        )
        .bind(c.supplier.as_str())
        .bind(&c.plugin)
        .bind(c.pinned_version.as_deref())
        .bind(to_json(&c.config))
        .bind(to_json(&c.secrets))
        .bind(to_json(&c.secret_refs))
        .bind(i64::from(c.max_in_flight))
        .bind(i64::from(c.rate_per_sec))
        .bind(c.poll_interval_ms)
        .bind(revision)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        // A poll job lives as long as the connection; a removed-then-added
        // connection revives its old one.
        insert_job(&mut tx, JobKind::Poll, c.supplier.as_str(), &c.supplier, now, i64::MAX, now).await?;
        sqlx::query(
            "UPDATE jobs SET state = 'ready', run_at = $1, updated_at = $1 WHERE kind = 'poll' AND job_key = $2 \
             AND state <> 'ready'",
        )
        .bind(now)
        .bind(c.supplier.as_str())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        self.connection(&c.supplier).await?.ok_or_else(|| StoreError::NotFound(c.supplier.to_string()))
    }

    /// One supplier's connection.
    pub async fn connection(&self, supplier: &SupplierId) -> Result<Option<Connection>, StoreError> {
        let row: Option<ConnectionRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {CONNECTION_COLUMNS} FROM supplier_connections WHERE supplier = $1"
        )))
        .bind(supplier.as_str())
        .fetch_optional(&self.pool)
        .await?;
        row.map(Connection::try_from).transpose()
    }

    /// Every connection, by supplier.
    pub async fn connections(&self) -> Result<Vec<Connection>, StoreError> {
        let rows: Vec<ConnectionRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {CONNECTION_COLUMNS} FROM supplier_connections ORDER BY supplier"
        )))
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter().map(Connection::try_from).collect()
    }

    /// Removes a connection and stops polling it. Work already queued for
    /// the supplier waits (and becomes a dead letter at its deadline) until
    /// a connection exists again.
    pub async fn delete_connection(&self, supplier: &SupplierId, now: i64) -> Result<bool, StoreError> {
        let _w = self.writer().await;
        let mut tx = self.begin_write().await?;
        let gone = sqlx::query("DELETE FROM supplier_connections WHERE supplier = $1")
            .bind(supplier.as_str())
            .execute(&mut *tx)
            .await?
            .rows_affected();
        sqlx::query(
            "UPDATE jobs SET state = 'discarded', lease_owner = NULL, lease_until = NULL, updated_at = $1 \
             WHERE kind = 'poll' AND job_key = $2",
        )
        .bind(now)
        .bind(supplier.as_str())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(gone == 1)
    }

    /// Pauses (`Some(reason)`) or resumes (`None`) dispatch to a supplier.
    pub async fn set_connection_paused(
        &self,
        supplier: &SupplierId,
        reason: Option<&str>,
        now: i64,
    ) -> Result<bool, StoreError> {
        let _w = self.writer().await;
        let mut tx = self.begin_write().await?;
        let n = sqlx::query(
            "UPDATE supplier_connections SET paused_reason = $1, revision = revision + 1, updated_at = $2 \
             WHERE supplier = $3",
        )
        .bind(reason)
        .bind(now)
        .bind(supplier.as_str())
        .execute(&mut *tx)
        .await?
        .rows_affected();
        tx.commit().await?;
        Ok(n == 1)
    }

    /// A supplier's breaker (closed if never tripped).
    pub async fn circuit(&self, supplier: &SupplierId) -> Result<Circuit, StoreError> {
        let row: Option<CircuitRow> = sqlx::query_as(
            "SELECT supplier, state, failures, opened_at, retry_at, updated_at FROM circuits WHERE supplier = $1",
        )
        .bind(supplier.as_str())
        .fetch_optional(&self.pool)
        .await?;
        match row {
            Some(r) => circuit_from(r),
            None => Ok(Circuit::closed(supplier)),
        }
    }

    /// Every breaker that was ever tripped.
    pub async fn circuits(&self) -> Result<Vec<Circuit>, StoreError> {
        let rows: Vec<CircuitRow> = sqlx::query_as(
            "SELECT supplier, state, failures, opened_at, retry_at, updated_at FROM circuits ORDER BY supplier",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter().map(circuit_from).collect()
    }

    /// Writes a breaker's new state if it is still in `expected` (another
    /// worker or host may have moved it first), recording a transition when
    /// the state changes. True if written.
    pub async fn update_circuit(
        &self,
        expected: &Circuit,
        next: &Circuit,
        reason: &str,
        now: i64,
    ) -> Result<bool, StoreError> {
        let _w = self.writer().await;
        let mut tx = self.begin_write().await?;
        let s = next.supplier.as_str();
        let written = if expected.updated_at == 0 {
            sqlx::query(
                "INSERT INTO circuits (supplier, state, failures, opened_at, retry_at, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (supplier) DO NOTHING",
            )
            .bind(s)
            .bind(next.state.as_str())
            .bind(i64::from(next.failures))
            .bind(next.opened_at)
            .bind(next.retry_at)
            .bind(now)
            .execute(&mut *tx)
            .await?
        } else {
            sqlx::query(
                "UPDATE circuits SET state = $1, failures = $2, opened_at = $3, retry_at = $4, updated_at = $5 \
                 WHERE supplier = $6 AND state = $7 AND failures = $8 AND updated_at = $9",
            )
            .bind(next.state.as_str())
            .bind(i64::from(next.failures))
            .bind(next.opened_at)
            .bind(next.retry_at)
            .bind(now.max(expected.updated_at + 1))
            .bind(s)
            .bind(expected.state.as_str())
            .bind(i64::from(expected.failures))
            .bind(expected.updated_at)
            .execute(&mut *tx)
            .await?
        };
        if written.rows_affected() != 1 {
            tx.rollback().await?;
            return Ok(false);
        }
        if expected.state != next.state {
            sqlx::query(
                "INSERT INTO circuit_transitions (supplier, from_state, to_state, reason, at) VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(s)
            .bind(expected.state.as_str())
            .bind(next.state.as_str())
            .bind(reason)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(true)
    }

    /// A supplier's breaker transitions, newest last.
    pub async fn circuit_transitions(&self, supplier: &SupplierId) -> Result<Vec<CircuitTransition>, StoreError> {
        Ok(sqlx::query_as(
            "SELECT supplier, from_state, to_state, reason, at FROM circuit_transitions WHERE supplier = $1 ORDER BY id",
        )
        .bind(supplier.as_str())
        .fetch_all(&self.pool)
        .await?)
    }

    /// Where a supplier's update feed was read up to.
    pub async fn poll_cursor(&self, supplier: &SupplierId) -> Result<Option<String>, StoreError> {
        Ok(sqlx::query_scalar("SELECT cursor FROM poll_cursors WHERE supplier = $1")
            .bind(supplier.as_str())
            .fetch_optional(&self.pool)
            .await?)
    }

    /// Records something a person must look at.
    pub async fn operator_event(
        &self,
        kind: &str,
        supplier: &str,
        subject: &str,
        message: &str,
        now: i64,
    ) -> Result<(), StoreError> {
        let _w = self.writer().await;
        let mut tx = self.begin_write().await?;
        insert_operator_event(&mut tx, kind, supplier, subject, message, now).await?;
        tx.commit().await?;
        Ok(())
    }

    /// The latest operator events, newest first.
    pub async fn operator_events(&self, limit: i64) -> Result<Vec<OperatorEvent>, StoreError> {
        Ok(sqlx::query_as(
            "SELECT id, kind, supplier, subject, message, at FROM operator_events ORDER BY id DESC LIMIT $1",
        )
        .bind(limit)
        .fetch_all(&self.pool)
        .await?)
    }
}

fn circuit_from(r: CircuitRow) -> Result<Circuit, StoreError> {
    Ok(Circuit {
        state: CircuitState::parse(&r.state)?,
        supplier: SupplierId(r.supplier),
        failures: u32::try_from(r.failures).unwrap_or(u32::MAX),
        opened_at: r.opened_at,
        retry_at: r.retry_at,
        updated_at: r.updated_at,
    })
}

pub(super) async fn insert_operator_event(
    tx: &mut super::Tx,
    kind: &str,
    supplier: &str,
    subject: &str,
    message: &str,
    now: i64,
) -> Result<(), StoreError> {
    sqlx::query("INSERT INTO operator_events (kind, supplier, subject, message, at) VALUES ($1, $2, $3, $4, $5)")
        .bind(kind)
        .bind(supplier)
        .bind(subject)
        .bind(message)
        .bind(now)
        .execute(&mut **tx)
        .await?;
    Ok(())
}
