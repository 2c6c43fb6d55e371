//! A JSON-over-HTTP supplier: the dialect the `rest-json` adapter speaks by
//! default. Orders with idempotency keys, per-line acceptance by stock,
//! shipments with tracking numbers as an event feed, cancellation, stock,
//! webhooks; plus fault injection and test endpoints (redirects, huge bodies).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};
use sha2::Digest as _;

/// How the simulated supplier behaves.
#[derive(Debug, Clone)]
pub struct SupplierSimConfig {
    /// Required bearer token; `None` accepts any caller.
    pub token: Option<String>,
    /// Stock per supplier SKU; SKUs not listed have `default_stock`.
    pub stock: HashMap<String, u32>,
    pub default_stock: u32,
    /// SKUs the supplier does not carry (lines are rejected).
    pub unknown_prefix: String,
    /// Carrier used for shipments.
    pub carrier: String,
    /// This supplier's own JSON key names (canonical → theirs), to exercise
    /// an adapter's field mapping. Empty = the canonical dialect.
    pub field_names: HashMap<String, String>,
    /// This supplier's own status words (canonical → theirs).
    pub status_words: HashMap<String, String>,
}

impl Default for SupplierSimConfig {
    fn default() -> Self {
        SupplierSimConfig {
            token: Some("sim-token".into()),
            stock: HashMap::new(),
            default_stock: 1_000,
            unknown_prefix: "UNKNOWN-".into(),
            carrier: "SF".into(),
            field_names: HashMap::new(),
            status_words: HashMap::new(),
        }
    }
}

/// An order's items as (line id, quantity, status).
pub type OrderItems = Vec<(String, u32, String)>;

/// The next tracking number's serial, shared by every simulator.
static TRACKING: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

#[derive(Debug, Clone)]
struct SimOrder {
    order_id: String,
    external_id: String,
    items: Vec<SimItem>,
    shipped: bool,
    cancelled: bool,
}

#[derive(Debug, Clone)]
struct SimItem {
    line_id: String,
    sku: String,
    qty: u32,
    status: &'static str,
}

#[derive(Default)]
struct Inner {
    orders: Vec<SimOrder>,
    by_key: HashMap<String, usize>,
    events: Vec<Value>,
    stock: HashMap<String, u32>,
    /// Answer the next N requests with this status (fault injection).
    fail_next: Option<(u32, u16)>,
    requests: u64,
    /// The body each idempotency key was first used with (sha256).
    key_bodies: HashMap<String, [u8; 32]>,
    /// Requests that reused a key with a different body (refused 422).
    key_conflicts: u64,
    /// Replays answered from an earlier order (same key, same body).
    replays: u64,
    /// Delay before every answer, milliseconds.
    latency_ms: u64,
    /// Delay after an order is taken, before its answer: a client that
    /// times out meanwhile has placed the order without knowing it.
    answer_delay_ms: u64,
}

struct Sim {
    config: SupplierSimConfig,
    inner: Mutex<Inner>,
}

