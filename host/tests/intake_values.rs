//! Values at the order intake, over real HTTP on 127.0.0.1, on SQLite and
//! PostgreSQL: quantities, prices and tax rates are bounded and never go
//! through a float; text neither store can keep makes that one order an
//! exception naming the field (REST, CSV and Kingdee alike); an operator's
//! PUT applies only valid data; and every refusal is `{"error", "kind"}`.

mod common;

use std::sync::Arc;

use common::db::{Db, suite};
use daifa_host::api;
use daifa_host::domain::{Actor, OrderId, OrderState, SalesOrder};
use daifa_host::erp::kingdee::{AuthMode, KingdeeClient, KingdeeConfig};
use daifa_host::ingest::csv;
use daifa_host::ingest::kingdee::{KingdeeIngestConfig, KingdeeIngester};
use daifa_host::sim::kingdee::{KingdeeSim, KingdeeSimConfig};
use daifa_host::store::Store;
use rust_decimal::Decimal;
use serde_json::{Value, json};

const TOKEN: &str = "intake-values-token-0123456789";

async fn serve(store: Option<Store>) -> String {
    let rt = daifa_host::plugins::PluginRuntime::new(daifa_host::plugins::RuntimeConfig {
        max_concurrent_calls: 2,
        egress_allow_ips: vec!["127.0.0.0/8".into()],
        ..Default::default()
    })
    .unwrap();
    let registry = Arc::new(daifa_host::plugins::Registry::open(rt, None).await.unwrap());
    let mut state = api::ApiState::new(registry, TOKEN).unwrap();
    if let Some(store) = store {
        state = state.with_store(store);
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, api::router(state)).await });
    url
}

fn line(id: &str, qty: Value) -> Value {
    json!({ "line_id": id, "sku": "MAT00001", "quantity": qty, "unit_price": "59.90", "tax_rate": 13 })
}

fn order(id: &str, lines: Vec<Value>) -> Value {
    json!({
        "external_id": id, "platform_order_no": format!("JD{id}"), "customer": "shop-1",
        "ship_to": { "name": "王五", "phone": "13700137000", "province": "四川省", "city": "成都市",
                     "district": "武侯区", "street": "人民南路四段 1 号", "postcode": "610041" },
        "lines": lines,
    })
}

/// Posts raw JSON text (so numbers reach the server exactly as written).
async fn post_raw(url: &str, body: String) -> (u16, Value) {
    let r = reqwest::Client::new()
        .post(format!("{url}/api/v1/orders"))
        .bearer_auth(TOKEN)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let text = r.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or_else(|e| panic!("{status}: not JSON ({e}): {text}")))
}

/// The JSON text of `v` with every string `"@<number>"` written as that bare
/// JSON number, digit for digit.
fn raw_numbers(v: Value) -> String {
    let text = v.to_string();
    let mut out = String::with_capacity(text.len());
    let mut rest = text.as_str();
    while let Some(at) = rest.find("\"@") {
        out.push_str(&rest[..at]);
        let tail = &rest[at + 2..];
        let end = tail.find('"').unwrap();
        out.push_str(&tail[..end]);
        rest = &tail[end + 1..];
    }
    out.push_str(rest);
    out
}

/// `(status, reason)` per external id.
fn by_id(v: &Value) -> std::collections::HashMap<String, (String, String)> {
    v["results"]
        .as_array()
        .unwrap_or_else(|| panic!("{v}"))
        .iter()
        .map(|r| {
            (
                r["external_id"].as_str().unwrap().to_string(),
                (r["status"].as_str().unwrap().to_string(), r["reason"].as_str().unwrap_or("").to_string()),
            )
        })
        .collect()
}

fn expect(results: &std::collections::HashMap<String, (String, String)>, id: &str, status: &str, reason: &str) {
    let (st, why) = results.get(id).unwrap_or_else(|| panic!("no result for {id}: {results:?}"));
    assert_eq!(st, status, "{id}: {why}");
    assert!(why.contains(reason), "{id}: reason `{why}` should contain `{reason}`");
}

async fn routed(store: &Store, id: i64) -> SalesOrder {
    store.transition(OrderId(id), OrderState::Routed, &Actor::Router, "to S1", 2).await.unwrap()
}

