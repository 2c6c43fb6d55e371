//! rest-json: daifa's reference supplier adapter — a configurable
//! JSON-over-HTTP supplier. Endpoint paths, the auth header, key names and
//! status words all come from config (see `manifest.toml`), so one build
//! serves every supplier whose API has this general shape.

mod wire;

use daifa_plugin_sdk::mapping::KeyMap;
use daifa_plugin_sdk::prelude::*;
use serde_json::Value;

use wire::{EventsPage, StatusWords, SubmitAnswer};

struct RestJson;

/// Settings read from config once per call.
struct Settings {
    base: String,
    keys: KeyMap,
    statuses: StatusWords,
}

impl Settings {
    fn load() -> Result<Settings, AdapterError> {
        let base = config::require("base_url")?.trim_end_matches('/').to_string();
        let keys = KeyMap::new(config::json("field_map")?.unwrap_or_default());
        let statuses = StatusWords::new(config::json("status_map")?.unwrap_or_default())?;
        Ok(Settings { base, keys, statuses })
    }

    fn url(&self, path_key: &str, default: &str) -> String {
        format!("{}{}", self.base, config::get_or(path_key, default))
    }

    /// Adds the configured auth header, if a token is set.
    fn auth(&self, req: http::Request) -> http::Request {
        match config::get("api_token").filter(|t| !t.is_empty()) {
            None => req,
            Some(token) => {
                let header = config::get_or("auth_header", "authorization");
                let scheme = config::get_or("auth_scheme", "Bearer");
                let value = if scheme.is_empty() { token } else { format!("{scheme} {token}") };
                req.header(&header, &value)
            }
        }
    }

    fn send_json(&self, req: http::Request) -> Result<Value, AdapterError> {
        let resp = self.auth(req).header("accept", "application/json").send()?.error_for_status()?;
        if resp.body.is_empty() {
            return Ok(Value::Null);
        }
        Ok(self.keys.to_ours(resp.json()?))
    }
}

impl SupplierAdapter for RestJson {
    fn describe() -> AdapterInfo {
        adapter_info!(
            Capabilities::SUBMIT
                | Capabilities::POLL
                | Capabilities::CANCEL
                | Capabilities::STOCK
                | Capabilities::CALLBACK
        )
    }

    fn submit_order(order: PurchaseOrder) -> Result<SubmitReceipt, AdapterError> {
        let s = Settings::load()?;
        if order.lines.is_empty() {
            return Err(AdapterError::rejected(format!("purchase order {} has no lines", order.po_number)));
        }
        let body = s.keys.to_theirs(wire::order_json(&order));
        let req = http::Request::post(s.url("submit_path", "/orders"))
            .header("idempotency-key", &order.idempotency_key)
            .json(&body)?;
        let answer: SubmitAnswer = serde_json::from_value(s.send_json(req)?)?;
        let receipt = answer.into_receipt(&order, &s.statuses)?;
        debug!("submitted {} as {}", order.po_number, receipt.supplier_ref);
        Ok(receipt)
    }

    fn poll_updates(cursor: Option<String>) -> Result<PollBatch, AdapterError> {
        let s = Settings::load()?;
        let since = cursor.unwrap_or_default();
        let limit = config::get_or("page_size", "100");
        let url = format!(
            "{}?since={}&limit={}",
            s.url("updates_path", "/shipments"),
            http::encode_component(&since),
            http::encode_component(&limit)
        );
        let page: EventsPage = serde_json::from_value(s.send_json(http::Request::get(url))?)?;
        page.into_batch(&s.statuses)
    }

    fn cancel_order(
        po_number: String,
        supplier_ref: Option<String>,
        reason: String,
    ) -> Result<CancelOutcome, AdapterError> {
        let s = Settings::load()?;
        let path = config::get_or("cancel_path", "/orders/{supplier_ref}/cancel");
        if path.contains("{supplier_ref}") && supplier_ref.is_none() {
            return Err(AdapterError::rejected(format!("{po_number} has no supplier reference to cancel")));
        }
        let path = path
            .replace("{supplier_ref}", &http::encode_component(supplier_ref.as_deref().unwrap_or_default()))
            .replace("{po_number}", &http::encode_component(&po_number));
        let body = s.keys.to_theirs(serde_json::json!({ "external_id": po_number, "reason": reason }));
        let answer = s.send_json(http::Request::post(format!("{}{path}", s.base)).json(&body)?)?;
        wire::cancel_outcome(&answer, &s.statuses)
    }

    fn query_stock(supplier_skus: Vec<String>) -> Result<Vec<StockLevel>, AdapterError> {
        let s = Settings::load()?;
        let skus: Vec<String> = supplier_skus.iter().map(|k| http::encode_component(k)).collect();
        let url = format!("{}?skus={}", s.url("stock_path", "/stock"), skus.join(","));
        wire::stock_levels(s.send_json(http::Request::get(url))?)
    }

    fn handle_callback(req: CallbackRequest) -> Result<CallbackResult, AdapterError> {
        let s = Settings::load()?;
        if let Some(expected) = config::get("callback_token").filter(|t| !t.is_empty()) {
            let given = req.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case("x-callback-token")).map(|(_, v)| v);
            if given != Some(&expected) {
                warn!("callback with a missing or wrong X-Callback-Token refused");
                return Ok(CallbackResult {
                    updates: vec![],
                    response_status: 401,
                    response_headers: vec![],
                    response_body: b"bad callback token".to_vec(),
                });
            }
        }
        let body: Value = serde_json::from_slice(&req.body)?;
        // A webhook carries either one event or a page of them.
        let body = s.keys.to_ours(body);
        let page: EventsPage = if body.get("events").is_some() {
            serde_json::from_value(body)?
        } else {
            EventsPage { events: vec![serde_json::from_value(body)?], next: None }
        };
        let batch = page.into_batch(&s.statuses)?;
        Ok(CallbackResult {
            updates: batch.updates,
            response_status: 200,
            response_headers: vec![("content-type".into(), "application/json".into())],
            response_body: br#"{"ok":true}"#.to_vec(),
        })
    }
}

export_adapter!(RestJson);
