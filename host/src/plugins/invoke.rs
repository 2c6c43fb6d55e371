//! One plugin operation run locally in the production sandbox, for plugin
//! authors (`daifa plugin invoke`): the package is validated and dry-run as
//! an install would, then the operation runs with the production limits,
//! and the answer comes back with a report of what the call used against
//! each limit. Nothing is stored: the registry lives in memory.
//!
//! Owns: the JSON shapes an author writes inputs in, the report.
//! Calls: the registry and the plugin (as the host does).

use std::time::Instant;

use serde::{Deserialize, Serialize};

use super::bindings::{Address, CallbackRequest, ErpRef, OrderLine, PurchaseOrder};
use super::{PluginConfig, PluginPackage, Registry, RegistryError};

/// A purchase order as JSON (the WIT record, snake_case keys).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PurchaseOrderJson {
    pub po_number: String,
    /// Defaults to `daifa:<po_number>:1`.
    #[serde(default)]
    pub idempotency_key: Option<String>,
    #[serde(default)]
    pub erp_refs: Vec<ErpRefJson>,
    pub lines: Vec<OrderLineJson>,
    pub ship_to: AddressJson,
    #[serde(default = "cny")]
    pub currency: String,
    #[serde(default)]
    pub requested_carrier: Option<String>,
    #[serde(default)]
    pub requested_service: Option<String>,
    #[serde(default)]
    pub remark: Option<String>,
}

