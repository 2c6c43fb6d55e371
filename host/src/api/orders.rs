//! `/api/v1/orders`: intake (batch JSON, idempotent, per-order results), the
//! listing by state, one order with its history, and an operator's fix.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::Value;
use serde_json::value::RawValue;

use super::openapi::ErrorBody;
use super::{ApiError, ApiJson, ApiPath, ApiQuery, ApiState, MAX_BODY_BYTES};
use crate::domain::values::check_storable;
use crate::domain::{Actor, OrderId, OrderState, SalesOrder};
use crate::ingest::rest::{OrderIn, OrderResult};
use crate::store::{OrderSummary, Store, StoreError};

/// Largest intake batch.
const MAX_BATCH: usize = 5_000;

pub(super) fn routes() -> Router<ApiState> {
    Router::new()
        .route("/orders", post(intake).get(list))
        .route("/orders/stats", get(stats))
        .route("/orders/{id}", get(one).put(fix))
        .route("/orders/{id}/transition", post(transition))
        .layer(super::body_limit(MAX_BODY_BYTES))
}

fn invalid(m: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid", m)
}

fn store(s: &ApiState) -> Result<&Store, ApiError> {
    s.store
        .as_ref()
        .ok_or_else(|| ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", "this host keeps no orders"))
}

fn store_error(e: StoreError) -> ApiError {
    match e {
        StoreError::NotFound(m) => ApiError::new(StatusCode::NOT_FOUND, "not-found", format!("order {m} not found")),
        StoreError::Transition(t) => ApiError::new(StatusCode::CONFLICT, "illegal-transition", t.to_string()),
        StoreError::Conflict(m) => ApiError::new(StatusCode::CONFLICT, "conflict", m),
        // Nothing of the request was kept: the client must retry later.
        StoreError::Unavailable(m) => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "store-unavailable",
            format!("the store cannot write right now; nothing was saved, retry later ({m})"),
        ),
        other => ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "storage", other.to_string()),
    }
}

/// Orders stay JSON text until each is read on its own, so their numbers
/// are never rounded through a float (`NumText`) and one malformed order is
/// refused alone.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Batch {
    #[serde(default = "default_source")]
    source: String,
    orders: Vec<Box<RawValue>>,
}

fn default_source() -> String {
    "api".into()
}

/// Just the id of an order that may not be readable otherwise.
#[derive(Deserialize)]
struct IdOf {
    #[serde(default)]
    external_id: Value,
}

/// Accepts `{"source": "...", "orders": [...]}` or a bare array of orders.
#[utoipa::path(post, path = "/orders", tag = "orders", request_body(content = Value, description = "`{\"source\": ..., \"orders\": [...]}` or a bare array of orders (up to 5,000); CSV is taken by `daifa intake`"), responses((status = 200, description = "Per-order results: stored, unchanged, exception or invalid", body = Value), (status = 401, description = "No, unknown or revoked token", body = ErrorBody), (status = 415, description = "Not `application/json`", body = ErrorBody), (status = 422, description = "Refused, naming every problem", body = ErrorBody), (status = 403, description = "The token's role may not do this", body = ErrorBody)))]
pub(super) async fn intake(
    State(s): State<ApiState>,
    ApiJson(body): ApiJson<Box<RawValue>>,
) -> Result<Json<Value>, ApiError> {
    let store = store(&s)?;
    let text = body.get();
    let batch = if text.trim_start().starts_with('[') {
        let orders = serde_json::from_str(text).map_err(|e| invalid(format!("body: {e}")))?;
        Batch { source: default_source(), orders }
    } else {
        serde_json::from_str::<Batch>(text).map_err(|e| invalid(format!("body: {e}")))?
    };
    check_storable("source", &batch.source).map_err(invalid)?;
    if batch.orders.len() > MAX_BATCH {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too-large",
            format!("{} orders in one batch; the limit is {MAX_BATCH}", batch.orders.len()),
        ));
    }
    let mut results: Vec<OrderResult> = Vec::with_capacity(batch.orders.len());
    let mut contents = Vec::new();
    let mut positions = Vec::new();
    for (index, raw) in batch.orders.into_iter().enumerate() {
        let external_id = serde_json::from_str::<IdOf>(raw.get())
            .ok()
            .and_then(|i| i.external_id.as_str().map(str::to_string))
            .unwrap_or_default();
        let parsed = serde_json::from_str::<OrderIn>(raw.get())
            .map_err(|e| e.to_string())
            .and_then(|o| o.into_content(&batch.source, None));
        match parsed {
            Ok(c) => {
                positions.push(index);
                contents.push(c);
                results.push(OrderResult { index, external_id, status: String::new(), order_id: None, reason: None });
            }
            Err(reason) => results.push(OrderResult {
                index,
                external_id,
                status: "invalid".into(),
                order_id: None,
                reason: Some(reason),
            }),
        }
    }
    let ids: Vec<String> = contents.iter().map(|c| c.external_id.to_string()).collect();
    let now = crate::util::now_ms();
    let outcome = store.ingest_batch(contents, &Actor::Ingest(batch.source.clone()), now).await.map_err(store_error)?;
    let states = store.states_of(&batch.source, &ids).await.map_err(store_error)?;
    let refusals: std::collections::HashMap<&str, &str> =
        outcome.refused.iter().map(|r| (r.external_id.as_str(), r.reason.as_str())).collect();
    for (i, id) in positions.into_iter().zip(ids) {
        let r = &mut results[i];
        // Not applied (an older revision, a stamp that cannot be ordered,
        // the id twice in this batch): said on the order's own result.
        if let Some(reason) = refusals.get(id.as_str()) {
            r.status = "refused".into();
            r.order_id = states.get(&id).map(|(oid, ..)| oid.0);
            r.reason = Some(reason.to_string());
            continue;
        }
        match states.get(&id) {
            Some((oid, st, reason)) => {
                r.status = st.as_str().into();
                r.order_id = Some(oid.0);
                r.reason = Some(reason.clone()).filter(|_| *st == OrderState::Exception);
            }
            None => r.status = "unknown".into(),
        }
    }
    let refused = results.iter().filter(|r| r.status == "invalid").count();
    Ok(Json(serde_json::json!({ "outcome": outcome, "invalid": refused, "results": results })))
}

