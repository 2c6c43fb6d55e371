//! Durable jobs under leases with fencing tokens. A worker claims ready
//! jobs for `lease_ms`; each claim bumps the job's `fence`. Whatever the
//! job's result writes commits in one transaction with a check that the
//! fence is still the claim's: a worker whose lease ran out (and whose job
//! another worker took) finds its fence stale and its transaction rolls
//! back, so a slow worker and its retry can never both commit.
//!
//! On PostgreSQL claims use `FOR UPDATE SKIP LOCKED`, so hosts sharing the
//! database never wait on, or take, each other's rows; SQLite has one
//! writer and claims under the store's write lock.

use serde::{Deserialize, Serialize};
use sqlx::{AssertSqlSafe, FromRow};

use super::{Backend, Store, StoreError, Tx, Val, insert_rows, returned, values_statement};
use crate::domain::SupplierId;

/// What a job does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobKind {
    /// Send a purchase order to its supplier (`job_key` = PO number).
    Submit,
    /// Create the PO's PUR_PurchaseOrder in the ERP (`job_key` = PO number).
    ErpPo,
    /// Write one shipment back to the ERP (`job_key` = shipment id).
    WriteBack,
    /// Read a supplier's update feed (`job_key` = supplier); recurring.
    Poll,
    /// Ask the supplier to cancel a PO whose sales order the ERP cancelled
    /// (`job_key` = PO number).
    Cancel,
}

impl JobKind {
    pub fn as_str(self) -> &'static str {
        match self {
            JobKind::Submit => "submit",
            JobKind::ErpPo => "erp_po",
            JobKind::WriteBack => "write_back",
            JobKind::Poll => "poll",
            JobKind::Cancel => "cancel",
        }
    }

    fn parse(s: &str) -> Result<JobKind, StoreError> {
        match s {
            "submit" => Ok(JobKind::Submit),
            "erp_po" => Ok(JobKind::ErpPo),
            "write_back" => Ok(JobKind::WriteBack),
            "poll" => Ok(JobKind::Poll),
            "cancel" => Ok(JobKind::Cancel),
            _ => Err(StoreError::Corrupt(format!("job kind `{s}`"))),
        }
    }
}

/// One failed attempt, kept with the job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobError {
    pub attempt: u32,
    pub at: i64,
    pub error: String,
}

/// A claimed job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Job {
    pub id: i64,
    pub kind: JobKind,
    pub key: String,
    pub supplier: SupplierId,
    /// Attempts that failed so far.
    pub attempts: u32,
    pub deadline_at: i64,
    pub fence: i64,
    pub errors: Vec<JobError>,
}

impl Job {
    /// The claim to present when the result commits.
    pub fn lease(&self) -> Lease {
        Lease { id: self.id, fence: self.fence }
    }
}

/// Proof of a claim: the job and the fence it was claimed with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lease {
    pub id: i64,
    pub fence: i64,
}

/// A job as operators see it (dead letters included).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct JobView {
    pub id: i64,
    pub kind: JobKind,
    pub key: String,
    pub supplier: String,
    pub state: String,
    pub attempts: u32,
    pub run_at: i64,
    pub deadline_at: i64,
    pub last_error: Option<String>,
    pub errors: Vec<JobError>,
    pub updated_at: i64,
}

#[derive(FromRow)]
struct JobRow {
    id: i64,
    kind: String,
    job_key: String,
    supplier: String,
    state: String,
    attempts: i64,
    run_at: i64,
    deadline_at: i64,
    fence: i64,
    last_error: Option<String>,
    errors: String,
    updated_at: i64,
}

impl JobRow {
    fn errors(&self) -> Vec<JobError> {
        serde_json::from_str(&self.errors).unwrap_or_default()
    }

    fn view(self) -> Result<JobView, StoreError> {
        Ok(JobView {
            errors: self.errors(),
            id: self.id,
            kind: JobKind::parse(&self.kind)?,
            key: self.job_key,
            supplier: self.supplier,
            state: self.state,
            attempts: u32::try_from(self.attempts).unwrap_or(u32::MAX),
            run_at: self.run_at,
            deadline_at: self.deadline_at,
            last_error: self.last_error,
            updated_at: self.updated_at,
        })
    }
}

