//! Persistence with sqlx: one store, two backends — a SQLite file (WAL) as
//! the embedded default and PostgreSQL for production and several hosts.
//! One SQL code path through sqlx's `Any` driver; only the migrations differ
//! (per-backend directories, embedded, applied on start).
//!
//! Owns: the schema, transactions, the outbox. May call: `domain`.

mod access;
mod alerts;
mod connections;
mod jobs;
mod orders;
mod outbox;
mod purchase;
mod retention;
mod routing;
mod submits;
mod tx;
mod updates;

use std::time::Duration;

use sqlx::any::{AnyPoolOptions, install_default_drivers};
use sqlx::{AnyPool, Executor};

pub use access::{ApiToken, AuditEntry, AuditRecord};
pub use alerts::AlertRow;
pub use connections::{Circuit, CircuitState, CircuitTransition, Connection, OperatorEvent};
pub use jobs::{Job, JobError, JobKind, JobView, Lease, Retry};
pub use orders::{IngestOutcome, OrderSummary, Refusal};
pub use outbox::OutboxRow;
pub use purchase::{
    Applied, DispatchSettings, ErpPoDone, ErpPoTiming, JobEnd, ParcelRecord, PoEvent, PoLineRecord, PoRecord,
    RerouteRequest, ShipmentRecord, SubmitAnswer,
};
pub use retention::{Pruned, RetentionConfig};
pub use routing::{PolicyVersion, RoutingApplied, RoutingWrite, StoredDecision, SupplierRow};
pub use tx::StoreHealth;
use tx::{HealthCell, Tx};

/// Which database is behind the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database: {0}")]
    Db(sqlx::Error),
    /// The store cannot write right now (disk full, read-only, unreachable);
    /// nothing of the failed operation was kept. Retry later.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    #[error("migration: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("unsupported database URL `{0}` (use sqlite:PATH or postgres://...)")]
    Url(String),
    #[error("order {0} not found")]
    NotFound(String),
    #[error(transparent)]
    Transition(#[from] crate::domain::IllegalTransition),
    #[error("corrupt row: {0}")]
    Corrupt(String),
    #[error("order {0} changed concurrently; retry")]
    Conflict(String),
    /// A job's lease ran out and another worker claimed it: this worker's
    /// result was not written.
    #[error("job {0}: the lease was lost to another worker; nothing written")]
    LeaseLost(i64),
    /// The request itself is wrong (names what).
    #[error("{0}")]
    Invalid(String),
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        if tx::is_unavailable(&e) { StoreError::Unavailable(e.to_string()) } else { StoreError::Db(e) }
    }
}

impl StoreError {
    /// Whether retrying later may succeed (a storage fault, not bad data).
    pub fn is_unavailable(&self) -> bool {
        matches!(self, StoreError::Unavailable(_))
    }
}

/// SQLite's `synchronous` setting (WAL mode).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SqliteSync {
    /// fsync at every commit: a confirmed order survives power loss.
    Full,
    /// fsync at checkpoints: survives a process crash, may lose the last
    /// commits on power loss. Faster for bulk loads.
    Normal,
}

/// Connection settings.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StoreConfig {
    /// `sqlite:daifa-data/daifa.db` or `postgres://user@host/db`.
    pub url: String,
    /// PostgreSQL schema to use (created if missing); isolates deployments and tests.
    pub schema: Option<String>,
    pub max_connections: u32,
    /// SQLite only: `full` (default; durable on power loss) or `normal`.
    pub sqlite_synchronous: SqliteSync,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            url: "sqlite:daifa-data/daifa.db".into(),
            schema: None,
            max_connections: 8,
            sqlite_synchronous: SqliteSync::Full,
        }
    }
}

