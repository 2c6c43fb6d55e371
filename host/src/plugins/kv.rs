//! The per-plugin key-value store (tokens, cursors), private to one plugin
//! or one supplier connection (its *scope*).
//!
//! On a host with a registry root every scope lives in one SQLite file,
//! `kv.sqlite`, a row per key: a `set` writes that row and nothing else (the
//! first version kept each store in host memory and rewrote it whole,
//! hex-encoded, on every `set` — a 64 MB plugin took the host to 1 GB), and
//! values stay on disk until asked for. Quotas on keys, value size and total
//! bytes (keys plus values) are checked against what is stored, under a lock
//! per scope, so concurrent calls of one plugin cannot race past them.
//! Dry runs and hosts without a root use the in-memory variant, which keeps
//! the same quotas. Owns: `kv.sqlite`. Calls: nothing else in the host.

use std::collections::BTreeMap;
use std::path::Path;
use std::str::FromStr;
use std::sync::Mutex;

use sqlx::Row;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous};

/// Longest key accepted.
pub const MAX_KEY_BYTES: usize = 256;

/// Why a write was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KvError {
    #[error("{0}")]
    Quota(String),
    #[error("could not persist: {0}")]
    Io(String),
}

fn db_error(e: sqlx::Error) -> KvError {
    KvError::Io(e.to_string())
}

/// What one scope may hold (from the plugin's manifest limits).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KvQuota {
    pub max_keys: u32,
    pub max_value_bytes: u64,
    /// Keys plus values, in bytes.
    pub max_total_bytes: u64,
}

/// What a scope holds now.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct KvUsage {
    pub keys: u64,
    pub bytes: u64,
}

/// The kv database shared by every scope of one host.
#[derive(Clone)]
pub struct KvDb {
    pool: SqlitePool,
}

impl KvDb {
    /// Opens (or creates) the database at `path`.
    pub async fn open(path: &Path) -> Result<KvDb, KvError> {
        if let Some(dir) = path.parent() {
            tokio::fs::create_dir_all(dir).await.map_err(|e| KvError::Io(e.to_string()))?;
        }
        let opts = SqliteConnectOptions::from_str(&format!("sqlite://{}", path.display()))
            .map_err(db_error)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // A cursor or token a plugin was told is stored must survive a
            // power cut: kv writes are rare, so full sync costs little.
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(std::time::Duration::from_secs(5));
        let pool = SqlitePoolOptions::new().max_connections(4).connect_with(opts).await.map_err(db_error)?;
        sqlx::query(
            "CREATE TABLE IF NOT EXISTS kv (scope TEXT NOT NULL, key TEXT NOT NULL, value BLOB NOT NULL, \
             PRIMARY KEY (scope, key)) WITHOUT ROWID",
        )
        .execute(&pool)
        .await
        .map_err(db_error)?;
        Ok(KvDb { pool })
    }

    /// The store of `scope`.
    pub fn scope(&self, scope: &str) -> KvStore {
        KvStore {
            backend: Backend::Disk { db: self.clone(), scope: scope.to_string() },
            usage: tokio::sync::Mutex::new(None),
        }
    }

    /// Moves the JSON files of the first kv format (`<dir>/<scope>.json`,
    /// values hex-encoded) into the database, each in one transaction, and
    /// renames each to `.json.imported` so it is read once. Quotas are not
    /// applied: the data was already accepted.
    pub async fn import_json_dir(&self, dir: &Path) -> Result<usize, KvError> {
        let io = |e: std::io::Error| KvError::Io(format!("{}: {e}", dir.display()));
        let mut entries = match tokio::fs::read_dir(dir).await {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
            Err(e) => return Err(io(e)),
        };
        let mut imported = 0;
        while let Some(entry) = entries.next_entry().await.map_err(io)? {
            let path = entry.path();
            let Some(scope) = path.file_name().and_then(|n| n.to_str()).and_then(|n| n.strip_suffix(".json")) else {
                continue;
            };
            let bytes = tokio::fs::read(&path).await.map_err(io)?;
            let hexed: BTreeMap<String, String> =
                serde_json::from_slice(&bytes).map_err(|e| KvError::Io(format!("{}: {e}", path.display())))?;
            let mut tx = self.pool.begin().await.map_err(db_error)?;
            for (key, value) in hexed {
                let Ok(value) = hex::decode(&value) else {
                    tracing::warn!(scope, key, "kv import: value is not hex; skipped");
                    continue;
                };
                sqlx::query("INSERT OR REPLACE INTO kv (scope, key, value) VALUES (?, ?, ?)")
                    .bind(scope)
                    .bind(&key)
                    .bind(value)
                    .execute(&mut *tx)
                    .await
                    .map_err(db_error)?;
            }
            tx.commit().await.map_err(db_error)?;
            let mut done = path.clone().into_os_string();
            done.push(".imported");
            tokio::fs::rename(&path, &done).await.map_err(io)?;
            imported += 1;
        }
        Ok(imported)
    }
}

