//! The admin API over real HTTP: deploy, activate, roll back, disable, list,
//! with authentication and clear refusals.

mod common;

use std::sync::Arc;

use common::*;
use daifa_host::api::{self, client::AdminClient, client::ClientError};

async fn serve() -> (String, &'static str, Arc<daifa_host::plugins::Registry>) {
    let token = "test-admin-token-0123456789";
    let registry = Arc::new(registry().await);
    let state = api::ApiState::new(registry.clone(), token).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, api::router(state)).await });
    (url, token, registry)
}

#[tokio::test]
async fn deploy_lifecycle_through_the_api() {
    let (url, token, registry) = serve().await;
    let client = AdminClient::new(&url, token);

    let v1 = hostile_package("1.0.0");
    let report = client.validate(&v1, &config(&[])).await.unwrap();
    assert_eq!(report["api_version"], "0.1.0");
    assert!(registry.get("hostile").is_err(), "validate installs nothing");

    client.install(&v1, &config(&[("tag", "one")]), true).await.unwrap();
    let r = registry.get("hostile").unwrap().submit_order(&order("A1", 1)).await.unwrap();
    assert_eq!(r.supplier_ref, "one:A1");

    let v2 = hostile_package("2.0.0");
    client.install(&v2, &config(&[("tag", "two")]), false).await.unwrap();
    assert_eq!(
        registry.get("hostile").unwrap().manifest.version.to_string(),
        "1.0.0",
        "install alone does not activate"
    );
    client.activate("hostile", "2.0.0").await.unwrap();
    assert_eq!(registry.get("hostile").unwrap().submit_order(&order("A2", 1)).await.unwrap().supplier_ref, "two:A2");

    let back = client.rollback("hostile").await.unwrap();
    assert_eq!(back["active"], "1.0.0");

    let list = client.list().await.unwrap();
    let p = &list[0];
    assert_eq!(p["name"], "hostile");
    assert_eq!(p["active"], "1.0.0");
    assert_eq!(p["versions"].as_array().unwrap().len(), 2);
    assert!(p["versions"][0]["stats"]["calls"].as_u64().unwrap() >= 2);

    // The serving version cannot be removed; another can.
    match client.remove("hostile", "1.0.0").await {
        Err(ClientError::Refused { status: 409, message }) => assert!(message.contains("active"), "{message}"),
        other => panic!("expected 409, got {other:?}"),
    }
    assert_eq!(client.remove("hostile", "2.0.0").await.unwrap()["removed"], "2.0.0");
    assert_eq!(client.list().await.unwrap()[0]["versions"].as_array().unwrap().len(), 1);

    client.disable("hostile").await.unwrap();
    assert!(registry.get("hostile").is_err());
}

#[tokio::test]
async fn refusals_are_clear() {
    let (url, token, _registry) = serve().await;

    let anonymous = AdminClient::new(&url, "not-the-token-at-all");
    match anonymous.list().await {
        Err(ClientError::Refused { status: 401, message }) => assert!(message.contains("bearer token"), "{message}"),
        other => panic!("expected 401, got {other:?}"),
    }

    let client = AdminClient::new(&url, token);
    let mut bad = hostile_package("1.0.0");
    bad.manifest.sha256 = "1".repeat(64);
    match client.install(&bad, &config(&[]), true).await {
        Err(ClientError::Refused { status: 422, message }) => assert!(message.contains("sha256 mismatch"), "{message}"),
        other => panic!("expected 422, got {other:?}"),
    }
    match client.activate("nope", "1.0.0").await {
        Err(ClientError::Refused { status: 404, message }) => assert!(message.contains("`nope`"), "{message}"),
        other => panic!("expected 404, got {other:?}"),
    }
    match client.activate("nope", "one").await {
        Err(ClientError::Refused { status: 400, message }) => assert!(message.contains("version `one`"), "{message}"),
        other => panic!("expected 400, got {other:?}"),
    }
    client.install(&hostile_package("1.0.0"), &config(&[]), true).await.unwrap();
    match client.rollback("hostile").await {
        Err(ClientError::Refused { status: 409, message }) => {
            assert!(message.contains("no earlier version"), "{message}")
        }
        other => panic!("expected 409, got {other:?}"),
    }

    // Small documents have a small limit: 413 before the body is read.
    let auth = format!("Bearer {token}");
    for (method, path) in [("PUT", "/api/v1/suppliers/ACME/connection"), ("POST", "/api/v1/tokens")] {
        let headers = [("authorization", auth.as_str()), ("content-type", "application/json")];
        let (status, body) = common::answer_to_declared_length(&url, method, path, &headers, 100_000).await;
        assert_eq!(status, 413, "{method} {path} with 100 KB: {body}");
        assert!(body.contains("larger") && body.contains("too-large"), "{body}");
    }

    // A short token is refused at start.
    assert!(api::ApiState::new(Arc::new(registry().await), "short").is_err());
}