/// The store: a pool and which backend it talks to.
#[derive(Clone)]
pub struct Store {
    pool: AnyPool,
    backend: Backend,
    /// SQLite has one writer; taking turns here avoids lock-upgrade failures
    /// (`SQLITE_BUSY`) when a read-then-write transaction meets another.
    write_lock: std::sync::Arc<tokio::sync::Mutex<()>>,
    health: std::sync::Arc<HealthCell>,
    /// Set when this store's routing decisions create purchase orders and
    /// dispatch jobs (`daifa serve` with dispatch on).
    dispatch: Option<std::sync::Arc<DispatchSettings>>,
    /// Told how long each committed write transaction took (metrics).
    write_observer: std::sync::Arc<std::sync::OnceLock<WriteObserver>>,
}

/// Receives the seconds each committed write transaction took, from BEGIN
/// to COMMIT (the fsync included): the store's latency as metrics see it.
#[derive(Clone)]
pub struct WriteObserver(pub std::sync::Arc<dyn Fn(f64) + Send + Sync>);

impl std::fmt::Debug for WriteObserver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WriteObserver")
    }
}

static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("migrations/sqlite");
static POSTGRES_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("migrations/postgres");

/// How long a PostgreSQL statement waits for a lock before it fails (as
/// SQLite's `busy_timeout`).
pub const LOCK_TIMEOUT_MS: u64 = 10_000;

impl Store {
    /// Connects and applies pending migrations.
    pub async fn open(cfg: &StoreConfig) -> Result<Store, StoreError> {
        let store = Store::connect(cfg).await?;
        store.migrate().await?;
        Ok(store)
    }