// ---------------------------------------------------------------------------
// 1. Bounds: quantity, unit price, tax rate, scale, whole units.

async fn out_of_bounds_values_become_exceptions_naming_the_field(db: Db) {
    let url = serve(Some(db.store.clone())).await;
    let with = |id: &str, field: &str, v: Value| {
        let mut l = line("3", json!(1));
        l[field] = v;
        order(id, vec![line("1", json!(1)), line("2", json!(2)), l])
    };
    let mut kg = line("3", json!("1.5"));
    kg["unit"] = json!("KG");
    let mut pcs = line("3", json!("1.5"));
    pcs["unit"] = json!("Pcs");
    let orders = vec![
        order("OK", vec![line("1", json!(1)), line("2", json!(1_000_000))]),
        order("KG", vec![line("1", json!(1)), kg]),
        with("Q64", "quantity", json!("@18446744073709551616")),
        with("Q32", "quantity", json!("@4294967296")),
        with("QTINY", "quantity", json!("@0.0000001")),
        with("QZERO", "quantity", json!("@0")),
        with("QHALF", "quantity", json!("@1.5")),
        order("QPCS", vec![line("1", json!(1)), pcs]),
        with("PNEG", "unit_price", json!(-1)),
        with("PBIG", "unit_price", json!("1000000000")),
        with("PSCALE", "unit_price", json!("0.1234567")),
        with("TNEG", "tax_rate", json!(-1)),
        with("TBIG", "tax_rate", json!(101)),
    ];
    let (status, v) = post_raw(&url, raw_numbers(json!({ "source": "shop", "orders": orders }))).await;
    assert_eq!(status, 200, "{v}");
    let r = by_id(&v);
    expect(&r, "OK", "received", "");
    expect(&r, "KG", "received", "");
    expect(&r, "Q64", "exception", "line 3 quantity 18446744073709551616 is above the maximum of 1000000");
    expect(&r, "Q32", "exception", "line 3 quantity 4294967296 is above the maximum of 1000000");
    expect(&r, "QTINY", "exception", "line 3 quantity 0.0000001 has more than 6 decimal places");
    expect(&r, "QZERO", "exception", "line 3 quantity 0 is not positive");
    expect(&r, "QHALF", "exception", "line 3 quantity 1.5 is not a whole number");
    expect(&r, "QPCS", "exception", "line 3 quantity 1.5 is not a whole number (unit `Pcs`");
    expect(&r, "PNEG", "exception", "line 3 unit_price -1 is negative");
    expect(&r, "PBIG", "exception", "line 3 unit_price 1000000000 is above the maximum of 100000000");
    expect(&r, "PSCALE", "exception", "line 3 unit_price 0.1234567 has more than 6 decimal places");
    expect(&r, "TNEG", "exception", "line 3 tax_rate -1 is negative");
    expect(&r, "TBIG", "exception", "line 3 tax_rate 101 is above the maximum of 100");
    let kg = db.store.order_by_external("shop", "KG").await.unwrap().unwrap();
    assert_eq!(kg.content.lines[1].unit, "KG");
    assert_eq!(kg.content.lines[1].quantity, Decimal::new(15, 1));
    // Visible in the listing, each with its reason.
    assert_eq!(db.store.list_orders(Some(OrderState::Exception), 100).await.unwrap().len(), 11);
}