/// `GET /api/v1/openapi.json` (any token) is an OpenAPI 3.1 document that
/// lists exactly the routes the router serves: every `.route(...)` of the
/// admin API's modules, each method, is an operation in it, and nothing
/// else is. Each operation says what it does and how it is refused.
#[tokio::test]
async fn the_openapi_document_lists_every_route_the_router_serves() {
    let (url, token, _) = serve().await;
    let http = reqwest::Client::new();
    let anonymous = http.get(format!("{url}/api/v1/openapi.json")).send().await.unwrap();
    assert_eq!(anonymous.status(), 401);
    let doc: serde_json::Value =
        http.get(format!("{url}/api/v1/openapi.json")).bearer_auth(token).send().await.unwrap().json().await.unwrap();
    assert_eq!(doc["openapi"], "3.1.0");
    assert_eq!(doc["servers"][0]["url"], "/api/v1");
    assert_eq!(doc["components"]["securitySchemes"]["token"]["scheme"], "bearer");

    let mut documented = std::collections::BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            documented.insert((method.to_uppercase(), path.clone()));
            let what = op["summary"].as_str().or(op["description"].as_str()).unwrap_or("");
            assert!(!what.is_empty(), "{method} {path}: no summary");
            let responses = op["responses"].as_object().unwrap();
            assert!(responses.contains_key("401"), "{method} {path}: no 401");
            assert!(responses.keys().any(|k| k.starts_with('2')), "{method} {path}: no success answer");
        }
    }
    // The routes, read from the router's own source.
    let mut served = std::collections::BTreeSet::new();
    let route = ".route(\"";
    for module in ["orders", "plugins", "dispatch", "routing", "access"] {
        let src = std::fs::read_to_string(repo_root().join(format!("host/src/api/{module}.rs"))).unwrap();
        for line in src.lines().filter(|l| l.trim_start().starts_with(route)) {
            let path = line.split('"').nth(1).unwrap().to_string();
            if path.starts_with("/callbacks") {
                continue; // the suppliers' webhooks, not the admin API
            }
            for method in ["get", "post", "put", "delete", "patch"] {
                if line.contains(&format!("{method}(")) {
                    served.insert((method.to_uppercase(), path.clone()));
                }
            }
        }
    }
    assert!(served.len() > 40, "routes found in the source: {served:?}");
    let missing: Vec<_> = served.difference(&documented).collect();
    let extra: Vec<_> = documented.difference(&served).collect();
    assert!(missing.is_empty(), "served but not documented: {missing:?}");
    assert!(extra.is_empty(), "documented but not served: {extra:?}");
    // A typed body is described field by field.
    let conn = &doc["components"]["schemas"]["ConnectionBody"]["properties"];
    assert!(conn["plugin"].is_object() && conn["max_in_flight"].is_object(), "{conn}");
}

/// A plugin's log lines and failed calls reach `GET /plugins/{name}/logs`
/// and its version's `last_errors` (secrets redacted); `invoke` runs an
/// installed version on a scratch binding: the request's config only, a
/// side effect needs a recording or a confirmation, and nothing it does is
/// counted against the serving version.
#[tokio::test]
async fn logs_last_errors_and_invoke_on_a_running_host() {
    use reqwest::Method;
    use serde_json::json;
    let (url, token, registry) = serve().await;
    let client = AdminClient::new(&url, token);
    client.install(&hostile_package("1.0.0"), &config(&[("token", "sekrit-value-1")]), true).await.unwrap();
    let live = registry.bind("hostile", None, &config(&[("mode", "echo-secret")]), "S1").unwrap();
    let _ = live.submit_order(&order("L1", 1)).await;
    let bad = registry.bind("hostile", None, &config(&[("mode", "error")]), "S1").unwrap();
    assert!(bad.submit_order(&order("L2", 1)).await.is_err());

    let logs = client.logs("hostile", 0).await.unwrap();
    let text = logs.to_string();
    assert!(text.contains("call-error") && text.contains("supplier busy"), "{logs}");
    assert!(!text.contains("sekrit-value-1"), "a secret in the journal: {logs}");
    let next = logs["next"].as_u64().unwrap();
    assert_eq!(client.logs("hostile", next).await.unwrap()["lines"], json!([]), "after `next` there is nothing new");
    let list = client.list().await.unwrap();
    let errors = &list[0]["versions"][0]["last_errors"];
    assert!(errors.to_string().contains("supplier busy") && errors[0]["operation"] == "submit-order", "{list}");
    let calls_before = list[0]["versions"][0]["stats"]["calls"].as_u64().unwrap();

    // invoke: describe runs; a submit needs a confirmation.
    let path = "/plugins/hostile/versions/1.0.0/invoke";
    let r = client.call(Method::POST, &format!("{path}/describe"), Some(&json!({}))).await.unwrap();
    assert_eq!(r["ok"], true, "{r}");
    let po = json!({ "po_number": "PO-X", "lines": [{ "line_id": "1", "our_sku": "M", "supplier_sku": "S", "quantity": 1, "unit_cost": "2.5" }],
        "ship_to": { "name": "a", "phone": "b", "province": "c", "city": "d", "street": "e" } });
    match client.call(Method::POST, &format!("{path}/submit-order"), Some(&json!({ "input": po }))).await {
        Err(ClientError::Refused { status: 409, message }) => {
            assert!(message.contains("confirm_side_effects"), "{message}")
        }
        other => panic!("expected 409, got {other:?}"),
    }
    let body = json!({ "input": po, "config": { "mode": "ok", "tag": "scratch" }, "confirm_side_effects": true });
    let r = client.call(Method::POST, &format!("{path}/submit-order"), Some(&body)).await.unwrap();
    assert!(r["answer"].as_str().unwrap().contains("scratch:PO-X"), "the request's config, not the install's: {r}");
    match client.call(Method::POST, &format!("{path}/fly"), Some(&json!({}))).await {
        Err(ClientError::Refused { status: 422, message }) => {
            assert!(message.contains("unknown operation `fly`"), "{message}")
        }
        other => panic!("expected 422, got {other:?}"),
    }
    let list = client.list().await.unwrap();
    assert_eq!(
        list[0]["versions"][0]["stats"]["calls"].as_u64().unwrap(),
        calls_before,
        "scratch calls are not the version's"
    );
}