fn cny() -> String {
    "CNY".into()
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ErpRefJson {
    pub system: String,
    pub bill_no: String,
    pub bill_id: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OrderLineJson {
    pub line_id: String,
    pub our_sku: String,
    pub supplier_sku: String,
    pub quantity: u32,
    /// A decimal in plain notation, e.g. "12.50".
    pub unit_cost: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AddressJson {
    pub name: String,
    pub phone: String,
    pub province: String,
    pub city: String,
    #[serde(default)]
    pub district: String,
    pub street: String,
    #[serde(default)]
    pub postcode: String,
    #[serde(default = "cn")]
    pub country: String,
}

fn cn() -> String {
    "CN".into()
}

impl PurchaseOrderJson {
    /// The WIT record; a unit cost that is not a plain decimal is refused.
    pub fn into_binding(self) -> Result<PurchaseOrder, String> {
        for l in &self.lines {
            let plain = l.unit_cost.strip_prefix('-').unwrap_or(&l.unit_cost);
            let plain = !plain.is_empty()
                && plain.chars().all(|c| c.is_ascii_digit() || c == '.')
                && plain.matches('.').count() <= 1;
            if !plain || l.unit_cost.parse::<rust_decimal::Decimal>().is_err() {
                return Err(format!("line {}: unit_cost `{}` is not a plain decimal", l.line_id, l.unit_cost));
            }
        }
        Ok(PurchaseOrder {
            idempotency_key: self.idempotency_key.unwrap_or_else(|| format!("daifa:{}:1", self.po_number)),
            po_number: self.po_number,
            erp_refs: self
                .erp_refs
                .into_iter()
                .map(|r| ErpRef { system: r.system, bill_no: r.bill_no, bill_id: r.bill_id })
                .collect(),
            lines: self
                .lines
                .into_iter()
                .map(|l| OrderLine {
                    line_id: l.line_id,
                    our_sku: l.our_sku,
                    supplier_sku: l.supplier_sku,
                    quantity: l.quantity,
                    unit_cost: l.unit_cost,
                })
                .collect(),
            ship_to: Address {
                name: self.ship_to.name,
                phone: self.ship_to.phone,
                province: self.ship_to.province,
                city: self.ship_to.city,
                district: self.ship_to.district,
                street: self.ship_to.street,
                postcode: self.ship_to.postcode,
                country: self.ship_to.country,
            },
            currency: self.currency,
            requested_carrier: self.requested_carrier,
            requested_service: self.requested_service,
            remark: self.remark,
        })
    }
}

/// The operation to run.
#[derive(Debug, Clone)]
pub enum Operation {
    Describe,
    SubmitOrder(Box<PurchaseOrder>),
    PollUpdates { cursor: Option<String> },
    CancelOrder { po_number: String, supplier_ref: Option<String>, reason: String },
    QueryStock(Vec<String>),
    HandleCallback(CallbackRequest),
}

/// What one invocation did, against each limit.
#[derive(Debug, Clone, Serialize)]
pub struct InvokeReport {
    pub plugin: String,
    pub operation: &'static str,
    /// The typed answer (`Debug` of the WIT value), or the error.
    pub ok: bool,
    pub answer: String,
    pub duration_ms: f64,
    pub timeout_ms: u64,
    pub peak_memory_bytes: u64,
    pub memory_limit_bytes: u64,
    pub fuel_consumed: u64,
    /// Limits hit, by kind.
    pub limits_hit: Vec<String>,
    pub output_limit_bytes: u64,
    pub http_requests_limit: u32,
    pub log_bytes_limit: u64,
}

/// Why nothing ran.
#[derive(Debug, thiserror::Error)]
pub enum InvokeError {
    #[error("{0}")]
    Refused(#[from] RegistryError),
    #[error("{0}")]
    Unavailable(#[from] super::CallError),
}

/// Installs `pkg` with `config` into `registry` (validation, compile, dry
/// run), runs `op` once, and reports.
pub async fn invoke(
    registry: &Registry,
    pkg: &PluginPackage,
    config: &PluginConfig,
    op: Operation,
) -> Result<InvokeReport, InvokeError> {
    registry.install(pkg, config).await?;
    registry.activate(&pkg.manifest.name, &pkg.manifest.version).await?;
    let plugin = registry.get(&pkg.manifest.name)?;
    let before = plugin.stats.snapshot();
    let started = Instant::now();
    let (operation, result): (&'static str, Result<String, String>) = match op {
        Operation::Describe => ("describe", fmt(plugin.describe().await)),
        Operation::SubmitOrder(po) => ("submit-order", fmt(plugin.submit_order(&po).await)),
        Operation::PollUpdates { cursor } => ("poll-updates", fmt(plugin.poll_updates(cursor.as_deref()).await)),
        Operation::CancelOrder { po_number, supplier_ref, reason } => {
            ("cancel-order", fmt(plugin.cancel_order(&po_number, supplier_ref.as_deref(), &reason).await))
        }
        Operation::QueryStock(skus) => ("query-stock", fmt(plugin.query_stock(&skus).await)),
        Operation::HandleCallback(req) => ("handle-callback", fmt(plugin.handle_callback(&req).await)),
    };
    let elapsed = started.elapsed();
    let after = plugin.stats.snapshot();
    let limits = &plugin.manifest.limits;
    let limits_hit = after
        .limits
        .iter()
        .filter_map(|(k, n)| {
            let was = before.limits.iter().find(|(b, _)| b == k).map_or(0, |(_, m)| *m);
            (*n > was).then(|| format!("{k:?}"))
        })
        .collect();
    let (ok, answer) = match result {
        Ok(a) => (true, a),
        Err(e) => (false, e),
    };
    Ok(InvokeReport {
        plugin: format!("{}@{}", pkg.manifest.name, pkg.manifest.version),
        operation,
        ok,
        answer,
        duration_ms: elapsed.as_secs_f64() * 1000.0,
        timeout_ms: limits.timeout().as_millis() as u64,
        peak_memory_bytes: after.peak_memory_bytes,
        memory_limit_bytes: limits.memory_bytes,
        fuel_consumed: after.fuel_consumed.saturating_sub(before.fuel_consumed),
        limits_hit,
        output_limit_bytes: limits.output_bytes,
        http_requests_limit: limits.http_requests_per_call,
        log_bytes_limit: limits.log_bytes_per_call,
    })
}

fn fmt<T: std::fmt::Debug>(r: Result<T, super::CallError>) -> Result<String, String> {
    r.map(|v| format!("{v:#?}")).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_purchase_order_in_json_becomes_the_wit_record() {
        let po: PurchaseOrderJson = serde_json::from_value(serde_json::json!({
            "po_number": "PO-1",
            "lines": [{ "line_id": "1", "our_sku": "M1", "supplier_sku": "S1", "quantity": 2, "unit_cost": "12.50" }],
            "ship_to": { "name": "张三", "phone": "138", "province": "广东省", "city": "深圳市", "street": "科技园" }
        }))
        .unwrap();
        let b = po.into_binding().unwrap();
        assert_eq!(
            (b.idempotency_key.as_str(), b.currency.as_str(), b.ship_to.country.as_str()),
            ("daifa:PO-1:1", "CNY", "CN")
        );
        let bad: PurchaseOrderJson = serde_json::from_value(serde_json::json!({
            "po_number": "PO-2",
            "lines": [{ "line_id": "1", "our_sku": "M1", "supplier_sku": "S1", "quantity": 2, "unit_cost": "1e3" }],
            "ship_to": { "name": "a", "phone": "b", "province": "c", "city": "d", "street": "e" }
        }))
        .unwrap();
        assert!(bad.into_binding().unwrap_err().contains("unit_cost `1e3`"));
        let typo = serde_json::from_value::<PurchaseOrderJson>(serde_json::json!({ "po_numbr": "x" }));
        assert!(typo.unwrap_err().to_string().contains("po_numbr"));
    }
}
