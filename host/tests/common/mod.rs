//! Shared helpers for the integration tests: locate (building if needed) the
//! real plugin components, package them, start runtimes.
#![allow(dead_code)]

pub mod acme;
pub mod browser;
pub mod db;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, OnceLock};

use daifa_host::plugins::{Manifest, PluginConfig, PluginPackage, PluginRuntime, Registry, RuntimeConfig};

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The built component `name` (`rest_json`, `hostile`). Builds the plugins
/// workspace once if the artifact is missing (README's test command builds
/// them first, so this is only a convenience for bare `cargo test`).
pub fn component(name: &str) -> Vec<u8> {
    static BUILD: Mutex<()> = Mutex::new(());
    let path = repo_root().join(format!("plugins/target/wasm32-wasip2/release/{name}.wasm"));
    if !path.exists() {
        let _g = BUILD.lock().unwrap_or_else(|e| e.into_inner());
        if !path.exists() {
            let status = Command::new(env!("CARGO"))
                .args(["build", "--release", "--target", "wasm32-wasip2", "--manifest-path"])
                .arg(repo_root().join("plugins/Cargo.toml"))
                .status()
                .expect("run cargo to build the plugins");
            assert!(status.success(), "building the plugins failed (is the wasm32-wasip2 target installed?)");
        }
    }
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The manifest shipped next to a plugin's sources.
pub fn manifest(rel: &str) -> Manifest {
    let text = std::fs::read_to_string(repo_root().join(rel)).expect("read manifest");
    Manifest::from_toml(&text).expect("parse manifest")
}

pub fn hostile_package(version: &str) -> PluginPackage {
    let mut m = manifest("tests/fixtures/hostile/manifest.toml");
    m.version = version.parse().unwrap();
    PluginPackage::pack(m, component("hostile"))
}

pub fn hostile_named(name: &str, edit: impl FnOnce(&mut Manifest)) -> PluginPackage {
    let mut m = manifest("tests/fixtures/hostile/manifest.toml");
    m.name = name.to_string();
    edit(&mut m);
    PluginPackage::pack(m, component("hostile"))
}

pub fn rest_json_package() -> PluginPackage {
    PluginPackage::pack(manifest("plugins/rest-json/manifest.toml"), component("rest_json"))
}

pub fn config(pairs: &[(&str, &str)]) -> PluginConfig {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

/// One runtime per test binary: like production, one engine per process.
pub fn runtime() -> PluginRuntime {
    static RT: OnceLock<PluginRuntime> = OnceLock::new();
    RT.get_or_init(|| {
        PluginRuntime::new(RuntimeConfig {
            max_concurrent_calls: 32,
            egress_allow_ips: vec!["127.0.0.0/8".into()],
            ..RuntimeConfig::default()
        })
        .expect("start plugin runtime")
    })
    .clone()
}

/// What the kv store of `scope` (a plugin's name, or `name@hex(supplier)`)
/// holds under `key`, read from the registry's database at `root`.
pub async fn kv_value(root: &std::path::Path, scope: &str, key: &str) -> Option<Vec<u8>> {
    let db = daifa_host::plugins::kv::KvDb::open(&root.join("kv.sqlite")).await.expect("open kv.sqlite");
    db.scope(scope).get(key).await.expect("read kv")
}

pub async fn registry() -> Registry {
    Registry::open(runtime(), None).await.expect("open registry")
}

/// A 1 KB-ish purchase order like a real one.
pub fn order(po: &str, lines: usize) -> daifa_host::plugins::bindings::PurchaseOrder {
    use daifa_host::plugins::bindings::*;
    PurchaseOrder {
        po_number: po.to_string(),
        idempotency_key: format!("daifa:{po}:1"),
        erp_refs: vec![ErpRef { system: "kingdee".into(), bill_no: "XSDD000123".into(), bill_id: "100123".into() }],
        lines: (0..lines)
            .map(|i| OrderLine {
                line_id: format!("{po}-{i}"),
                our_sku: format!("MAT-{i:04}"),
                supplier_sku: format!("SUP-SKU-{i:04}"),
                quantity: 1 + i as u32,
                unit_cost: "12.50".into(),
            })
            .collect(),
        ship_to: Address {
            name: "张三".into(),
            phone: "13800138000".into(),
            province: "广东省".into(),
            city: "深圳市".into(),
            district: "南山区".into(),
            street: "科技园南区高新南七道 18 号 2 栋 1203 室".into(),
            postcode: "518057".into(),
            country: "CN".into(),
        },
        currency: "CNY".into(),
        requested_carrier: Some("SF".into()),
        requested_service: Some("standard".into()),
        remark: Some("请尽快发货，谢谢".into()),
    }
}

/// The outside adapter (`tests/fixtures/outside-adapter`, ACME's XML API),
/// packaged as its author would ship it.
pub fn acme_xml_package() -> PluginPackage {
    PluginPackage::pack(manifest("tests/fixtures/outside-adapter/manifest.toml"), component("acme_xml"))
}

pub fn edi_x12_package() -> PluginPackage {
    PluginPackage::pack(manifest("plugins/edi-x12/manifest.toml"), component("edi_x12"))
}

pub fn kingdee_supplier_package() -> PluginPackage {
    PluginPackage::pack(manifest("plugins/kingdee-supplier/manifest.toml"), component("kingdee_supplier"))
}

/// Sends only the head of a request that declares a body of `len` bytes,
/// and reads the answer (status, body). This is how a refusal by declared
/// length is tested without a race: a client that writes a large body to a
/// server which has already answered and closed can get a broken pipe
/// instead of the answer. Panics if no answer comes in 10 s — the server
/// is waiting for a body it should have refused by its length.
pub async fn answer_to_declared_length(
    base_url: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    len: usize,
) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = base_url.trim_start_matches("http://").trim_end_matches('/');
    let mut head = format!("{method} {path} HTTP/1.1\r\nhost: {addr}\r\ncontent-length: {len}\r\n");
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    let exchange = async {
        let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
        s.write_all(head.as_bytes()).await.expect("send the request head");
        let mut got = Vec::new();
        let mut buf = [0u8; 8192];
        loop {
            let n = s.read(&mut buf).await.unwrap_or(0);
            got.extend_from_slice(&buf[..n]);
            let text = String::from_utf8_lossy(&got).to_string();
            if let Some((head, body)) = text.split_once("\r\n\r\n") {
                let want = head
                    .lines()
                    .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().to_string()))
                    .and_then(|v| v.parse::<usize>().ok());
                if n == 0 || want.is_some_and(|w| body.len() >= w) {
                    let status = head.split(' ').nth(1).and_then(|s| s.parse().ok()).expect("a status line");
                    return (status, body.to_string());
                }
            }
            assert!(n > 0, "the connection closed without an answer: {text:?}");
        }
    };
    tokio::time::timeout(std::time::Duration::from_secs(10), exchange)
        .await
        .expect("no answer to a request whose declared length is over the limit")
}