/// An operator's PUT applies only data without problems: a routed order
/// given a negative quantity, no lines, a fraction of a unitless item or a
/// value out of bounds answers 422 naming the field and stays as it was.
async fn put_with_bad_values_is_refused_and_changes_nothing(db: Db) {
    let url = serve(Some(db.store.clone())).await;
    let (_, v) = post_raw(&url, json!([order("R1", vec![line("1", json!(2))])]).to_string()).await;
    let id = v["results"][0]["order_id"].as_i64().unwrap();
    let before = routed(&db.store, id).await;
    let http = reqwest::Client::new();
    let put = |body: Value| {
        let http = http.clone();
        let url = url.clone();
        async move {
            let r = http.put(format!("{url}/api/v1/orders/{id}")).bearer_auth(TOKEN).json(&body).send().await.unwrap();
            let status = r.status().as_u16();
            (status, r.json::<Value>().await.unwrap())
        }
    };
    for (body, reason) in [
        (order("R1", vec![line("1", json!(-5))]), "line 1 quantity -5 is not positive"),
        (order("R1", vec![]), "the order has no lines"),
        (order("R1", vec![line("1", json!("2.5"))]), "line 1 quantity 2.5 is not a whole number"),
        (order("R1", vec![line("1", json!(4294967296u64))]), "line 1 quantity 4294967296 is above the maximum"),
        (order("R1", vec![line("1", json!("1\u{0}"))]), "line 1 quantity"),
    ] {
        let (status, v) = put(body).await;
        assert_eq!(status, 422, "{v}");
        assert_eq!(v["kind"], "invalid", "{v}");
        assert!(v["error"].as_str().unwrap().contains(reason), "{v}");
        let now = db.store.order(OrderId(id)).await.unwrap();
        assert_eq!(now.state, OrderState::Routed, "a refused edit changes nothing");
        assert_eq!(now.content, before.content, "a refused edit changes nothing");
        assert_eq!(now.history.len(), before.history.len());
    }
    // Valid data is applied (a material change: routed again).
    let (status, v) = put(order("R1", vec![line("1", json!(3))])).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["state"], "received", "{v}");
}

// ---------------------------------------------------------------------------
// 2. Numbers exactly as written, never through f64.

async fn json_numbers_are_read_exactly(db: Db) {
    let url = serve(Some(db.store.clone())).await;
    // Raw JSON text: serde_json's `json!` would itself go through f64.
    let mk = |id: &str, field: &str, raw: &str| {
        let mut l = json!({ "line_id": "1", "sku": "MAT1", "quantity": 1, "unit_price": 2, "tax_rate": 13 });
        l[field] = json!(format!("@{raw}"));
        raw_numbers(order(id, vec![l]))
    };
    let body = format!(
        "[{}]",
        [
            mk("BIGPRICE", "unit_price", "12345678901234567.891"),
            mk("BIGQTY", "quantity", "9007199254740993"),
            mk("ALMOSTONE", "quantity", "1.0000000000000000001"),
            mk("TAXSCALE", "tax_rate", "13.00000000000000000001"),
            mk("EXACT", "unit_price", "1234567.654321"),
            mk("SCI", "quantity", "2e0"),
        ]
        .join(",")
    );
    let (status, v) = post_raw(&url, body).await;
    assert_eq!(status, 200, "{v}");
    let r = by_id(&v);
    expect(&r, "BIGPRICE", "exception", "line 1 unit_price 12345678901234567.891 is above the maximum");
    expect(&r, "BIGQTY", "exception", "line 1 quantity 9007199254740993 is above the maximum");
    expect(&r, "ALMOSTONE", "exception", "line 1 quantity 1.0000000000000000001 has more than 6 decimal places");
    expect(&r, "TAXSCALE", "exception", "line 1 tax_rate 13.00000000000000000001 has more than 6 decimal places");
    expect(&r, "EXACT", "received", "");
    expect(&r, "SCI", "received", "");
    let exact = db.store.order_by_external("api", "EXACT").await.unwrap().unwrap();
    assert_eq!(exact.content.lines[0].unit_price.to_string(), "1234567.654321");
    // A number too long for a decimal is not rounded into range.
    let (_, v) = post_raw(&url, format!("[{}]", mk("LONG", "quantity", "1.00000000000000000000000000000001"))).await;
    expect(&by_id(&v), "LONG", "exception", "line 1 quantity");
}

// ---------------------------------------------------------------------------
// 3. Text neither store can keep: one exception per order, the field named.

