//! The two backends every store-touching suite runs against: a SQLite file
//! and the PostgreSQL server at 127.0.0.1:5432 (database `test`; override
//! with DAIFA_TEST_PG_URL). Postgres being unreachable fails, never skips.

use std::sync::atomic::{AtomicU64, Ordering};

use daifa_host::store::{Store, StoreConfig};

pub struct Db {
    pub store: Store,
    _dir: Option<tempfile::TempDir>,
    pub schema: Option<String>,
}

fn pg_url() -> String {
    std::env::var("DAIFA_TEST_PG_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

/// Drops a test's PostgreSQL schema once the test has passed.
pub async fn drop_schema(schema: Option<String>) {
    if let Some(schema) = schema {
        sqlx::any::install_default_drivers();
        let pool = sqlx::any::AnyPoolOptions::new().max_connections(1).connect(&pg_url()).await.unwrap();
        sqlx::query(sqlx::AssertSqlSafe(format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE")))
            .execute(&pool)
            .await
            .unwrap();
    }
}

pub async fn sqlite() -> Db {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite:{}", dir.path().join("daifa.db").display());
    let store = Store::open(&StoreConfig { url, ..Default::default() }).await.unwrap();
    Db { store, _dir: Some(dir), schema: None }
}

pub async fn postgres() -> Db {
    static N: AtomicU64 = AtomicU64::new(0);
    let schema = format!("daifa_test_{}_{}", std::process::id(), N.fetch_add(1, Ordering::Relaxed));
    let store = Store::open(&StoreConfig {
        url: pg_url(),
        schema: Some(schema.clone()),
        max_connections: 4,
        ..Default::default()
    })
    .await
    .expect("PostgreSQL at 127.0.0.1:5432 (database `test`) must be reachable for this suite");
    Db { store, _dir: None, schema: Some(schema) }
}

/// Runs each named `async fn(Db)` once on SQLite and once on PostgreSQL.
#[allow(unused_macros)]
macro_rules! suite {
    ($($test:ident),* $(,)?) => {
        mod sqlite {
            $(#[tokio::test] async fn $test() { super::$test($crate::common::db::sqlite().await).await })*
        }
        mod postgres {
            $(#[tokio::test] async fn $test() {
                let db = $crate::common::db::postgres().await;
                let schema = db.schema.clone();
                super::$test(db).await;
                $crate::common::db::drop_schema(schema).await;
            })*
        }
    };
}
#[allow(unused_imports)]
pub(crate) use suite;
