//! Routing through the admin API over real HTTP on 127.0.0.1 and the
//! `daifa route` CLI (the real binary) on the same SQLite file: catalog and
//! policy loads with errors that name the field, routing, explanations,
//! re-routing, circuits, supplier switches, what-if.

use std::process::Command;
use std::sync::Arc;

use daifa_host::api;
use daifa_host::plugins::{PluginRuntime, Registry, RuntimeConfig};
use daifa_host::router::{Router, RouterConfig};
use daifa_host::store::{Store, StoreConfig};
use serde_json::{Value, json};

const TOKEN: &str = "routing-test-token-0123456789";

const CATALOG: &str = r#"
[[supplier]]
id = "HZ"
name = "杭州仓"
plugin = "rest-json"
regions = ["浙江省", "江苏省"]
default_shipping = "4"

[[supplier]]
id = "GZ"
name = "广州仓"
plugin = "rest-json"
default_shipping = "9"
shipping = { "广东省" = "3" }

[[offer]]
supplier = "HZ"
sku = "MAT00001"
unit_cost = "20"
stock = 100

[[offer]]
supplier = "GZ"
sku = "MAT00001"
unit_cost = "18"
"#;

const POLICY_V1: &str = "version = 1\n[fallback]\nname = \"cheapest\"\n";

/// v2: Zhejiang orders ignore the operators' preference multipliers and ship
/// in one parcel.
const POLICY_V2: &str = r#"version = 2
[[rule_set]]
name = "east-china-local"
when = { province = ["浙江省"] }
weights = { preference = false, performance = "0.5" }
keep_together = "required"
max_splits = 0
filters = ["serves_region", "in_stock", "capacity", "healthy"]
split_penalty = "0"
[fallback]
name = "cheapest"
"#;

struct Host {
    url: String,
    http: reqwest::Client,
}

impl Host {
    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Body>) -> (u16, Value) {
        let mut req = self.http.request(method, format!("{}/api/v1{path}", self.url)).bearer_auth(TOKEN);
        req = match body {
            Some(Body::Json(v)) => req.json(&v),
            Some(Body::Text(t)) => req.header("content-type", "text/plain").body(t),
            None => req,
        };
        let r = req.send().await.unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }
}

enum Body {
    Json(Value),
    Text(String),
}

fn order(id: &str, province: &str, qty: u32) -> Value {
    json!({
        "external_id": id, "customer": "shop-1",
        "ship_to": { "name": "王五", "phone": "13700137000", "province": province, "city": "某市",
                     "district": "某区", "street": "某路 1 号", "postcode": "310000" },
        "lines": [{ "line_id": "1", "sku": "MAT00001", "quantity": qty, "unit_price": "59.90", "tax_rate": 13 }],
    })
}

