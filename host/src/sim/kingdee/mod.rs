//! A Kingdee K3Cloud WebAPI simulator on 127.0.0.1, faithful to the wire
//! protocol: `{ServerUrl}/{Service}.common.kdsvc` POSTs, the three request
//! body shapes, session cookies and signed headers, ResponseStatus envelopes
//! with MsgCodes, errors inside query arrays, the TopRowCount quirk. It holds
//! SAL_SaleOrder, PUR_PurchaseOrder and SAL_OUTSTOCK, generates realistic
//! orders, and injects faults on demand.

mod data;
pub mod filter;

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use base64::Engine as _;
use serde_json::{Value, json};

pub use data::{SimLine, SimSaleOrder};

use crate::erp::kingdee::protocol::SESSION_LOST;
use crate::erp::kingdee::sign::{self, AppCredentials};

/// Faults to inject; all off by default.
#[derive(Debug, Clone, Default)]
pub struct Faults {
    /// Drop every session once this many authenticated requests were served.
    pub expire_sessions_after: Option<u64>,
    /// Answer the next N writes with a network-control conflict (MsgCode 13).
    pub conflict_next_writes: u32,
    /// Sleep this long before every answer.
    pub slow_ms: u64,
    /// After the Nth SAL_SaleOrder query, modify this many orders (and add
    /// as many new ones), as users would while a scan is under way.
    pub modify_during_scan: Option<(u64, usize)>,
    /// Refuse every signature (credentials revoked).
    pub reject_signatures: bool,
    /// Carry out the next N writes, then answer 502 as if the network lost
    /// the reply (the client cannot know the write happened).
    pub lose_next_write_answers: u32,
}

/// The simulator's settings.
#[derive(Debug, Clone)]
pub struct KingdeeSimConfig {
    pub app: AppCredentials,
    /// ValidateUser password.
    pub password: String,
    /// The ERP clock's offset from UTC, seconds (China: 8 h), plus any skew.
    pub clock_offset_secs: i64,
    pub seed: u64,
}

impl Default for KingdeeSimConfig {
    fn default() -> Self {
        KingdeeSimConfig {
            app: AppCredentials {
                acct_id: "5db25ac8d2b819".into(),
                user_name: "webapi".into(),
                app_id: "204399_72epSbtEQMC92Vwt2d3LRa9LRqSc1tqJ".into(),
                app_secret: "fb7d46647ac346dbb5fcd45b65512a45".into(),
                lcid: 2052,
                org_num: 0,
            },
            password: "888888".into(),
            clock_offset_secs: 8 * 3600,
            seed: 7,
        }
    }
}

/// Everything the simulated ERP holds.
#[derive(Default)]
pub struct SimState {
    pub sale_orders: Vec<SimSaleOrder>,
    pub purchase_orders: Vec<Value>,
    pub outstocks: Vec<Value>,
    sessions: HashSet<String>,
    next_fid: i64,
    next_entry: i64,
    next_doc: i64,
    pub faults: Faults,
    pub authed_requests: u64,
    pub sale_order_queries: u64,
    pub requests: u64,
    /// Last modification stamp handed out, to keep them strictly increasing.
    last_stamp_ms: i64,
    rng: u64,
}

struct Sim {
    cfg: KingdeeSimConfig,
    state: Mutex<SimState>,
}