async fn control_characters_make_one_order_an_exception(db: Db) {
    let url = serve(Some(db.store.clone())).await;
    let mut street = order("NUL-STREET", vec![line("1", json!(1))]);
    street["ship_to"]["street"] = json!("人民南路\u{0}四段 1 号");
    let mut remark = order("NUL-REMARK", vec![line("1", json!(1))]);
    remark["remark"] = json!("fast\u{0}");
    let mut sku = order("BEL-SKU", vec![line("1", json!(1))]);
    sku["lines"][0]["sku"] = json!("MAT\u{7}1");
    let mut qty = order("NUL-QTY", vec![line("1", json!("1\u{0}"))]);
    qty["customer"] = json!("tab\tand\nnewline are fine");
    let bad_id = order("ID\u{0}", vec![line("1", json!(1))]);
    let batch = json!({ "source": "shop", "orders": [
        street, remark, sku, qty, bad_id, order("FINE", vec![line("1", json!(1))]),
    ]});
    let (status, v) = post_raw(&url, batch.to_string()).await;
    assert_eq!(status, 200, "one bad order never fails the batch: {v}");
    let r = by_id(&v);
    expect(&r, "NUL-STREET", "exception", "ship_to.street: control character U+0000");
    expect(&r, "NUL-REMARK", "exception", "remark: control character U+0000");
    expect(&r, "BEL-SKU", "exception", "line 1 sku: control character U+0007");
    expect(&r, "NUL-QTY", "exception", "line 1 quantity");
    expect(&r, "ID\u{0}", "invalid", "external_id: control character U+0000");
    expect(&r, "FINE", "received", "");
    let o = db.store.order_by_external("shop", "NUL-STREET").await.unwrap().unwrap();
    assert_eq!(o.content.ship_to.street, "人民南路\u{FFFD}四段 1 号", "kept, with the character marked");
    let o = db.store.order_by_external("shop", "NUL-QTY").await.unwrap().unwrap();
    assert_eq!(o.content.customer, "tab\tand\nnewline are fine");
    assert!(!o.state_reason.contains('\u{0}'), "{:?}", o.state_reason);
    // The same batch again changes nothing.
    let (_, v) = post_raw(&url, batch.to_string()).await;
    assert_eq!(v["outcome"]["unchanged"], 5, "{v}");
    // A batch-wide source no store can keep is refused as a whole, by name.
    let (status, v) = post_raw(&url, json!({ "source": "s\u{0}", "orders": [] }).to_string()).await;
    assert_eq!((status, v["kind"].as_str()), (422, Some("invalid")), "{v}");
    assert!(v["error"].as_str().unwrap().contains("source"), "{v}");
    // An operator's transition reason is text too.
    let id = db.store.order_by_external("shop", "FINE").await.unwrap().unwrap().id.unwrap().0;
    let r = reqwest::Client::new()
        .post(format!("{url}/api/v1/orders/{id}/transition"))
        .bearer_auth(TOKEN)
        .json(&json!({ "to": "on_hold", "reason": "wait\u{0}" }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 422);
    assert!(r.json::<Value>().await.unwrap()["error"].as_str().unwrap().contains("reason"));

    // CSV: the same rule.
    let header = csv::COLUMNS.join(",");
    let text = format!(
        "{header}\nC1,XS1,TB1,shop,赵六,13600136000,广东省,广州市,天河区,天河路\u{0}1 号,510000,CN,1,MAT00001,2,10.00,13,\n\
         ,XS2,TB2,shop\u{0},孙七\n"
    );
    let rep = csv::import(text.as_bytes(), "csv", &db.store, None).await.unwrap();
    assert_eq!((rep.outcome.exceptions, rep.rejected_rows), (1, 1), "{rep:?}");
    let c1 = db.store.order_by_external("csv", "C1").await.unwrap().unwrap();
    assert!(c1.state_reason.contains("ship_to.street: control character U+0000"), "{}", c1.state_reason);
}

/// Kingdee ingestion shares the rule: a NUL in one ERP order makes that
/// order an exception; the scan completes (no page retried forever).
async fn kingdee_text_with_nul_is_one_exception(db: Db) {
    let sim = KingdeeSim::start(KingdeeSimConfig::default(), 0).await.unwrap();
    let fids = sim.generate(20);
    sim.modify(fids[3], |o| o.note = "请\u{0}尽快".into());
    sim.modify(fids[5], |o| o.street = "天河路\u{0}1 号".into());
    let client = Arc::new(
        KingdeeClient::new(KingdeeConfig {
            server_url: sim.server_url(),
            credentials: sim.credentials(),
            auth: AuthMode::Signed,
            timeout_ms: 30_000,
        })
        .unwrap(),
    );
    let ing =
        KingdeeIngester::new(client, db.store.clone(), KingdeeIngestConfig { page_size: 7, ..Default::default() });
    let report = ing.scan().await.expect("a NUL in one order never stops a scan");
    assert_eq!(report.orders, 20, "{report:?}");
    let note = db.store.order_by_external("kingdee", &fids[3].to_string()).await.unwrap().unwrap();
    assert_eq!(note.state, OrderState::Exception);
    assert!(note.state_reason.contains("remark: control character U+0000"), "{}", note.state_reason);
    let street = db.store.order_by_external("kingdee", &fids[5].to_string()).await.unwrap().unwrap();
    assert!(street.state_reason.contains("ship_to.street: control character U+0000"), "{}", street.state_reason);
    // Scanning again is a no-op: the stored order is that revision.
    let again = ing.scan().await.unwrap();
    assert_eq!(again.outcome.updated + again.outcome.received + again.outcome.exceptions, 0, "{again:?}");
}

/// Found by an attacker's probe of `daifa serve`: an order sent already
/// cancelled, stamps of another kind (or none) replacing a stamped
/// revision, refusals reported as `received`, `1_0` read as 10, one line id
/// used twice, DEL and C1 controls, a cancellation slipped into a PUT.
async fn revisions_and_values_an_attacker_tried(db: Db) {
    let url = serve(Some(db.store.clone())).await;
    let stamped = |id: &str, modified: Option<&str>, qty: i64| {
        let mut o = order(id, vec![line("1", json!(qty))]);
        if let Some(m) = modified {
            o["modified"] = json!(m);
        }
        o
    };
    let mut gone = order("GONE", vec![line("1", json!(1))]);
    gone["cancelled"] = json!(true);
    let mut under = order("UNDER", vec![line("1", json!("1_0"))]);
    under["lines"][0]["unit_price"] = json!("1_000");
    let twice = order("TWICE", vec![line("1", json!(1)), line("1", json!(2))]);
    let mut del = order("DEL", vec![line("1", json!(1))]);
    del["lines"][0]["sku"] = json!("MAT\u{7f}01");
    let mut c1 = order("C1", vec![line("1", json!(1))]);
    c1["remark"] = json!("x\u{85}y");
    let batch = vec![stamped("S", Some("2024-05-01T10:00:00Z"), 1), gone, under, twice, del, c1];
    let (status, v) = post_raw(&url, json!({ "source": "shop", "orders": batch }).to_string()).await;
    assert_eq!(status, 200, "{v}");
    let r = by_id(&v);
    expect(&r, "S", "received", "");
    expect(&r, "GONE", "cancelled", "");
    expect(&r, "UNDER", "exception", "line 1 quantity: `1_0` is not a number");
    expect(&r, "TWICE", "exception", "line 1: the line id appears more than once");
    expect(&r, "DEL", "exception", "U+007F");
    expect(&r, "C1", "exception", "U+0085");

    // A stamp of another kind, none, or one that is no stamp at all never
    // replaces the stamped revision; each is said on the order's result.
    for (modified, status, reason) in [
        (Some("2024-04-01 10:00:00"), "refused", "cannot be ordered against the stored revision"),
        (None, "refused", "cannot be ordered against the stored revision"),
        (Some("garbage"), "invalid", "modified `garbage` is not a revision stamp"),
        (Some("2024-03-01T10:00:00Z"), "refused", "is older than the stored revision"),
    ] {
        let (_, v) =
            post_raw(&url, json!({ "source": "shop", "orders": [stamped("S", modified, 7)] }).to_string()).await;
        expect(&by_id(&v), "S", status, reason);
    }
    let s = db.store.order_by_external("shop", "S").await.unwrap().unwrap();
    assert_eq!(s.content.lines[0].quantity, Decimal::ONE, "the stamped revision stands");
    // The same id twice in one batch: refused on both results, by name.
    let (_, v) = post_raw(
        &url,
        json!({ "source": "shop", "orders": [stamped("D", None, 1), stamped("D", None, 2)] }).to_string(),
    )
    .await;
    for r in v["results"].as_array().unwrap() {
        assert_eq!(r["status"], "refused", "{v}");
        assert!(r["reason"].as_str().unwrap().contains("appears 2 times"), "{v}");
    }

    // A PUT cannot cancel: that is a transition with a reason.
    let id = s.id.unwrap().0;
    let mut put = stamped("S", None, 1);
    put["cancelled"] = json!(true);
    let resp = reqwest::Client::new()
        .put(format!("{url}/api/v1/orders/{id}"))
        .bearer_auth(TOKEN)
        .json(&put)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 422);
    let body: Value = resp.json().await.unwrap();
    assert!(body["error"].as_str().unwrap().contains("/transition"), "{body}");
    assert_eq!(db.store.order(OrderId(id)).await.unwrap().state, OrderState::Received);

    // A routed order whose unit changes goes back to routing, and its
    // history names the change and where it came from.
    let with_unit = |unit: &str| {
        let mut o = order("U", vec![line("1", json!(1))]);
        o["lines"][0]["unit"] = json!(unit);
        o
    };
    let (_, v) = post_raw(&url, json!({ "source": "shop", "orders": [with_unit("kg")] }).to_string()).await;
    let uid = v["results"][0]["order_id"].as_i64().unwrap();
    routed(&db.store, uid).await;
    post_raw(&url, json!({ "source": "shop", "orders": [with_unit("g")] }).to_string()).await;
    let u = db.store.order(OrderId(uid)).await.unwrap();
    let last = u.history.last().unwrap();
    assert_eq!(u.state, OrderState::Received);
    assert!(last.reason.contains("units changed") && last.reason.contains("(shop)"), "{}", last.reason);

    // A received order revised at the source keeps its state, and its
    // history says what changed.
    post_raw(&url, json!({ "source": "shop", "orders": [order("R2", vec![line("1", json!(1))])] }).to_string()).await;
    let (_, v) =
        post_raw(&url, json!({ "source": "shop", "orders": [order("R2", vec![line("1", json!(3))])] }).to_string())
            .await;
    expect(&by_id(&v), "R2", "received", "");
    let r2 = db.store.order_by_external("shop", "R2").await.unwrap().unwrap();
    assert_eq!(r2.history.len(), 2, "{:?}", r2.history);
    let last = r2.history.last().unwrap();
    assert!(
        last.reason.contains("revised at the source (shop)") && last.reason.contains("lines or quantities"),
        "{}",
        last.reason
    );
}

