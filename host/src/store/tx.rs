//! Write transactions that can never leave a connection half-committed, and
//! the store's write health.
//!
//! Why not `sqlx::Transaction`: when SQLite's COMMIT fails (disk full, I/O
//! error, read-only file) SQLite may or may not have rolled the transaction
//! back by itself. sqlx then issues its own ROLLBACK, which can fail with
//! "no transaction is active", and its transaction-depth counter drifts: the
//! pooled connection goes back to the pool believing it is inside a
//! transaction, later `begin()`s become savepoints inside a transaction that
//! never commits, and that connection serves its uncommitted writes as saved
//! while holding SQLite's write lock (`database is locked` for everyone
//! else). Here BEGIN/COMMIT are plain statements on a connection we own, and
//! any connection whose transaction did not end in a successful COMMIT or
//! ROLLBACK is closed instead of returned to the pool.
//!
//! Owns: transaction lifetime, classification of storage faults, write
//! health. May call: sqlx only.

use std::ops::{Deref, DerefMut};
use std::sync::Mutex;

use serde::Serialize;
use sqlx::pool::PoolConnection;
use sqlx::{Any, AnyConnection, AnyPool, Executor};

use super::{Backend, StoreError};

/// A write transaction on one pooled connection. Dropped without
/// [`Tx::commit`], its connection is closed (the database rolls back).
pub(crate) struct Tx {
    conn: Option<PoolConnection<Any>>,
    backend: Backend,
    observer: Option<super::WriteObserver>,
    started: std::time::Instant,
}

impl Tx {
    pub(crate) async fn begin(
        pool: &AnyPool,
        backend: Backend,
        observer: Option<super::WriteObserver>,
    ) -> Result<Tx, StoreError> {
        let started = std::time::Instant::now();
        let mut conn = pool.acquire().await?;
        // IMMEDIATE takes SQLite's write lock now, so a read-then-write
        // transaction cannot fail later on a lock upgrade.
        let begin = if backend == Backend::Sqlite { "BEGIN IMMEDIATE" } else { "BEGIN" };
        if let Err(e) = conn.execute(begin).await {
            conn.close_on_drop();
            return Err(e.into());
        }
        Ok(Tx { conn: Some(conn), backend, observer, started })
    }

    /// Whether statements built at run time use bare `?` placeholders
    /// (SQLite; see `store::ph`) rather than `$N`.
    pub(crate) fn positional(&self) -> bool {
        self.backend == Backend::Sqlite
    }

    /// Commits; on any failure the connection is rolled back and closed, so
    /// nothing of this transaction can be seen or committed later.
    pub(crate) async fn commit(mut self) -> Result<(), StoreError> {
        let Some(mut conn) = self.conn.take() else {
            return Err(StoreError::Corrupt("transaction used after it ended".into()));
        };
        match conn.execute("COMMIT").await {
            Ok(_) => {
                if let Some(o) = &self.observer {
                    (o.0)(self.started.elapsed().as_secs_f64());
                }
                Ok(())
            }
            Err(e) => {
                // Release SQLite's locks now rather than when the connection's
                // worker shuts down; its result does not matter.
                let _ = conn.execute("ROLLBACK").await;
                conn.close_on_drop();
                Err(e.into())
            }
        }
    }

    /// Rolls back; on failure the connection is closed instead.
    pub(crate) async fn rollback(mut self) -> Result<(), StoreError> {
        let Some(mut conn) = self.conn.take() else { return Ok(()) };
        if let Err(e) = conn.execute("ROLLBACK").await {
            conn.close_on_drop();
            return Err(e.into());
        }
        Ok(())
    }
}

impl Deref for Tx {
    type Target = AnyConnection;
    fn deref(&self) -> &AnyConnection {
        match &self.conn {
            Some(c) => c,
            None => unreachable!("a Tx is used only until commit consumes it"),
        }
    }
}

impl DerefMut for Tx {
    fn deref_mut(&mut self) -> &mut AnyConnection {
        match &mut self.conn {
            Some(c) => c,
            None => unreachable!("a Tx is used only until commit consumes it"),
        }
    }
}

impl Drop for Tx {
    fn drop(&mut self) {
        if let Some(mut conn) = self.conn.take() {
            // An error or a cancelled future left the transaction open; the
            // statement in flight may even still be running. Closing is the
            // only way to be sure it never commits and never leaks.
            conn.close_on_drop();
        }
    }
}

/// Whether a database error means the store cannot write at the moment
/// (disk full, read-only or missing file, I/O error, database unreachable),
/// as opposed to a bug or bad data.
pub(crate) fn is_unavailable(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Io(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed
        | sqlx::Error::Tls(_) => true,
        sqlx::Error::Database(db) => {
            let code = db.code().map(|c| c.to_string()).unwrap_or_default();
            match code.parse::<i64>() {
                // SQLite primary codes (the extended code's low byte): BUSY,
                // LOCKED, NOMEM, READONLY, IOERR, CORRUPT, FULL, CANTOPEN,
                // PROTOCOL, NOTADB.
                Ok(n) => matches!(n & 0xff, 5 | 6 | 7 | 8 | 10 | 11 | 13 | 14 | 15 | 26),
                // PostgreSQL SQLSTATE classes: connection (08), resources
                // (53: disk full, out of memory, too many connections),
                // operator intervention (57: shutdown), system (58), and
                // read-only transactions (25006), lock timeouts (55P03).
                // 55P03: a lock not granted within `lock_timeout`.
                Err(_) => {
                    ["08", "53", "57", "58"].iter().any(|c| code.starts_with(c)) || code == "25006" || code == "55P03"
                }
            }
        }
        _ => false,
    }
}

/// The store's ability to write, as last observed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct StoreHealth {
    /// False after a write failed for a storage reason, until one succeeds.
    pub writable: bool,
    /// The last storage fault, if the store is not writable.
    pub last_error: Option<String>,
    /// When the current state began (ms since the epoch; 0 = since start).
    pub since_ms: i64,
}

/// Shared write-health cell.
#[derive(Debug)]
pub(crate) struct HealthCell(Mutex<StoreHealth>);

impl Default for HealthCell {
    fn default() -> Self {
        HealthCell(Mutex::new(StoreHealth { writable: true, last_error: None, since_ms: 0 }))
    }
}

impl HealthCell {
    pub(crate) fn get(&self) -> StoreHealth {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Records a write's outcome: storage faults flip the store to
    /// not-writable, any success flips it back.
    pub(crate) fn observe<T>(&self, r: &Result<T, StoreError>) {
        let mut h = self.0.lock().unwrap_or_else(|e| e.into_inner());
        match r {
            Ok(_) if !h.writable => {
                tracing::info!("store writable again");
                *h = StoreHealth { writable: true, last_error: None, since_ms: crate::util::now_ms() };
            }
            Err(StoreError::Unavailable(m)) => {
                if h.writable {
                    tracing::error!("store cannot write: {m}");
                    h.since_ms = crate::util::now_ms();
                }
                h.writable = false;
                h.last_error = Some(m.clone());
            }
            _ => {}
        }
    }
}
