//! One plugin operation run locally in the production sandbox, for plugin
//! authors (`daifa plugin invoke`): the package is validated and dry-run as
//! an install would, then the operation runs with the production limits,
//! and the answer comes back with a report of what the call used against
//! each limit. Nothing is stored: the registry lives in memory. The admin
//! API runs the same on an installed version of a running host
//! ([`invoke_installed`]). Both use a scratch binding (`LoadedPlugin::scratch`):
//! the config given, an empty kv, HTTP optionally recorded or replayed.
//!
//! Owns: the JSON shapes an author writes inputs in, the report.
//! Calls: the registry and the plugin (as the host does).

use std::time::Instant;

use serde::{Deserialize, Serialize};

use super::bindings::{Address, CallbackRequest, ErpRef, OrderLine, PurchaseOrder};
use super::tape::Tape;
use super::{LoadedPlugin, PluginConfig, PluginPackage, Registry, RegistryError};

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

impl Operation {
    /// The WIT name of the operation.
    pub fn name(&self) -> &'static str {
        match self {
            Operation::Describe => "describe",
            Operation::SubmitOrder(_) => "submit-order",
            Operation::PollUpdates { .. } => "poll-updates",
            Operation::CancelOrder { .. } => "cancel-order",
            Operation::QueryStock(_) => "query-stock",
            Operation::HandleCallback(_) => "handle-callback",
        }
    }

    /// Whether it changes something at the supplier (an order placed or
    /// cancelled), so a call against a live system needs a confirmation.
    pub fn has_side_effects(&self) -> bool {
        matches!(self, Operation::SubmitOrder(_) | Operation::CancelOrder { .. })
    }

    /// The operation named `op` with its input as JSON (the admin API's
    /// shape: see [`InvokeInput`]).
    pub fn from_json(op: &str, input: serde_json::Value) -> Result<Operation, String> {
        let input = if input.is_null() { serde_json::json!({}) } else { input };
        let parse = |e: serde_json::Error| format!("input of {op}: {e}");
        Ok(match op {
            "describe" => Operation::Describe,
            "submit-order" => {
                let po: PurchaseOrderJson = serde_json::from_value(input).map_err(parse)?;
                Operation::SubmitOrder(Box::new(po.into_binding()?))
            }
            "poll-updates" => {
                let i: PollInput = serde_json::from_value(input).map_err(parse)?;
                Operation::PollUpdates { cursor: i.cursor }
            }
            "cancel-order" => {
                let i: CancelInput = serde_json::from_value(input).map_err(parse)?;
                Operation::CancelOrder { po_number: i.po_number, supplier_ref: i.supplier_ref, reason: i.reason }
            }
            "query-stock" => {
                let i: StockInput = serde_json::from_value(input).map_err(parse)?;
                Operation::QueryStock(i.skus)
            }
            "handle-callback" => {
                let i: CallbackInput = serde_json::from_value(input).map_err(parse)?;
                Operation::HandleCallback(CallbackRequest {
                    method: i.method,
                    path: i.path,
                    query: i.query,
                    headers: i.headers.into_iter().map(|(k, v)| (k.to_ascii_lowercase(), v)).collect(),
                    body: i.body.into_bytes(),
                })
            }
            other => {
                return Err(format!(
                    "unknown operation `{other}`: describe, submit-order, poll-updates, cancel-order, query-stock or \
                     handle-callback"
                ));
            }
        })
    }
}

/// Inputs of the operations as JSON, for documentation and the admin API:
/// `submit-order` takes a [`PurchaseOrderJson`], `describe` nothing.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum InvokeInput {
    Poll(PollInput),
    Cancel(CancelInput),
    Stock(StockInput),
    Callback(CallbackInput),
}

/// `poll-updates`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PollInput {
    #[serde(default)]
    pub cursor: Option<String>,
}

/// `cancel-order`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CancelInput {
    pub po_number: String,
    #[serde(default)]
    pub supplier_ref: Option<String>,
    #[serde(default = "default_reason")]
    pub reason: String,
}

