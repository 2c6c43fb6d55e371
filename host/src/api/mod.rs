//! The HTTP API (axum): the admin API operators and the console use to deploy
//! and watch plugins, and a client for it (used by the CLI and the demo).
//!
//! Owns: routing, authentication, request/response shapes.
//! May call: the plugin registry, the store, the router (and, later, the
//! other stages' read models).

pub mod client;
mod orders;
mod plugins;
mod routing;

use std::sync::Arc;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

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
    token: Arc<str>,
}

impl ApiState {
    /// An admin token is mandatory: deploying code is not for anonymous callers.
    pub fn new(registry: Arc<Registry>, token: &str) -> Result<ApiState, &'static str> {
        if token.len() < 16 {
            return Err("the admin token must be at least 16 characters");
        }
        Ok(ApiState { registry, store: None, router: None, token: token.into() })
    }

    /// Serves the order endpoints from `store`.
    pub fn with_store(mut self, store: Store) -> ApiState {
        self.store = Some(store);
        self
    }

    /// Serves the routing endpoints with `router` (and its store).
    pub fn with_router(mut self, router: Arc<crate::router::Router>) -> ApiState {
        self.store = Some(router.store().clone());
        self.router = Some(router);
        self
    }
}

/// `/healthz` (open) and `/api/v1/...` (bearer token).
pub fn router(state: ApiState) -> Router {
    let max_body = state.registry.max_package_bytes() * 4 / 3 + (1 << 20);
    let admin = plugins::routes(max_body)
        .merge(orders::routes())
        .merge(routing::routes())
        .route_layer(middleware::from_fn_with_state(state.clone(), require_token));
    Router::new().route("/healthz", get(|| async { "ok" })).nest("/api/v1", admin).with_state(state)
}

async fn require_token(State(state): State<ApiState>, req: Request, next: Next) -> Response {
    let given =
        req.headers().get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer "));
    match given {
        Some(t) if constant_time_eq(t.as_bytes(), state.token.as_bytes()) => next.run(req).await,
        _ => ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", "missing or wrong bearer token").into_response(),
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
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
