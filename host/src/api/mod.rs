//! The HTTP API (axum): the admin API operators and the console use to deploy
//! and watch plugins, and a client for it (used by the CLI and the demo).
//!
//! Owns: routing, authentication, request/response shapes.
//! May call: the plugin registry, the store, the router (and, later, the
//! other stages' read models).

mod access;
pub mod client;
mod dispatch;
mod openapi;
mod orders;
mod plugins;
mod routing;

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, FromRequest, FromRequestParts, Path, Query, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use serde::de::DeserializeOwned;

use crate::plugins::Registry;
use crate::store::Store;

/// What the handlers share.
#[derive(Clone)]
pub struct ApiState {
    pub registry: Arc<Registry>,
    /// Present when the host keeps orders (the order endpoints need it).
    pub store: Option<Store>,
    /// Present when the host routes orders (the routing endpoints need it).
    pub router: Option<Arc<crate::router::Router>>,
    /// Present when the host dispatches purchase orders.
    pub dispatcher: Option<Arc<crate::dispatch::Dispatcher>>,
    /// Present when the host keeps metrics (`GET /metrics`).
    pub metrics: Option<Arc<crate::metrics::Metrics>>,
    callbacks: Arc<dispatch::CallbackGate>,
    token: Arc<str>,
}

impl ApiState {
    /// An admin token is mandatory: deploying code is not for anonymous callers.
    pub fn new(registry: Arc<Registry>, token: &str) -> Result<ApiState, &'static str> {
        if token.len() < 16 {
            return Err("the admin token must be at least 16 characters");
        }
        Ok(ApiState {
            registry,
            store: None,
            router: None,
            dispatcher: None,
            metrics: None,
            callbacks: Default::default(),
            token: token.into(),
        })
    }

    /// Serves the order endpoints from `store`.
    pub fn with_store(mut self, store: Store) -> ApiState {
        self.store = Some(store);
        self
    }

    /// Serves `GET /metrics` from `metrics`.
    pub fn with_metrics(mut self, metrics: Arc<crate::metrics::Metrics>) -> ApiState {
        self.metrics = Some(metrics);
        self
    }

    /// Serves the dispatch endpoints and supplier callbacks.
    pub fn with_dispatcher(mut self, d: Arc<crate::dispatch::Dispatcher>) -> ApiState {
        self.dispatcher = Some(d);
        self
    }

    /// Serves the routing endpoints with `router` (and its store).
    pub fn with_router(mut self, router: Arc<crate::router::Router>) -> ApiState {
        self.store = Some(router.store().clone());
        self.router = Some(router);
        self
    }
}

/// Largest request body of the order and routing endpoints: a full intake
/// batch (5,000 orders) of long orders fits. Plugin uploads have their own
/// limit, from the largest package allowed. A larger body is refused with
/// 413 `{"kind": "too-large"}` before it is read.
pub const MAX_BODY_BYTES: usize = 16 << 20;

/// Largest request body of the endpoints that take a small document (a
/// supplier connection, a token, a dead letter's retry): a connection's
/// config and secrets fit many times over; anything larger is refused
/// with 413 before it is read.
pub const SMALL_BODY_BYTES: usize = 64 << 10;

/// The message of every 413.
const TOO_LARGE: &str = "the request body is larger than this endpoint accepts";

/// A route group's body limit, for both ways a body can be too large: a
/// declared `Content-Length` over `max` is refused with 413 before any of
/// the body is read (tower-http), so an oversized upload costs its headers
/// only; a body streamed without one is cut off at `max` by the extractors.
pub(crate) fn body_limit(max: usize) -> (DefaultBodyLimit, tower_http::limit::RequestBodyLimitLayer) {
    (DefaultBodyLimit::max(max), tower_http::limit::RequestBodyLimitLayer::new(max))
}

