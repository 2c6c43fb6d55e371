//! Packages that must be refused, each with its own clear message — and the
//! active version keeps serving through every refusal.

mod common;

use common::*;
use daifa_host::plugins::{Manifest, PluginPackage, RegistryError};

fn manifest_for(name: &str) -> Manifest {
    let mut m = manifest("tests/fixtures/hostile/manifest.toml");
    m.name = name.to_string();
    m
}

/// A component exporting one instance under `export`, optionally importing
/// `import` — enough to exercise the world and version checks.
fn wat_component(export: &str, import: Option<&str>) -> Vec<u8> {
    let import = import.map(|i| format!(r#"(import "{i}" (instance (export "steal" (func))))"#)).unwrap_or_default();
    let text = format!(
        r#"(component
            {import}
            (core module $m (func (export "f")))
            (core instance $i (instantiate $m))
            (func $f (canon lift (core func $i "f")))
            (instance $api (export "hello" (func $f)))
            (export "{export}" (instance $api))
        )"#
    );
    wat::parse_str(text).expect("valid component text")
}

async fn refuse(pkg: PluginPackage) -> String {
    let reg = registry().await;
    // Install an active version first: a refusal must leave it serving.
    let good = hostile_named(&pkg.manifest.name, |m| m.version = "0.0.1".parse().unwrap());
    reg.install(&good, &config(&[])).await.unwrap();
    reg.activate(&good.manifest.name, &good.manifest.version).await.unwrap();

    let validate_err = reg.validate(&pkg, &config(&[])).await.expect_err("validate must refuse");
    let install_err = reg.install(&pkg, &config(&[])).await.expect_err("install must refuse");
    assert_eq!(validate_err.to_string(), install_err.to_string());
    assert!(matches!(install_err, RegistryError::Invalid(_)), "{install_err:?}");

    let active = reg.get(&pkg.manifest.name).expect("still active");
    assert_eq!(active.manifest.version.to_string(), "0.0.1");
    let receipt = active.submit_order(&order("STILL-OK", 1)).await.expect("active version keeps serving");
    assert_eq!(receipt.supplier_ref, "hostile:STILL-OK");
    let listed = reg.list();
    assert_eq!(listed[0].versions.len(), 1, "nothing of the refused package was installed");
    install_err.to_string()
}

/// A component of `n` core instances of a module with one memory and one
/// table: what a package that grabs the shared pool looks like.
fn greedy_component(n: usize) -> Vec<u8> {
    let instances: String = (0..n).map(|i| format!("(core instance $i{i} (instantiate $m))")).collect();
    wat::parse_str(format!(
        r#"(component
            (core module $m (memory 1) (table 1 funcref) (func (export "f")))
            {instances}
        )"#
    ))
    .expect("valid component text")
}

#[tokio::test]
async fn refuses_a_component_that_would_take_the_shared_instance_pool() {
    use daifa_host::plugins::runtime::{MAX_MEMORIES_PER_COMPONENT, MAX_TABLES_PER_COMPONENT};
    let n = MAX_MEMORIES_PER_COMPONENT as usize + 1;
    let msg = refuse(PluginPackage::pack(manifest_for("v-greedy"), greedy_component(n))).await;
    assert!(
        msg.contains("shared by every plugin")
            && msg.contains(&format!("{n} Wasm linear memories"))
            && msg.contains(&format!("maximum of {MAX_MEMORIES_PER_COMPONENT}")),
        "{msg}"
    );
    // Tables alone count too.
    let tables = MAX_TABLES_PER_COMPONENT as usize + 1;
    let text = format!(
        "(component (core module $m (table 1 funcref)) {})",
        "(core instance (instantiate $m)) ".repeat(tables)
    );
    let pkg = PluginPackage::pack(manifest_for("v-tables"), wat::parse_str(text).unwrap());
    let msg = refuse(pkg).await;
    assert!(msg.contains("shared by every plugin") && msg.contains(&format!("{tables} tables")), "{msg}");
}

/// The shipped plugins stay well inside the per-component ceilings.
#[tokio::test]
async fn bundled_plugins_fit_the_per_component_ceilings() {
    let reg = registry().await;
    reg.validate(&hostile_named("fits", |_| {}), &config(&[])).await.expect("the hostile fixture fits");
    let rest = config(&[("base_url", "http://127.0.0.1:1"), ("api_token", "k")]);
    reg.validate(&rest_json_package(), &rest).await.expect("rest-json fits");
}