    /// Connects without migrating (`daifa migrate` migrates explicitly).
    pub async fn connect(cfg: &StoreConfig) -> Result<Store, StoreError> {
        install_default_drivers();
        let url = cfg.url.as_str();
        let backend = if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            Backend::Postgres
        } else {
            return Err(StoreError::Url(url.to_string()));
        };
        let url = match backend {
            Backend::Sqlite => {
                let path = url.trim_start_matches("sqlite:").trim_start_matches("//");
                let path = path.split('?').next().unwrap_or(path);
                if let Some(dir) = std::path::Path::new(path).parent().filter(|d| !d.as_os_str().is_empty()) {
                    std::fs::create_dir_all(dir).map_err(|e| StoreError::Db(sqlx::Error::Io(e)))?;
                }
                if url.contains('?') { url.to_string() } else { format!("{url}?mode=rwc") }
            }
            Backend::Postgres => url.to_string(),
        };
        if let (Backend::Postgres, Some(schema)) = (backend, &cfg.schema) {
            // The schema must exist before connections put it on their path.
            let pool = AnyPoolOptions::new().max_connections(1).connect(&url).await?;
            sqlx::query(sqlx::AssertSqlSafe(format!("CREATE SCHEMA IF NOT EXISTS \"{}\"", ident(schema))))
                .execute(&pool)
                .await?;
            pool.close().await;
        }
        let schema = cfg.schema.clone();
        let sync = match cfg.sqlite_synchronous {
            SqliteSync::Full => "FULL",
            SqliteSync::Normal => "NORMAL",
        };
        let pool = AnyPoolOptions::new()
            .max_connections(if backend == Backend::Sqlite { cfg.max_connections.min(4) } else { cfg.max_connections })
            .acquire_timeout(Duration::from_secs(10))
            .after_connect(move |conn, _| {
                let schema = schema.clone();
                Box::pin(async move {
                    match backend {
                        Backend::Sqlite => {
                            // 32 MB of page cache per connection (SQLite's
                            // default is 2 MB): a day's orders, POs and jobs
                            // outgrow 2 MB, and every miss is a read syscall.
                            conn.execute(sqlx::AssertSqlSafe(format!(
                                "PRAGMA journal_mode = WAL; PRAGMA synchronous = {sync}; \
                                 PRAGMA foreign_keys = ON; PRAGMA busy_timeout = 10000; \
                                 PRAGMA cache_size = -32768;"
                            )))
                            .await?;
                        }
                        Backend::Postgres => {
                            // A write blocked by another session's lock gives
                            // up (55P03 → "unavailable", a 503) instead of
                            // holding the request for as long as the lock.
                            sqlx::query(sqlx::AssertSqlSafe(format!("SET lock_timeout = {LOCK_TIMEOUT_MS}")))
                                .execute(&mut *conn)
                                .await?;
                            if let Some(s) = schema {
                                sqlx::query(sqlx::AssertSqlSafe(format!("SET search_path TO \"{}\"", ident(&s))))
                                    .execute(&mut *conn)
                                    .await?;
                            }
                        }
                    }
                    Ok(())
                })
            })
            .connect(&url)
            .await?;
        Ok(Store {
            pool,
            backend,
            write_lock: Default::default(),
            health: Default::default(),
            dispatch: None,
            write_observer: Default::default(),
        })
    }

    /// Applies embedded migrations that have not run yet.
    pub async fn migrate(&self) -> Result<(), StoreError> {
        match self.backend {
            Backend::Sqlite => SQLITE_MIGRATIONS.run(&self.pool).await?,
            Backend::Postgres => POSTGRES_MIGRATIONS.run(&self.pool).await?,
        }
        Ok(())
    }

    /// This store with dispatch on: routing decisions create purchase orders
    /// and their jobs in the same transaction.
    pub fn with_dispatch(mut self, settings: DispatchSettings) -> Store {
        self.dispatch = Some(std::sync::Arc::new(settings));
        self
    }

    /// The dispatch settings (defaults when dispatch is off).
    pub fn dispatch_settings(&self) -> DispatchSettings {
        self.dispatch.as_deref().cloned().unwrap_or_default()
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Whether long statements use positional `?` (see [`ph`]).
    fn positional(&self) -> bool {
        self.backend == Backend::Sqlite
    }

    /// Serialises writers on SQLite; free on PostgreSQL.
    async fn writer(&self) -> Option<tokio::sync::MutexGuard<'_, ()>> {
        match self.backend {
            Backend::Sqlite => Some(self.write_lock.lock().await),
            Backend::Postgres => None,
        }
    }

    /// Starts a write transaction (see [`tx`] for why not sqlx's).
    async fn begin_write(&self) -> Result<Tx, StoreError> {
        Tx::begin(&self.pool, self.backend, self.write_observer.get().cloned()).await
    }

    /// Reports every committed write's duration to `observer` (once per
    /// store and its clones; a second call changes nothing).
    pub fn observe_writes(&self, observer: WriteObserver) {
        let _ = self.write_observer.set(observer);
    }

    /// Whether the store could write at its last attempt; for readiness
    /// checks and metrics.
    pub fn health(&self) -> StoreHealth {
        self.health.get()
    }

    /// Records a write's outcome in [`Store::health`] and passes it on.
    fn observed<T>(&self, r: Result<T, StoreError>) -> Result<T, StoreError> {
        self.health.observe(&r);
        r
    }

    /// Tries a small write (a probe row) and reports whether it committed;
    /// readiness checks call this when the store was last seen unwritable.
    pub async fn probe_write(&self) -> Result<(), StoreError> {
        let r = async {
            let _w = self.writer().await;
            let mut tx = self.begin_write().await?;
            sqlx::query(
                "INSERT INTO ingest_cursors (source, value, updated_at) VALUES ('~probe', '', $1) \
                 ON CONFLICT (source) DO UPDATE SET updated_at = excluded.updated_at",
            )
            .bind(crate::util::now_ms())
            .execute(&mut *tx)
            .await?;
            tx.commit().await
        }
        .await;
        self.observed(r)
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// Writes a consistent copy of a SQLite store to `to` while the host
    /// runs (`VACUUM INTO`: one read transaction, so the copy is one point
    /// in time, compacted). `to` must not exist. PostgreSQL is backed up
    /// with its own tools (`pg_dump`).
    pub async fn backup_to(&self, to: &std::path::Path) -> Result<(), StoreError> {
        if self.backend != Backend::Sqlite {
            return Err(StoreError::Invalid(
                "this store is PostgreSQL: back it up with pg_dump (e.g. pg_dump -Fc -f daifa.dump DBNAME)".into(),
            ));
        }
        if to.exists() {
            return Err(StoreError::Invalid(format!("{} exists; a backup never overwrites", to.display())));
        }
        let path = to.to_str().ok_or_else(|| StoreError::Invalid(format!("{} is not UTF-8", to.display())))?;
        sqlx::query("VACUUM INTO $1").bind(path).execute(&self.pool).await?;
        Ok(())
    }
}