fn default_reason() -> String {
    "cancelled by the customer".into()
}

/// `query-stock`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StockInput {
    pub skus: Vec<String>,
}

/// `handle-callback`: the webhook as the supplier would send it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CallbackInput {
    #[serde(default = "post")]
    pub method: String,
    #[serde(default = "root")]
    pub path: String,
    #[serde(default)]
    pub query: String,
    #[serde(default)]
    pub headers: Vec<(String, String)>,
    /// The body as text.
    #[serde(default)]
    pub body: String,
}

fn post() -> String {
    "POST".into()
}

fn root() -> String {
    "/".into()
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
    /// The manifest's fuel budget (`None`: unmetered).
    pub fuel_limit: Option<u64>,
    /// Limits hit, by kind.
    pub limits_hit: Vec<String>,
    pub output_limit_bytes: u64,
    pub http_requests: u64,
    pub http_requests_limit: u32,
    pub http_bytes_sent: u64,
    pub http_bytes_received: u64,
    /// Per response.
    pub http_response_bytes_limit: u64,
    pub log_bytes_limit: u64,
    /// What to change when the call failed on a limit, the allowlist, a
    /// config key or a panic: the manifest key and its value, the
    /// allowlist, the panic's place.
    pub hints: Vec<String>,
    /// What the plugin logged during the call, and the call's error.
    pub logs: Vec<super::journal::JournalEntry>,
    /// `replay` only: requests the recording could not answer, and
    /// recorded exchanges no request used.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replay_misses: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replay_unused: Option<Vec<String>>,
    /// `record` only: the exchanges kept.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recorded: Option<usize>,
}