/// `/healthz` (open) and `/api/v1/...` (bearer token). Every refusal, from
/// a handler, an extractor, the body limit or the router itself (unknown
/// path, wrong method), answers `{"error": "...", "kind": "..."}`.
pub fn router(state: ApiState) -> Router {
    let max_body = state.registry.max_package_bytes() * 4 / 3 + (1 << 20);
    let admin = plugins::routes(max_body)
        .route("/openapi.json", get(openapi_json))
        .merge(orders::routes())
        .merge(routing::routes())
        .merge(dispatch::routes())
        .merge(access::routes())
        .route_layer(middleware::from_fn_with_state(state.clone(), access::require_token));
    // Metrics name suppliers and volumes: a scraper sends the admin token
    // (Prometheus `authorization: {credentials: ...}`).
    let metrics = Router::new()
        .route("/metrics", get(metrics))
        .route_layer(middleware::from_fn_with_state(state.clone(), access::require_token));
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .merge(metrics)
        .route("/readyz", get(readyz))
        .merge(dispatch::callback_routes())
        .merge(crate::console::routes())
        .nest("/api/v1", admin)
        .layer(middleware::from_fn(json_errors))
        // A span per request (method, path), and its status and latency
        // at INFO under `tower_http` (RUST_LOG=tower_http=info shows them).
        .layer(
            tower_http::trace::TraceLayer::new_for_http()
                .make_span_with(tower_http::trace::DefaultMakeSpan::new().level(tracing::Level::INFO))
                .on_response(tower_http::trace::DefaultOnResponse::new().level(tracing::Level::INFO)),
        )
        .with_state(state)
}

/// Ready once every installed plugin version found at start has been
/// loaded (compiled and dry-run), the store can write and the ERP has not
/// refused our credentials in its last answer; the API answers
/// before that, so an operator can act (disable a plugin) while a slow one
/// loads. A store last seen unwritable is probed with a small write.
async fn readyz(State(state): State<ApiState>) -> Response {
    let (loaded, found) = state.registry.loaded();
    let mut waiting = Vec::new();
    if loaded < found {
        waiting.push(format!("plugins: {loaded} of {found} installed versions loaded"));
    }
    if let Some(store) = &state.store
        && !store.health().writable
        && let Err(e) = store.probe_write().await
    {
        waiting.push(format!("store: cannot write: {e}"));
    }
    if let Some((since, why)) = state.metrics.as_ref().and_then(|m| m.erp_credentials_refused()) {
        let secs = (crate::util::now_ms() - since).max(0) / 1000;
        waiting.push(format!("erp: credentials refused {secs} s ago: {why}"));
    }
    let ready = waiting.is_empty();
    let body = serde_json::json!({
        "ready": ready,
        "plugins": { "loaded": loaded, "installed": found },
        "waiting_for": waiting,
    });
    let status = if ready { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (status, axum::Json(body)).into_response()
}

/// The admin API's OpenAPI document (any role may read it).
async fn openapi_json() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], openapi::json()).into_response()
}

/// Every metric in the OpenMetrics text format (Prometheus scrapes it).
async fn metrics(State(state): State<ApiState>) -> Response {
    let Some(m) = &state.metrics else {
        return ApiError::new(StatusCode::NOT_FOUND, "not-found", "this host keeps no metrics").into_response();
    };
    let body = m.render(state.store.as_ref()).await;
    ([(header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")], body).into_response()
}

/// What a mutating call changed, for the audit trail: the thing's state
/// before and after, as the handler that changed it saw them. A handler
/// returns it beside its answer (`(change, Json(..))`); the access layer
/// records it with the call. Never put secrets in it.
#[derive(Debug, Clone)]
pub struct Change {
    pub before: serde_json::Value,
    pub after: serde_json::Value,
}

impl Change {
    pub fn new(before: impl serde::Serialize, after: impl serde::Serialize) -> axum::Extension<Change> {
        let before = serde_json::to_value(before).unwrap_or_default();
        let after = serde_json::to_value(after).unwrap_or_default();
        axum::Extension(Change { before, after })
    }
}

/// An error answer: `{"error": "...", "kind": "..."}`.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    kind: &'static str,
    message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, kind: &'static str, message: impl Into<String>) -> ApiError {
        ApiError { status, kind, message: message.into() }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({ "error": self.message, "kind": self.kind });
        (self.status, axum::Json(body)).into_response()
    }
}

/// The `kind` of a refusal that only has a status.
fn kind_for(status: StatusCode) -> &'static str {
    match status {
        StatusCode::BAD_REQUEST => "bad-request",
        StatusCode::UNAUTHORIZED => "unauthorized",
        StatusCode::NOT_FOUND => "not-found",
        StatusCode::METHOD_NOT_ALLOWED => "method-not-allowed",
        StatusCode::PAYLOAD_TOO_LARGE => "too-large",
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported-media-type",
        StatusCode::UNPROCESSABLE_ENTITY => "invalid",
        StatusCode::CONFLICT => "conflict",
        StatusCode::SERVICE_UNAVAILABLE => "unavailable",
        s if s.is_server_error() => "internal",
        _ => "error",
    }
}