/// A running simulator; stops when dropped.
pub struct SupplierSim {
    addr: SocketAddr,
    state: Arc<Sim>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for SupplierSim {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl SupplierSim {
    /// Starts on `127.0.0.1:port` (0 = any free port).
    pub async fn start(config: SupplierSimConfig, port: u16) -> std::io::Result<SupplierSim> {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
        let addr = listener.local_addr()?;
        let state =
            Arc::new(Sim { inner: Mutex::new(Inner { stock: config.stock.clone(), ..Default::default() }), config });
        let app = router(state.clone());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(SupplierSim { addr, state, task })
    }

    /// `http://127.0.0.1:PORT`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The listening address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Ships every accepted, unshipped, uncancelled order; returns how many.
    pub fn ship_all(&self) -> usize {
        ship_all(&self.state)
    }

    /// Orders received, counted once per idempotency key.
    pub fn order_count(&self) -> usize {
        self.state.inner.lock().map(|i| i.orders.len()).unwrap_or(0)
    }

    /// Requests served so far.
    pub fn request_count(&self) -> u64 {
        self.state.inner.lock().map(|i| i.requests).unwrap_or(0)
    }

    /// Requests that reused an idempotency key with a different body.
    pub fn key_conflicts(&self) -> u64 {
        self.state.inner.lock().map(|i| i.key_conflicts).unwrap_or(0)
    }

    /// Submits answered from an earlier order (a retried request).
    pub fn replays(&self) -> u64 {
        self.state.inner.lock().map(|i| i.replays).unwrap_or(0)
    }

    /// Delays every answer by `ms` (a slow supplier; 0 = none).
    pub fn set_latency(&self, ms: u64) {
        if let Ok(mut i) = self.state.inner.lock() {
            i.latency_ms = ms;
        }
    }

    /// Takes orders at once but answers `ms` later (0 = at once): the case
    /// where a timed-out submit did reach the supplier.
    pub fn set_answer_delay(&self, ms: u64) {
        if let Ok(mut i) = self.state.inner.lock() {
            i.answer_delay_ms = ms;
        }
    }

    /// Every order received: (our external id, its items (line id, qty, status)).
    pub fn orders(&self) -> Vec<(String, OrderItems)> {
        let Ok(i) = self.state.inner.lock() else { return vec![] };
        i.orders
            .iter()
            .map(|o| {
                (
                    o.external_id.clone(),
                    o.items.iter().map(|it| (it.line_id.clone(), it.qty, it.status.to_string())).collect(),
                )
            })
            .collect()
    }

    /// Tracking numbers issued: (our external id, tracking number).
    pub fn tracking_numbers(&self) -> Vec<(String, String)> {
        let Ok(i) = self.state.inner.lock() else { return vec![] };
        i.events
            .iter()
            .filter(|e| e["type"] == "shipped")
            .flat_map(|e| {
                let ext = e["external_id"].as_str().unwrap_or("").to_string();
                e["packages"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(move |p| (ext.clone(), p["tracking_no"].as_str().unwrap_or("").to_string()))
            })
            .collect()
    }

    /// Answers the next `n` API requests with `status`.
    pub fn fail_next(&self, n: u32, status: u16) {
        if let Ok(mut i) = self.state.inner.lock() {
            i.fail_next = Some((n, status));
        }
    }
}

impl Sim {
    /// Canonical JSON → this supplier's dialect (outgoing).
    fn theirs(&self, v: Value) -> Value {
        rename(v, &|k| self.config.field_names.get(k).cloned(), &|w| self.config.status_words.get(w).cloned())
    }

    /// This supplier's dialect → canonical JSON (incoming).
    fn ours(&self, v: Value) -> Value {
        let back = |k: &str| self.config.field_names.iter().find(|(_, t)| t.as_str() == k).map(|(c, _)| c.clone());
        rename(v, &back, &|_| None)
    }

    fn reply(&self, status: StatusCode, v: Value) -> Response {
        (status, Json(self.theirs(v))).into_response()
    }
}

/// Renames keys (at any depth) and the values of `status`/`type` keys.
fn rename(v: Value, key: &dyn Fn(&str) -> Option<String>, word: &dyn Fn(&str) -> Option<String>) -> Value {
    match v {
        Value::Object(obj) => Value::Object(
            obj.into_iter()
                .map(|(k, v)| {
                    let v = match (&*k, v) {
                        ("status" | "type", Value::String(w)) => Value::String(word(&w).unwrap_or(w)),
                        (_, v) => rename(v, key, word),
                    };
                    (key(&k).unwrap_or(k), v)
                })
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.into_iter().map(|v| rename(v, key, word)).collect()),
        other => other,
    }
}

fn router(state: Arc<Sim>) -> Router {
    Router::new()
        .route("/orders", post(create_order))
        .route("/orders/{id}/cancel", post(cancel_order))
        .route("/shipments", get(list_events))
        .route("/stock", get(stock))
        .route("/_sim/ship", post(ship))
        .route("/redirect", get(redirect))
        .route("/big", get(big))
        .route("/slow", get(slow))
        .with_state(state)
}

type Reply = Result<Response, SimError>;

/// An error answer of the simulated supplier.
struct SimError {
    status: StatusCode,
    message: String,
    retry_after: bool,
}

impl IntoResponse for SimError {
    fn into_response(self) -> Response {
        let mut resp = (self.status, Json(json!({ "error": self.message }))).into_response();
        if self.retry_after {
            resp.headers_mut().insert(header::RETRY_AFTER, header::HeaderValue::from_static("1"));
        }
        resp
    }
}

fn error(status: StatusCode, msg: impl Into<String>) -> SimError {
    SimError { status, message: msg.into(), retry_after: false }
}

/// Auth and fault injection, shared by the API endpoints.
async fn gate(sim: &Sim, headers: &HeaderMap) -> Result<(), SimError> {
    let latency = sim.inner.lock().map(|i| i.latency_ms).unwrap_or(0);
    if latency > 0 {
        tokio::time::sleep(Duration::from_millis(latency)).await;
    }
    let mut inner = sim.inner.lock().map_err(|_| error(StatusCode::INTERNAL_SERVER_ERROR, "poisoned"))?;
    inner.requests += 1;
    if let Some((n, status)) = inner.fail_next {
        inner.fail_next = if n > 1 { Some((n - 1, status)) } else { None };
        let code = StatusCode::from_u16(status).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
        return Err(SimError { status: code, message: "injected fault".into(), retry_after: true });
    }
    drop(inner);
    if let Some(token) = &sim.config.token {
        let expected = format!("Bearer {token}");
        if headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()) != Some(expected.as_str()) {
            return Err(error(StatusCode::UNAUTHORIZED, "missing or wrong bearer token"));
        }
    }
    Ok(())
}

#[derive(Deserialize)]
struct OrderIn {
    external_id: String,
    items: Vec<ItemIn>,
    ship_to: ShipTo,
}

#[derive(Deserialize)]
struct ItemIn {
    line_id: String,
    sku: String,
    qty: u32,
    unit_price: String,
}

#[derive(Deserialize)]
struct ShipTo {
    name: String,
    phone: String,
    province: String,
    city: String,
    address: String,
}

async fn create_order(State(sim): State<Arc<Sim>>, headers: HeaderMap, body: axum::body::Bytes) -> Reply {
    gate(&sim, &headers).await?;
    let (status, answer, delay) = take_order(&sim, &headers, &body)?;
    answer_after(delay).await;
    Ok(sim.reply(status, answer))
}

/// Takes (or replays) an order; answers its status, body and how long to
/// hold the answer back.
fn take_order(sim: &Sim, headers: &HeaderMap, body: &[u8]) -> Result<(StatusCode, Value, u64), SimError> {
    let order: Value = serde_json::from_slice(body)
        .map_err(|e| error(StatusCode::UNPROCESSABLE_ENTITY, format!("bad order JSON: {e}")))?;
    let order: OrderIn = serde_json::from_value(sim.ours(order))
        .map_err(|e| error(StatusCode::UNPROCESSABLE_ENTITY, format!("bad order: {e}")))?;
    for (field, v) in [
        ("ship_to.name", &order.ship_to.name),
        ("ship_to.phone", &order.ship_to.phone),
        ("ship_to.province", &order.ship_to.province),
        ("ship_to.city", &order.ship_to.city),
        ("ship_to.address", &order.ship_to.address),
    ] {
        if v.trim().is_empty() {
            return Err(error(StatusCode::UNPROCESSABLE_ENTITY, format!("{field} is required")));
        }
    }
    if order.items.iter().any(|i| i.qty == 0 || i.unit_price.parse::<f64>().is_err()) {
        return Err(error(StatusCode::UNPROCESSABLE_ENTITY, "every item needs qty > 0 and a numeric unit_price"));
    }
    let key = headers
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
        .unwrap_or_else(|| order.external_id.clone());
    let digest: [u8; 32] = sha2::Sha256::digest(body).into();
    let mut inner = sim.inner.lock().map_err(|_| error(StatusCode::INTERNAL_SERVER_ERROR, "poisoned"))?;
    if let Some(&idx) = inner.by_key.get(&key) {
        // The same key with another body is a client bug, refused (as
        // Stripe-style APIs do); the same body is a replay: same answer,
        // no second order.
        if inner.key_bodies.get(&key).is_some_and(|d| *d != digest) {
            inner.key_conflicts += 1;
            return Err(error(
                StatusCode::UNPROCESSABLE_ENTITY,
                format!("idempotency key `{key}` was used with a different request body"),
            ));
        }
        inner.replays += 1;
        return Ok((StatusCode::OK, order_json(&inner.orders[idx]), inner.answer_delay_ms));
    }
    inner.key_bodies.insert(key.clone(), digest);
    let order_id = format!("SUP-{:06}", inner.orders.len() + 1);
    let mut items = Vec::with_capacity(order.items.len());
    for i in order.items {
        let status = if i.sku.starts_with(&sim.config.unknown_prefix) {
            "rejected"
        } else {
            let stock = inner.stock.entry(i.sku.clone()).or_insert(sim.config.default_stock);
            if *stock >= i.qty {
                *stock -= i.qty;
                "accepted"
            } else {
                "backordered"
            }
        };
        items.push(SimItem { line_id: i.line_id, sku: i.sku, qty: i.qty, status });
    }
    let o = SimOrder { order_id, external_id: order.external_id, items, shipped: false, cancelled: false };
    let answer = order_json(&o);
    let idx = inner.orders.len();
    inner.orders.push(o);
    inner.by_key.insert(key, idx);
    Ok((StatusCode::CREATED, answer, inner.answer_delay_ms))
}

async fn answer_after(ms: u64) {
    if ms > 0 {
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }
}

fn order_json(o: &SimOrder) -> Value {
    json!({
        "order_id": o.order_id,
        "external_id": o.external_id,
        "items": o.items.iter().map(|i| {
            let mut v = json!({ "line_id": i.line_id, "status": i.status });
            if i.status == "rejected" {
                v["reason"] = json!(format!("unknown sku {}", i.sku));
            }
            v
        }).collect::<Vec<_>>(),
    })
}

#[derive(Deserialize)]
struct Since {
    #[serde(default)]
    since: String,
    #[serde(default)]
    limit: Option<usize>,
}

async fn list_events(State(sim): State<Arc<Sim>>, headers: HeaderMap, Query(q): Query<Since>) -> Reply {
    gate(&sim, &headers).await?;
    let inner = sim.inner.lock().map_err(|_| error(StatusCode::INTERNAL_SERVER_ERROR, "poisoned"))?;
    let from: usize = if q.since.is_empty() {
        0
    } else {
        q.since.parse().map_err(|_| error(StatusCode::BAD_REQUEST, format!("bad cursor `{}`", q.since)))?
    };
    let limit = q.limit.unwrap_or(100).clamp(1, 1000);
    let page: Vec<Value> = inner.events.iter().skip(from).take(limit).cloned().collect();
    let next = from + page.len();
    Ok(sim.reply(StatusCode::OK, json!({ "events": page, "next": next.to_string() })))
}

#[derive(Deserialize)]
struct Skus {
    #[serde(default)]
    skus: String,
}

async fn stock(State(sim): State<Arc<Sim>>, headers: HeaderMap, Query(q): Query<Skus>) -> Reply {
    gate(&sim, &headers).await?;
    let inner = sim.inner.lock().map_err(|_| error(StatusCode::INTERNAL_SERVER_ERROR, "poisoned"))?;
    let items: Vec<Value> = q
        .skus
        .split(',')
        .filter(|s| !s.is_empty() && !s.starts_with(&sim.config.unknown_prefix))
        .map(|s| json!({ "sku": s, "available": inner.stock.get(s).copied().unwrap_or(sim.config.default_stock) }))
        .collect();
    Ok(sim.reply(StatusCode::OK, json!({ "items": items })))
}

async fn cancel_order(State(sim): State<Arc<Sim>>, headers: HeaderMap, Path(id): Path<String>) -> Reply {
    gate(&sim, &headers).await?;
    let mut inner = sim.inner.lock().map_err(|_| error(StatusCode::INTERNAL_SERVER_ERROR, "poisoned"))?;
    let Some(pos) = inner.orders.iter().position(|o| o.order_id == id) else {
        return Err(error(StatusCode::NOT_FOUND, format!("no order {id}")));
    };
    let o = &mut inner.orders[pos];
    if o.shipped {
        return Ok(sim.reply(StatusCode::OK, json!({ "status": "refused", "reason": "already shipped" })));
    }
    o.cancelled = true;
    let ev = json!({ "type": "cancelled", "order_id": o.order_id, "external_id": o.external_id, "reason": "cancelled on request" });
    inner.events.push(ev);
    Ok(sim.reply(StatusCode::OK, json!({ "status": "cancelled" })))
}

async fn ship(State(sim): State<Arc<Sim>>) -> Json<Value> {
    Json(json!({ "shipped": ship_all(&sim) }))
}

fn ship_all(sim: &Sim) -> usize {
    let Ok(mut inner) = sim.inner.lock() else { return 0 };
    let mut shipped = Vec::new();
    for o in inner.orders.iter_mut().filter(|o| !o.shipped && !o.cancelled) {
        let lines: Vec<Value> = o
            .items
            .iter()
            .filter(|i| i.status == "accepted")
            .map(|i| json!({ "line_id": i.line_id, "qty": i.qty }))
            .collect();
        if lines.is_empty() {
            continue;
        }
        o.shipped = true;
        // Carriers' numbers are unique across all their customers, so
        // across every simulator in this process too.
        let n = TRACKING.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        shipped.push(json!({
            "type": "shipped",
            "order_id": o.order_id,
            "external_id": o.external_id,
            "packages": [{
                "carrier": sim.config.carrier,
                "tracking_no": format!("{}{:012}", sim.config.carrier, 770_000_000_000u64 + n),
                "items": lines,
            }],
        }));
    }
    let n = shipped.len();
    inner.events.extend(shipped);
    n
}

#[derive(Deserialize)]
struct To {
    to: String,
}

async fn redirect(Query(q): Query<To>) -> Response {
    (StatusCode::FOUND, [(header::LOCATION, q.to)]).into_response()
}

#[derive(Deserialize)]
struct Size {
    bytes: u64,
}

/// Streams `bytes` bytes without a Content-Length, so only a streaming cap
/// can stop it.
async fn big(Query(q): Query<Size>) -> Response {
    const CHUNK: usize = 64 << 10;
    let total = q.bytes;
    let stream = futures::stream::unfold(0u64, move |sent| async move {
        if sent >= total {
            return None;
        }
        let n = (total - sent).min(CHUNK as u64) as usize;
        Some((Ok::<_, std::io::Error>(bytes::Bytes::from(vec![b'z'; n])), sent + n as u64))
    });
    Response::new(Body::from_stream(stream))
}

#[derive(Deserialize)]
struct Ms {
    ms: u64,
}

async fn slow(Query(q): Query<Ms>) -> &'static str {
    tokio::time::sleep(Duration::from_millis(q.ms)).await;
    "slow"
}