/// Schema names go into SQL text: allow only a safe alphabet.
fn ident(s: &str) -> String {
    s.chars().filter(|c| c.is_ascii_alphanumeric() || *c == '_').collect()
}

/// Placeholder number `n` (1-based). SQLite gets bare positional `?`: for
/// `$N` or `?N` sqlx asks SQLite each parameter's name, which SQLite finds by
/// a linear scan of its named parameters — quadratic in a multi-row INSERT
/// with thousands of values (90 % of ingest time when measured).
fn ph(positional: bool, n: usize) -> String {
    if positional { "?".to_string() } else { format!("${n}") }
}

/// `$1, $2, …` (or `?, ?, …`) for an `IN (…)` list of `n` values.
fn in_list(positional: bool, n: usize) -> String {
    (0..n).map(|i| ph(positional, i + 1)).collect::<Vec<_>>().join(", ")
}

/// `(…), (…)` groups for a multi-row VALUES clause, numbered from `start + 1`.
fn placeholders(rows: usize, cols: usize, start: usize, positional: bool) -> String {
    let mut s = String::with_capacity(rows * cols * 5);
    for r in 0..rows {
        if r > 0 {
            s.push_str(", ");
        }
        s.push('(');
        for c in 0..cols {
            if c > 0 {
                s.push_str(", ");
            }
            s.push_str(&ph(positional, start + r * cols + c + 1));
        }
        s.push(')');
    }
    s
}

/// One value of a statement whose rows are built at run time (multi-row
/// VALUES lists of the set-based writes).
#[derive(Debug, Clone)]
pub(crate) enum Val {
    Int(i64),
    Text(String),
    /// A NULL in a text column.
    Null,
    /// A NULL in an integer column (PostgreSQL types a bound NULL).
    NullInt,
}

impl From<i64> for Val {
    fn from(v: i64) -> Val {
        Val::Int(v)
    }
}

impl From<&str> for Val {
    fn from(v: &str) -> Val {
        Val::Text(v.to_string())
    }
}

impl From<String> for Val {
    fn from(v: String) -> Val {
        Val::Text(v)
    }
}

impl From<Option<i64>> for Val {
    fn from(v: Option<i64>) -> Val {
        v.map_or(Val::NullInt, Val::Int)
    }
}

impl From<Option<String>> for Val {
    fn from(v: Option<String>) -> Val {
        v.map_or(Val::Null, Val::Text)
    }
}

/// Rows per statement so that no statement binds more than ~2,000 values.
fn rows_per_statement(cols: usize) -> usize {
    (2000 / cols.max(1)).max(1)
}

/// Runs `head VALUES (…), (…) tail` for `rows` (each `cols` values), as
/// many statements as the bind limit needs; `head` and `tail` are fixed
/// SQL. Returns the rows each statement returned (for a `RETURNING` tail).
pub(crate) async fn values_statement(
    tx: &mut Tx,
    head: &str,
    tail: &str,
    cols: usize,
    rows: &[Vec<Val>],
) -> Result<Vec<sqlx::any::AnyRow>, StoreError> {
    let positional = tx.positional();
    let mut out = Vec::new();
    for chunk in rows.chunks(rows_per_statement(cols)) {
        let sql = format!("{head} (VALUES {}) AS v {tail}", placeholders(chunk.len(), cols, 0, positional));
        out.extend(bind_rows(&sql, chunk).fetch_all(&mut **tx).await?);
    }
    Ok(out)
}