fn is_json(headers: &HeaderMap) -> bool {
    let Some(ct) = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()) else { return false };
    let mime = ct.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    mime == "application/json" || (mime.starts_with("application/") && mime.ends_with("+json"))
}

/// The net under the extractors below: a refusal that is not JSON yet
/// (axum's own: unknown path, wrong method, a `Bytes` body over the limit)
/// is answered in the documented shape, its text kept as the message.
async fn json_errors(req: Request, next: Next) -> Response {
    let resp = next.run(req).await;
    let status = resp.status();
    if !(status.is_client_error() || status.is_server_error()) || is_json(resp.headers()) {
        return resp;
    }
    let (parts, body) = resp.into_parts();
    let text = axum::body::to_bytes(body, 64 << 10)
        .await
        .map(|b| String::from_utf8_lossy(&b).trim().to_string())
        .unwrap_or_default();
    let message = match status {
        // tower-http's refusal of a declared length says only "length limit exceeded".
        StatusCode::PAYLOAD_TOO_LARGE => TOO_LARGE.to_string(),
        _ if text.is_empty() => status.canonical_reason().unwrap_or("error").to_string(),
        _ => text,
    };
    let mut out = ApiError::new(status, kind_for(status), message).into_response();
    // Keep what the status promises (`Allow` on 405).
    for (name, value) in parts.headers.iter() {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            out.headers_mut().insert(name.clone(), value.clone());
        }
    }
    out
}

/// A JSON body, like `axum::Json`, but every refusal is an [`ApiError`]:
/// 415 `unsupported-media-type` without `content-type: application/json`,
/// 413 `too-large` over the route's body limit, 400 `malformed-json` for
/// text that is not JSON, 422 `invalid` for JSON of the wrong shape
/// (unknown fields, wrong types), naming where.
pub struct ApiJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        if !is_json(req.headers()) {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported-media-type",
                "expected a JSON body with `content-type: application/json`",
            ));
        }
        let bytes = Bytes::from_request(req, state).await.map_err(|e| {
            let status = e.status();
            if status == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::new(status, "too-large", TOO_LARGE)
            } else {
                ApiError::new(status, kind_for(status), e.body_text())
            }
        })?;
        serde_json::from_slice(&bytes).map(ApiJson).map_err(|e| match e.classify() {
            serde_json::error::Category::Data => {
                ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid", format!("body: {e}"))
            }
            _ => ApiError::new(StatusCode::BAD_REQUEST, "malformed-json", format!("body is not valid JSON: {e}")),
        })
    }
}

/// Path parameters, like `axum::extract::Path`; a refusal is an [`ApiError`]
/// (400 `bad-request` naming the value, e.g. an order id that is not a number).
pub struct ApiPath<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for ApiPath<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        match Path::<T>::from_request_parts(parts, state).await {
            Ok(Path(t)) => Ok(ApiPath(t)),
            Err(e) => Err(ApiError::new(e.status(), kind_for(e.status()), e.body_text())),
        }
    }
}

/// A query string, like `axum::extract::Query`; a refusal is an [`ApiError`].
pub struct ApiQuery<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        match Query::<T>::from_request_parts(parts, state).await {
            Ok(Query(t)) => Ok(ApiQuery(t)),
            Err(e) => Err(ApiError::new(e.status(), kind_for(e.status()), e.body_text())),
        }
    }
}
