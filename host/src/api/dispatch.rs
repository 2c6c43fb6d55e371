//! Dispatch endpoints: supplier connections (secrets go in, never come
//! out), purchase orders with their history and shipments, the job queue,
//! dead letters (retry, discard), circuit breakers and operator events.
//! And the one open route: `POST /callbacks/{supplier}/{*path}`, where
//! suppliers push updates for their plugin to check and read.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::openapi::ErrorBody;
use super::{ApiError, ApiJson, ApiPath, ApiQuery, ApiState, Change, SMALL_BODY_BYTES};
use crate::dispatch::{Dispatcher, resolve_secret};
use crate::domain::purchase::PoState;
use crate::domain::{OrderId, SupplierId};
use crate::store::{Connection, Store, StoreError};
use crate::util::now_ms;

/// Largest webhook body accepted.
pub const MAX_CALLBACK_BYTES: usize = 1 << 20;
/// Webhooks accepted per supplier per second; more answer 429.
pub const CALLBACKS_PER_SEC: u32 = 100;

pub(super) fn routes() -> Router<ApiState> {
    Router::new()
        .route("/suppliers/connections", get(list_connections))
        .route("/suppliers/{id}/connection", get(get_connection).put(put_connection).delete(delete_connection))
        .route("/suppliers/{id}/connection/resume", post(resume))
        .route("/purchase-orders", get(list_pos))
        .route("/purchase-orders/{po}", get(get_po))
        .route("/dispatch/jobs", get(jobs))
        .route("/dispatch/dead-letters", get(dead_letters))
        .route("/dispatch/dead-letters/{id}/retry", post(retry))
        .route("/dispatch/dead-letters/{id}/discard", post(discard))
        .route("/dispatch/circuits", get(circuits))
        .route("/operator-events", get(operator_events))
        .layer(super::body_limit(SMALL_BODY_BYTES))
}

/// The open webhook route (no admin token: the plugin checks the
/// supplier's own signature).
pub(super) fn callback_routes() -> Router<ApiState> {
    Router::new()
        .route("/callbacks/{supplier}/{*path}", axum::routing::any(callback))
        .layer(super::body_limit(MAX_CALLBACK_BYTES))
}

pub(super) fn store_of(s: &ApiState) -> Result<&Store, ApiError> {
    s.store
        .as_ref()
        .ok_or_else(|| ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", "this host keeps no orders"))
}

fn dispatcher_of(s: &ApiState) -> Result<&Arc<Dispatcher>, ApiError> {
    s.dispatcher
        .as_ref()
        .ok_or_else(|| ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", "dispatch is off on this host"))
}

fn invalid(m: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid", m)
}

fn not_found(m: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "not-found", m)
}

pub(super) fn store_error(e: StoreError) -> ApiError {
    if let StoreError::Invalid(m) = e {
        return ApiError::new(StatusCode::BAD_REQUEST, "invalid", m);
    }
    if e.is_unavailable() {
        return ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "store-unavailable", e.to_string());
    }
    ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "storage", e.to_string())
}

/// A connection as the API shows it: secret values never leave.
#[derive(Serialize)]
struct ConnectionView {
    supplier: String,
    plugin: String,
    version: Option<String>,
    config: BTreeMap<String, String>,
    /// Keys whose values are kept secret.
    secrets: Vec<String>,
    secret_refs: BTreeMap<String, String>,
    max_in_flight: u32,
    rate_per_sec: u32,
    poll_interval_ms: i64,
    paused_reason: Option<String>,
    revision: i64,
    updated_at: i64,
}

fn view(c: Connection) -> ConnectionView {
    ConnectionView {
        supplier: c.supplier.0,
        plugin: c.plugin,
        version: c.pinned_version,
        config: c.config,
        secrets: c.secrets.into_keys().collect(),
        secret_refs: c.secret_refs,
        max_in_flight: c.max_in_flight,
        rate_per_sec: c.rate_per_sec,
        poll_interval_ms: c.poll_interval_ms,
        paused_reason: c.paused_reason,
        revision: c.revision,
        updated_at: c.updated_at,
    }
}

/// `PUT /suppliers/{id}/connection`.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConnectionBody {
    pub plugin: String,
    /// Pin a version; absent = follow the plugin's active version.
    #[serde(default)]
    pub version: Option<String>,
    #[serde(default)]
    pub config: BTreeMap<String, String>,
    #[serde(default)]
    pub secrets: BTreeMap<String, String>,
    /// `env:NAME` or `file:/path`, read by the host.
    #[serde(default)]
    pub secret_refs: BTreeMap<String, String>,
    #[serde(default = "default_in_flight")]
    pub max_in_flight: u32,
    #[serde(default)]
    pub rate_per_sec: u32,
    #[serde(default = "default_poll")]
    pub poll_interval_ms: i64,
}

