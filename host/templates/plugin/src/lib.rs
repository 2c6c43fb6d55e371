//! {{name}}: a daifa supplier adapter.
//!
//! It speaks a small JSON API (the one `daifa sim supplier` serves), so it
//! works out of the box against the simulator; change the request and
//! answer shapes below to your supplier's API.
//!
//! - `POST {base_url}/orders` with an `Idempotency-Key` header → `{order_id, items: [{line_id, status}]}`
//! - `GET {base_url}/shipments?since=CURSOR&limit=N` → `{events: [...], next}`
//! - `GET {base_url}/stock?skus=A,B` → `{items: [{sku, available}]}`

use daifa_plugin_sdk::prelude::*;
use serde::Deserialize;
use serde_json::json;

struct Adapter;

fn base_url() -> Result<String, AdapterError> {
    Ok(config::require("base_url")?.trim_end_matches('/').to_string())
}

/// Sends `req` with the token (if one is configured) and maps error statuses.
fn send(req: http::Request) -> Result<http::Response, AdapterError> {
    let req = match config::get("api_token").filter(|t| !t.is_empty()) {
        Some(token) => req.bearer(&token),
        None => req,
    };
    req.header("accept", "application/json").send()?.error_for_status()
}

/// The order as the supplier wants it.
pub fn order_body(o: &PurchaseOrder) -> serde_json::Value {
    json!({
        "external_id": o.po_number,
        "currency": o.currency,
        "items": o.lines.iter().map(|l| json!({
            "line_id": l.line_id, "sku": l.supplier_sku, "qty": l.quantity, "unit_price": l.unit_cost,
        })).collect::<Vec<_>>(),
        "ship_to": {
            "name": o.ship_to.name, "phone": o.ship_to.phone, "province": o.ship_to.province,
            "city": o.ship_to.city, "district": o.ship_to.district, "address": o.ship_to.street,
            "postcode": o.ship_to.postcode, "country": o.ship_to.country,
        },
    })
}

#[derive(Deserialize)]
struct Created {
    order_id: serde_json::Value,
    #[serde(default)]
    items: Vec<Item>,
}

#[derive(Deserialize)]
struct Item {
    line_id: String,
    status: String,
    #[serde(default)]
    reason: Option<String>,
    #[serde(default)]
    eta: Option<String>,
}

fn line_status(i: &Item) -> LineStatus {
    match i.status.as_str() {
        "backordered" => LineStatus::Backordered(i.eta.clone()),
        "rejected" | "cancelled" => LineStatus::Rejected(i.reason.clone().unwrap_or_else(|| "no reason".into())),
        _ => LineStatus::Accepted,
    }
}

