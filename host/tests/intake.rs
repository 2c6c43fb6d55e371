//! Orders from other sources: `POST /api/v1/orders` over real HTTP and CSV
//! import, into a real SQLite file. Bad input is stored in exception with a
//! reason naming the field, idempotent on (source, external id), fixable.

use std::sync::Arc;

use daifa_host::api;
use daifa_host::domain::OrderState;
use daifa_host::ingest::csv;
use daifa_host::plugins::{PluginRuntime, Registry, RuntimeConfig};
use daifa_host::store::{Store, StoreConfig};
use serde_json::{Value, json};

const TOKEN: &str = "intake-test-token-0123456789";

async fn serve(store: Store) -> String {
    let rt = PluginRuntime::new(RuntimeConfig {
        max_concurrent_calls: 2,
        egress_allow_ips: vec!["127.0.0.0/8".into()],
        ..Default::default()
    })
    .unwrap();
    let registry = Arc::new(Registry::open(rt, None).await.unwrap());
    let state = api::ApiState::new(registry, TOKEN).unwrap().with_store(store);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, api::router(state)).await });
    url
}

async fn sqlite(dir: &tempfile::TempDir) -> Store {
    let url = format!("sqlite:{}", dir.path().join("daifa.db").display());
    Store::open(&StoreConfig { url, ..Default::default() }).await.unwrap()
}

fn order(id: &str, qty: Value) -> Value {
    json!({
        "external_id": id, "platform_order_no": format!("JD{id}"), "customer": "shop-1",
        "ship_to": { "name": "王五", "phone": "13700137000", "province": "四川省", "city": "成都市",
                     "district": "武侯区", "street": "人民南路四段 1 号", "postcode": "610041" },
        "lines": [{ "line_id": "1", "sku": "MAT00001", "quantity": qty, "unit_price": "59.90", "tax_rate": 13 }],
    })
}