fn default_in_flight() -> u32 {
    8
}
fn default_poll() -> i64 {
    5_000
}

/// Every supplier connection (secret values never, only their keys).
#[utoipa::path(get, path = "/suppliers/connections", tag = "dispatch", responses((status = 200, description = "Every supplier connection (secret values never, only their keys)", body = Value), (status = 401, description = "No, unknown or revoked token", body = ErrorBody)))]
pub(super) async fn list_connections(State(s): State<ApiState>) -> Result<Json<Value>, ApiError> {
    let all = store_of(&s)?.connections().await.map_err(store_error)?;
    Ok(Json(json!(all.into_iter().map(view).collect::<Vec<_>>())))
}

/// One supplier's connection.
#[utoipa::path(get, path = "/suppliers/{id}/connection", tag = "dispatch", params(("id" = String, Path, description = "Supplier id")), responses((status = 200, description = "Done", body = Value), (status = 401, description = "No, unknown or revoked token", body = ErrorBody), (status = 404, description = "Not found", body = ErrorBody)))]
pub(super) async fn get_connection(
    State(s): State<ApiState>,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<Value>, ApiError> {
    let c = store_of(&s)?.connection(&SupplierId(id.clone())).await.map_err(store_error)?;
    let c = c.ok_or_else(|| not_found(format!("supplier `{id}` has no connection")))?;
    Ok(Json(json!(view(c))))
}

/// Binds a supplier to a plugin with its own config, secrets and limits (checked by binding once).
#[utoipa::path(put, path = "/suppliers/{id}/connection", tag = "dispatch", params(("id" = String, Path, description = "Supplier id")), request_body = ConnectionBody, responses((status = 200, description = "The connection as stored", body = Value), (status = 401, description = "No, unknown or revoked token", body = ErrorBody), (status = 422, description = "Refused, naming every problem", body = ErrorBody), (status = 403, description = "The token's role may not do this", body = ErrorBody)))]
pub(super) async fn put_connection(
    State(s): State<ApiState>,
    ApiPath(id): ApiPath<String>,
    ApiJson(body): ApiJson<ConnectionBody>,
) -> Result<(axum::Extension<Change>, Json<Value>), ApiError> {
    let store = store_of(&s)?;
    if id.trim().is_empty() || id.len() > 64 || id.chars().any(|c| c.is_control() || c == '/') {
        return Err(invalid(format!("supplier id `{id}`: 1-64 characters, no `/` or control characters")));
    }
    if !(1..=256).contains(&body.max_in_flight) {
        return Err(invalid(format!("max_in_flight = {}: must be 1-256", body.max_in_flight)));
    }
    if !(100..=86_400_000).contains(&body.poll_interval_ms) {
        return Err(invalid(format!("poll_interval_ms = {}: must be 100-86400000", body.poll_interval_ms)));
    }
    let pinned = match &body.version {
        Some(v) => Some(semver::Version::parse(v).map_err(|e| invalid(format!("version `{v}`: {e}")))?),
        None => None,
    };
    // Values the manifest marks secret are kept as secrets wherever given.
    let secret_keys = s
        .registry
        .secret_keys(&body.plugin)
        .ok_or_else(|| invalid(format!("plugin `{}` is not installed", body.plugin)))?;
    let mut config = body.config;
    let mut secrets = body.secrets;
    for k in &secret_keys {
        if let Some(v) = config.remove(k) {
            secrets.insert(k.clone(), v);
        }
    }
    let mut effective = config.clone();
    effective.extend(secrets.clone());
    for (k, r) in &body.secret_refs {
        let v = resolve_secret(r).map_err(|e| invalid(format!("secret_refs.{k}: {e}")))?;
        effective.insert(k.clone(), v);
    }
    // Bind once now: unknown or missing keys and a bad allowlist are
    // refused here, naming the key, not at the first order.
    s.registry
        .bind(&body.plugin, pinned.as_ref(), &effective, &id)
        .map_err(|e| invalid(format!("connection of `{id}` to `{}`: {e}", body.plugin)))?;
    let c = Connection {
        supplier: SupplierId(id),
        plugin: body.plugin,
        pinned_version: body.version,
        config,
        secrets,
        secret_refs: body.secret_refs,
        max_in_flight: body.max_in_flight,
        rate_per_sec: body.rate_per_sec,
        poll_interval_ms: body.poll_interval_ms,
        paused_reason: None,
        revision: 0,
        updated_at: 0,
    };
    let before = store.connection(&c.supplier).await.map_err(store_error)?.map(view);
    let saved = store.put_connection(&c, now_ms()).await.map_err(store_error)?;
    if let Some(d) = &s.dispatcher {
        d.connections_changed();
    }
    tracing::info!(target: "daifa::audit", supplier = %saved.supplier, plugin = %saved.plugin, revision = saved.revision, "supplier connection set");
    let after = json!(view(saved));
    Ok((Change::new(before, &after), Json(after)))
}

/// Removes a supplier's connection.
#[utoipa::path(delete, path = "/suppliers/{id}/connection", tag = "dispatch", params(("id" = String, Path, description = "Supplier id")), responses((status = 200, description = "Done", body = Value), (status = 401, description = "No, unknown or revoked token", body = ErrorBody), (status = 404, description = "Not found", body = ErrorBody), (status = 403, description = "The token's role may not do this", body = ErrorBody)))]
pub(super) async fn delete_connection(
    State(s): State<ApiState>,
    ApiPath(id): ApiPath<String>,
) -> Result<(axum::Extension<Change>, Json<Value>), ApiError> {
    let before = store_of(&s)?.connection(&SupplierId(id.clone())).await.map_err(store_error)?.map(view);
    let gone = store_of(&s)?.delete_connection(&SupplierId(id.clone()), now_ms()).await.map_err(store_error)?;
    if !gone {
        return Err(not_found(format!("supplier `{id}` has no connection")));
    }
    if let Some(d) = &s.dispatcher {
        d.connections_changed();
    }
    tracing::info!(target: "daifa::audit", supplier = %id, "supplier connection removed");
    Ok((Change::new(before, Value::Null), Json(json!({ "supplier": id, "removed": true }))))
}

/// Resumes a supplier paused by an authorization failure.
#[utoipa::path(post, path = "/suppliers/{id}/connection/resume", tag = "dispatch", params(("id" = String, Path, description = "Supplier id")), responses((status = 200, description = "Done", body = Value), (status = 401, description = "No, unknown or revoked token", body = ErrorBody), (status = 404, description = "Not found", body = ErrorBody), (status = 403, description = "The token's role may not do this", body = ErrorBody)))]
pub(super) async fn resume(
    State(s): State<ApiState>,
    ApiPath(id): ApiPath<String>,
) -> Result<(axum::Extension<Change>, Json<Value>), ApiError> {
    let was = store_of(&s)?.connection(&SupplierId(id.clone())).await.map_err(store_error)?;
    let before = json!({ "paused_reason": was.and_then(|c| c.paused_reason) });
    let done =
        store_of(&s)?.set_connection_paused(&SupplierId(id.clone()), None, now_ms()).await.map_err(store_error)?;
    if !done {
        return Err(not_found(format!("supplier `{id}` has no connection")));
    }
    if let Some(d) = &s.dispatcher {
        d.connections_changed();
    }
    tracing::info!(target: "daifa::audit", supplier = %id, "supplier resumed");
    Ok((Change::new(before, json!({ "paused_reason": null })), Json(json!({ "supplier": id, "paused": false }))))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct PoQuery {
    order: Option<i64>,
    state: Option<String>,
    supplier: Option<String>,
    limit: Option<i64>,
}

/// Purchase orders, filtered, with the counts per state.
#[utoipa::path(get, path = "/purchase-orders", tag = "dispatch", params(("order" = Option<i64>, Query, description = "Of this order"), ("state" = Option<String>, Query, description = "In this state"), ("supplier" = Option<String>, Query, description = "At this supplier"), ("limit" = Option<i64>, Query, description = "1-10000, default 100")), responses((status = 200, description = "Purchase orders and the counts per state", body = Value), (status = 401, description = "No, unknown or revoked token", body = ErrorBody), (status = 400, description = "A bad parameter, naming it", body = ErrorBody)))]
pub(super) async fn list_pos(
    State(s): State<ApiState>,
    ApiQuery(q): ApiQuery<PoQuery>,
) -> Result<Json<Value>, ApiError> {
    let st = match &q.state {
        Some(w) => Some(w.parse::<PoState>().map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "bad-request", e))?),
        None => None,
    };
    let supplier = q.supplier.map(SupplierId);
    let limit = q.limit.unwrap_or(100).clamp(1, 10_000);
    let pos =
        store_of(&s)?.purchase_orders(q.order.map(OrderId), st, supplier.as_ref(), limit).await.map_err(store_error)?;
    let counts = store_of(&s)?.po_counts().await.map_err(store_error)?;
    Ok(Json(json!({ "counts": counts, "purchase_orders": pos })))
}