suite!(
    out_of_bounds_values_become_exceptions_naming_the_field,
    put_with_bad_values_is_refused_and_changes_nothing,
    json_numbers_are_read_exactly,
    control_characters_make_one_order_an_exception,
    kingdee_text_with_nul_is_one_exception,
    revisions_and_values_an_attacker_tried,
);

// ---------------------------------------------------------------------------
// 4. Every refusal is `{"error": "...", "kind": "..."}` with a fitting status.

async fn send(req: reqwest::RequestBuilder) -> (u16, Value) {
    let r = req.bearer_auth(TOKEN).send().await.unwrap();
    let status = r.status().as_u16();
    let ct = r.headers().get("content-type").map(|v| v.to_str().unwrap().to_string()).unwrap_or_default();
    let text = r.text().await.unwrap();
    assert!(ct.starts_with("application/json"), "{status} answered `{ct}`: {text}");
    let v: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{status}: {e}: {text}"));
    assert!(v["error"].is_string() && v["kind"].is_string(), "{status}: {v}");
    (status, v)
}

#[tokio::test]
async fn every_refusal_is_json_with_error_and_kind() {
    let db = common::db::sqlite().await;
    let url = serve(Some(db.store.clone())).await;
    let (_, v) = post_raw(&url, json!([order("E1", vec![line("1", json!(1))])]).to_string()).await;
    let id = v["results"][0]["order_id"].as_i64().unwrap();
    let http = reqwest::Client::new();
    let orders = format!("{url}/api/v1/orders");
    let json_body =
        |rb: reqwest::RequestBuilder, body: &str| rb.header("content-type", "application/json").body(body.to_string());
    let cases: Vec<(&str, reqwest::RequestBuilder, u16, &str)> = vec![
        ("malformed JSON", json_body(http.post(&orders), r#"{"orders": ["#), 400, "malformed-json"),
        ("not JSON at all", json_body(http.post(&orders), "hello"), 400, "malformed-json"),
        (
            "wrong content type",
            http.post(&orders).header("content-type", "text/plain").body("[]"),
            415,
            "unsupported-media-type",
        ),
        ("no content type", http.post(&orders).body("[]"), 415, "unsupported-media-type"),
        ("unknown batch field", json_body(http.post(&orders), r#"{"orders": [], "colour": 1}"#), 422, "invalid"),
        ("wrong batch shape", json_body(http.post(&orders), r#"{"orders": 5}"#), 422, "invalid"),
        (
            "PUT unknown field",
            json_body(http.put(format!("{orders}/{id}")), r#"{"external_id": "E1", "colour": 1}"#),
            422,
            "invalid",
        ),
        ("PUT malformed", json_body(http.put(format!("{orders}/{id}")), "{"), 400, "malformed-json"),
        ("PUT wrong type", json_body(http.put(format!("{orders}/{id}")), r#"{"lines": 5}"#), 422, "invalid"),
        ("bad path id", http.get(format!("{orders}/abc")), 400, "bad-request"),
        ("bad path id (PUT)", json_body(http.put(format!("{orders}/abc")), "{}"), 400, "bad-request"),
        ("id out of range", http.get(format!("{orders}/99999999999999999999")), 400, "bad-request"),
        (
            "bad path id (transition)",
            json_body(http.post(format!("{orders}/x/transition")), r#"{"to":"on_hold","reason":"r"}"#),
            400,
            "bad-request",
        ),
        (
            "transition unknown field",
            json_body(http.post(format!("{orders}/{id}/transition")), r#"{"to":"on_hold","why":"r"}"#),
            422,
            "invalid",
        ),
        ("bad query", http.get(format!("{orders}?limit=many")), 400, "bad-request"),
        ("unknown order", http.get(format!("{orders}/999999")), 404, "not-found"),
        ("method not allowed", http.delete(&orders), 405, "method-not-allowed"),
        ("unknown endpoint", http.get(format!("{url}/api/v1/nothing-here")), 404, "not-found"),
        ("routing: malformed JSON", json_body(http.post(format!("{orders}/{id}/reroute")), "{"), 400, "malformed-json"),
        ("routing: bad path id", json_body(http.post(format!("{orders}/abc/reroute")), "{}"), 400, "bad-request"),
        (
            "routing: stock body",
            json_body(http.post(format!("{url}/api/v1/catalog/stock")), "[{"),
            400,
            "malformed-json",
        ),
        (
            "plugins: malformed JSON",
            json_body(http.post(format!("{url}/api/v1/plugins/validate")), "{"),
            400,
            "malformed-json",
        ),
        (
            "plugins: wrong content type",
            http.post(format!("{url}/api/v1/plugins")).body("{}"),
            415,
            "unsupported-media-type",
        ),
    ];
    for (what, req, status, kind) in cases {
        let (got, v) = send(req).await;
        assert_eq!((got, v["kind"].as_str().unwrap()), (status, kind), "{what}: {v}");
    }
    // A body too large: refused by its declared length, before it is sent.
    let auth = format!("Bearer {TOKEN}");
    let headers = [("authorization", auth.as_str()), ("content-type", "application/json")];
    let (status, text) = common::answer_to_declared_length(&url, "POST", "/api/v1/orders", &headers, 17 << 20).await;
    let v: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{status}: {e}: {text}"));
    assert_eq!((status, v["kind"].as_str()), (413, Some("too-large")), "{v}");
    // The documented limit admits a full batch of 5,000 orders (here 6 MB,
    // three times axum's default limit).
    let big: Vec<Value> = (0..5_000)
        .map(|n| {
            let mut o = order(&format!("B{n}"), vec![line("1", json!(1))]);
            o["remark"] = json!("请在工作日送达，谢谢。".repeat(30));
            o
        })
        .collect();
    let body = Value::Array(big).to_string();
    assert!(body.len() > 6 << 20, "{}", body.len());
    let (status, v) = post_raw(&url, body).await;
    assert_eq!(status, 200, "{}", v["error"]);
    assert_eq!(v["outcome"]["received"], 5_000);
}