#[tokio::test]
async fn json_intake_is_idempotent_with_per_order_results() {
    let dir = tempfile::tempdir().unwrap();
    let store = sqlite(&dir).await;
    let url = serve(store.clone()).await;
    let http = reqwest::Client::new();
    let post = |body: Value| {
        let http = http.clone();
        let url = url.clone();
        async move {
            let r = http.post(format!("{url}/api/v1/orders")).bearer_auth(TOKEN).json(&body).send().await.unwrap();
            (r.status().as_u16(), r.json::<Value>().await.unwrap())
        }
    };
    let mut no_city = order("A4", json!(1));
    no_city["ship_to"]["city"] = json!("");
    let batch = json!({ "source": "shopify", "orders": [
        order("A1", json!(2)), order("A2", json!("3")), order("A3", json!(-1)), no_city,
        order("A5", json!("many")), { "lines": [] }, { "external_id": "A7", "colour": "red" },
    ]});
    let (status, v) = post(batch.clone()).await;
    assert_eq!(status, 200, "{v}");
    let results = v["results"].as_array().unwrap();
    let st: Vec<&str> = results.iter().map(|r| r["status"].as_str().unwrap()).collect();
    assert_eq!(st, vec!["received", "received", "exception", "exception", "exception", "invalid", "invalid"], "{v}");
    assert!(results[2]["reason"].as_str().unwrap().contains("quantity -1 is not positive"));
    assert!(results[3]["reason"].as_str().unwrap().contains("ship_to.city is missing"));
    assert!(results[4]["reason"].as_str().unwrap().contains("line 1 quantity: `many` is not a number"));
    assert!(results[5]["reason"].as_str().unwrap().contains("external_id is missing"));
    assert!(results[6]["reason"].as_str().unwrap().contains("colour"), "unknown fields are named: {v}");

    // The same batch again: nothing new.
    let (_, v2) = post(batch).await;
    assert_eq!(v2["outcome"]["unchanged"], 5, "{v2}");
    assert_eq!(store.list_orders(None, 100).await.unwrap().len(), 5);

    // Exceptions are visible, and fixable by an operator.
    let exc: Vec<Value> = http
        .get(format!("{url}/api/v1/orders?state=exception"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(exc.len(), 3);
    let id = results[3]["order_id"].as_i64().unwrap();
    let fixed: Value = http
        .put(format!("{url}/api/v1/orders/{id}"))
        .bearer_auth(TOKEN)
        .json(&order("A4", json!(1)))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(fixed["state"], "received", "{fixed}");
    let hist: Vec<(&str, &str)> = fixed["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| (h["to"].as_str().unwrap(), h["actor"].as_str().unwrap()))
        .collect();
    // The operator is the caller's token (here the one in the config).
    assert_eq!(hist, vec![("exception", "ingest:shopify"), ("received", "operator:config")]);

    // Illegal moves are refused with the reason.
    let r = http
        .post(format!("{url}/api/v1/orders/{id}/transition"))
        .bearer_auth(TOKEN)
        .json(&json!({ "to": "shipped", "reason": "?" }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 409);
    assert!(r.text().await.unwrap().contains("received → shipped is not a legal transition"));
    let r = http.get(format!("{url}/api/v1/orders/999999")).bearer_auth(TOKEN).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 404);
}

#[tokio::test]
async fn csv_import_keeps_every_row_visible() {
    let dir = tempfile::tempdir().unwrap();
    let store = sqlite(&dir).await;
    let header = csv::COLUMNS.join(",");
    let text = format!(
        "{header}\n\
         C1,XS1,TB1,shop,赵六,13600136000,广东省,广州市,天河区,天河路 1 号,510000,CN,1,MAT00001,2,10.00,13,\n\
         C1,XS1,TB1,shop,赵六,13600136000,广东省,广州市,天河区,天河路 1 号,510000,CN,2,MAT00002,1,5.50,13,\n\
         C2,XS2,TB2,shop,孙七,13500135000,广东省,深圳市,南山区,深南大道 9 号,518000,CN,1,MAT00003,1,8.00,13,\n\
         C3,XS3,TB3,shop,周八,13400134000,广东省,深圳市,南山区\n\
         ,XS4,TB4,shop,吴九,13300133000,广东省,深圳市,南山区,某路 1 号,518000,CN,1,MAT00001,1,1.00,13,\n\
         C5,XS5,TB5,shop,郑十,13200132000,广东省,深圳市,南山区,某路 2 号,518000,CN,1,NOPE,1,1.00,13,\n"
    );
    let known: daifa_host::ingest::KnownSkus =
        Arc::new(["MAT00001", "MAT00002", "MAT00003"].iter().map(|s| s.to_string()).collect());
    let r = csv::import(text.as_bytes(), "csv", &store, Some(&known)).await.unwrap();
    assert_eq!((r.rows, r.orders, r.rejected_rows), (6, 4, 1), "{r:?}");
    assert_eq!((r.outcome.received, r.outcome.exceptions), (2, 2), "{r:?}");
    let c1 = store.order_by_external("csv", "C1").await.unwrap().unwrap();
    assert_eq!(c1.content.lines.len(), 2);
    let c3 = store.order_by_external("csv", "C3").await.unwrap().unwrap();
    assert_eq!(c3.state, OrderState::Exception);
    assert!(c3.state_reason.contains("CSV line 5: 9 fields, expected 18"), "{}", c3.state_reason);
    let c5 = store.order_by_external("csv", "C5").await.unwrap().unwrap();
    assert!(c5.state_reason.contains("unknown SKU NOPE"), "{}", c5.state_reason);
    assert!(store.rejects(10).await.unwrap()[0].2.contains("line 6: external_id is empty"));

    let again = csv::import(text.as_bytes(), "csv", &store, Some(&known)).await.unwrap();
    assert_eq!(again.outcome.unchanged, 4, "re-importing the file changes nothing: {again:?}");

    let bad_header = csv::import("a,b\n1,2\n".as_bytes(), "csv", &store, None).await.unwrap_err();
    assert!(bad_header.to_string().contains("no `external_id` column"), "{bad_header}");
}