/// One purchase order with its events and shipments.
#[utoipa::path(get, path = "/purchase-orders/{po}", tag = "dispatch", params(("po" = String, Path, description = "PO number")), responses((status = 200, description = "The PO with its events and shipments", body = Value), (status = 401, description = "No, unknown or revoked token", body = ErrorBody), (status = 404, description = "Not found", body = ErrorBody)))]
pub(super) async fn get_po(State(s): State<ApiState>, ApiPath(po): ApiPath<String>) -> Result<Json<Value>, ApiError> {
    let store = store_of(&s)?;
    let rec = store.purchase_order(&po).await.map_err(store_error)?;
    let rec = rec.ok_or_else(|| not_found(format!("purchase order `{po}` not found")))?;
    let events = store.po_events(&po).await.map_err(store_error)?;
    let shipments = store.shipments_of(&po).await.map_err(store_error)?;
    Ok(Json(json!({ "purchase_order": rec, "events": events, "shipments": shipments })))
}

/// Dispatch jobs per kind and state.
#[utoipa::path(get, path = "/dispatch/jobs", tag = "dispatch", responses((status = 200, description = "Jobs per kind and state", body = Value), (status = 401, description = "No, unknown or revoked token", body = ErrorBody)))]
pub(super) async fn jobs(State(s): State<ApiState>) -> Result<Json<Value>, ApiError> {
    let counts = store_of(&s)?.job_counts().await.map_err(store_error)?;
    let rows: Vec<Value> = counts.into_iter().map(|(k, st, n)| json!({ "kind": k, "state": st, "count": n })).collect();
    Ok(Json(json!(rows)))
}