/// Why nothing ran.
#[derive(Debug, thiserror::Error)]
pub enum InvokeError {
    #[error(transparent)]
    Refused(#[from] RegistryError),
    #[error(transparent)]
    Unavailable(#[from] super::CallError),
    #[error(transparent)]
    Config(#[from] super::ValidationError),
}

/// Installs `pkg` with `config` into `registry` (validation, compile, dry
/// run), runs `op` once on a scratch binding, and reports.
pub async fn invoke(
    registry: &Registry,
    pkg: &PluginPackage,
    config: &PluginConfig,
    op: Operation,
    tape: Option<Tape>,
) -> Result<InvokeReport, InvokeError> {
    registry.install(pkg, config).await?;
    let plugin = registry.version(&pkg.manifest.name, &pkg.manifest.version)?;
    run(&plugin.scratch(config, tape)?, op).await
}

/// Runs `op` once on an installed version bound to `config` alone (a
/// scratch binding: no supplier connection's config, secrets or kv; its own
/// counters), and reports.
pub async fn invoke_installed(
    registry: &Registry,
    name: &str,
    version: &semver::Version,
    config: &PluginConfig,
    op: Operation,
    tape: Option<Tape>,
) -> Result<InvokeReport, InvokeError> {
    let plugin = registry.version(name, version)?;
    run(&plugin.scratch(config, tape)?, op).await
}

async fn run(plugin: &LoadedPlugin, op: Operation) -> Result<InvokeReport, InvokeError> {
    let started = Instant::now();
    let operation = op.name();
    let result: Result<String, String> = match op {
        Operation::Describe => fmt(plugin.describe().await),
        Operation::SubmitOrder(po) => fmt(plugin.submit_order(&po).await),
        Operation::PollUpdates { cursor } => fmt(plugin.poll_updates(cursor.as_deref()).await),
        Operation::CancelOrder { po_number, supplier_ref, reason } => {
            fmt(plugin.cancel_order(&po_number, supplier_ref.as_deref(), &reason).await)
        }
        Operation::QueryStock(skus) => fmt(plugin.query_stock(&skus).await),
        Operation::HandleCallback(req) => fmt(plugin.handle_callback(&req).await),
    };
    let elapsed = started.elapsed();
    let stats = plugin.stats.snapshot();
    let limits = &plugin.manifest.limits;
    let limits_hit = stats.limits.iter().map(|(k, _)| k.to_string()).collect();
    let (ok, answer) = match result {
        Ok(a) => (true, a),
        Err(e) => (false, e),
    };
    let hints = if ok { Vec::new() } else { hints(plugin, &stats, &answer, operation) };
    let tape = plugin.tape();
    let replay = tape.and_then(Tape::replay_report);
    Ok(InvokeReport {
        plugin: plugin.id(),
        operation,
        ok,
        answer,
        duration_ms: elapsed.as_secs_f64() * 1000.0,
        timeout_ms: limits.timeout().as_millis() as u64,
        peak_memory_bytes: stats.peak_memory_bytes,
        memory_limit_bytes: limits.memory_bytes,
        fuel_consumed: stats.fuel_consumed,
        fuel_limit: limits.fuel,
        limits_hit,
        hints,
        output_limit_bytes: limits.output_bytes,
        http_requests: stats.http_requests,
        http_requests_limit: limits.http_requests_per_call,
        http_bytes_sent: stats.http_bytes_sent,
        http_bytes_received: stats.http_bytes_received,
        http_response_bytes_limit: limits.http_response_bytes,
        log_bytes_limit: limits.log_bytes_per_call,
        logs: plugin.journal().lines(&plugin.manifest.name, 0, usize::MAX),
        replay_misses: replay.as_ref().map(|(m, _)| m.clone()),
        replay_unused: replay.map(|(_, u)| u),
        recorded: tape.and_then(Tape::recording).map(|r| r.exchanges.len()),
    })
}

/// The fix for a failed call, in the author's terms.
fn hints(plugin: &LoadedPlugin, stats: &super::stats::StatsSnapshot, answer: &str, operation: &str) -> Vec<String> {
    use super::LimitKind as K;
    let l = &plugin.manifest.limits;
    let mut out: Vec<String> = stats
        .limits
        .iter()
        .map(|(kind, _)| {
            let (key, value) = match kind {
                K::Memory => ("memory_bytes", l.memory_bytes.to_string()),
                K::Deadline => ("timeout_ms", l.timeout_ms.to_string()),
                K::Fuel => ("fuel", l.fuel.map_or("unset".into(), |f| f.to_string())),
                K::HttpRequests => ("http_requests_per_call", l.http_requests_per_call.to_string()),
                K::HttpResponseBytes => ("http_response_bytes", l.http_response_bytes.to_string()),
                K::LogBytes => ("log_bytes_per_call", l.log_bytes_per_call.to_string()),
                K::OutputBytes => ("output_bytes", l.output_bytes.to_string()),
                K::Stack => {
                    return "the wasm stack ran out (deep or endless recursion); the stack size is the host's, not a \
                            manifest key"
                        .to_string();
                }
            };
            format!(
                "{kind} limit: manifest.toml has [limits] {key} = {value}; raise it (up to the host's ceiling, \
                 docs/manifest.md) or make the call use less"
            )
        })
        .collect();
    if answer.contains("not on the plugin's allowlist") {
        out.push(format!(
            "the allowlist is [{}] (from [permissions] allowed_outbound_hosts = {:?} and the config): add the host \
             there",
            plugin.allowlist_shown(),
            plugin.manifest.permissions.allowed_outbound_hosts
        ));
    }
    if answer.contains("egress_allow_ips") {
        out.push("the address is private or loopback: pass --allow-ip CIDR (as [runtime] egress_allow_ips)".into());
    }
    if let Some(at) = answer.find("panicked at ") {
        // "panicked at src/lib.rs:12:5: message"
        let place = answer[at + "panicked at ".len()..].split_whitespace().next().unwrap_or_default();
        out.push(format!(
            "the plugin panicked in {operation} at {}: return an AdapterError instead",
            place.trim_end_matches(':')
        ));
    }
    out
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