#[tokio::test]
async fn routing_over_http_and_the_cli() {
    use reqwest::Method;
    let dir = tempfile::tempdir().unwrap();
    let db_url = format!("sqlite:{}", dir.path().join("daifa.db").display());
    let store = Store::open(&StoreConfig { url: db_url.clone(), ..Default::default() }).await.unwrap();
    let router =
        Arc::new(Router::new(store.clone(), RouterConfig::default(), daifa_host::util::now_ms()).await.unwrap());
    let rt = PluginRuntime::new(RuntimeConfig {
        max_concurrent_calls: 2,
        egress_allow_ips: vec!["127.0.0.0/8".into()],
        ..Default::default()
    })
    .unwrap();
    let registry = Arc::new(Registry::open(rt, None).await.unwrap());
    let state = api::ApiState::new(registry, TOKEN).unwrap().with_router(router);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, api::router(state)).await });
    let h = Host { url, http: reqwest::Client::new() };

    // Bad files are refused with the field named; nothing changes.
    let (st, body) = h
        .call(Method::PUT, "/catalog", Some(Body::Text(CATALOG.replace("unit_cost = \"18\"", "unit_cost = \"-1\""))))
        .await;
    assert_eq!(st, 422, "{body}");
    assert!(body["error"].as_str().unwrap().contains("offer[1] (GZ / MAT00001): unit_cost -1"), "{body}");
    let (st, body) = h
        .call(
            Method::PUT,
            "/routing/policy",
            Some(Body::Text("version = 1\n[fallback]\nname = \"x\"\nkeep_together = \"sometimes\"\n".into())),
        )
        .await;
    assert_eq!(st, 422);
    assert!(body["error"].as_str().unwrap().contains("sometimes"), "{body}");
    let (st, body) = h.call(Method::POST, "/routing/run", None).await;
    assert_eq!(st, 409, "routing without a policy is refused: {body}");
    assert_eq!(body["kind"], "no-policy");

    let (st, body) = h.call(Method::PUT, "/catalog", Some(Body::Text(CATALOG.into()))).await;
    assert_eq!((st, &body["suppliers"], &body["offers"]), (200, &json!(2), &json!(2)), "{body}");
    let (st, _) = h.call(Method::PUT, "/routing/policy", Some(Body::Text(POLICY_V1.into()))).await;
    assert_eq!(st, 200);

    let orders = json!({ "source": "shop", "orders": [order("1", "浙江省", 1), order("2", "广东省", 1), order("3", "浙江省", 500)] });
    let (st, body) = h.call(Method::POST, "/orders", Some(Body::Json(orders))).await;
    assert_eq!(st, 200, "{body}");
    let (st, body) = h.call(Method::POST, "/routing/run", None).await;
    assert_eq!(st, 200, "{body}");
    assert_eq!(body["routed"], 3, "{body}");

    // Zhejiang: HZ 20 + 4 = 24 beats GZ 18 + 9 = 27; Guangdong: only GZ ships there.
    let (_, o1) = h.call(Method::GET, "/orders/1/routing", None).await;
    assert_eq!(o1["state"], "routed");
    let d = &o1["decisions"][0];
    assert_eq!(d["decision"]["suppliers"], json!(["HZ"]), "{o1}");
    assert_eq!(d["decision"]["landed_cost"], "24");
    let gz = d["decision"]["candidates"].as_array().unwrap().iter().find(|c| c["supplier"] == "GZ").unwrap();
    assert_eq!(
        (gz["goods_cost"].as_str(), gz["shipping"].as_str(), gz["chosen"].as_bool()),
        (Some("18"), Some("9"), Some(false))
    );
    let (_, o2) = h.call(Method::GET, "/orders/2/routing", None).await;
    let hz = o2["decisions"][0]["decision"]["candidates"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["supplier"] == "HZ")
        .unwrap()
        .clone();
    assert_eq!(hz["excluded"]["reason"], "not_serving_region", "{o2}");
    // 500 units: HZ has 100 in stock, so GZ (stock unknown) takes it.
    let (_, o3) = h.call(Method::GET, "/orders/3/routing", None).await;
    assert_eq!(o3["decisions"][0]["decision"]["suppliers"], json!(["GZ"]));
    let (st, _) = h.call(Method::GET, "/orders/99/routing", None).await;
    assert_eq!(st, 404);

    // What-if. First an operator prefers GZ (0.8×), which the current policy honours.
    let (st, body) =
        h.call(Method::PATCH, "/catalog/suppliers/GZ", Some(Body::Json(json!({ "preference": "0.8" })))).await;
    assert_eq!(st, 200, "{body}");
    let (st, body) =
        h.call(Method::PATCH, "/catalog/suppliers/GZ", Some(Body::Json(json!({ "preference": "0" })))).await;
    assert_eq!(st, 422, "{body}");
    let (st, body) =
        h.call(Method::PATCH, "/catalog/suppliers/NOPE", Some(Body::Json(json!({ "paused": true })))).await;
    assert_eq!(st, 404, "{body}");
    let (st, w) = h.call(Method::POST, "/routing/what-if", Some(Body::Text(POLICY_V2.into()))).await;
    assert_eq!(st, 200, "{w}");
    assert_eq!(w["orders"], 3);
    // With GZ at 0.8× (27 × 0.8 = 21.6 < 24), v1 now sends order 1 to GZ; v2 ignores
    // the preference in Zhejiang, so order 1 moves back to HZ (24 < 27), 3 cheaper.
    // Order 3 (500 units) stays with GZ: HZ has only 100 in stock.
    assert_eq!((&w["current"]["policy_version"], &w["proposed"]["policy_version"]), (&json!(1), &json!(2)));
    assert_eq!(w["moved_count"], 1, "{w}");
    let moved = &w["moved"][0];
    assert!(moved["order"].as_str().unwrap().starts_with("1 "), "{w}");
    assert!(
        moved["current"].as_str().unwrap().contains("GZ") && moved["proposed"].as_str().unwrap().contains("HZ"),
        "{w}"
    );
    assert_eq!(w["cost_delta"], "-3", "{w}");
    assert_eq!(w["proposed"]["lines_by_supplier"], json!({ "GZ": 2, "HZ": 1 }), "{w}");

    // A supplier rejects order 2's line: no other supplier ships to Guangdong → held, with the reason.
    let (st, body) = h
        .call(Method::POST, "/orders/2/transition", Some(Body::Json(json!({ "to": "dispatched", "reason": "sent" }))))
        .await;
    assert_eq!(st, 200, "{body}");
    h.call(
        Method::POST,
        "/orders/2/transition",
        Some(Body::Json(json!({ "to": "rejected", "reason": "GZ: no stock" }))),
    )
    .await;
    let (st, body) = h
        .call(
            Method::POST,
            "/orders/2/reroute",
            Some(Body::Json(json!({ "supplier": "GZ", "reason": "rejected: no stock" }))),
        )
        .await;
    assert_eq!(st, 200, "{body}");
    assert_eq!(body["result"], "on_hold");
    assert!(body["reason"].as_str().unwrap().contains("no eligible supplier"), "{body}");

    // Circuit: HZ trips; order 1 (routed to HZ) moves to GZ.
    let (st, body) = h.call(Method::PUT, "/suppliers/HZ/circuit", Some(Body::Json(json!({ "open": true })))).await;
    assert_eq!((st, &body["orders_rerouted"]), (200, &json!(1)), "{body}");
    let (_, o1) = h.call(Method::GET, "/orders/1/routing", None).await;
    assert_eq!(o1["decisions"][1]["decision"]["suppliers"], json!(["GZ"]), "{o1}");
    let (_, perf) = h.call(Method::GET, "/suppliers/performance", None).await;
    let hz = perf["suppliers"].as_array().unwrap().iter().find(|s| s["supplier"] == "HZ").unwrap().clone();
    assert_eq!(hz["circuit_open"], true, "{perf}");
    let (st, body) = h
        .call(
            Method::POST,
            "/suppliers/events",
            Some(Body::Json(json!([{ "supplier": "GZ", "event": { "Dispatched": { "at": 1 } } }]))),
        )
        .await;
    assert_eq!((st, &body["recorded"]), (200, &json!(1)), "{body}");
    let (st, body) = h
        .call(
            Method::POST,
            "/suppliers/events",
            Some(Body::Json(json!([{ "supplier": "GZ", "event": { "Teleported": {} } }]))),
        )
        .await;
    assert_eq!(st, 422, "{body}");

    // The CLI reads the same store: `daifa route explain` by bill number.
    let cfg = dir.path().join("daifa.toml");
    std::fs::write(&cfg, format!("data_dir = \"{}\"\n[store]\nurl = \"{db_url}\"\n", dir.path().display())).unwrap();
    let bill = o1["bill_no"].as_str().unwrap().to_string();
    let out = Command::new(env!("CARGO_BIN_EXE_daifa"))
        .args(["--config"])
        .arg(&cfg)
        .args(["route", "explain", &bill])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(
        text.contains("attempt 1 (received)") && text.contains("attempt 2 (re-route 1: circuit open at HZ)"),
        "{text}"
    );
    assert!(text.contains("excluded: circuit open"), "{text}");
    // And a proposed policy file, compared.
    let proposed = dir.path().join("v2.toml");
    std::fs::write(&proposed, POLICY_V2).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_daifa"))
        .args(["--config"])
        .arg(&cfg)
        .args(["route", "what-if"])
        .arg(&proposed)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(text.contains("current policy v1 vs proposed v2") && text.contains("landed cost"), "{text}");
    // A policy file with a stale version is refused.
    let stale = dir.path().join("stale.toml");
    std::fs::write(&stale, POLICY_V1.replace("cheapest", "other")).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_daifa"))
        .args(["--config"])
        .arg(&cfg)
        .args(["route", "policy"])
        .arg(&stale)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("not newer than the loaded version 1"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
