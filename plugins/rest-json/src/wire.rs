//! The JSON shapes rest-json speaks (after key mapping) and their conversion
//! to and from the contract's types.

use std::collections::BTreeMap;

use daifa_plugin_sdk::prelude::*;
use serde::Deserialize;
use serde_json::{Value, json};

/// Our canonical order body; `field_map` renames its keys per supplier.
pub fn order_json(o: &PurchaseOrder) -> Value {
    json!({
        "external_id": o.po_number,
        "idempotency_key": o.idempotency_key,
        "currency": o.currency,
        "carrier": o.requested_carrier,
        "service": o.requested_service,
        "remark": o.remark,
        "erp_refs": o.erp_refs.iter().map(|r| json!({
            "system": r.system, "bill_no": r.bill_no, "bill_id": r.bill_id,
        })).collect::<Vec<_>>(),
        "items": o.lines.iter().map(|l| json!({
            "line_id": l.line_id,
            "sku": l.supplier_sku,
            "our_sku": l.our_sku,
            "qty": l.quantity,
            "unit_price": l.unit_cost,
        })).collect::<Vec<_>>(),
        "ship_to": {
            "name": o.ship_to.name,
            "phone": o.ship_to.phone,
            "province": o.ship_to.province,
            "city": o.ship_to.city,
            "district": o.ship_to.district,
            "address": o.ship_to.street,
            "postcode": o.ship_to.postcode,
            "country": o.ship_to.country,
        },
    })
}

/// Canonical status words, and the supplier's synonyms from `status_map`.
pub struct StatusWords(BTreeMap<String, String>);

const CANONICAL: [&str; 5] = ["accepted", "backordered", "rejected", "shipped", "cancelled"];

impl StatusWords {
    pub fn new(map: BTreeMap<String, String>) -> Result<StatusWords, AdapterError> {
        if let Some((k, v)) = map.iter().find(|(_, v)| !CANONICAL.contains(&v.as_str())) {
            return Err(AdapterError::misconfigured(format!(
                "status_map maps `{k}` to `{v}`; use one of {}",
                CANONICAL.join(", ")
            )));
        }
        Ok(StatusWords(map))
    }

    /// The canonical word for what the supplier said.
    pub fn canonical<'a>(&'a self, word: &'a str) -> &'a str {
        self.0.get(word).map(String::as_str).unwrap_or(word)
    }

    fn line_status(&self, item: &ItemStatus) -> Result<LineStatus, AdapterError> {
        Ok(match self.canonical(&item.status) {
            "accepted" | "shipped" => LineStatus::Accepted,
            "backordered" => LineStatus::Backordered(item.eta.clone()),
            "rejected" | "cancelled" => {
                LineStatus::Rejected(item.reason.clone().unwrap_or_else(|| "no reason given".into()))
            }
            other => {
                return Err(AdapterError::rejected(format!(
                    "supplier sent unknown line status `{other}` (map it with status_map)"
                )));
            }
        })
    }
}

#[derive(Deserialize)]
pub struct ItemStatus {
    pub line_id: String,
    pub status: String,
    #[serde(default)]
    pub reason: Option<String>,
    #[serde(default)]
    pub eta: Option<String>,
}

#[derive(Deserialize)]
pub struct SubmitAnswer {
    pub order_id: Value,
    #[serde(default)]
    pub items: Vec<ItemStatus>,
}

impl SubmitAnswer {
    pub fn into_receipt(self, order: &PurchaseOrder, words: &StatusWords) -> Result<SubmitReceipt, AdapterError> {
        let supplier_ref =
            scalar(&self.order_id).ok_or_else(|| AdapterError::rejected("supplier answer has no order_id"))?;
        if self.items.is_empty() {
            // Suppliers that do not answer per line accept the whole order.
            return Ok(SubmitReceipt::all_accepted(supplier_ref, order));
        }
        let lines = self
            .items
            .iter()
            .map(|i| Ok(LineResult { line_id: i.line_id.clone(), status: words.line_status(i)? }))
            .collect::<Result<Vec<_>, AdapterError>>()?;
        Ok(SubmitReceipt { supplier_ref, lines })
    }
}

#[derive(Deserialize)]
pub struct PackageJson {
    pub carrier: String,
    pub tracking_no: String,
    #[serde(default)]
    pub items: Vec<PackageItem>,
    #[serde(default)]
    pub shipped_at: Option<String>,
}

#[derive(Deserialize)]
pub struct PackageItem {
    pub line_id: String,
    pub qty: u32,
}

#[derive(Deserialize)]
pub struct Event {
    #[serde(default)]
    pub order_id: Option<Value>,
    pub external_id: String,
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub at: Option<String>,
    #[serde(default)]
    pub items: Vec<ItemStatus>,
    #[serde(default)]
    pub packages: Vec<PackageJson>,
    #[serde(default)]
    pub reason: Option<String>,
}

#[derive(Deserialize)]
pub struct EventsPage {
    pub events: Vec<Event>,
    #[serde(default)]
    pub next: Option<Value>,
}

impl EventsPage {
    pub fn into_batch(self, words: &StatusWords) -> Result<PollBatch, AdapterError> {
        let mut updates = Vec::with_capacity(self.events.len());
        for e in self.events {
            let kind = match words.canonical(&e.kind) {
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
                "line_status" | "accepted" | "backordered" | "rejected" => UpdateKind::Lines(
                    e.items
                        .iter()
                        .map(|i| Ok(LineResult { line_id: i.line_id.clone(), status: words.line_status(i)? }))
                        .collect::<Result<Vec<_>, AdapterError>>()?,
                ),
                other => {
                    warn!("skipping supplier event of unknown type `{other}` for {}", e.external_id);
                    continue;
                }
            };
            updates.push(StatusUpdate {
                po_number: e.external_id,
                supplier_ref: e.order_id.as_ref().and_then(scalar),
                at: e.at,
                kind,
            });
        }
        Ok(PollBatch { updates, next_cursor: self.next.as_ref().and_then(scalar) })
    }
}

pub fn cancel_outcome(answer: &Value, words: &StatusWords) -> Result<CancelOutcome, AdapterError> {
    let status = answer.get("status").and_then(Value::as_str).unwrap_or("requested");
    let reason = answer.get("reason").and_then(Value::as_str).unwrap_or("no reason given");
    Ok(match words.canonical(status) {
        "cancelled" => CancelOutcome::Cancelled,
        "refused" | "shipped" | "rejected" => CancelOutcome::Refused(reason.to_string()),
        _ => CancelOutcome::Requested,
    })
}

pub fn stock_levels(answer: Value) -> Result<Vec<StockLevel>, AdapterError> {
    #[derive(Deserialize)]
    struct Item {
        sku: String,
        available: u32,
        #[serde(default)]
        as_of: Option<String>,
    }
    #[derive(Deserialize)]
    struct Page {
        items: Vec<Item>,
    }
    let page: Page = serde_json::from_value(answer)?;
    Ok(page
        .items
        .into_iter()
        .map(|i| StockLevel { supplier_sku: i.sku, available: i.available, as_of: i.as_of })
        .collect())
}

/// Ids arrive as strings or numbers depending on the supplier.
fn scalar(v: &Value) -> Option<String> {
    match v {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}
