//! API tokens with roles over real HTTP, on both stores: each role may do
//! what it grants and is refused (403, named) the rest; a revoked or unknown
//! token is refused (401); every mutating call, refused ones included, is in
//! the audit log with who, what and how it ended; tokens are stored hashed.
//! And `daifa token create|list|revoke` on the store a host uses.

mod common;

use std::sync::Arc;

use common::db::{Db, suite};
use common::*;
use daifa_host::api;
use serde_json::{Value, json};

const CONFIG_TOKEN: &str = "access-test-config-token-0123";

async fn serve(db: &Db) -> String {
    let registry = Arc::new(registry().await);
    let pkg = hostile_package("1.0.0");
    registry.install(&pkg, &config(&[])).await.unwrap();
    registry.activate("hostile", &pkg.manifest.version).await.unwrap();
    let state = api::ApiState::new(registry, CONFIG_TOKEN).unwrap().with_store(db.store.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, api::router(state)).await });
    url
}

async fn call(url: &str, token: Option<&str>, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
    let c = reqwest::Client::new();
    let mut req = c.request(method.parse().unwrap(), format!("{url}/api/v1{path}"));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

async fn roles_tokens_and_audit(db: Db) {
    let url = serve(&db).await;
    let mut tokens = std::collections::HashMap::new();
    for role in ["viewer", "operator", "plugin-deployer", "admin"] {
        let (s, v) = call(&url, Some(CONFIG_TOKEN), "POST", "/tokens", Some(json!({"name": role, "role": role}))).await;
        assert_eq!(s, 201, "{v}");
        assert!(v["token"].as_str().unwrap().starts_with("daifa_"), "{v}");
        tokens.insert(role, v["token"].as_str().unwrap().to_string());
    }
    let (s, v) = call(&url, Some(CONFIG_TOKEN), "POST", "/tokens", Some(json!({"name": "x", "role": "root"}))).await;
    assert_eq!(s, 400, "{v}");
    assert!(v["error"].as_str().unwrap().contains("unknown role `root`"), "{v}");

    // (role, method, path, expected status)
    let matrix = [
        ("viewer", "GET", "/plugins", 200),
        ("viewer", "GET", "/purchase-orders?limit=1", 200),
        ("viewer", "POST", "/plugins/hostile/disable", 403),
        ("viewer", "GET", "/tokens", 403),
        ("operator", "POST", "/plugins/hostile/disable", 403),
        ("operator", "POST", "/dispatch/dead-letters/999/retry", 404),
        ("plugin-deployer", "POST", "/dispatch/dead-letters/999/retry", 403),
        ("plugin-deployer", "POST", "/plugins/hostile/disable", 200),
        ("admin", "GET", "/tokens", 200),
    ];
    for (role, method, path, want) in matrix {
        let (s, v) = call(&url, Some(&tokens[role]), method, path, None).await;
        assert_eq!(s, want, "{role} {method} {path}: {v}");
        if want == 403 {
            assert_eq!(v["kind"], "forbidden", "{v}");
            assert!(v["error"].as_str().unwrap().contains(&format!("role {role} may not {method}")), "{v}");
        }
    }
    assert_eq!(call(&url, None, "GET", "/plugins", None).await.0, 401);
    assert_eq!(call(&url, Some("daifa_00000000_nope"), "GET", "/plugins", None).await.0, 401);
    let forged = format!("{}x", &tokens["admin"]);
    assert_eq!(call(&url, Some(&forged), "GET", "/plugins", None).await.0, 401);

    // Listed without secrets; stored as hashes only.
    let (_, list) = call(&url, Some(&tokens["admin"]), "GET", "/tokens", None).await;
    let listed = list["tokens"].as_array().unwrap();
    assert_eq!(listed.len(), 4);
    assert!(listed.iter().all(|t| t.get("token").is_none() && t.get("secret_sha256").is_none()), "{list}");
    for t in tokens.values() {
        assert!(!list.to_string().contains(t.rsplit('_').next().unwrap()), "a secret in the listing");
    }

    // Revoked: refused from then on.
    let viewer_id = tokens["viewer"].split('_').nth(1).unwrap().to_string();
    let (s, _) = call(&url, Some(&tokens["admin"]), "DELETE", &format!("/tokens/{viewer_id}"), None).await;
    assert_eq!(s, 200);
    assert_eq!(call(&url, Some(&tokens["viewer"]), "GET", "/plugins", None).await.0, 401);
    let (s, _) = call(&url, Some(&tokens["admin"]), "DELETE", &format!("/tokens/{viewer_id}"), None).await;
    assert_eq!(s, 404, "revoking twice");

    // Every mutating call, refused ones too, with who and how it ended.
    let (s, log) = call(&url, Some(&tokens["operator"]), "GET", "/audit?limit=100", None).await;
    assert_eq!(s, 200);
    let entries: Vec<(String, String, String, i64)> = log["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["actor"].as_str().unwrap().to_string(),
                e["method"].as_str().unwrap().to_string(),
                e["path"].as_str().unwrap().to_string(),
                e["status"].as_i64().unwrap(),
            )
        })
        .collect();
    let has = |actor: &str, method: &str, path: &str, status: i64| {
        entries.iter().any(|(a, m, p, s)| a.contains(actor) && m == method && p == path && *s == status)
    };
    assert!(has("config", "POST", "/api/v1/tokens", 201), "{entries:?}");
    assert!(has("(viewer)", "POST", "/api/v1/plugins/hostile/disable", 403), "{entries:?}");
    assert!(has("(plugin-deployer)", "POST", "/api/v1/plugins/hostile/disable", 200), "{entries:?}");
    assert!(has("(admin)", "DELETE", &format!("/api/v1/tokens/{viewer_id}"), 200), "{entries:?}");
    assert!(entries.iter().all(|(_, m, ..)| m != "GET"), "reads are not audited: {entries:?}");
    // What changed, where the call changed something; never a token's secret.
    let disabled = log["entries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["path"] == "/api/v1/plugins/hostile/disable" && e["status"] == 200)
        .unwrap();
    assert_eq!((&disabled["before"]["disabled"], &disabled["after"]["disabled"]), (&json!(false), &json!(true)));
    let revoked = log["entries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["path"] == format!("/api/v1/tokens/{viewer_id}") && e["status"] == 200)
        .unwrap();
    assert_eq!(revoked["after"], json!({ "id": viewer_id, "revoked": true }));
    assert!(!log.to_string().contains("daifa_"), "no token secret in the audit: {log}");
}

suite!(roles_tokens_and_audit);

/// The CLI creates, lists and revokes tokens in the store a host uses.
#[tokio::test]
async fn the_token_cli_works_on_the_hosts_store() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("daifa.db");
    let cfg = dir.path().join("daifa.toml");
    std::fs::write(
        &cfg,
        format!("data_dir = \"{}\"\n[store]\nurl = \"sqlite:{}\"\n", dir.path().display(), db.display()),
    )
    .unwrap();
    let daifa = |args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_daifa"))
            .arg("--config")
            .arg(&cfg)
            .args(["token"])
            .args(args)
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (ok, token, err) = daifa(&["create", "--name", "ci", "--role", "operator"]);
    assert!(ok, "{err}");
    let token = token.trim().to_string();
    assert!(token.starts_with("daifa_") && err.contains("shown once"), "{token} {err}");
    let (ok, _, err) = daifa(&["create", "--name", "x", "--role", "root"]);
    assert!(!ok && err.contains("unknown role `root`"), "{err}");
    let (ok, list, _) = daifa(&["list"]);
    assert!(ok && list.contains("\"name\": \"ci\"") && list.contains("\"role\": \"operator\""), "{list}");
    assert!(!list.contains(token.rsplit('_').next().unwrap()), "the secret is never listed");
    let id = token.split('_').nth(1).unwrap();
    let store = daifa_host::store::Store::open(&daifa_host::store::StoreConfig {
        url: format!("sqlite:{}", db.display()),
        ..Default::default()
    })
    .await
    .unwrap();
    assert!(store.check_token(&token, 0).await.unwrap().is_some());
    let (ok, out, err) = daifa(&["revoke", id]);
    assert!(ok && out.contains("revoked"), "{err}");
    assert!(store.check_token(&token, 0).await.unwrap().is_none(), "revoked");
    let (ok, _, err) = daifa(&["revoke", id]);
    assert!(!ok && err.contains("no live token"), "{err}");
}
