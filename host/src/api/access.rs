//! Who is calling: the bearer token resolved to an actor and role (the
//! token in daifa.toml is an admin; others live hashed in the store), the
//! permission each request needs, and the audit record of every mutating
//! call. Routes: `/tokens` (admin), `/audit` and the alert history `/alerts`.

use axum::extract::{OriginalUri, Request, State};
use axum::http::{Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};

use super::dispatch::{Limit, store_error, store_of};
use super::openapi::ErrorBody;
use super::{ApiError, ApiJson, ApiPath, ApiQuery, ApiState};
use crate::domain::access::{Permission, Role};
use crate::store::StoreError;
use crate::util::now_ms;

/// The caller of one request.
#[derive(Debug, Clone)]
pub struct Caller {
    /// `config` (the token in daifa.toml) or `token:<id> (<name>)`.
    pub actor: String,
    pub role: Role,
}

pub(super) fn routes() -> Router<ApiState> {
    Router::new()
        .route("/tokens", get(list_tokens).post(create_token))
        .route("/tokens/{id}", delete(revoke_token))
        .route("/audit", get(audit))
        .route("/alerts", get(alerts))
        .layer(super::body_limit(super::SMALL_BODY_BYTES))
}

/// What a request needs, from its method and path (below `/api/v1`).
fn permission(method: &Method, path: &str) -> Permission {
    if path.starts_with("/tokens") {
        return Permission::Admin;
    }
    // A what-if routes orders on paper only: it carries a policy in its body
    // (hence POST) but changes nothing, so whoever may read may ask it.
    if method == Method::GET || method == Method::HEAD || (method == Method::POST && path == "/routing/what-if") {
        return Permission::Read;
    }
    if path.starts_with("/plugins") { Permission::Deploy } else { Permission::Operate }
}

async fn caller(state: &ApiState, presented: &str) -> Result<Option<Caller>, StoreError> {
    if crate::util::constant_time_eq(presented.as_bytes(), state.token.as_bytes()) {
        return Ok(Some(Caller { actor: "config".into(), role: Role::Admin }));
    }
    let Some(store) = &state.store else { return Ok(None) };
    Ok(store
        .check_token(presented, now_ms())
        .await?
        .map(|(t, role)| Caller { actor: format!("token:{} ({})", t.id, t.name), role }))
}

/// Authenticates, authorises by role, runs the request, and audits it when
/// it was meant to change something (refused ones too: an attempt is news).
pub(super) async fn require_token(State(state): State<ApiState>, mut req: Request, next: Next) -> Response {
    let given =
        req.headers().get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer "));
    let Some(given) = given else {
        return ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", "missing bearer token").into_response();
    };
    let who = match caller(&state, given).await {
        Ok(Some(who)) => who,
        Ok(None) => {
            return ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", "unknown, wrong or revoked bearer token")
                .into_response();
        }
        Err(e) => {
            return ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "store-unavailable", e.to_string()).into_response();
        }
    };
    let method = req.method().clone();
    let inner_path = req.uri().path().to_string();
    let full_path = req.extensions().get::<OriginalUri>().map_or(inner_path.clone(), |u| u.0.path().to_string());
    let need = permission(&method, &inner_path);
    // Reads (and a what-if, a read with a body) change nothing to audit.
    let mutating = method != Method::GET && method != Method::HEAD && need != Permission::Read;
    let response = if who.role.allows(need) {
        req.extensions_mut().insert(who.clone());
        next.run(req).await
    } else {
        ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            format!("role {} may not {method} {full_path} (needs {need:?})", who.role),
        )
        .into_response()
    };
    if mutating && let Some(store) = &state.store {
        let status = response.status().as_u16();
        let change = response.extensions().get::<super::Change>().map(|c| (&c.before, &c.after));
        let record = crate::store::AuditRecord {
            actor: &who.actor,
            role: who.role,
            method: method.as_str(),
            path: &full_path,
            status,
            change,
        };
        if let Err(e) = store.audit(&record, now_ms()).await {
            tracing::error!(actor = %who.actor, %method, path = %full_path, "audit record not written: {e}");
        }
    }
    response
}

