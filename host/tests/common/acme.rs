//! ACME's warehouse, as the outside adapter (`tests/fixtures/outside-adapter`)
//! sees it: OAuth2 client credentials at `/oauth/token`, XML orders at
//! `/api/orders` (idempotent on the `Idempotency-Key` header; a key reused
//! with another body is refused), and shipments pushed as XML webhooks
//! signed `X-Acme-Signature: sha256=<hex HMAC-SHA256(secret, body)>`.
//! Strict: a missing or revoked token is 401, a body that is not XML is 415.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

pub const CLIENT_ID: &str = "daifa-client";
pub const CLIENT_SECRET: &str = "acme-client-secret-7f3a";
pub const WEBHOOK_SECRET: &str = "acme-webhook-key-19c2";

#[derive(Default)]
struct State_ {
    tokens: Vec<String>,
    grants: u32,
    unauthorized: u32,
    replays: u32,
    key_conflicts: u32,
    /// Revoke every token once this many orders are taken.
    revoke_at: Option<usize>,
    /// (order id, our PO number, key, body digest, lines (id, qty), shipped)
    orders: Vec<AcmeOrder>,
}

#[derive(Clone)]
pub struct AcmeOrder {
    pub order_id: String,
    pub reference: String,
    key: String,
    digest: [u8; 32],
    pub lines: Vec<(String, u32)>,
    pub tracking: Option<String>,
}

#[derive(Clone)]
pub struct Acme {
    state: Arc<Mutex<State_>>,
    pub base_url: String,
}

impl Acme {
    pub async fn start() -> Acme {
        let state = Arc::new(Mutex::new(State_::default()));
        let app = Router::new()
            .route("/oauth/token", post(grant))
            .route("/api/orders", post(create))
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind ACME");
        let base_url = format!("http://{}", listener.local_addr().expect("addr"));
        tokio::spawn(async move { axum::serve(listener, app).await });
        Acme { state, base_url }
    }

    /// Every token issued so far stops working (as a rotation would) right
    /// after the `n`th order is taken: at a known point of the flow, never
    /// after the last order (a test that revoked when it noticed a few
    /// orders could find every order already sent).
    pub fn revoke_after_orders(&self, n: usize) {
        self.state.lock().unwrap().revoke_at = Some(n);
    }

    /// (tokens granted, requests refused 401, replays, key conflicts)
    pub fn counts(&self) -> (u32, u32, u32, u32) {
        let s = self.state.lock().unwrap();
        (s.grants, s.unauthorized, s.replays, s.key_conflicts)
    }

    pub fn orders(&self) -> Vec<AcmeOrder> {
        self.state.lock().unwrap().orders.clone()
    }

    /// Ships every order not yet shipped, in full, pushing each shipment to
    /// `webhook` signed with `secret`; answers the HTTP statuses received.
    pub async fn ship_all(&self, webhook: &str, secret: &str) -> Vec<u16> {
        let to_ship: Vec<(usize, AcmeOrder)> = {
            let s = self.state.lock().unwrap();
            s.orders.iter().cloned().enumerate().filter(|(_, o)| o.tracking.is_none()).collect()
        };
        let http = reqwest::Client::new();
        let mut statuses = Vec::new();
        for (i, o) in to_ship {
            let tracking = format!("ACME{:08}", i + 1);
            let body = shipment_xml(&o, &tracking);
            let r = http
                .post(webhook)
                .header("content-type", "application/xml")
                .header("x-acme-signature", sign(secret, body.as_bytes()))
                .body(body)
                .send()
                .await;
            let status = r.map_or(0, |r| r.status().as_u16());
            if status == 200 {
                self.state.lock().unwrap().orders[i].tracking = Some(tracking);
            }
            statuses.push(status);
        }
        statuses
    }
}

pub fn shipment_xml(o: &AcmeOrder, tracking: &str) -> String {
    let lines: String = o.lines.iter().map(|(id, qty)| format!("<line id=\"{id}\" qty=\"{qty}\"/>")).collect();
    format!(
        "<?xml version=\"1.0\"?><shipment><orderId>{}</orderId><reference>{}</reference><carrier>SF</carrier>\
         <trackingNumber>{tracking}</trackingNumber><lines>{lines}</lines></shipment>",
        o.order_id, o.reference
    )
}