/// One column of the rows a `RETURNING` statement gave back, as a set.
pub(crate) fn returned<T>(rows: &[sqlx::any::AnyRow], col: &str) -> Result<std::collections::HashSet<T>, StoreError>
where
    T: for<'r> sqlx::Decode<'r, sqlx::Any> + sqlx::Type<sqlx::Any> + Eq + std::hash::Hash,
{
    use sqlx::Row;
    rows.iter().map(|r| r.try_get::<T, _>(col).map_err(StoreError::from)).collect()
}

/// `INSERT INTO table (cols) VALUES (…), (…) [tail]` for `rows`.
pub(crate) async fn insert_rows(
    tx: &mut Tx,
    into: &str,
    tail: &str,
    cols: usize,
    rows: &[Vec<Val>],
) -> Result<u64, StoreError> {
    let mut n = 0;
    for (sql, chunk) in insert_statements(tx.positional(), into, tail, cols, rows) {
        n += bind_rows(&sql, chunk).execute(&mut **tx).await?.rows_affected();
    }
    Ok(n)
}

/// `INSERT INTO table (cols) VALUES (…), (…) tail` for `rows`, with a
/// `RETURNING` tail: the rows every statement returned.
pub(crate) async fn insert_returning(
    tx: &mut Tx,
    into: &str,
    tail: &str,
    cols: usize,
    rows: &[Vec<Val>],
) -> Result<Vec<sqlx::any::AnyRow>, StoreError> {
    let mut out = Vec::new();
    for (sql, chunk) in insert_statements(tx.positional(), into, tail, cols, rows) {
        out.extend(bind_rows(&sql, chunk).fetch_all(&mut **tx).await?);
    }
    Ok(out)
}

/// The statements an insert of `rows` takes (the bind limit caps rows per
/// statement), each with the rows it binds.
fn insert_statements<'r>(
    positional: bool,
    into: &str,
    tail: &str,
    cols: usize,
    rows: &'r [Vec<Val>],
) -> Vec<(String, &'r [Vec<Val>])> {
    rows.chunks(rows_per_statement(cols))
        .map(|chunk| {
            (format!("INSERT INTO {into} VALUES {} {tail}", placeholders(chunk.len(), cols, 0, positional)), chunk)
        })
        .collect()
}

fn bind_rows<'q>(sql: &str, rows: &[Vec<Val>]) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments> {
    let mut q = sqlx::query(sqlx::AssertSqlSafe(sql.to_string()));
    for v in rows.iter().flatten() {
        q = match v {
            Val::Int(i) => q.bind(*i),
            Val::Text(t) => q.bind(t.clone()),
            Val::Null => q.bind(None::<String>),
            Val::NullInt => q.bind(None::<i64>),
        };
    }
    q
}

/// `head (…) tail` with `head` ending in `IN`, for `vals`: the rows of
/// every statement the bind limit needs.
pub(crate) async fn select_in(
    conn: &mut sqlx::AnyConnection,
    positional: bool,
    head: &str,
    tail: &str,
    vals: &[Val],
) -> Result<Vec<sqlx::any::AnyRow>, StoreError> {
    let mut out = Vec::new();
    for chunk in vals.chunks(rows_per_statement(1)) {
        let sql = format!("{head} ({}) {tail}", in_list(positional, chunk.len()));
        let rows: Vec<Vec<Val>> = chunk.iter().map(|v| vec![v.clone()]).collect();
        out.extend(bind_rows(&sql, &rows).fetch_all(&mut *conn).await?);
    }
    Ok(out)
}