fn text(v: &serde_json::Value) -> Option<String> {
    match v {
        serde_json::Value::String(s) if !s.is_empty() => Some(s.clone()),
        serde_json::Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

#[derive(Deserialize)]
struct Page {
    events: Vec<Event>,
    #[serde(default)]
    next: Option<serde_json::Value>,
}

#[derive(Deserialize)]
struct Event {
    external_id: String,
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    order_id: Option<serde_json::Value>,
    #[serde(default)]
    at: Option<String>,
    #[serde(default)]
    items: Vec<Item>,
    #[serde(default)]
    packages: Vec<Package>,
    #[serde(default)]
    reason: Option<String>,
}

#[derive(Deserialize)]
struct Package {
    carrier: String,
    tracking_no: String,
    #[serde(default)]
    items: Vec<PackageItem>,
    #[serde(default)]
    shipped_at: Option<String>,
}

#[derive(Deserialize)]
struct PackageItem {
    line_id: String,
    qty: u32,
}

impl SupplierAdapter for Adapter {
    fn describe() -> AdapterInfo {
        adapter_info!(Capabilities::SUBMIT | Capabilities::POLL | Capabilities::STOCK)
    }

    fn submit_order(order: PurchaseOrder) -> Result<SubmitReceipt, AdapterError> {
        let req = http::Request::post(format!("{}/orders", base_url()?))
            .header("idempotency-key", &order.idempotency_key)
            .json(&order_body(&order))?;
        let created: Created = send(req)?.json()?;
        let supplier_ref = text(&created.order_id).ok_or_else(|| AdapterError::rejected("answer has no order_id"))?;
        info!("submitted {} as {supplier_ref}", order.po_number);
        if created.items.is_empty() {
            return Ok(SubmitReceipt::all_accepted(supplier_ref, &order));
        }
        let lines =
            created.items.iter().map(|i| LineResult { line_id: i.line_id.clone(), status: line_status(i) }).collect();
        Ok(SubmitReceipt { supplier_ref, lines })
    }

    fn poll_updates(cursor: Option<String>) -> Result<PollBatch, AdapterError> {
        let url = format!(
            "{}/shipments?since={}&limit={}",
            base_url()?,
            http::encode_component(&cursor.unwrap_or_default()),
            http::encode_component(&config::get_or("page_size", "100")),
        );
        let page: Page = send(http::Request::get(url))?.json()?;
        let mut updates = Vec::new();
        for e in page.events {
            let kind = match e.kind.as_str() {
                "shipped" => UpdateKind::Shipped(
                    e.packages
                        .into_iter()
                        .map(|p| Parcel {
                            carrier: p.carrier,
                            tracking_number: p.tracking_no,
                            lines: p
                                .items
                                .into_iter()
                                .map(|i| ParcelLine { line_id: i.line_id, quantity: i.qty })
                                .collect(),
                            shipped_at: p.shipped_at,
                        })
                        .collect(),
                ),
                "cancelled" => UpdateKind::Cancelled(e.reason),
                "line_status" => UpdateKind::Lines(
                    e.items.iter().map(|i| LineResult { line_id: i.line_id.clone(), status: line_status(i) }).collect(),
                ),
                other => {
                    warn!("skipping event of unknown type `{other}` for {}", e.external_id);
                    continue;
                }
            };
            updates.push(StatusUpdate {
                po_number: e.external_id,
                supplier_ref: e.order_id.as_ref().and_then(text),
                at: e.at,
                kind,
            });
        }
        Ok(PollBatch { updates, next_cursor: page.next.as_ref().and_then(text) })
    }

    fn query_stock(supplier_skus: Vec<String>) -> Result<Vec<StockLevel>, AdapterError> {
        #[derive(Deserialize)]
        struct Level {
            sku: String,
            available: u32,
        }
        #[derive(Deserialize)]
        struct Levels {
            items: Vec<Level>,
        }
        let skus: Vec<String> = supplier_skus.iter().map(|s| http::encode_component(s)).collect();
        let levels: Levels = send(http::Request::get(format!("{}/stock?skus={}", base_url()?, skus.join(","))))?.json()?;
        Ok(levels.items.into_iter().map(|l| StockLevel { supplier_sku: l.sku, available: l.available, as_of: None }).collect())
    }
}

export_adapter!(Adapter);

/// Native unit tests: `cargo test` (no --target). The SDK's mock host
/// answers config, kv, clock, log and HTTP.
#[cfg(test)]
mod tests {
    use super::*;
    use daifa_plugin_sdk::testing::{MockHost, Reply, assert_manifest_declares_keys};

    const MANIFEST: &str = include_str!("../manifest.toml");

    fn order() -> PurchaseOrder {
        PurchaseOrder {
            po_number: "PO-1".into(),
            idempotency_key: "daifa:PO-1:1".into(),
            erp_refs: vec![],
            lines: vec![OrderLine {
                line_id: "1".into(),
                our_sku: "M-1".into(),
                supplier_sku: "A-1".into(),
                quantity: 2,
                unit_cost: "12.50".into(),
            }],
            ship_to: Address {
                name: "张三".into(),
                phone: "13800000000".into(),
                province: "广东省".into(),
                city: "深圳市".into(),
                district: String::new(),
                street: "科技园一路 1 号".into(),
                postcode: String::new(),
                country: "CN".into(),
            },
            currency: "CNY".into(),
            requested_carrier: None,
            requested_service: None,
            remark: None,
        }
    }

    #[test]
    fn submit_sends_the_order_with_its_idempotency_key() {
        let host = MockHost::install();
        host.set_config("base_url", "https://api.supplier.example/v1").set_config("api_token", "t0k");
        host.apply_manifest_defaults(MANIFEST);
        host.expect(
            http::Method::Post,
            "https://api.supplier.example/v1/orders",
            Reply::json(201, &json!({ "order_id": 77, "items": [{ "line_id": "1", "status": "backordered", "eta": "2026-12-24" }] })),
        );
        let receipt = Adapter::submit_order(order()).expect("submitted");
        assert_eq!(receipt.supplier_ref, "77");
        assert!(matches!(&receipt.lines[0].status, LineStatus::Backordered(Some(eta)) if eta == "2026-12-24"));
        let sent = host.last_request();
        assert_eq!(sent.header("idempotency-key"), Some("daifa:PO-1:1"));
        assert_eq!(sent.header("authorization"), Some("Bearer t0k"));
        assert_eq!(sent.body_json()["items"][0]["sku"], "A-1");
        host.assert_http_done();
        // Every key the code read is declared in the manifest.
        assert_manifest_declares_keys(MANIFEST, &host.config_reads());
    }

    #[test]
    fn a_busy_supplier_is_retried_later() {
        let host = MockHost::install();
        host.set_config("base_url", "https://api.supplier.example/v1");
        host.expect(
            http::Method::Post,
            "https://api.supplier.example/v1/orders",
            Reply::status(503).header("retry-after", "30"),
        );
        match Adapter::submit_order(order()) {
            Err(AdapterError::Transient(hint)) => assert_eq!(hint.retry_after_ms, Some(30_000)),
            other => panic!("expected a transient error, got {other:?}"),
        }
    }
}