/// `?limit=N` of the list endpoints.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Limit {
    pub(super) limit: Option<i64>,
}

/// Jobs that gave up, with their errors, for a person to retry or discard.
#[utoipa::path(get, path = "/dispatch/dead-letters", tag = "dispatch", params(("limit" = Option<i64>, Query, description = "1-10000, default 100")), responses((status = 200, description = "Jobs that gave up, with their errors", body = Value), (status = 401, description = "No, unknown or revoked token", body = ErrorBody)))]
pub(super) async fn dead_letters(
    State(s): State<ApiState>,
    ApiQuery(q): ApiQuery<Limit>,
) -> Result<Json<Value>, ApiError> {
    let dead =
        store_of(&s)?.jobs_in_state("dead", q.limit.unwrap_or(100).clamp(1, 10_000)).await.map_err(store_error)?;
    Ok(Json(json!(dead)))
}

/// Sends a dead letter round again with a fresh deadline.
#[utoipa::path(post, path = "/dispatch/dead-letters/{id}/retry", tag = "dispatch", params(("id" = i64, Path, description = "Job id")), responses((status = 200, description = "Done", body = Value), (status = 401, description = "No, unknown or revoked token", body = ErrorBody), (status = 404, description = "Not found", body = ErrorBody), (status = 403, description = "The token's role may not do this", body = ErrorBody)))]
pub(super) async fn retry(
    State(s): State<ApiState>,
    ApiPath(id): ApiPath<i64>,
) -> Result<(axum::Extension<Change>, Json<Value>), ApiError> {
    let store = store_of(&s)?;
    let now = now_ms();
    let deadline = now + store.dispatch_settings().submit_deadline_ms;
    if !store.retry_dead_letter(id, deadline, now).await.map_err(store_error)? {
        return Err(not_found(format!("job {id} is not a dead letter")));
    }
    tracing::info!(target: "daifa::audit", job = id, "dead letter retried");
    Ok((
        Change::new(json!({ "state": "dead" }), json!({ "state": "ready" })),
        Json(json!({ "job": id, "state": "ready" })),
    ))
}

/// Gives up on a dead letter for good.
#[utoipa::path(post, path = "/dispatch/dead-letters/{id}/discard", tag = "dispatch", params(("id" = i64, Path, description = "Job id")), responses((status = 200, description = "Done", body = Value), (status = 401, description = "No, unknown or revoked token", body = ErrorBody), (status = 404, description = "Not found", body = ErrorBody), (status = 403, description = "The token's role may not do this", body = ErrorBody)))]
pub(super) async fn discard(
    State(s): State<ApiState>,
    ApiPath(id): ApiPath<i64>,
) -> Result<(axum::Extension<Change>, Json<Value>), ApiError> {
    if !store_of(&s)?.discard_dead_letter(id, now_ms()).await.map_err(store_error)? {
        return Err(not_found(format!("job {id} is not a dead letter")));
    }
    tracing::info!(target: "daifa::audit", job = id, "dead letter discarded");
    let change = Change::new(json!({ "state": "dead" }), json!({ "state": "discarded" }));
    Ok((change, Json(json!({ "job": id, "state": "discarded" }))))
}