#[derive(Deserialize)]
pub(super) struct ListQuery {
    state: Option<String>,
    /// A bill number or external id prefix, or an order id.
    q: Option<String>,
    #[serde(default = "default_limit")]
    limit: i64,
}

fn default_limit() -> i64 {
    100
}

/// Lists orders: by state, or found by bill number / external id prefix or id.
#[utoipa::path(get, path = "/orders", tag = "orders", params(("state" = Option<String>, Query, description = "Only orders in this state"), ("q" = Option<String>, Query, description = "A bill number or external id prefix, or an order id (not with `state`)"), ("limit" = Option<i64>, Query, description = "1-10000, default 100")), responses((status = 200, description = "Order summaries", body = Value), (status = 401, description = "No, unknown or revoked token", body = ErrorBody), (status = 400, description = "A bad parameter, naming it", body = ErrorBody)))]
pub(super) async fn list(
    State(s): State<ApiState>,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> Result<Json<Vec<OrderSummary>>, ApiError> {
    let st = q
        .state
        .map(|s| s.parse::<OrderState>().map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "invalid", e)))
        .transpose()?;
    let limit = q.limit.clamp(1, 10_000);
    match q.q.as_deref().map(str::trim).filter(|t| !t.is_empty()) {
        Some(_) if st.is_some() => {
            Err(ApiError::new(StatusCode::BAD_REQUEST, "invalid", "give `q` or `state`, not both"))
        }
        Some(term) if term.len() > 100 => {
            Err(ApiError::new(StatusCode::BAD_REQUEST, "invalid", "`q` is longer than 100 characters"))
        }
        Some(term) => store(&s)?.search_orders(term, limit).await.map(Json).map_err(store_error),
        None => store(&s)?.list_orders(st, limit).await.map(Json).map_err(store_error),
    }
}

/// Orders per state: what the flow holds right now.
#[utoipa::path(get, path = "/orders/stats", tag = "orders", responses((status = 200, description = "Orders per state and the job backlog with its oldest job", body = Value), (status = 401, description = "No, unknown or revoked token", body = ErrorBody)))]
pub(super) async fn stats(State(s): State<ApiState>) -> Result<Json<serde_json::Value>, ApiError> {
    let store = store(&s)?;
    let by_state = store.count_by_state().await.map_err(store_error)?;
    let by_state: std::collections::BTreeMap<&str, i64> = by_state.into_iter().map(|(k, v)| (k.as_str(), v)).collect();
    // The work still queued per kind and how long its oldest has waited:
    // a growing age is the first sign of a stuck stage.
    let now = crate::util::now_ms();
    let backlog: Vec<_> = store
        .job_backlog()
        .await
        .map_err(store_error)?
        .into_iter()
        .map(|(kind, n, oldest)| serde_json::json!({ "kind": kind, "jobs": n, "oldest_age_ms": (now - oldest).max(0) }))
        .collect();
    Ok(Json(serde_json::json!({ "by_state": by_state, "backlog": backlog })))
}

