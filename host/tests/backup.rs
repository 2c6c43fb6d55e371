//! `daifa backup` on a SQLite store in use: the copy is complete, passes
//! SQLite's integrity check, opens as a store with the same orders; it
//! never overwrites; a PostgreSQL store is pointed at pg_dump.

use daifa_host::store::{Store, StoreConfig};

fn daifa(cfg: &std::path::Path, args: &[&str]) -> (bool, String) {
    let out =
        std::process::Command::new(env!("CARGO_BIN_EXE_daifa")).arg("--config").arg(cfg).args(args).output().unwrap();
    (out.status.success(), format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
}

#[tokio::test]
async fn a_live_sqlite_store_is_backed_up_whole() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("daifa.db");
    let cfg = dir.path().join("daifa.toml");
    std::fs::write(
        &cfg,
        format!("data_dir = \"{}\"\n[store]\nurl = \"sqlite:{}\"\n", dir.path().display(), db.display()),
    )
    .unwrap();
    let header = daifa_host::ingest::csv::COLUMNS.join(",");
    let mut csv = format!("{header}\n");
    for i in 0..300 {
        csv.push_str(&format!(
            "C{i},XS{i},TB{i},shop,赵六,13600136000,广东省,广州市,天河区,天河路 {i} 号,510000,CN,1,MAT00001,2,10.00,13,\n"
        ));
    }
    std::fs::write(dir.path().join("orders.csv"), csv).unwrap();
    let (ok, out) = daifa(&cfg, &["import", dir.path().join("orders.csv").to_str().unwrap()]);
    assert!(ok, "{out}");

    // The store stays open (as a running host holds it) during the backup.
    let live =
        Store::open(&StoreConfig { url: format!("sqlite:{}", db.display()), ..Default::default() }).await.unwrap();
    let copy = dir.path().join("backup.db");
    let (ok, out) = daifa(&cfg, &["backup", "--out", copy.to_str().unwrap()]);
    assert!(ok && out.contains("backed up"), "{out}");
    let (ok, out) = daifa(&cfg, &["backup", "--out", copy.to_str().unwrap()]);
    assert!(!ok && out.contains("never overwrites"), "{out}");

    let restored =
        Store::open(&StoreConfig { url: format!("sqlite:{}", copy.display()), ..Default::default() }).await.unwrap();
    assert_eq!(restored.count_by_state().await.unwrap(), live.count_by_state().await.unwrap());
    let total: i64 = restored.count_by_state().await.unwrap().values().sum();
    assert_eq!(total, 300);
    let pool = sqlx::sqlite::SqlitePool::connect(&format!("sqlite:{}", copy.display())).await.unwrap();
    let (check,): (String,) = sqlx::query_as("PRAGMA integrity_check").fetch_one(&pool).await.unwrap();
    assert_eq!(check, "ok");

    let pg = dir.path().join("pg.toml");
    std::fs::write(&pg, "[store]\nurl = \"postgres://postgres@127.0.0.1:5432/test\"\n").unwrap();
    let (ok, out) = daifa(&pg, &["backup", "--out", dir.path().join("x.db").to_str().unwrap()]);
    assert!(!ok && out.contains("pg_dump"), "{out}");
}
