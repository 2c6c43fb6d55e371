//! Kingdee's official Python SDK (`kingdee-cdp-webapi-sdk` from PyPI) logs in,
//! queries, saves, submits, audits and views against our simulator: the
//! simulator speaks the real wire protocol (signed headers included), not
//! just our own client's idea of it. The test creates its own venv.

use std::path::PathBuf;
use std::process::Command;

use daifa_host::sim::kingdee::{KingdeeSim, KingdeeSimConfig};

fn venv_python() -> PathBuf {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let venv = root.join("target/kingdee-sdk-venv");
    let python = venv.join("bin/python");
    if !python.exists() {
        let ok = Command::new("python3").arg("-m").arg("venv").arg(&venv).status().expect("python3 is needed");
        assert!(ok.success(), "creating the venv failed");
    }
    let installed =
        Command::new(&python).args(["-c", "import k3cloud_webapi_sdk"]).status().map(|s| s.success()).unwrap_or(false);
    if !installed {
        let ok = Command::new(&python)
            .args(["-m", "pip", "install", "--quiet", "kingdee-cdp-webapi-sdk==8.2.0"])
            .status()
            .expect("run pip");
        assert!(ok.success(), "pip install kingdee-cdp-webapi-sdk failed (PyPI must be reachable)");
    }
    python
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn official_python_sdk_drives_the_simulator() {
    let python = tokio::task::spawn_blocking(venv_python).await.unwrap();
    let sim = KingdeeSim::start(KingdeeSimConfig::default(), 0).await.unwrap();
    sim.generate(30);
    let c = sim.credentials();
    let c_acct = c.acct_id.clone();
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/kingdee/sdk_drive.py");
    let url = sim.server_url();
    let out = tokio::task::spawn_blocking(move || {
        Command::new(python)
            .arg(script)
            .args([&url, &c.acct_id, &c.user_name, &c.app_id, &c.app_secret])
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "the SDK script failed:\n{stderr}");
    let v: serde_json::Value =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)));
    println!("{v}");
    assert_eq!(v["login_result_type"], 1);
    let lines: usize = sim.with(|s| s.sale_orders.iter().map(|o| o.lines.len()).sum());
    assert_eq!(v["query_rows"], lines, "one row per order line");
    assert_eq!(v["first_row"][0], 100_001);
    assert_eq!(v["save_success"], true);
    assert!(v["number"].as_str().unwrap().starts_with("CGDD"));
    assert_eq!((v["submit_success"].clone(), v["audit_success"].clone()), (true.into(), true.into()));
    assert_eq!(v["viewed_status"], "C");
    assert_eq!(v["invalid_msg_code"], 11);
    assert_eq!(v["bad_query_msg_code"], 9);
    assert_eq!(v["data_centers"][0], c_acct.as_str());
    assert_eq!(v["bill_query"].as_array().map(Vec::len), Some(1), "the array filter applied: {}", v["bill_query"]);
    assert_eq!((v["batch_saved"].clone(), v["batch_error_index"].clone()), (1.into(), 1.into()));
    assert_eq!(v["draft_deleted"], true);
    assert_eq!(v["unaudit"], true);
    assert_eq!(v["approved_delete_code"], 11);
    assert_eq!(v["closed"], true);
    assert_eq!((v["push_first"].clone(), v["push_again_code"].clone()), (true.into(), 11.into()));
    assert_eq!(v["approved_save_code"], 11, "an approved sales order is locked");
    assert!(v["business_info_fields"].as_u64().unwrap() > 10);
    // PO-1 and PO-B1 exist; the bad batch member, the draft: not.
    assert_eq!(sim.with(|s| s.purchase_orders.len()), 2);
}
