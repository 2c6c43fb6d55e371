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

    // A short token is refused at start.
    assert!(api::ApiState::new(Arc::new(registry().await), "short").is_err());
}