enum Backend {
    Memory(Mutex<BTreeMap<String, Vec<u8>>>),
    Disk { db: KvDb, scope: String },
}

/// One scope's store.
pub struct KvStore {
    backend: Backend,
    /// Serialises writes of this scope and caches its usage (loaded on the
    /// first write), so a quota check and the write it allows are atomic.
    usage: tokio::sync::Mutex<Option<KvUsage>>,
}

fn entry_bytes(key: &str, value_len: u64) -> u64 {
    key.len() as u64 + value_len
}

impl KvStore {
    /// A store kept only in memory (tests, dry runs).
    pub fn in_memory() -> KvStore {
        KvStore { backend: Backend::Memory(Mutex::default()), usage: tokio::sync::Mutex::new(None) }
    }

    /// The value of `key`, if set.
    pub async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, KvError> {
        match &self.backend {
            Backend::Memory(data) => Ok(data.lock().map_err(|_| poisoned())?.get(key).cloned()),
            Backend::Disk { db, scope } => {
                let row = sqlx::query("SELECT value FROM kv WHERE scope = ? AND key = ?")
                    .bind(scope)
                    .bind(key)
                    .fetch_optional(&db.pool)
                    .await
                    .map_err(db_error)?;
                row.map(|r| r.try_get::<Vec<u8>, _>(0)).transpose().map_err(db_error)
            }
        }
    }

    /// What the store holds now.
    pub async fn usage(&self) -> Result<KvUsage, KvError> {
        let mut cached = self.usage.lock().await;
        self.load_usage(&mut cached).await
    }

    async fn load_usage(&self, cached: &mut Option<KvUsage>) -> Result<KvUsage, KvError> {
        if let Some(u) = *cached {
            return Ok(u);
        }
        let u = match &self.backend {
            Backend::Memory(data) => {
                let data = data.lock().map_err(|_| poisoned())?;
                KvUsage {
                    keys: data.len() as u64,
                    bytes: data.iter().map(|(k, v)| entry_bytes(k, v.len() as u64)).sum(),
                }
            }
            Backend::Disk { db, scope } => {
                // LENGTH of a TEXT counts characters; the quota is in bytes.
                let row = sqlx::query(
                    "SELECT COUNT(*), COALESCE(SUM(LENGTH(CAST(key AS BLOB)) + LENGTH(value)), 0) \
                     FROM kv WHERE scope = ?",
                )
                .bind(scope)
                .fetch_one(&db.pool)
                .await
                .map_err(db_error)?;
                let keys: i64 = row.try_get(0).map_err(db_error)?;
                let bytes: i64 = row.try_get(1).map_err(db_error)?;
                KvUsage { keys: keys.max(0) as u64, bytes: bytes.max(0) as u64 }
            }
        };
        *cached = Some(u);
        Ok(u)
    }

    /// Size in bytes of the value stored under `key`.
    async fn stored_len(&self, key: &str) -> Result<Option<u64>, KvError> {
        match &self.backend {
            Backend::Memory(data) => Ok(data.lock().map_err(|_| poisoned())?.get(key).map(|v| v.len() as u64)),
            Backend::Disk { db, scope } => {
                let row = sqlx::query("SELECT LENGTH(value) FROM kv WHERE scope = ? AND key = ?")
                    .bind(scope)
                    .bind(key)
                    .fetch_optional(&db.pool)
                    .await
                    .map_err(db_error)?;
                Ok(row.map(|r| r.try_get::<i64, _>(0)).transpose().map_err(db_error)?.map(|n| n.max(0) as u64))
            }
        }
    }

    /// Sets `key`, enforcing `quota`, and persists it before returning.
    pub async fn set(&self, key: String, value: Vec<u8>, quota: KvQuota) -> Result<(), KvError> {
        if key.is_empty() || key.len() > MAX_KEY_BYTES {
            return Err(KvError::Quota(format!("key must be 1-{MAX_KEY_BYTES} bytes, got {}", key.len())));
        }
        let value_len = value.len() as u64;
        if value_len > quota.max_value_bytes {
            return Err(KvError::Quota(format!(
                "value of `{key}` is {value_len} bytes; the limit is {}",
                quota.max_value_bytes
            )));
        }
        let mut cached = self.usage.lock().await;
        let usage = self.load_usage(&mut cached).await?;
        let old = self.stored_len(&key).await?;
        let keys = usage.keys + u64::from(old.is_none());
        if keys > u64::from(quota.max_keys) {
            return Err(KvError::Quota(format!("the store already holds {} keys", quota.max_keys)));
        }
        let bytes = usage.bytes - old.map_or(0, |n| entry_bytes(&key, n)) + entry_bytes(&key, value_len);
        if bytes > quota.max_total_bytes {
            return Err(KvError::Quota(format!(
                "setting `{key}` would make the store {bytes} bytes; the limit is {}",
                quota.max_total_bytes
            )));
        }
        match &self.backend {
            Backend::Memory(data) => {
                data.lock().map_err(|_| poisoned())?.insert(key, value);
            }
            Backend::Disk { db, scope } => {
                let written = sqlx::query("INSERT OR REPLACE INTO kv (scope, key, value) VALUES (?, ?, ?)")
                    .bind(scope)
                    .bind(&key)
                    .bind(value)
                    .execute(&db.pool)
                    .await;
                if let Err(e) = written {
                    // What is stored is unknown now: count again next time.
                    *cached = None;
                    return Err(db_error(e));
                }
            }
        }
        *cached = Some(KvUsage { keys, bytes });
        Ok(())
    }