const JOB_COLUMNS: &str =
    "id, kind, job_key, supplier, state, attempts, run_at, deadline_at, fence, last_error, errors, updated_at";

/// How a failed attempt ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Retry {
    /// Try again at this time (unix ms).
    At(i64),
    /// Out of time or hopeless: the job becomes a dead letter.
    Dead,
}

/// Queues a job unless one with the same kind and key exists (then nothing
/// changes: the key is the job's identity).
pub(super) async fn insert_job(
    tx: &mut Tx,
    kind: JobKind,
    key: &str,
    supplier: &SupplierId,
    run_at: i64,
    deadline_at: i64,
    now: i64,
) -> Result<bool, StoreError> {
    let done = sqlx::query(
        "INSERT INTO jobs (kind, job_key, supplier, state, attempts, run_at, deadline_at, fence, errors, \
         created_at, updated_at) VALUES ($1, $2, $3, 'ready', 0, $4, $5, 0, '[]', $6, $6) \
         ON CONFLICT (kind, job_key) DO NOTHING",
    )
    .bind(kind.as_str())
    .bind(key)
    .bind(supplier.as_str())
    .bind(run_at)
    .bind(deadline_at)
    .bind(now)
    .execute(&mut **tx)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// A new ready job's row for [`insert_ready_jobs`].
pub(super) fn ready_job(kind: JobKind, key: &str, supplier: &str, now: i64, deadline_at: i64) -> Vec<Val> {
    vec![
        kind.as_str().into(),
        key.into(),
        supplier.into(),
        "ready".into(),
        Val::Int(0),
        Val::Int(now),
        Val::Int(deadline_at),
        Val::Int(0),
        "[]".into(),
        Val::Int(now),
        Val::Int(now),
    ]
}

/// [`insert_job`] for many rows built by [`ready_job`], in as few
/// statements as the bind limit allows; a job whose kind and key exist
/// already is left as it is.
pub(super) async fn insert_ready_jobs(tx: &mut Tx, rows: &[Vec<Val>]) -> Result<u64, StoreError> {
    insert_rows(
        tx,
        "jobs (kind, job_key, supplier, state, attempts, run_at, deadline_at, fence, errors, created_at, updated_at)",
        "ON CONFLICT (kind, job_key) DO NOTHING",
        11,
        rows,
    )
    .await
}

/// [`finish_job`] (done, no next run) for many leases in one statement:
/// the ids whose fence still held. A job missing from the answer lost its
/// lease, and its caller must write nothing of it.
pub(super) async fn finish_jobs(
    tx: &mut Tx,
    leases: &[Lease],
    now: i64,
) -> Result<std::collections::HashSet<i64>, StoreError> {
    let rows: Vec<Vec<Val>> = leases.iter().map(|l| vec![Val::Int(l.id), Val::Int(l.fence), Val::Int(now)]).collect();
    let done = values_statement(
        tx,
        "UPDATE jobs SET state = 'done', lease_owner = NULL, lease_until = NULL, updated_at = v.column3 FROM",
        "WHERE jobs.id = v.column1 AND jobs.fence = v.column2 AND jobs.state = 'ready' RETURNING id",
        3,
        &rows,
    )
    .await?;
    returned(&done, "id")
}

/// Runs a PO's ERP job again because the PO changed after its
/// PUR_PurchaseOrder was (or is being) made: lines were cancelled or
/// rejected, so the document must follow. A job not yet run reads the PO
/// as it is now and needs nothing; a finished or dead one is made ready;
/// one in flight gets a new fence, so its commit fails and the job runs
/// again once its lease ends (never two runs on one document at once).
pub(super) async fn rearm_erp_po(tx: &mut Tx, po_number: &str, now: i64, deadline_at: i64) -> Result<bool, StoreError> {
    let done = sqlx::query(
        "UPDATE jobs SET state = 'ready', attempts = 0, run_at = $1, deadline_at = $2, fence = fence + 1, \
         updated_at = $1 WHERE kind = 'erp_po' AND job_key = $3 \
         AND (state IN ('done', 'dead') OR (state = 'ready' AND lease_owner IS NOT NULL))",
    )
    .bind(now)
    .bind(deadline_at)
    .bind(po_number)
    .execute(&mut **tx)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Ends a claimed job inside the caller's transaction: `Some(run_at)`
/// schedules it again (recurring jobs), `None` marks it done. Fails with
/// [`StoreError::LeaseLost`] when the fence moved on: the caller must roll
/// back everything else it wrote.
pub(super) async fn finish_job(tx: &mut Tx, lease: Lease, again_at: Option<i64>, now: i64) -> Result<(), StoreError> {
    let Some(at) = again_at else {
        let held = finish_jobs(tx, &[lease], now).await?.contains(&lease.id);
        return if held { Ok(()) } else { Err(StoreError::LeaseLost(lease.id)) };
    };
    let done = sqlx::query(
        "UPDATE jobs SET run_at = $1, attempts = 0, lease_owner = NULL, lease_until = NULL, last_error = NULL, \
         updated_at = $2 WHERE id = $3 AND fence = $4 AND state = 'ready'",
    )
    .bind(at)
    .bind(now)
    .bind(lease.id)
    .bind(lease.fence)
    .execute(&mut **tx)
    .await?;
    if done.rows_affected() != 1 {
        return Err(StoreError::LeaseLost(lease.id));
    }
    Ok(())
}

impl Store {
    /// Claims up to `limit` ready jobs of `kinds` whose time has come and
    /// whose lease (if any) ran out, for `lease_ms`.
    pub async fn claim_jobs(
        &self,
        kinds: &[JobKind],
        owner: &str,
        now: i64,
        lease_ms: i64,
        limit: i64,
    ) -> Result<Vec<Job>, StoreError> {
        if kinds.is_empty() || limit <= 0 {
            return Ok(vec![]);
        }
        let ready = "state = 'ready' AND run_at <= $3 AND (lease_until IS NULL OR lease_until <= $3)";
        let pick = match self.backend {
            Backend::Postgres => {
                let kinds_sql = kinds.iter().map(|k| format!("'{}'", k.as_str())).collect::<Vec<_>>().join(", ");
                format!(
                    "SELECT id FROM jobs WHERE {ready} AND kind IN ({kinds_sql}) ORDER BY run_at, id LIMIT $4 \
                     FOR UPDATE SKIP LOCKED"
                )
            }
            // Each kind read in index order (state, kind, run_at) and merged:
            // with `kind IN (…)` SQLite walked one kind's backlog to reach
            // another's.
            Backend::Sqlite => {
                let per_kind = kinds
                    .iter()
                    .map(|k| {
                        format!(
                            "SELECT id, run_at FROM (SELECT id, run_at FROM jobs WHERE {ready} AND kind = '{}' \
                             ORDER BY run_at, id LIMIT $4)",
                            k.as_str()
                        )
                    })
                    .collect::<Vec<_>>()
                    .join(" UNION ALL ");
                format!("SELECT id FROM ({per_kind}) ORDER BY run_at, id LIMIT $4")
            }
        };
        // One statement claims the whole batch: a claim per job would hold
        // the writer for a round trip per job.
        let _w = self.writer().await;
        let mut tx = self.begin_write().await?;
        let mut rows: Vec<JobRow> = sqlx::query_as(AssertSqlSafe(format!(
            "UPDATE jobs SET lease_owner = $1, lease_until = $2, fence = fence + 1, updated_at = $3 \
             WHERE id IN ({pick}) RETURNING {JOB_COLUMNS}"
        )))
        .bind(owner)
        .bind(now + lease_ms)
        .bind(now)
        .bind(limit)
        .fetch_all(&mut *tx)
        .await?;
        // RETURNING gives no order; keep the queue's.
        rows.sort_by_key(|r| (r.run_at, r.id));
        let mut jobs = Vec::with_capacity(rows.len());
        for row in rows {
            jobs.push(Job {
                errors: row.errors(),
                id: row.id,
                kind: JobKind::parse(&row.kind)?,
                key: row.job_key,
                supplier: SupplierId(row.supplier),
                attempts: u32::try_from(row.attempts).unwrap_or(u32::MAX),
                deadline_at: row.deadline_at,
                fence: row.fence,
            });
        }
        tx.commit().await?;
        Ok(jobs)
    }

    /// Lets go of jobs `owner` still holds although their fence moved on:
    /// re-armed while in flight (the PO changed after its ERP document was
    /// started), their commit was refused. The worker is done with them, so
    /// they run again now instead of when the lease would have ended (two
    /// minutes: a re-armed PO's document waited that long). A job another
    /// worker has claimed since is not touched. Returns how many.
    pub async fn release_rearmed(&self, owner: &str, leases: &[Lease], now: i64) -> Result<u64, StoreError> {
        if leases.is_empty() {
            return Ok(0);
        }
        let rows: Vec<Vec<Val>> =
            leases.iter().map(|l| vec![Val::Int(l.id), Val::Int(l.fence), owner.into(), Val::Int(now)]).collect();
        let _w = self.writer().await;
        let mut tx = self.begin_write().await?;
        let released = values_statement(
            &mut tx,
            "UPDATE jobs SET lease_owner = NULL, lease_until = NULL, updated_at = v.column4 FROM",
            "WHERE jobs.id = v.column1 AND jobs.lease_owner = v.column3 AND jobs.fence > v.column2 \
             AND jobs.state = 'ready' RETURNING id",
            4,
            &rows,
        )
        .await?;
        tx.commit().await?;
        Ok(released.len() as u64)
    }

    /// Marks a claimed job done with nothing else to write (e.g. its PO was
    /// cancelled meanwhile). False if the lease was lost.
    pub async fn complete_job(&self, lease: Lease, now: i64) -> Result<bool, StoreError> {
        let _w = self.writer().await;
        let mut tx = self.begin_write().await?;
        match finish_job(&mut tx, lease, None, now).await {
            Ok(()) => {
                tx.commit().await?;
                Ok(true)
            }
            Err(StoreError::LeaseLost(_)) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Records a failed attempt: the error joins the job's history, and the
    /// job either waits until `retry` or becomes a dead letter (with an
    /// operator event). `counts` = false for waits that are not the job's
    /// fault (an open circuit, a paused supplier). False if the lease was lost.
    pub async fn fail_job(
        &self,
        job: &Job,
        error: &str,
        retry: Retry,
        counts: bool,
        now: i64,
    ) -> Result<bool, StoreError> {
        let _w = self.writer().await;
        let mut tx = self.begin_write().await?;
        let mut errors = job.errors.clone();
        let attempts = if counts { job.attempts + 1 } else { job.attempts };
        if counts {
            errors.push(JobError { attempt: attempts, at: now, error: error.to_string() });
            // The first errors say how it started, the last how it is going.
            if errors.len() > 50 {
                errors.drain(10..errors.len() - 40);
            }
        }
        let (state, run_at) = match retry {
            Retry::At(t) => ("ready", t),
            Retry::Dead => ("dead", now),
        };
        let done = sqlx::query(
            "UPDATE jobs SET state = $1, run_at = $2, attempts = $3, errors = $4, last_error = $5, \
             lease_owner = NULL, lease_until = NULL, updated_at = $6 WHERE id = $7 AND fence = $8 AND state = 'ready'",
        )
        .bind(state)
        .bind(run_at)
        .bind(i64::from(attempts))
        .bind(serde_json::to_string(&errors).unwrap_or_else(|_| "[]".into()))
        .bind(error)
        .bind(now)
        .bind(job.id)
        .bind(job.fence)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() != 1 {
            tx.rollback().await?;
            return Ok(false);
        }
        if retry == Retry::Dead {
            let msg = format!("{} {} gave up after {attempts} attempts: {error}", job.kind.as_str(), job.key);
            super::connections::insert_operator_event(
                &mut tx,
                "dead_letter",
                job.supplier.as_str(),
                &job.key,
                &msg,
                now,
            )
            .await?;
            if matches!(job.kind, JobKind::Submit | JobKind::ErpPo) {
                super::purchase::mark_dead(&mut tx, &job.key, &msg, now).await?;
            }
        }
        tx.commit().await?;
        Ok(true)
    }

    /// Lets go of every lease `owner` holds (a clean shutdown), so another
    /// worker need not wait for them to run out.
    pub async fn release_leases(&self, owner: &str, now: i64) -> Result<u64, StoreError> {
        let _w = self.writer().await;
        let mut tx = self.begin_write().await?;
        let n = sqlx::query(
            "UPDATE jobs SET lease_owner = NULL, lease_until = NULL, updated_at = $1 WHERE lease_owner = $2 \
             AND state = 'ready'",
        )
        .bind(now)
        .bind(owner)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        tx.commit().await?;
        Ok(n)
    }

    /// Jobs in `state` (`dead` for dead letters), oldest change first.
    pub async fn jobs_in_state(&self, state: &str, limit: i64) -> Result<Vec<JobView>, StoreError> {
        let rows: Vec<JobRow> = sqlx::query_as(AssertSqlSafe(format!(
            "SELECT {JOB_COLUMNS} FROM jobs WHERE state = $1 ORDER BY updated_at, id LIMIT $2"
        )))
        .bind(state)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter().map(JobRow::view).collect()
    }

    /// One job.
    pub async fn job(&self, id: i64) -> Result<Option<JobView>, StoreError> {
        let row: Option<JobRow> =
            sqlx::query_as(AssertSqlSafe(format!("SELECT {JOB_COLUMNS} FROM jobs WHERE id = $1")))
                .bind(id)
                .fetch_optional(&self.pool)
                .await?;
        row.map(JobRow::view).transpose()
    }

    /// Jobs per (kind, state): what the queue holds.
    pub async fn job_counts(&self) -> Result<Vec<(String, String, i64)>, StoreError> {
        let rows: Vec<(String, String, i64)> =
            sqlx::query_as("SELECT kind, state, COUNT(*) FROM jobs GROUP BY kind, state ORDER BY kind, state")
                .fetch_all(&self.pool)
                .await?;
        Ok(rows)
    }

    /// Per kind, the jobs waiting or running and when the oldest was made.
    pub async fn job_backlog(&self) -> Result<Vec<(String, i64, i64)>, StoreError> {
        Ok(sqlx::query_as("SELECT kind, COUNT(*), MIN(created_at) FROM jobs WHERE state = 'ready' GROUP BY kind")
            .fetch_all(&self.pool)
            .await?)
    }

    /// Sends a dead letter round again with a fresh deadline; its PO (if
    /// it died with it) returns to pending. False if it is not dead.
    pub async fn retry_dead_letter(&self, id: i64, deadline_at: i64, now: i64) -> Result<bool, StoreError> {
        let _w = self.writer().await;
        let mut tx = self.begin_write().await?;
        let row: Option<JobRow> = sqlx::query_as(AssertSqlSafe(format!(
            "UPDATE jobs SET state = 'ready', run_at = $1, attempts = 0, deadline_at = $2, updated_at = $1 \
             WHERE id = $3 AND state = 'dead' RETURNING {JOB_COLUMNS}"
        )))
        .bind(now)
        .bind(deadline_at)
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = row else {
            tx.rollback().await?;
            return Ok(false);
        };
        if matches!(JobKind::parse(&row.kind)?, JobKind::Submit | JobKind::ErpPo) {
            super::purchase::revive(&mut tx, &row.job_key, now).await?;
        }
        tx.commit().await?;
        Ok(true)
    }

    /// Gives up on a dead letter for good (its PO stays dead, its order in
    /// exception for a person to re-route or cancel). False if it is not dead.
    pub async fn discard_dead_letter(&self, id: i64, now: i64) -> Result<bool, StoreError> {
        let _w = self.writer().await;
        let mut tx = self.begin_write().await?;
        let n = sqlx::query("UPDATE jobs SET state = 'discarded', updated_at = $1 WHERE id = $2 AND state = 'dead'")
            .bind(now)
            .bind(id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        tx.commit().await?;
        Ok(n == 1)
    }
}