/// A running simulator; stops when dropped.
pub struct KingdeeSim {
    addr: SocketAddr,
    sim: Arc<Sim>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for KingdeeSim {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl KingdeeSim {
    /// Starts on `127.0.0.1:port` (0 = any free port).
    pub async fn start(cfg: KingdeeSimConfig, port: u16) -> std::io::Result<KingdeeSim> {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
        let addr = listener.local_addr()?;
        let state = SimState { next_fid: 100_000, next_entry: 500_000, rng: cfg.seed.max(1), ..Default::default() };
        let sim = Arc::new(Sim { cfg, state: Mutex::new(state) });
        let app = Router::new().route("/{*path}", post(handle)).with_state(sim.clone());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(KingdeeSim { addr, sim, task })
    }

    /// `http://127.0.0.1:PORT/k3cloud/`
    pub fn server_url(&self) -> String {
        format!("http://{}/k3cloud/", self.addr)
    }

    pub fn credentials(&self) -> AppCredentials {
        self.sim.cfg.app.clone()
    }

    /// Runs `f` on the simulator's data (inspect, edit, inject faults).
    pub fn with<R>(&self, f: impl FnOnce(&mut SimState) -> R) -> R {
        let mut s = self.sim.state.lock().unwrap_or_else(|e| e.into_inner());
        f(&mut s)
    }

    /// Adds `n` realistic approved drop-ship orders; returns their FIDs.
    pub fn generate(&self, n: usize) -> Vec<i64> {
        let offset = self.sim.cfg.clock_offset_secs;
        self.with(|s| (0..n).map(|_| s.new_order(offset)).collect())
    }

    /// Changes an order as a user would, stamping a new FModifyDate.
    pub fn modify(&self, fid: i64, f: impl FnOnce(&mut SimSaleOrder)) -> bool {
        let offset = self.sim.cfg.clock_offset_secs;
        self.with(|s| {
            let stamp = s.stamp(offset);
            match s.sale_orders.iter_mut().find(|o| o.fid == fid) {
                Some(o) => {
                    f(o);
                    o.modify_date = stamp;
                    true
                }
                None => false,
            }
        })
    }

    /// Invalidates every session now.
    pub fn expire_sessions(&self) {
        self.with(|s| s.sessions.clear());
    }

    /// The ERP's "now" as it would stamp a modification.
    pub fn erp_now(&self) -> String {
        let offset = self.sim.cfg.clock_offset_secs;
        self.with(|s| s.stamp(offset))
    }
}

impl SimState {
    fn next_rand(&mut self) -> u64 {
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        self.rng
    }

    /// A strictly increasing `YYYY-MM-DDTHH:MM:SS.ff` stamp on the ERP clock;
    /// many share a second, like a busy ERP.
    fn stamp(&mut self, offset: i64) -> String {
        let now_ms =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
                + offset * 1000;
        let ms = now_ms.max(self.last_stamp_ms + 10);
        self.last_stamp_ms = ms;
        let secs = ms.div_euclid(1000);
        let base = crate::erp::time::format(secs).replace(' ', "T");
        format!("{base}.{:02}", ms.rem_euclid(1000) / 10)
    }

    fn new_order(&mut self, offset: i64) -> i64 {
        self.next_fid += 1;
        let fid = self.next_fid;
        let seed = self.next_rand();
        let stamp = self.stamp(offset);
        let mut entry = self.next_entry;
        let o = data::generate_order(fid, seed, &stamp, &mut entry);
        self.next_entry = entry;
        self.sale_orders.push(o);
        fid
    }

    fn session_ok(&self, headers: &HeaderMap) -> bool {
        let sid = headers.get("kdservice-sessionid").and_then(|v| v.to_str().ok()).map(str::to_string).or_else(|| {
            headers.get(header::COOKIE).and_then(|v| v.to_str().ok()).and_then(|c| {
                c.split(';').find_map(|kv| kv.trim().strip_prefix("kdservice-sessionid=").map(str::to_string))
            })
        });
        sid.is_some_and(|s| self.sessions.contains(&s))
    }

    fn new_session(&mut self) -> String {
        let sid = format!("{:016x}{:016x}", self.next_rand(), self.next_rand());
        self.sessions.insert(sid.clone());
        sid
    }
}

fn envelope(ok: bool, msg_code: i64, errors: Vec<Value>, entities: Vec<Value>) -> Value {
    json!({ "Result": { "ResponseStatus": {
        "ErrorCode": if ok { Value::Null } else { json!(500) },
        "IsSuccess": ok, "Errors": errors, "SuccessEntitys": entities, "SuccessMessages": [], "MsgCode": msg_code,
    }, "Id": "", "NeedReturnData": [{}] } })
}

fn failure(msg_code: i64, field: Option<&str>, message: &str) -> Value {
    envelope(false, msg_code, vec![json!({ "FieldName": field, "Message": message, "DIndex": 0 })], vec![])
}

fn json_response(v: Value, set_sid: Option<String>) -> Response {
    let mut resp =
        (StatusCode::OK, [(header::CONTENT_TYPE, "application/json; charset=utf-8")], v.to_string()).into_response();
    if let Some(sid) = set_sid
        && let Ok(h) = format!("kdservice-sessionid={sid}; path=/").parse()
    {
        resp.headers_mut().append(header::SET_COOKIE, h);
    }
    resp
}

/// Splits the three body shapes into (form id, data).
fn parse_body(body: &[u8]) -> Result<(Option<String>, Value, Value), String> {
    let v: Value = serde_json::from_slice(body).map_err(|e| format!("request body is not JSON: {e}"))?;
    let as_json = |x: Value| match x {
        Value::String(s) => serde_json::from_str(&s).unwrap_or(Value::String(s)),
        other => other,
    };
    let get = |k: &str| v.get(k).or_else(|| v.get(k.to_ascii_lowercase())).cloned();
    if let Some(params) = get("parameters") {
        let params = as_json(params);
        let arr = params.as_array().cloned().unwrap_or_default();
        return Ok(match arr.len() {
            0 => (None, Value::Null, v.clone()),
            1 => (None, as_json(arr[0].clone()), v.clone()),
            _ => (arr[0].as_str().map(str::to_string), as_json(arr[1].clone()), v.clone()),
        });
    }
    let form = get("formid").or_else(|| get("FormId")).and_then(|f| f.as_str().map(str::to_string));
    let data = get("data").or_else(|| get("Data")).map(as_json).unwrap_or(Value::Null);
    Ok((form, data, v))
}

async fn handle(
    State(sim): State<Arc<Sim>>,
    Path(path): Path<String>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let slow = sim.state.lock().map(|s| s.faults.slow_ms).unwrap_or(0);
    if slow > 0 {
        tokio::time::sleep(Duration::from_millis(slow)).await;
    }
    let lower = path.to_ascii_lowercase();
    let Some(service) = lower.strip_suffix(".common.kdsvc") else {
        return (StatusCode::NOT_FOUND, "not a WebAPI service").into_response();
    };
    let op = service.rsplit('.').next().unwrap_or_default().to_string();
    let (form, data, raw) = match parse_body(&body) {
        Ok(x) => x,
        Err(e) => return json_response(failure(8, None, &e), None),
    };
    let mut state = match sim.state.lock() {
        Ok(s) => s,
        Err(_) => return (StatusCode::INTERNAL_SERVER_ERROR, "poisoned").into_response(),
    };
    state.requests += 1;
    if service.contains("authservice") {
        return login(&sim.cfg, &mut state, &op, &data, &raw);
    }

    // Authentication: a live session, or valid signed headers (which earn a
    // new session, as the real server does).
    let mut new_sid = None;
    if !state.session_ok(&headers) {
        if !state.faults.reject_signatures && signature_ok(&sim.cfg.app, uri.path(), &headers) {
            new_sid = Some(state.new_session());
        } else {
            let lost = failure(1, None, SESSION_LOST);
            return json_response(if op == "executebillquery" { json!([[lost]]) } else { lost }, None);
        }
    }
    state.authed_requests += 1;
    if let Some(n) = state.faults.expire_sessions_after
        && state.authed_requests >= n
    {
        state.faults.expire_sessions_after = None;
        state.sessions.clear();
    }
    let offset = sim.cfg.clock_offset_secs;
    let answer = match op.as_str() {
        "executebillquery" | "billquery" => data::query(&mut state, &data, op == "billquery", offset),
        "save" | "push" | "submit" | "audit" if state.faults.conflict_next_writes > 0 => {
            state.faults.conflict_next_writes -= 1;
            failure(13, None, "单据正在进行其它业务操作，业务操作之间存在冲突，请稍候再使用。")
        }
        "save" => data::save(&mut state, form.as_deref(), &data),
        "submit" => data::set_status(&mut state, form.as_deref(), &data, "A", "B"),
        "audit" => data::set_status(&mut state, form.as_deref(), &data, "B", "C"),
        "push" => data::push(&mut state, form.as_deref(), &data),
        "view" => data::view(&state, form.as_deref(), &data),
        other => failure(4, None, &format!("simulator does not implement {other}")),
    };
    if matches!(op.as_str(), "save" | "push" | "submit" | "audit") && state.faults.lose_next_write_answers > 0 {
        state.faults.lose_next_write_answers -= 1;
        return (StatusCode::BAD_GATEWAY, "upstream connection reset").into_response();
    }
    json_response(answer, new_sid)
}

fn signature_ok(app: &AppCredentials, path: &str, h: &HeaderMap) -> bool {
    let get = |k: &str| h.get(k).and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
    let app_key = get("x-kd-appkey");
    if app_key != app.app_id {
        return false;
    }
    let Ok(data) = base64::engine::general_purpose::STANDARD.decode(get("x-kd-appdata")) else { return false };
    let data = String::from_utf8_lossy(&data).to_string();
    if data.split(',').next() != Some(app.acct_id.as_str()) {
        return false;
    }
    if get("x-kd-signature") != sign::hmac_b64_hex(&format!("{app_key}{data}"), &app.app_secret) {
        return false;
    }
    let ts = get("x-api-timestamp");
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64);
    if ts.parse::<i64>().map_or(true, |t| (t - now).abs() > 900) {
        return false;
    }
    let secret = sign::decode_app_secret(app.app_id.split_once('_').map_or("", |(_, s)| s));
    get("x-api-signature") == sign::api_signature(&sign::encode_path(path), &ts, &secret)
}

fn login(cfg: &KingdeeSimConfig, state: &mut SimState, op: &str, data: &Value, raw: &Value) -> Response {
    let params = raw.get("parameters").cloned().map(|p| match p {
        Value::String(s) => serde_json::from_str(&s).unwrap_or(Value::Null),
        v => v,
    });
    let arg = |i: usize, key: &str| -> String {
        params
            .as_ref()
            .and_then(|p| p.get(i))
            .or_else(|| data.get(key))
            .or_else(|| raw.get(key))
            .map(|v| v.as_str().map(str::to_string).unwrap_or_else(|| v.to_string()))
            .unwrap_or_default()
    };
    let ok = match op {
        "loginbyappsecret" => {
            arg(0, "acctid") == cfg.app.acct_id
                && arg(1, "username") == cfg.app.user_name
                && arg(2, "appid") == cfg.app.app_id
                && arg(3, "appsecret") == cfg.app.app_secret
        }
        "validateuser" => {
            arg(0, "acctid") == cfg.app.acct_id
                && arg(1, "username") == cfg.app.user_name
                && arg(2, "password") == cfg.password
        }
        _ => false,
    } && !state.faults.reject_signatures;
    if !ok {
        return json_response(
            json!({ "Message": "用户名或密码错误！", "LoginResultType": -1, "Context": null, "KDSVCSessionId": null, "IsSuccessByAPI": false }),
            None,
        );
    }
    let sid = state.new_session();
    json_response(
        json!({ "Message": null, "LoginResultType": 1, "Context": { "SessionId": sid, "UserToken": sid, "UserName": cfg.app.user_name },
                "KDSVCSessionId": sid, "IsSuccessByAPI": true }),
        Some(sid),
    )
}

/// Distinct FIDs of sale orders matching a filter (for tests).
pub fn approved_dropship_fids(state: &SimState) -> HashSet<i64> {
    state.sale_orders.iter().filter(|o| o.status == "C" && o.dropship == "1").map(|o| o.fid).collect()
}

/// Index of documents by bill number (for tests).
pub fn bill_numbers(docs: &[Value]) -> HashMap<String, usize> {
    docs.iter()
        .enumerate()
        .filter_map(|(i, d)| d.get("FBillNo").and_then(Value::as_str).map(|n| (n.to_string(), i)))
        .collect()
}