/// One order with its lines and its history.
#[utoipa::path(get, path = "/orders/{id}", tag = "orders", params(("id" = i64, Path, description = "Order id")), responses((status = 200, description = "The order with its lines and history", body = Value), (status = 401, description = "No, unknown or revoked token", body = ErrorBody), (status = 404, description = "Not found", body = ErrorBody)))]
pub(super) async fn one(State(s): State<ApiState>, ApiPath(id): ApiPath<i64>) -> Result<Json<SalesOrder>, ApiError> {
    store(&s)?.order(OrderId(id)).await.map(Json).map_err(store_error)
}

/// An operator corrects an order's data; valid data returns it to
/// `received` (or, routed, to be routed again). Data with problems (a
/// quantity out of bounds, no lines, a missing address part, text no store
/// can keep) is refused with 422 naming every problem, and the order stays
/// exactly as it was: an edit is applied whole and valid, or not at all.
#[utoipa::path(put, path = "/orders/{id}", tag = "orders", params(("id" = i64, Path, description = "Order id")), request_body(content = Value, description = "The order's corrected data (same shape as intake)"), responses((status = 200, description = "The order, back to `received`", body = Value), (status = 401, description = "No, unknown or revoked token", body = ErrorBody), (status = 404, description = "Not found", body = ErrorBody), (status = 422, description = "Refused, naming every problem", body = ErrorBody), (status = 403, description = "The token's role may not do this", body = ErrorBody)))]
pub(super) async fn fix(
    State(s): State<ApiState>,
    ApiPath(id): ApiPath<i64>,
    who: Option<axum::Extension<super::access::Caller>>,
    ApiJson(order): ApiJson<OrderIn>,
) -> Result<Json<SalesOrder>, ApiError> {
    let store = store(&s)?;
    let current = store.order(OrderId(id)).await.map_err(store_error)?;
    let mut content = order.into_content(current.content.source.as_str(), None).map_err(invalid)?;
    if content.external_id != current.content.external_id {
        return Err(invalid("external_id cannot change"));
    }
    if content.cancelled != current.content.cancelled {
        // A cancellation is a state change with a reason, not a data fix.
        return Err(invalid(format!(
            "cancelled cannot change here; cancel with POST /api/v1/orders/{id}/transition {{\"to\": \"cancelled\", \"reason\": \"...\"}}"
        )));
    }
    let problems = content.problems();
    if !problems.is_empty() {
        return Err(invalid(format!("not applied, the order is unchanged: {}", problems.join("; "))));
    }
    content.source_modified = current.content.source_modified.clone();
    let now = crate::util::now_ms();
    store.fix_content(OrderId(id), content, &operator(who), now).await.map(Json).map_err(store_error)
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct TransitionIn {
    to: String,
    reason: String,
}

/// An operator moves an order (hold, release, cancel, retry).
#[utoipa::path(post, path = "/orders/{id}/transition", tag = "orders", params(("id" = i64, Path, description = "Order id")), request_body = TransitionIn, responses((status = 200, description = "The order in its new state", body = Value), (status = 401, description = "No, unknown or revoked token", body = ErrorBody), (status = 404, description = "Not found", body = ErrorBody), (status = 409, description = "In conflict with the current state", body = ErrorBody), (status = 403, description = "The token's role may not do this", body = ErrorBody)))]
pub(super) async fn transition(
    State(s): State<ApiState>,
    ApiPath(id): ApiPath<i64>,
    who: Option<axum::Extension<super::access::Caller>>,
    ApiJson(t): ApiJson<TransitionIn>,
) -> Result<(axum::Extension<super::Change>, Json<SalesOrder>), ApiError> {
    let to = t.to.parse::<OrderState>().map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "invalid", e))?;
    if t.reason.trim().is_empty() {
        return Err(ApiError::new(StatusCode::BAD_REQUEST, "invalid", "a reason is required"));
    }
    check_storable("reason", &t.reason).map_err(invalid)?;
    let now = crate::util::now_ms();
    let store = store(&s)?;
    let before = store.order(OrderId(id)).await.map_err(store_error)?.state;
    let after = store.transition(OrderId(id), to, &operator(who), &t.reason, now).await.map_err(store_error)?;
    let change = super::Change::new(
        serde_json::json!({ "state": before }),
        serde_json::json!({ "state": after.state, "reason": t.reason }),
    );
    Ok((change, Json(after)))
}

/// The order history's actor for a change made through the API: the
/// caller's token, so the timeline says who, not just "the API".
fn operator(who: Option<axum::Extension<super::access::Caller>>) -> Actor {
    Actor::Operator(who.map_or_else(|| "admin-api".to_string(), |w| w.0.actor))
}
