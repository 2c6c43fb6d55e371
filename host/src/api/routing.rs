//! Routing endpoints: an order's decisions with explanations, re-routing,
//! the routing policy, what-if, the supplier catalog (whole file, one
//! supplier's switches, stock), supplier performance, circuits and events.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::routing::{get, patch, post, put};
use axum::{Json, Router};
use rust_decimal::Decimal;
use serde::Deserialize;
use serde_json::{Value, json};

use super::openapi::ErrorBody;
use super::{ApiError, ApiJson, ApiPath, ApiQuery, ApiState, Change, MAX_BODY_BYTES};
use crate::domain::values::check_storable;
use crate::domain::{OrderId, OrderState, SupplierId, SupplierSku};
use crate::router::{Router as RoutingService, RouterError};
use crate::routing::performance::Event;
use crate::routing::{CatalogFile, Policy};
use crate::store::{Store, StoreError};
use crate::util::now_ms;

pub(super) fn routes() -> Router<ApiState> {
    Router::new()
        .route("/orders/{id}/routing", get(explain))
        .route("/orders/{id}/reroute", post(reroute))
        .route("/routing/policy", get(policy).put(put_policy))
        .route("/routing/policies", get(policies))
        .route("/routing/what-if", post(what_if))
        .route("/routing/run", post(run))
        .route("/catalog", put(put_catalog))
        .route("/catalog/suppliers", get(suppliers))
        .route("/catalog/suppliers/{id}", patch(patch_supplier))
        .route("/catalog/stock", post(stock))
        .route("/suppliers/performance", get(performance))
        .route("/suppliers/events", post(events))
        .route("/suppliers/{id}/circuit", put(circuit))
        .layer(super::body_limit(MAX_BODY_BYTES))
}

fn parts(s: &ApiState) -> Result<(&Store, &Arc<RoutingService>), ApiError> {
    match (&s.store, &s.router) {
        (Some(st), Some(r)) => Ok((st, r)),
        _ => Err(ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", "this host does not route orders")),
    }
}

fn invalid(m: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid", m)
}

fn store_error(e: StoreError) -> ApiError {
    match e {
        StoreError::NotFound(m) => ApiError::new(StatusCode::NOT_FOUND, "not-found", format!("{m} not found")),
        StoreError::Transition(t) => ApiError::new(StatusCode::CONFLICT, "illegal-transition", t.to_string()),
        StoreError::Conflict(m) => ApiError::new(StatusCode::CONFLICT, "conflict", m),
        other => ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "storage", other.to_string()),
    }
}

fn router_error(e: RouterError) -> ApiError {
    match e {
        RouterError::Store(e) => store_error(e),
        RouterError::NoPolicy => ApiError::new(StatusCode::CONFLICT, "no-policy", e.to_string()),
        RouterError::BadPolicy { .. } => ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "bad-policy", e.to_string()),
        RouterError::Refused(m) => ApiError::new(StatusCode::CONFLICT, "refused", m),
    }
}

fn text(body: &Bytes, what: &str) -> Result<String, ApiError> {
    String::from_utf8(body.to_vec()).map_err(|_| invalid(format!("{what}: body is not UTF-8")))
}

fn is_json(h: &HeaderMap) -> bool {
    h.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).is_some_and(|v| v.starts_with("application/json"))
}

/// Every routing decision of the order, with candidates and reasons.
#[utoipa::path(get, path = "/orders/{id}/routing", tag = "routing", params(("id" = i64, Path, description = "Order id")), responses((status = 200, description = "Every routing decision of the order: allocations and candidates", body = Value), (status = 401, description = "No, unknown or revoked token", body = ErrorBody), (status = 404, description = "Not found", body = ErrorBody)))]
pub(super) async fn explain(State(s): State<ApiState>, ApiPath(id): ApiPath<i64>) -> Result<Json<Value>, ApiError> {
    let (store, _) = parts(&s)?;
    let order = store.order(OrderId(id)).await.map_err(|e| store_error(map_order(e, id)))?;
    let decisions = store.decisions(OrderId(id)).await.map_err(store_error)?;
    Ok(Json(json!({
        "order": id,
        "bill_no": order.content.bill_no,
        "state": order.state,
        "state_reason": order.state_reason,
        "decisions": decisions,
    })))
}

