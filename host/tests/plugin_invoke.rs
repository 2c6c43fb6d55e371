//! `daifa plugin invoke` as a plugin author runs it: the real binary, a
//! package directory, a supplier simulator on 127.0.0.1. The answer is
//! printed with a report against each limit; a limit hit or an error exits
//! 1 and names what happened; a purchase order file with a typo is refused
//! naming the key; secrets can come from the environment.

mod common;

use std::path::Path;
use std::process::{Command, Output};

use common::*;
use daifa_host::sim::rest_supplier::{SupplierSim, SupplierSimConfig};
use serde_json::Value;

fn invoke(pkg: &Path, args: &[&str], env: &[(&str, &str)]) -> (Output, Value) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_daifa"));
    cmd.args(["plugin", "invoke"]).arg(pkg).args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("run daifa");
    let report = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    (out, report)
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_author_runs_each_operation_locally_with_the_production_limits() {
    let sim =
        SupplierSim::start(SupplierSimConfig { token: Some("tok-7".into()), ..Default::default() }, 0).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let pkg = dir.path().join("rest-json");
    rest_json_package().write_dir(&pkg).unwrap();
    let base = format!("base_url={}", sim.base_url());

    // describe: no network, the report against the manifest's limits.
    let (out, r) = invoke(&pkg, &["describe", "-c", &base], &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!((r["ok"].as_bool(), r["operation"].as_str()), (Some(true), Some("describe")));
    assert!(r["answer"].as_str().unwrap().contains("SUBMIT"), "{r}");
    assert!(r["peak_memory_bytes"].as_u64().unwrap() > 0 && r["memory_limit_bytes"].as_u64().unwrap() > 0, "{r}");

    // submit-order from a JSON file, the token from the environment, the
    // simulator allowed explicitly (loopback is refused by default).
    let po = dir.path().join("po.json");
    std::fs::write(
        &po,
        r#"{"po_number": "PO-INV-1",
            "lines": [{"line_id": "1", "our_sku": "MAT-1", "supplier_sku": "SKU-00001", "quantity": 2, "unit_cost": "12.50"}],
            "ship_to": {"name": "张三", "phone": "13800138000", "province": "广东省", "city": "深圳市", "street": "科技园 1 号"}}"#,
    )
    .unwrap();
    let po_arg = po.display().to_string();
    let args = ["submit-order", "--json", &po_arg, "-c", &base];
    let (out, r) = invoke(&pkg, &args, &[("DAIFA_PLUGIN_API_TOKEN", "tok-7")]);
    assert!(!out.status.success(), "loopback is refused without --allow-ip");
    assert!(r["answer"].as_str().unwrap().contains("egress_allow_ips"), "the refusal says how to allow it: {r}");
    let mut allowed = args.to_vec();
    allowed.extend(["--allow-ip", "127.0.0.1/32"]);
    let (out, r) = invoke(&pkg, &allowed, &[("DAIFA_PLUGIN_API_TOKEN", "tok-7")]);
    assert!(out.status.success(), "{}\n{r}", stderr(&out));
    assert!(r["answer"].as_str().unwrap().contains("supplier-ref"), "{r}");
    assert_eq!(sim.orders().iter().filter(|o| o.0 == "PO-INV-1").count(), 1, "the supplier has the order");

    // A wrong token: the supplier's answer, exit 1, and the secret not in the log.
    let (out, r) = invoke(
        &pkg,
        &["query-stock", "SKU-00001", "-c", &base, "-c", "api_token=not-tok-7", "--allow-ip", "127.0.0.1/32"],
        &[],
    );
    assert!(!out.status.success());
    assert!(r["answer"].as_str().unwrap().contains("401"), "{r}");
    assert!(!stderr(&out).contains("not-tok-7"), "a secret in the output: {}", stderr(&out));

    // A typo in the purchase order names the key.
    std::fs::write(&po, r#"{"po_numbr": "PO-INV-2"}"#).unwrap();
    let (out, _) = invoke(&pkg, &["submit-order", "--json", &po_arg, "-c", &base], &[]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("po_numbr"), "{}", stderr(&out));
}

#[tokio::test]
async fn a_limit_hit_is_reported_by_name_and_exits_1() {
    let dir = tempfile::tempdir().unwrap();
    let pkg = dir.path().join("h-spin");
    hostile_named("h-spin", |m| m.limits.timeout_ms = 300).write_dir(&pkg).unwrap();
    let po = dir.path().join("po.json");
    std::fs::write(
        &po,
        r#"{"po_number": "PO-1", "lines": [], "ship_to": {"name": "a", "phone": "b", "province": "c", "city": "d", "street": "e"}}"#,
    )
    .unwrap();
    let (out, r) = invoke(&pkg, &["submit-order", "--json", &po.display().to_string(), "-c", "mode=loop"], &[]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert_eq!(r["limits_hit"], serde_json::json!(["deadline"]), "{r}");
    assert!(r["answer"].as_str().unwrap().contains("deadline"), "{r}");
    assert_eq!(r["timeout_ms"], 300);
    assert!(r["hints"].to_string().contains("[limits] timeout_ms = 300"), "the hint names the manifest key: {r}");
}

fn po_file(dir: &Path) -> String {
    let po = dir.join("po.json");
    std::fs::write(
        &po,
        r#"{"po_number": "PO-9", "lines": [{"line_id": "1", "our_sku": "M", "supplier_sku": "SKU-00001", "quantity": 1, "unit_cost": "1"}],
            "ship_to": {"name": "a", "phone": "b", "province": "c", "city": "d", "street": "e"}}"#,
    )
    .unwrap();
    po.display().to_string()
}

/// The mistakes an author makes first each get a message naming the fix.
#[tokio::test]
async fn each_first_mistake_names_its_fix() {
    let dir = tempfile::tempdir().unwrap();
    let po = po_file(dir.path());

    // A config key the code reads but the manifest does not declare.
    let pkg = dir.path().join("h-undeclared");
    hostile_named("h-undeclared", |m| {
        m.config.remove("tag");
    })
    .write_dir(&pkg)
    .unwrap();
    let (out, r) = invoke(&pkg, &["submit-order", "--json", &po], &[]);
    assert_eq!(out.status.code(), Some(1), "{r}");
    let answer = r["answer"].as_str().unwrap();
    assert!(answer.contains("config key `tag`") && answer.contains("add a [config.tag] table"), "{r}");

    // A panic: where, and in which operation.
    let pkg = dir.path().join("h-panic");
    hostile_named("h-panic", |_| {}).write_dir(&pkg).unwrap();
    let (out, r) = invoke(&pkg, &["submit-order", "--json", &po, "-c", "mode=panic"], &[]);
    assert_eq!(out.status.code(), Some(1));
    let hints = r["hints"].to_string();
    assert!(hints.contains("panicked in submit-order at") && hints.contains("src/lib.rs:"), "{r}");

    // A memory limit: the manifest key and its value.
    let pkg = dir.path().join("h-mem");
    hostile_named("h-mem", |m| m.limits.memory_bytes = 4 << 20).write_dir(&pkg).unwrap();
    let (out, r) = invoke(&pkg, &["submit-order", "--json", &po, "-c", "mode=memory"], &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(r["hints"].to_string().contains("[limits] memory_bytes = 4194304"), "{r}");

    // A host not on the allowlist: the allowlist is shown.
    let pkg = dir.path().join("h-http");
    hostile_named("h-http", |_| {}).write_dir(&pkg).unwrap();
    let (out, r) = invoke(
        &pkg,
        &["submit-order", "--json", &po, "-c", "mode=http", "-c", "target=https://elsewhere.example/x"],
        &[],
    );
    assert_eq!(out.status.code(), Some(1), "{r}");
    assert!(r["hints"].to_string().contains("the allowlist is ["), "{r}");
}

/// `--record` keeps the call's HTTP (secrets out); `--replay` answers the
/// same call from it without the network; the report counts requests and
/// bytes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recorded_call_replays_offline() {
    let sim =
        SupplierSim::start(SupplierSimConfig { token: Some("tok-rec".into()), ..Default::default() }, 0).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let pkg = dir.path().join("rest-json");
    rest_json_package().write_dir(&pkg).unwrap();
    let po = po_file(dir.path());
    let tape = dir.path().join("submit.http.json");
    let tape_arg = tape.display().to_string();
    let base = format!("base_url={}", sim.base_url());
    let env = [("DAIFA_PLUGIN_API_TOKEN", "tok-rec")];
    let live = ["submit-order", "--json", &po, "-c", &base, "--allow-ip", "127.0.0.1/32"];
    let mut recorded = live.to_vec();
    recorded.extend(["--record", &tape_arg]);
    let (out, r) = invoke(&pkg, &recorded, &env);
    assert!(out.status.success(), "{}\n{r}", stderr(&out));
    assert_eq!((r["http_requests"].as_u64(), r["recorded"].as_u64()), (Some(1), Some(1)), "{r}");
    assert!(r["http_bytes_sent"].as_u64().unwrap() > 100 && r["http_bytes_received"].as_u64().unwrap() > 10, "{r}");
    let text = std::fs::read_to_string(&tape).unwrap();
    assert!(!text.contains("tok-rec"), "a secret in the recording: {text}");
    assert_eq!(sim.orders().len(), 1);

    let mut replayed = live.to_vec();
    replayed.extend(["--replay", &tape_arg]);
    let (out, again) = invoke(&pkg, &replayed, &env);
    assert!(out.status.success(), "{}\n{again}", stderr(&out));
    assert_eq!(again["answer"], r["answer"], "the replay answers as the supplier did");
    assert_eq!(sim.orders().len(), 1, "the replay never reached the supplier");
    assert_eq!(
        (again["replay_misses"].clone(), again["replay_unused"].clone()),
        (serde_json::json!([]), serde_json::json!([]))
    );

    // A request the recording does not hold is named.
    let (out, r) =
        invoke(&pkg, &["poll-updates", "-c", &base, "--allow-ip", "127.0.0.1/32", "--replay", &tape_arg], &env);
    assert!(!out.status.success());
    assert!(r["replay_misses"].to_string().contains("GET http://127.0.0.1"), "{r}");
}