    /// Deletes `key` (no error if it is not set).
    pub async fn delete(&self, key: &str) -> Result<(), KvError> {
        let mut cached = self.usage.lock().await;
        let usage = self.load_usage(&mut cached).await?;
        let Some(old) = self.stored_len(key).await? else { return Ok(()) };
        match &self.backend {
            Backend::Memory(data) => {
                data.lock().map_err(|_| poisoned())?.remove(key);
            }
            Backend::Disk { db, scope } => {
                let deleted = sqlx::query("DELETE FROM kv WHERE scope = ? AND key = ?")
                    .bind(scope)
                    .bind(key)
                    .execute(&db.pool)
                    .await;
                if let Err(e) = deleted {
                    *cached = None;
                    return Err(db_error(e));
                }
            }
        }
        *cached = Some(KvUsage {
            keys: usage.keys.saturating_sub(1),
            bytes: usage.bytes.saturating_sub(entry_bytes(key, old)),
        });
        Ok(())
    }
}

fn poisoned() -> KvError {
    KvError::Io("store poisoned".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    const QUOTA: KvQuota = KvQuota { max_keys: 3, max_value_bytes: 10, max_total_bytes: 24 };

    async fn exercise(kv: &KvStore) {
        kv.set("a".into(), b"0123456789".to_vec(), QUOTA).await.unwrap();
        assert_eq!(kv.usage().await.unwrap(), KvUsage { keys: 1, bytes: 11 });
        let e = kv.set("b".into(), b"01234567890".to_vec(), QUOTA).await.unwrap_err();
        assert!(e.to_string().contains("value of `b` is 11 bytes"), "{e}");
        kv.set("b".into(), b"012345678".to_vec(), QUOTA).await.unwrap();
        // 11 + 10 = 21; a third key of 4 bytes would make 25 > 24.
        let e = kv.set("c".into(), b"012".to_vec(), QUOTA).await.unwrap_err();
        assert!(e.to_string().contains("25 bytes; the limit is 24"), "{e}");
        kv.set("c".into(), b"01".to_vec(), QUOTA).await.unwrap();
        let e = kv.set("d".into(), vec![], QUOTA).await.unwrap_err();
        assert!(e.to_string().contains("3 keys"), "{e}");
        // Overwriting counts the difference, not the sum.
        kv.set("a".into(), b"x".to_vec(), QUOTA).await.unwrap();
        assert_eq!(kv.usage().await.unwrap(), KvUsage { keys: 3, bytes: 2 + 10 + 3 });
        kv.delete("b").await.unwrap();
        kv.delete("b").await.unwrap();
        assert_eq!(kv.usage().await.unwrap(), KvUsage { keys: 2, bytes: 5 });
        assert_eq!(kv.get("a").await.unwrap(), Some(b"x".to_vec()));
        assert_eq!(kv.get("b").await.unwrap(), None);
    }

    #[tokio::test]
    async fn quotas_hold_in_memory() {
        exercise(&KvStore::in_memory()).await;
    }

    #[tokio::test]
    async fn quotas_hold_on_disk_and_survive_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kv.sqlite");
        let db = KvDb::open(&path).await.unwrap();
        exercise(&db.scope("p")).await;
        // Scopes are separate, including one whose name extends another's.
        assert_eq!(db.scope("p@00").usage().await.unwrap(), KvUsage::default());
        drop(db);
        let db = KvDb::open(&path).await.unwrap();
        let kv = db.scope("p");
        assert_eq!(kv.usage().await.unwrap(), KvUsage { keys: 2, bytes: 5 });
        assert_eq!(kv.get("c").await.unwrap(), Some(b"01".to_vec()));
    }

    #[tokio::test]
    async fn the_json_format_is_imported_once() {
        let dir = tempfile::tempdir().unwrap();
        let kvdir = dir.path().join("kv");
        std::fs::create_dir_all(&kvdir).unwrap();
        std::fs::write(kvdir.join("p.json"), r#"{"token":"6869"}"#).unwrap();
        let db = KvDb::open(&dir.path().join("kv.sqlite")).await.unwrap();
        assert_eq!(db.import_json_dir(&kvdir).await.unwrap(), 1);
        assert_eq!(db.import_json_dir(&kvdir).await.unwrap(), 0);
        assert_eq!(db.scope("p").get("token").await.unwrap(), Some(b"hi".to_vec()));
    }
}