pub fn sign(secret: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("any key length");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

async fn grant(State(st): State<Arc<Mutex<State_>>>, body: String) -> Response {
    let form: HashMap<String, String> = url::form_urlencoded::parse(body.as_bytes()).into_owned().collect();
    let ok = form.get("grant_type").map(String::as_str) == Some("client_credentials")
        && form.get("client_id").map(String::as_str) == Some(CLIENT_ID)
        && form.get("client_secret").map(String::as_str) == Some(CLIENT_SECRET);
    if !ok {
        return (StatusCode::UNAUTHORIZED, axum::Json(serde_json::json!({ "error": "invalid_client" })))
            .into_response();
    }
    let mut s = st.lock().unwrap();
    s.grants += 1;
    let token = format!("acme-token-{}", s.grants);
    s.tokens.push(token.clone());
    axum::Json(serde_json::json!({ "access_token": token, "token_type": "Bearer", "expires_in": 3600 })).into_response()
}

fn xml_error(status: StatusCode, what: &str) -> Response {
    (status, format!("<error>{what}</error>")).into_response()
}

async fn create(State(st): State<Arc<Mutex<State_>>>, headers: HeaderMap, body: String) -> Response {
    let header = |k: &str| headers.get(k).and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
    let mut s = st.lock().unwrap();
    let bearer = header("authorization");
    if !bearer.strip_prefix("Bearer ").is_some_and(|t| s.tokens.iter().any(|x| x == t)) {
        s.unauthorized += 1;
        return xml_error(StatusCode::UNAUTHORIZED, "invalid_token");
    }
    if !header("content-type").starts_with("application/xml") || !body.contains("<order>") {
        return xml_error(StatusCode::UNSUPPORTED_MEDIA_TYPE, "expected an XML <order>");
    }
    let key = header("idempotency-key");
    if key.is_empty() {
        return xml_error(StatusCode::BAD_REQUEST, "Idempotency-Key is required");
    }
    let digest: [u8; 32] = Sha256::digest(body.as_bytes()).into();
    if let Some(o) = s.orders.iter().find(|o| o.key == key).cloned() {
        if o.digest != digest {
            s.key_conflicts += 1;
            return xml_error(StatusCode::UNPROCESSABLE_ENTITY, "Idempotency-Key reused with another order");
        }
        s.replays += 1;
        return (StatusCode::OK, ack(&o)).into_response();
    }
    let Some(reference) = between(&body, "<reference>", "</reference>") else {
        return xml_error(StatusCode::BAD_REQUEST, "reference is required");
    };
    let mut lines = Vec::new();
    for chunk in body.split("<line ").skip(1) {
        let attr = |name: &str| between(chunk, &format!("{name}=\""), "\"");
        let (Some(id), Some(qty)) = (attr("id"), attr("qty").and_then(|q| q.parse::<u32>().ok())) else {
            return xml_error(StatusCode::BAD_REQUEST, "every line needs id and a whole qty");
        };
        lines.push((id, qty));
    }
    if lines.is_empty() {
        return xml_error(StatusCode::BAD_REQUEST, "an order needs lines");
    }
    let o = AcmeOrder {
        order_id: format!("ACME-{:06}", s.orders.len() + 1),
        reference,
        key,
        digest,
        lines,
        tracking: None,
    };
    s.orders.push(o.clone());
    if s.revoke_at == Some(s.orders.len()) {
        s.tokens.clear();
        s.revoke_at = None;
    }
    (StatusCode::CREATED, ack(&o)).into_response()
}

fn ack(o: &AcmeOrder) -> String {
    let lines: String = o.lines.iter().map(|(id, _)| format!("<line id=\"{id}\" status=\"accepted\"/>")).collect();
    format!("<?xml version=\"1.0\"?><orderAck><orderId>{}</orderId>{lines}</orderAck>", o.order_id)
}

fn between(s: &str, a: &str, b: &str) -> Option<String> {
    let i = s.find(a)? + a.len();
    let j = s[i..].find(b)? + i;
    Some(s[i..j].to_string())
}