/// API tokens: ids, names, roles, last use; never secrets.
#[utoipa::path(get, path = "/tokens", tag = "access", responses((status = 200, description = "Tokens: ids, names, roles, last use; never secrets (admin only)", body = Value), (status = 401, description = "No, unknown or revoked token", body = ErrorBody), (status = 403, description = "The token's role may not do this", body = ErrorBody)))]
pub(super) async fn list_tokens(State(state): State<ApiState>) -> Result<Response, ApiError> {
    let tokens = store_of(&state)?.tokens().await.map_err(store_error)?;
    Ok(Json(json!({ "tokens": tokens })).into_response())
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct NewToken {
    name: String,
    role: String,
}

/// Creates a token with a role; the answer is the only place the token ever appears.
#[utoipa::path(post, path = "/tokens", tag = "access", request_body = NewToken, responses((status = 201, description = "The token, shown this once", body = Value), (status = 401, description = "No, unknown or revoked token", body = ErrorBody), (status = 400, description = "A bad parameter, naming it", body = ErrorBody), (status = 403, description = "The token's role may not do this", body = ErrorBody)))]
pub(super) async fn create_token(
    State(state): State<ApiState>,
    ApiJson(t): ApiJson<NewToken>,
) -> Result<Response, ApiError> {
    let role = Role::parse(&t.role).map_err(|m| ApiError::new(StatusCode::BAD_REQUEST, "invalid", m))?;
    let (token, secret) = store_of(&state)?.create_token(&t.name, role, now_ms()).await.map_err(store_error)?;
    // The only answer that ever carries the token itself.
    // The audit keeps who the token is for, never the token.
    let change = super::Change::new(Value::Null, json!({ "id": token.id, "name": token.name, "role": token.role }));
    Ok((
        StatusCode::CREATED,
        change,
        Json(json!({ "token": secret, "id": token.id, "name": token.name, "role": token.role })),
    )
        .into_response())
}

/// Revokes a token at once.
#[utoipa::path(delete, path = "/tokens/{id}", tag = "access", params(("id" = String, Path, description = "Token id")), responses((status = 200, description = "Done", body = Value), (status = 401, description = "No, unknown or revoked token", body = ErrorBody), (status = 404, description = "Not found", body = ErrorBody), (status = 403, description = "The token's role may not do this", body = ErrorBody)))]
pub(super) async fn revoke_token(
    State(state): State<ApiState>,
    ApiPath(id): ApiPath<String>,
) -> Result<Response, ApiError> {
    if store_of(&state)?.revoke_token(&id, now_ms()).await.map_err(store_error)? {
        let change = super::Change::new(json!({ "id": id, "revoked": false }), json!({ "id": id, "revoked": true }));
        Ok((change, Json(json!({ "revoked": id }))).into_response())
    } else {
        Err(ApiError::new(StatusCode::NOT_FOUND, "not-found", format!("no live token with id `{id}`")))
    }
}

/// The audit trail: every mutating call with who, role, status, and the state before and after.
#[utoipa::path(get, path = "/audit", tag = "access", params(("limit" = Option<i64>, Query, description = "1-10000, default 100")), responses((status = 200, description = "Mutating calls, newest first: who, role, what, status, before and after", body = Value), (status = 401, description = "No, unknown or revoked token", body = ErrorBody)))]
pub(super) async fn audit(State(state): State<ApiState>, ApiQuery(q): ApiQuery<Limit>) -> Result<Response, ApiError> {
    let limit = q.limit.unwrap_or(100).clamp(1, 10_000);
    let entries = store_of(&state)?.audit_log(limit).await.map_err(store_error)?;
    Ok(Json(json!({ "entries": entries })).into_response())
}

/// Alert history: firing and resolved alerts with what each notifier answered.
#[utoipa::path(get, path = "/alerts", tag = "access", params(("limit" = Option<i64>, Query, description = "1-10000, default 100")), responses((status = 200, description = "Alert history: firing and resolved, with what each notifier answered", body = Value), (status = 401, description = "No, unknown or revoked token", body = ErrorBody)))]
pub(super) async fn alerts(State(state): State<ApiState>, ApiQuery(q): ApiQuery<Limit>) -> Result<Response, ApiError> {
    let limit = q.limit.unwrap_or(100).clamp(1, 10_000);
    let alerts = store_of(&state)?.alerts(limit).await.map_err(store_error)?;
    Ok(Json(json!({ "alerts": alerts })).into_response())
}