fn map_order(e: StoreError, id: i64) -> StoreError {
    match e {
        StoreError::NotFound(_) => StoreError::NotFound(format!("order {id}")),
        other => other,
    }
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct RerouteIn {
    #[schema(value_type = String)]
    supplier: SupplierId,
    #[serde(default)]
    lines: Option<Vec<String>>,
    reason: String,
}

/// A supplier rejected lines (or an operator moves them).
#[utoipa::path(post, path = "/orders/{id}/reroute", tag = "routing", params(("id" = i64, Path, description = "Order id")), request_body = RerouteIn, responses((status = 200, description = "Done", body = Value), (status = 401, description = "No, unknown or revoked token", body = ErrorBody), (status = 404, description = "Not found", body = ErrorBody), (status = 409, description = "In conflict with the current state", body = ErrorBody), (status = 403, description = "The token's role may not do this", body = ErrorBody)))]
pub(super) async fn reroute(
    State(s): State<ApiState>,
    ApiPath(id): ApiPath<i64>,
    ApiJson(r): ApiJson<RerouteIn>,
) -> Result<Json<Value>, ApiError> {
    let (_, router) = parts(&s)?;
    if r.reason.trim().is_empty() {
        return Err(invalid("reason: say why the lines move"));
    }
    check_storable("reason", &r.reason).map_err(invalid)?;
    let out = router
        .reroute(OrderId(id), &r.supplier, r.lines.as_deref(), &r.reason, now_ms())
        .await
        .map_err(router_error)?;
    Ok(Json(json!(out)))
}

/// The active routing policy: its version and TOML text.
#[utoipa::path(get, path = "/routing/policy", tag = "routing", responses((status = 200, description = "The active policy: version and TOML text", body = Value), (status = 401, description = "No, unknown or revoked token", body = ErrorBody), (status = 404, description = "Not found", body = ErrorBody)))]
pub(super) async fn policy(State(s): State<ApiState>) -> Result<Json<Value>, ApiError> {
    let (store, _) = parts(&s)?;
    match store.active_policy().await.map_err(store_error)? {
        Some((version, body)) => Ok(Json(json!({ "version": version, "body": body }))),
        None => Err(ApiError::new(StatusCode::NOT_FOUND, "not-found", "no routing policy is loaded")),
    }
}

/// Every routing policy version loaded, newest first, with its text.
#[utoipa::path(get, path = "/routing/policies", tag = "routing", params(("limit" = Option<i64>, Query, description = "1-1000, default 50")), responses((status = 200, description = "Policy versions: version, active, loaded by and at, TOML text", body = Value), (status = 401, description = "No, unknown or revoked token", body = ErrorBody)))]
pub(super) async fn policies(
    State(s): State<ApiState>,
    ApiQuery(q): ApiQuery<super::dispatch::Limit>,
) -> Result<Json<Value>, ApiError> {
    let (store, _) = parts(&s)?;
    let versions = store.policy_versions(q.limit.unwrap_or(50).clamp(1, 1_000)).await.map_err(store_error)?;
    Ok(Json(json!({ "versions": versions })))
}

/// Loads a policy (TOML text, or the same shape as JSON), validated first.
#[utoipa::path(put, path = "/routing/policy", tag = "routing", request_body(content = String, content_type = "text/plain", description = "The policy as TOML (or the same shape as JSON with `content-type: application/json`)"), responses((status = 200, description = "Done", body = Value), (status = 401, description = "No, unknown or revoked token", body = ErrorBody), (status = 422, description = "Refused, naming every problem", body = ErrorBody), (status = 403, description = "The token's role may not do this", body = ErrorBody)))]
pub(super) async fn put_policy(
    State(s): State<ApiState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Changed, ApiError> {
    let (store, _) = parts(&s)?;
    let (policy, body) = parse_policy(&headers, &body)?;
    let before = store.active_policy().await.map_err(store_error)?.map(|(v, b)| json!({ "version": v, "body": b }));
    store.put_policy(policy.version, &body, "admin-api", now_ms()).await.map_err(store_error)?;
    let change = Change::new(before, json!({ "version": policy.version, "body": body }));
    Ok((change, Json(json!({ "version": policy.version, "rule_sets": policy.rule_sets.len() + 1 }))))
}

/// An answer with what it changed, for the audit trail.
type Changed = (axum::Extension<Change>, Json<Value>);

fn parse_policy(headers: &HeaderMap, body: &Bytes) -> Result<(Policy, String), ApiError> {
    if is_json(headers) {
        let p: Policy = serde_json::from_slice(body).map_err(|e| invalid(format!("routing policy: {e}")))?;
        let t = toml::to_string(&p).map_err(|e| invalid(format!("routing policy: {e}")))?;
        // Same validation as a file.
        let p = Policy::from_toml(&t).map_err(|e| invalid(e.0))?;
        Ok((p, t))
    } else {
        let t = text(body, "routing policy")?;
        Ok((Policy::from_toml(&t).map_err(|e| invalid(e.0))?, t))
    }
}

#[derive(Deserialize)]
pub(super) struct WhatIfQuery {
    state: Option<String>,
    #[serde(default = "default_orders")]
    orders: i64,
    #[serde(default = "default_moved")]
    moved: usize,
}

fn default_orders() -> i64 {
    1000
}
fn default_moved() -> usize {
    100
}

/// Routes a batch of stored orders under the current and a proposed policy.
#[utoipa::path(post, path = "/routing/what-if", tag = "routing", params(("state" = Option<String>, Query, description = "Orders in this state (default: any)"), ("orders" = Option<i64>, Query, description = "How many orders, 1-100000, default 1000"), ("moved" = Option<usize>, Query, description = "How many moved orders to list")), request_body(content = String, content_type = "text/plain", description = "The proposed policy (TOML, or JSON)"), responses((status = 200, description = "Both policies over the same orders: shares, cost, the orders that move. Changes nothing (a viewer may ask)", body = Value), (status = 401, description = "No, unknown or revoked token", body = ErrorBody), (status = 422, description = "Refused, naming every problem", body = ErrorBody), (status = 403, description = "The token's role may not do this", body = ErrorBody)))]
pub(super) async fn what_if(
    State(s): State<ApiState>,
    ApiQuery(q): ApiQuery<WhatIfQuery>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let (store, router) = parts(&s)?;
    let (proposed, _) = parse_policy(&headers, &body)?;
    let st = match q.state.as_deref() {
        Some(x) => Some(x.parse::<OrderState>().map_err(|e| invalid(format!("state: {e}")))?),
        None => None,
    };
    if !(1..=100_000).contains(&q.orders) {
        return Err(invalid("orders: between 1 and 100000"));
    }
    let ids: Vec<OrderId> =
        store.list_orders(st, q.orders).await.map_err(store_error)?.into_iter().map(|o| o.id).collect();
    let batch: Vec<(String, crate::domain::OrderContent)> = store
        .orders_content(&ids)
        .await
        .map_err(store_error)?
        .into_iter()
        .map(|(id, _, c)| (format!("{id} ({})", c.bill_no), c))
        .collect();
    let report = router.what_if(&batch, &proposed, now_ms(), q.moved).await.map_err(router_error)?;
    Ok(Json(json!(report)))
}

/// Routes everything waiting, now.
#[utoipa::path(post, path = "/routing/run", tag = "routing", responses((status = 200, description = "Routes everything waiting now", body = Value), (status = 401, description = "No, unknown or revoked token", body = ErrorBody), (status = 403, description = "The token's role may not do this", body = ErrorBody)))]
pub(super) async fn run(State(s): State<ApiState>) -> Result<Json<Value>, ApiError> {
    let (_, router) = parts(&s)?;
    Ok(Json(json!(router.route_pending(now_ms()).await.map_err(router_error)?)))
}

/// Replaces the catalog (TOML text, or the same shape as JSON).
#[utoipa::path(put, path = "/catalog", tag = "routing", request_body(content = String, content_type = "text/plain", description = "The catalog (suppliers, offers) as TOML or JSON"), responses((status = 200, description = "Done", body = Value), (status = 401, description = "No, unknown or revoked token", body = ErrorBody), (status = 422, description = "Refused, naming every problem", body = ErrorBody), (status = 403, description = "The token's role may not do this", body = ErrorBody)))]
pub(super) async fn put_catalog(
    State(s): State<ApiState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let (store, _) = parts(&s)?;
    let now = now_ms();
    let loaded = if is_json(&headers) {
        serde_json::from_slice::<CatalogFile>(&body)
            .map_err(|e| invalid(format!("catalog: {e}")))?
            .validate(now)
            .map_err(|e| invalid(e.0))?
    } else {
        CatalogFile::load_toml(&text(&body, "catalog")?, now).map_err(|e| invalid(e.0))?
    };
    store.replace_catalog(&loaded, now).await.map_err(store_error)?;
    Ok(Json(json!({ "suppliers": loaded.suppliers.len(), "offers": loaded.entries.len() })))
}

/// Every catalog supplier with its profile.
#[utoipa::path(get, path = "/catalog/suppliers", tag = "routing", responses((status = 200, description = "Every catalog supplier with its profile", body = Value), (status = 401, description = "No, unknown or revoked token", body = ErrorBody)))]
pub(super) async fn suppliers(State(s): State<ApiState>) -> Result<Json<Value>, ApiError> {
    let (store, _) = parts(&s)?;
    Ok(Json(json!(store.suppliers().await.map_err(store_error)?)))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct SupplierPatch {
    enabled: Option<bool>,
    paused: Option<bool>,
    #[schema(value_type = Option<u32>)]
    daily_capacity: Option<Option<u32>>,
    priority: Option<i32>,
    #[schema(value_type = Option<String>)]
    preference: Option<Decimal>,
}

/// Pauses, resumes or re-weights one supplier.
#[utoipa::path(patch, path = "/catalog/suppliers/{id}", tag = "routing", params(("id" = String, Path, description = "Supplier id")), request_body = SupplierPatch, responses((status = 200, description = "The supplier profile", body = Value), (status = 401, description = "No, unknown or revoked token", body = ErrorBody), (status = 404, description = "Not found", body = ErrorBody), (status = 422, description = "Refused, naming every problem", body = ErrorBody), (status = 403, description = "The token's role may not do this", body = ErrorBody)))]
pub(super) async fn patch_supplier(
    State(s): State<ApiState>,
    ApiPath(id): ApiPath<String>,
    ApiJson(p): ApiJson<SupplierPatch>,
) -> Result<Changed, ApiError> {
    let (store, _) = parts(&s)?;
    let rows = store.suppliers().await.map_err(store_error)?;
    let Some(row) = rows.into_iter().find(|r| r.supplier.id.0 == id) else {
        return Err(ApiError::new(StatusCode::NOT_FOUND, "not-found", format!("supplier {id} not found")));
    };
    let before = json!(row.profile);
    let mut prof = row.profile;
    if let Some(v) = p.enabled {
        prof.enabled = v;
    }
    if let Some(v) = p.paused {
        prof.paused = v;
    }
    if let Some(v) = p.daily_capacity {
        prof.daily_capacity = v;
    }
    if let Some(v) = p.priority {
        prof.priority = v;
    }
    if let Some(v) = p.preference {
        if v <= Decimal::ZERO {
            return Err(invalid("preference: must be above 0"));
        }
        prof.preference = v;
    }
    store.update_supplier_profile(&prof, now_ms()).await.map_err(store_error)?;
    let after = json!(prof);
    Ok((Change::new(before, &after), Json(after)))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct StockIn {
    #[schema(value_type = String)]
    supplier: SupplierId,
    #[schema(value_type = String)]
    supplier_sku: SupplierSku,
    stock: u32,
}

/// Confirmed stock levels (from a supplier feed or an operator).
#[utoipa::path(post, path = "/catalog/stock", tag = "routing", request_body = Vec<StockIn>, responses((status = 200, description = "Done", body = Value), (status = 401, description = "No, unknown or revoked token", body = ErrorBody), (status = 422, description = "Refused, naming every problem", body = ErrorBody), (status = 403, description = "The token's role may not do this", body = ErrorBody)))]
pub(super) async fn stock(
    State(s): State<ApiState>,
    ApiJson(levels): ApiJson<Vec<StockIn>>,
) -> Result<Json<Value>, ApiError> {
    let (store, _) = parts(&s)?;
    let rows: Vec<_> = levels.into_iter().map(|l| (l.supplier, l.supplier_sku, l.stock)).collect();
    let n = store.update_stock(&rows, now_ms()).await.map_err(store_error)?;
    Ok(Json(json!({ "received": rows.len(), "updated": n })))
}

/// Scores, rolling metrics, circuits and the latest automatic changes.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct PerformanceQuery {
    /// Only this supplier's score changes (its history, for a chart).
    supplier: Option<SupplierId>,
    #[serde(default = "fifty")]
    changes: i64,
}

fn fifty() -> i64 {
    50
}

/// Each supplier's score and metrics, and recent score changes.
#[utoipa::path(get, path = "/suppliers/performance", tag = "routing", params(("supplier" = Option<String>, Query, description = "Score changes of this supplier only"), ("changes" = Option<i64>, Query, description = "How many score changes, 1-1000, default 50")), responses((status = 200, description = "Each supplier's score and metrics, and recent score changes", body = Value), (status = 401, description = "No, unknown or revoked token", body = ErrorBody)))]
pub(super) async fn performance(
    State(s): State<ApiState>,
    ApiQuery(q): ApiQuery<PerformanceQuery>,
) -> Result<Json<Value>, ApiError> {
    let (store, router) = parts(&s)?;
    let now = now_ms();
    let changes = store.score_changes(q.supplier.as_ref(), q.changes.clamp(1, 1_000)).await.map_err(store_error)?;
    Ok(Json(json!({ "suppliers": router.performance(now).await, "recent_changes": changes })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct EventIn {
    supplier: SupplierId,
    event: Event,
}

/// Supplier events from dispatch and tracking (or an external tracker).
#[utoipa::path(post, path = "/suppliers/events", tag = "routing", request_body(content = Value, description = "`[{\"supplier\": ..., \"event\": {...}}]`: supplier events from an external tracker"), responses((status = 200, description = "Done", body = Value), (status = 401, description = "No, unknown or revoked token", body = ErrorBody), (status = 422, description = "Refused, naming every problem", body = ErrorBody), (status = 403, description = "The token's role may not do this", body = ErrorBody)))]
pub(super) async fn events(
    State(s): State<ApiState>,
    ApiJson(list): ApiJson<Vec<EventIn>>,
) -> Result<Json<Value>, ApiError> {
    let (_, router) = parts(&s)?;
    let events: Vec<_> = list.into_iter().map(|e| (e.supplier, e.event)).collect();
    router.record_events(&events).await.map_err(router_error)?;
    Ok(Json(json!({ "recorded": events.len() })))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct CircuitIn {
    open: bool,
}

/// Trips or resets a supplier's circuit by hand.
#[utoipa::path(put, path = "/suppliers/{id}/circuit", tag = "routing", params(("id" = String, Path, description = "Supplier id")), request_body = CircuitIn, responses((status = 200, description = "Done", body = Value), (status = 401, description = "No, unknown or revoked token", body = ErrorBody), (status = 404, description = "Not found", body = ErrorBody), (status = 403, description = "The token's role may not do this", body = ErrorBody)))]
pub(super) async fn circuit(
    State(s): State<ApiState>,
    ApiPath(id): ApiPath<String>,
    ApiJson(c): ApiJson<CircuitIn>,
) -> Result<Changed, ApiError> {
    let (store, router) = parts(&s)?;
    let supplier = SupplierId(id.clone());
    let before = store.circuit(&supplier).await.map_err(store_error)?;
    let moved = router.set_circuit(&supplier, c.open, now_ms()).await.map_err(router_error)?;
    let after = store.circuit(&supplier).await.map_err(store_error)?;
    let change = Change::new(json!({ "state": before.state.as_str() }), json!({ "state": after.state.as_str() }));
    Ok((change, Json(json!({ "supplier": id, "open": c.open, "orders_rerouted": moved }))))
}