#[tokio::test]
async fn refuses_a_core_module() {
    let msg = refuse(PluginPackage::pack(manifest_for("v-core"), wat::parse_str("(module)").unwrap())).await;
    assert!(msg.contains("not a WebAssembly component") && msg.contains("core WebAssembly module"), "{msg}");
}

#[tokio::test]
async fn refuses_bytes_that_are_not_wasm() {
    let msg = refuse(PluginPackage::pack(manifest_for("v-text"), b"#!/bin/sh\nrm -rf /\n".to_vec())).await;
    assert!(msg.contains("not WebAssembly at all"), "{msg}");
}

#[tokio::test]
async fn refuses_a_component_of_another_world() {
    let msg = refuse(PluginPackage::pack(manifest_for("v-world"), wat_component("acme:greeter/api@1.0.0", None))).await;
    assert!(
        msg.contains("does not implement daifa:supplier/adapter") && msg.contains("acme:greeter/api@1.0.0"),
        "{msg}"
    );
}

#[tokio::test]
async fn refuses_an_unsupported_api_version() {
    let mut m = manifest_for("v-api");
    m.api_version = "0.9.0".parse().unwrap();
    let msg = refuse(PluginPackage::pack(m, wat_component("daifa:supplier/adapter@0.9.0", None))).await;
    assert!(
        msg.contains("targets daifa:supplier@0.9.0") && msg.contains("supports daifa:supplier@0.1.x"),
        "names what the plugin wants and what the host supports: {msg}"
    );
}

#[tokio::test]
async fn refuses_an_import_the_host_does_not_provide() {
    let msg = refuse(PluginPackage::pack(
        manifest_for("v-import"),
        wat_component("daifa:supplier/adapter@0.1.0", Some("acme:evil/thing@1.0.0")),
    ))
    .await;
    assert!(msg.contains("imports `acme:evil/thing@1.0.0`") && msg.contains("does not provide"), "{msg}");

    // Inside our own namespace, but an interface that does not exist.
    let msg = refuse(PluginPackage::pack(
        manifest_for("v-import2"),
        wat_component("daifa:supplier/adapter@0.1.0", Some("daifa:supplier/filesystem@0.1.0")),
    ))
    .await;
    assert!(msg.contains("daifa:supplier/filesystem@0.1.0") && msg.contains("does not provide"), "{msg}");
}

#[tokio::test]
async fn refuses_a_sha256_mismatch() {
    let mut pkg = hostile_named("v-sha", |_| {});
    let good_sha = pkg.manifest.sha256.clone();
    pkg.manifest.sha256 = "0".repeat(64);
    let msg = refuse(pkg).await;
    assert!(msg.contains("sha256 mismatch") && msg.contains(&good_sha), "{msg}");
}

#[tokio::test]
async fn refuses_exports_of_the_wrong_shape() {
    // Right export name and version, but not the functions of the contract.
    let msg =
        refuse(PluginPackage::pack(manifest_for("v-shape"), wat_component("daifa:supplier/adapter@0.1.0", None))).await;
    assert!(msg.contains("does not match the supplier-adapter world"), "{msg}");
}

#[tokio::test]
async fn refuses_bad_manifests_and_config() {
    let msg = refuse(hostile_named("v-limits", |m| m.limits.memory_bytes = 1 << 40)).await;
    assert!(msg.contains("limits.memory_bytes"), "{msg}");

    let msg = refuse(hostile_named("v-apimismatch", |m| m.api_version = "0.1.7".parse().unwrap())).await;
    assert!(msg.contains("api_version 0.1.7") && msg.contains("daifa:supplier@0.1.0"), "{msg}");

    let reg = registry().await;
    let pkg = rest_json_package();
    let err = reg.install(&pkg, &config(&[])).await.unwrap_err().to_string();
    assert!(err.contains("required key `base_url` is missing"), "{err}");
    let err = reg
        .install(&pkg, &config(&[("base_url", "http://127.0.0.1:1"), ("colour", "red")]))
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("unknown key `colour`"), "{err}");
}

#[tokio::test]
async fn refuses_changed_code_under_an_installed_version() {
    let reg = registry().await;
    let pkg = hostile_named("v-same", |_| {});
    reg.install(&pkg, &config(&[])).await.unwrap();
    let mut other = PluginPackage::pack(pkg.manifest.clone(), rest_json_package().component.to_vec());
    other.manifest.name = "v-same".into();
    let err = reg.install(&other, &config(&[])).await.unwrap_err();
    assert!(matches!(err, RegistryError::Conflict(_)) && err.to_string().contains("new version"), "{err}");
}