/// Every supplier breaker that was ever tripped, with its transitions.
#[utoipa::path(get, path = "/dispatch/circuits", tag = "dispatch", responses((status = 200, description = "Every breaker that was ever tripped, with its transitions", body = Value), (status = 401, description = "No, unknown or revoked token", body = ErrorBody)))]
pub(super) async fn circuits(State(s): State<ApiState>) -> Result<Json<Value>, ApiError> {
    let store = store_of(&s)?;
    let mut out = Vec::new();
    for c in store.circuits().await.map_err(store_error)? {
        let transitions = store.circuit_transitions(&c.supplier).await.map_err(store_error)?;
        out.push(json!({ "circuit": c, "transitions": transitions }));
    }
    Ok(Json(json!(out)))
}

/// Things a person must look at (unknown POs, setup errors, canary decisions), newest first.
#[utoipa::path(get, path = "/operator-events", tag = "dispatch", params(("limit" = Option<i64>, Query, description = "1-10000, default 100")), responses((status = 200, description = "What a person must look at, newest first", body = Value), (status = 401, description = "No, unknown or revoked token", body = ErrorBody)))]
pub(super) async fn operator_events(
    State(s): State<ApiState>,
    ApiQuery(q): ApiQuery<Limit>,
) -> Result<Json<Value>, ApiError> {
    let ev = store_of(&s)?.operator_events(q.limit.unwrap_or(100).clamp(1, 10_000)).await.map_err(store_error)?;
    Ok(Json(json!(ev)))
}

/// Fixed one-second windows per supplier: enough to keep a flood from one
/// supplier (or someone posing as it) off the plugins and the store.
#[derive(Default)]
pub struct CallbackGate {
    windows: Mutex<HashMap<String, (i64, u32)>>,
}

impl CallbackGate {
    fn admit(&self, supplier: &str, now_ms: i64) -> bool {
        let Ok(mut w) = self.windows.lock() else { return false };
        if w.len() > 10_000 {
            w.retain(|_, (sec, _)| *sec >= now_ms / 1000);
        }
        let e = w.entry(supplier.to_string()).or_insert((now_ms / 1000, 0));
        if e.0 != now_ms / 1000 {
            *e = (now_ms / 1000, 0);
        }
        e.1 += 1;
        e.1 <= CALLBACKS_PER_SEC
    }
}

async fn callback(
    State(s): State<ApiState>,
    ApiPath((supplier, path)): ApiPath<(String, String)>,
    method: Method,
    uri: axum::http::Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let d = dispatcher_of(&s)?;
    if !s.callbacks.admit(&supplier, now_ms()) {
        return Err(ApiError::new(StatusCode::TOO_MANY_REQUESTS, "rate-limited", "too many callbacks; slow down"));
    }
    let req = crate::plugins::bindings::CallbackRequest {
        method: method.as_str().to_string(),
        path: format!("/{path}"),
        query: uri.query().unwrap_or("").to_string(),
        headers: headers
            .iter()
            .filter_map(|(k, v)| v.to_str().ok().map(|v| (k.as_str().to_string(), v.to_string())))
            .collect(),
        body: body.to_vec(),
    };
    let result = crate::tracking::callback(d, &SupplierId(supplier.clone()), req).await.map_err(|e| match e {
        crate::tracking::CallbackError::UnknownSupplier(m) => not_found(m),
        crate::tracking::CallbackError::Plugin(m) => {
            tracing::warn!(%supplier, "callback refused: {m}");
            ApiError::new(StatusCode::BAD_REQUEST, "callback-refused", m)
        }
        crate::tracking::CallbackError::Store(e) => store_error(e),
    })?;
    let status = StatusCode::from_u16(result.response_status).unwrap_or(StatusCode::OK);
    let mut resp = (status, result.response_body).into_response();
    for (k, v) in result.response_headers {
        if let (Ok(k), Ok(v)) = (HeaderName::try_from(k), HeaderValue::try_from(v)) {
            resp.headers_mut().insert(k, v);
        }
    }
    Ok(resp)
}
