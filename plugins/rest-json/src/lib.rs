//! rest-json: daifa's reference supplier adapter — a configurable
//! JSON-over-HTTP supplier. Endpoint paths, the auth header, key names and
//! status words all come from config (see `manifest.toml`), so one build
//! serves every supplier whose API has this general shape.

mod wire;

use std::collections::BTreeMap;

use daifa_plugin_sdk::config::Json;
use daifa_plugin_sdk::mapping::KeyMap;
use daifa_plugin_sdk::prelude::*;
use serde_json::Value;

use wire::{EventsPage, StatusWords, SubmitAnswer};

struct RestJson;

config_schema! {
    /// Every config key rest-json reads; `manifest.toml` declares the same
    /// (a unit test checks it).
    struct Config {
        base_url: String { required, description = "Supplier API base URL" },
        api_token: Option<String> { secret },
        auth_header: String { default = "authorization" },
        auth_scheme: String { default = "Bearer" },
        submit_path: String { default = "/orders" },
        updates_path: String { default = "/shipments" },
        cancel_path: String { default = "/orders/{supplier_ref}/cancel" },
        stock_path: String { default = "/stock" },
        page_size: u32 { default = "100" },
        field_map: Json<BTreeMap<String, String>> { default = "{}" },
        status_map: Json<BTreeMap<String, String>> { default = "{}" },
        callback_token: Option<String> { secret },
    }
}

/// Settings read from config once per call.
struct Settings {
    base: String,
    cfg: Config,
    keys: KeyMap,
    statuses: StatusWords,
}

impl Settings {
    fn load() -> Result<Settings, AdapterError> {
        let cfg = Config::load()?;
        let base = cfg.base_url.trim_end_matches('/').to_string();
        let keys = KeyMap::new(cfg.field_map.0.clone());
        let statuses = StatusWords::new(cfg.status_map.0.clone())?;
        Ok(Settings { base, cfg, keys, statuses })
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Adds the configured auth header, if a token is set.
    fn auth(&self, req: http::Request) -> http::Request {
        match &self.cfg.api_token {
            None => req,
            Some(token) => {
                let scheme = &self.cfg.auth_scheme;
                let value = if scheme.is_empty() { token.clone() } else { format!("{scheme} {token}") };
                req.header(&self.cfg.auth_header, &value)
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
        let req = http::Request::post(s.url(&s.cfg.submit_path))
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
        let req = http::Request::get(s.url(&s.cfg.updates_path))
            .query(&[("since", since), ("limit", s.cfg.page_size.to_string())]);
        let page: EventsPage = serde_json::from_value(s.send_json(req)?)?;
        page.into_batch(&s.statuses)
    }

    fn cancel_order(
        po_number: String,
        supplier_ref: Option<String>,
        reason: String,
    ) -> Result<CancelOutcome, AdapterError> {
        let s = Settings::load()?;
        let path = &s.cfg.cancel_path;
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
        let url = format!("{}?skus={}", s.url(&s.cfg.stock_path), skus.join(","));
        wire::stock_levels(s.send_json(http::Request::get(url))?)
    }

    fn handle_callback(req: CallbackRequest) -> Result<CallbackResult, AdapterError> {
        let s = Settings::load()?;
        if let Some(expected) = &s.cfg.callback_token
            && !webhook::secrets_match(req.header("x-callback-token").unwrap_or_default(), expected)
        {
            warn!("callback with a missing or wrong X-Callback-Token refused");
            return Ok(CallbackResult {
                updates: vec![],
                response_status: 401,
                response_headers: vec![],
                response_body: b"bad callback token".to_vec(),
            });
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

#[cfg(test)]
mod tests;
