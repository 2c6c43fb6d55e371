//! A Kingdee K3Cloud WebAPI simulator on 127.0.0.1 that refuses what a real
//! server refuses, with its MsgCodes and messages: `{ServerUrl}/{Service}
//! .common.kdsvc` POSTs in the three body shapes, logins, session cookies
//! and whole-checked signed headers with single-use nonces (`auth`), form
//! metadata with standard and installed custom fields (`forms`), queries
//! with both FilterString forms, the row cap and indexed lookups (`query`),
//! and the document operations with the status machine, approval locks and
//! pushed-quantity control (`ops`). One instance is one company's ERP: ours
//! (sales orders in, purchase orders and outbound documents out) or, with
//! [`KingdeeSimConfig::supplier_company`], a supplier's, where our purchase
//! order becomes its sales order. Faults and clock controls are injectable.

mod auth;
mod data;
mod docs;
pub mod filter;
mod forms;
mod ops;
mod query;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::{Value, json};

pub use auth::{SignError, login_sign};
pub use data::{DROPSHIP_BILL_TYPE, STANDARD_BILL_TYPE, SimLine, SimSaleOrder};
pub use docs::DocTable;
pub use forms::{FORMS, FormMeta};

use crate::erp::kingdee::protocol::SESSION_LOST;
use crate::erp::kingdee::sign::AppCredentials;

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
    /// Answer this share of requests (per mille) with HTTP 503 before doing
    /// anything, as an overloaded IIS does.
    pub fail_per_mille: u32,
}

/// The simulator's settings: which company, who may log in, what the
/// installation has.
#[derive(Debug, Clone)]
pub struct KingdeeSimConfig {
    pub app: AppCredentials,
    /// ValidateUser password.
    pub password: String,
    /// The ERP clock's offset from UTC, seconds (China: 8 h), plus any skew.
    pub clock_offset_secs: i64,
    pub seed: u64,
    /// Custom fields the installation added, by form id.
    pub custom_fields: BTreeMap<String, Vec<String>>,
    /// Most rows one query answers (real servers: 10,000 or less).
    pub row_cap: usize,
    /// Most live sessions (the licence); 0 = no limit.
    pub max_sessions: usize,
    /// Organisation numbers the user may sign for (0 = the default org).
    pub orgs: Vec<String>,
    /// Material numbers of the master data; empty = any is accepted.
    pub materials: HashSet<String>,
    /// Fields the installation lets users change after audit
    /// (`NeedUpDateFields` of only these pass the approval lock).
    pub editable_after_audit: Vec<String>,
    pub data_center_name: String,
}

/// The custom fields daifa's own installation adds.
pub fn daifa_custom_fields() -> BTreeMap<String, Vec<String>> {
    let so = [
        "F_DAIFA_ReceiverName",
        "F_DAIFA_ReceiverPhone",
        "F_DAIFA_Province",
        "F_DAIFA_City",
        "F_DAIFA_District",
        "F_DAIFA_Postcode",
        "F_DAIFA_DropShip",
        "F_DAIFA_Platform",
        "F_DAIFA_Carrier",
        "F_DAIFA_TrackingNo",
    ];
    BTreeMap::from([
        ("SAL_SaleOrder".to_string(), so.iter().map(|s| s.to_string()).collect()),
        ("PUR_PurchaseOrder".to_string(), vec!["F_DAIFA_PoNo".to_string()]),
    ])
}

impl Default for KingdeeSimConfig {
    /// Our ERP with daifa's custom fields installed (the ingester's default
    /// `custom-fields` preset reads them).
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
            custom_fields: daifa_custom_fields(),
            row_cap: 10_000,
            max_sessions: 0,
            orgs: vec!["100".into()],
            materials: HashSet::new(),
            editable_after_audit: Vec::new(),
            data_center_name: "代发演示账套".into(),
        }
    }
}

impl KingdeeSimConfig {
    /// A stock K3Cloud: no custom fields at all (the `standard` preset).
    pub fn stock() -> Self {
        KingdeeSimConfig { custom_fields: BTreeMap::new(), ..Default::default() }
    }

    /// A supplier's own K3Cloud (the second company): another account and
    /// app, no sales orders of ours, a custom field on SAL_SaleOrder for the
    /// buyer's PO number, and the supplier's own material master.
    pub fn supplier_company(materials: impl IntoIterator<Item = String>) -> Self {
        KingdeeSimConfig {
            app: AppCredentials {
                acct_id: "6a3c1e0f9b2d47".into(),
                user_name: "daifa-api".into(),
                app_id: "310522_72epSbtEQMC92Vwt2d3LRa9LRqSc1tqJ".into(),
                app_secret: "0d5e3f1c2b7a4c8e9f60718293a4b5c6".into(),
                lcid: 2052,
                org_num: 0,
            },
            password: "supplier".into(),
            seed: 11,
            custom_fields: BTreeMap::from([("SAL_SaleOrder".to_string(), vec!["F_SUP_CustPoNo".to_string()])]),
            materials: materials.into_iter().collect(),
            data_center_name: "供应商账套".into(),
            ..Default::default()
        }
    }

    /// Custom fields of one form.
    pub fn custom(&self, form: &str) -> Vec<String> {
        self.custom_fields
            .iter()
            .find(|(f, _)| f.eq_ignore_ascii_case(form))
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    }

    /// Whether the split address lives in daifa's custom fields (then
    /// FReceiveAddress holds only the street).
    pub fn daifa_fields(&self) -> bool {
        self.custom("SAL_SaleOrder").iter().any(|f| f == "F_DAIFA_Province")
    }
}

/// Everything the simulated ERP holds.
#[derive(Default)]
pub struct SimState {
    /// Sorted by FID.
    pub sale_orders: Vec<SimSaleOrder>,
    pub purchase_orders: DocTable,
    pub outstocks: DocTable,
    sale_numbers: HashMap<String, i64>,
    /// Each sales-order line's order (FID), as the ERP's entry table has
    /// its own index: a push names lines by entry id. Kept on every line
    /// added; entries of removed lines or orders stay, and a lookup checks
    /// the line is still there.
    entry_fids: HashMap<i64, i64>,
    /// Live sessions and when each was last used (unix seconds).
    sessions: HashMap<String, i64>,
    /// Nonces seen within the signature window, with when.
    nonces: HashMap<String, i64>,
    next_fid: i64,
    next_entry: i64,
    next_doc: i64,
    pub faults: Faults,
    /// Most rows one query answers; starts at the config's `row_cap`.
    pub row_cap: usize,
    pub authed_requests: u64,
    pub sale_order_queries: u64,
    pub requests: u64,
    /// Documents a query looked at (index lookups keep this small).
    pub rows_examined: u64,
    /// The last 100 signed requests refused, by reason.
    pub refused_signatures: Vec<SignError>,
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
        let state = SimState {
            next_fid: 100_000,
            next_entry: 500_000,
            rng: cfg.seed.max(1),
            row_cap: cfg.row_cap,
            ..Default::default()
        };
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
            match s.sale_orders.binary_search_by_key(&fid, |o| o.fid).ok().map(|i| &mut s.sale_orders[i]) {
                Some(o) => {
                    f(o);
                    o.modify_date = stamp;
                    true
                }
                None => false,
            }
        })
    }

    /// Un-audits and audits again an order, as a reviewer would: a new
    /// FApproveDate, FModifyDate untouched (K3Cloud's audit does not stamp
    /// it). Returns false for an unknown FID.
    pub fn reapprove(&self, fid: i64) -> bool {
        let offset = self.sim.cfg.clock_offset_secs;
        self.with(|s| {
            let stamp = s.stamp(offset);
            match s.sale_orders.binary_search_by_key(&fid, |o| o.fid).ok().map(|i| &mut s.sale_orders[i]) {
                Some(o) => {
                    o.status = "C".into();
                    o.approve_date = Some(stamp);
                    true
                }
                None => false,
            }
        })
    }

    /// The supplier's warehouse ships what is left of sales order
    /// `bill_no` (second-company mode): a SAL_OUTSTOCK pushed from it, with
    /// carrier and tracking number (FCarriageNO), saved and audited through
    /// the same rules as the API. Returns the outbound bill number.
    pub fn ship_sale_order(&self, bill_no: &str, carrier: &str, tracking: &str) -> Result<String, String> {
        let cfg = self.sim.cfg.clone();
        self.with(|s| {
            let pushed = ops::push(
                s,
                &cfg,
                Some("SAL_SaleOrder"),
                &json!({ "Numbers": [bill_no], "TargetFormId": "SAL_OUTSTOCK", "IsEnableDefaultRule": "true" }),
            );
            let status = &pushed["Result"]["ResponseStatus"];
            if status["IsSuccess"] != true {
                return Err(status["Errors"][0]["Message"].as_str().unwrap_or("push failed").to_string());
            }
            let (id, number) =
                (status["SuccessEntitys"][0]["Id"].clone(), status["SuccessEntitys"][0]["Number"].clone());
            let model = json!({ "FID": id, "FCarrierID": { "FNumber": carrier }, "FCarriageNO": tracking });
            let saved =
                ops::save(s, &cfg, Some("SAL_OUTSTOCK"), &json!({ "IsDeleteEntry": "false", "Model": model }), false);
            if saved["Result"]["ResponseStatus"]["IsSuccess"] != true {
                return Err(saved.to_string());
            }
            for op in ["submit", "audit"] {
                ops::operate(s, &cfg, Some("SAL_OUTSTOCK"), op, &json!({ "Numbers": [number] }));
            }
            Ok(number.as_str().unwrap_or_default().to_string())
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
        self.sale_numbers.insert(o.bill_no.clone(), fid);
        self.sale_orders.push(o);
        self.index_sale(self.sale_orders.len() - 1);
        fid
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

/// A request in any of the three body shapes.
struct Req {
    form: Option<String>,
    /// ExcuteOperation's operation code.
    op_number: Option<String>,
    data: Value,
    raw: Value,
}

/// Splits the three body shapes into form id, operation code and data.
fn parse_body(body: &[u8]) -> Result<Req, String> {
    let v: Value = serde_json::from_slice(body).map_err(|e| format!("请求的 JSON 格式不正确：{e}"))?;
    let as_json = |x: Value| match x {
        Value::String(s) => serde_json::from_str(&s).unwrap_or(Value::String(s)),
        other => other,
    };
    let get =
        |k: &str| v.as_object().and_then(|m| m.iter().find(|(x, _)| x.eq_ignore_ascii_case(k)).map(|(_, v)| v.clone()));
    let text = |x: &Value| x.as_str().map(str::to_string);
    if let Some(params) = get("parameters") {
        let arr = as_json(params).as_array().cloned().unwrap_or_default();
        return Ok(match arr.len() {
            0 => Req { form: None, op_number: None, data: Value::Null, raw: v },
            1 => Req { form: None, op_number: None, data: as_json(arr[0].clone()), raw: v },
            2 => Req { form: text(&arr[0]), op_number: None, data: as_json(arr[1].clone()), raw: v },
            _ => Req { form: text(&arr[0]), op_number: text(&arr[1]), data: as_json(arr[2].clone()), raw: v },
        });
    }
    Ok(Req {
        form: get("formid").as_ref().and_then(text),
        op_number: get("opNumber").as_ref().and_then(text),
        data: get("data").map(as_json).unwrap_or(Value::Null),
        raw: v,
    })
}

async fn handle(
    State(sim): State<Arc<Sim>>,
    Path(path): Path<String>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let slow = sim.state.lock().unwrap_or_else(|e| e.into_inner()).faults.slow_ms;
    if slow > 0 {
        tokio::time::sleep(Duration::from_millis(slow)).await;
    }
    let lower = path.to_ascii_lowercase();
    let Some(service) = lower.strip_suffix(".common.kdsvc") else {
        return (StatusCode::NOT_FOUND, "not a WebAPI service").into_response();
    };
    // A bug of the simulator answers like a server exception (MsgCode 4)
    // for that request only; the lock is taken back, not left poisoned.
    let mut state = sim.state.lock().unwrap_or_else(|e| e.into_inner());
    let run = std::panic::AssertUnwindSafe(|| serve_locked(&sim.cfg, &mut state, service, uri.path(), &headers, &body));
    match std::panic::catch_unwind(run) {
        Ok(resp) => resp,
        Err(panic) => {
            let why =
                panic.downcast_ref::<String>().cloned().or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()));
            let mut resp =
                json_response(failure(4, None, &format!("服务器内部异常：{}", why.unwrap_or_default())), None);
            *resp.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
            resp
        }
    }
}

/// One request with the state locked.
fn serve_locked(
    cfg: &KingdeeSimConfig,
    state: &mut SimState,
    service: &str,
    path: &str,
    headers: &HeaderMap,
    body: &[u8],
) -> Response {
    let op = service.rsplit('.').next().unwrap_or_default().to_string();
    state.requests += 1;
    let rate = state.faults.fail_per_mille;
    if rate > 0 && state.next_rand() % 1000 < u64::from(rate) {
        return (StatusCode::SERVICE_UNAVAILABLE, "Service Unavailable").into_response();
    }
    if service.ends_with("accountservice.getdatacenterlist") {
        return json_response(auth::data_centers(cfg), None);
    }
    let req = match parse_body(body) {
        Ok(x) => x,
        Err(e) => return json_response(failure(8, None, &e), None),
    };
    if service.contains("authservice") {
        let (answer, sid) = auth::login(cfg, state, &op, &req.data, &req.raw, headers);
        return json_response(answer, sid);
    }

    // A live session, or signed headers checked whole (which earn a new
    // session, as the real server does).
    let mut new_sid = None;
    if !state.session_ok(headers) {
        // Queries carry errors inside their array.
        let refused = |code: i64, message: &str| {
            let f = failure(code, None, message);
            json_response(if op == "executebillquery" { json!([[f]]) } else { f }, None)
        };
        if state.faults.reject_signatures {
            return refused(1, SESSION_LOST);
        }
        if let Err(e) = state.check_signature(cfg, path, headers) {
            // The last few, as a server log would show them (bounded).
            if state.refused_signatures.len() >= 100 {
                state.refused_signatures.remove(0);
            }
            state.refused_signatures.push(e);
            return refused(1, SESSION_LOST);
        }
        match state.new_session(cfg.max_sessions) {
            Some(sid) => new_sid = Some(sid),
            None => return refused(7, "当前在线用户数已达到许可数上限，请稍后再试"),
        }
    }
    state.authed_requests += 1;
    if let Some(n) = state.faults.expire_sessions_after
        && state.authed_requests >= n
    {
        state.faults.expire_sessions_after = None;
        state.sessions.clear();
    }
    let form = req.form.as_deref();
    let data = &req.data;
    let is_write = matches!(
        op.as_str(),
        "save" | "batchsave" | "draft" | "push" | "submit" | "audit" | "unaudit" | "delete" | "excuteoperation"
    );
    if is_write && state.faults.conflict_next_writes > 0 {
        state.faults.conflict_next_writes -= 1;
        return json_response(
            failure(13, None, "单据正在进行其它业务操作，业务操作之间存在冲突，请稍候再使用。"),
            new_sid,
        );
    }
    let answer = match op.as_str() {
        "executebillquery" | "billquery" => query::query(state, cfg, data, op == "billquery"),
        "save" => ops::save(state, cfg, form, data, false),
        "draft" => ops::save(state, cfg, form, data, true),
        "batchsave" => ops::batch_save(state, cfg, form, data),
        "submit" | "audit" | "unaudit" | "delete" => ops::operate(state, cfg, form, &op, data),
        "excuteoperation" => match req.op_number.as_deref().map(str::to_ascii_lowercase) {
            Some(code) if !code.is_empty() => ops::operate(state, cfg, form, &code, data),
            _ => failure(3, Some("opNumber"), "操作标识为空"),
        },
        "push" => ops::push(state, cfg, form, data),
        "view" => ops::view(state, cfg, form, data),
        "querybusinessinfo" => {
            let id = data.get("FormId").and_then(Value::as_str).or(form).unwrap_or_default();
            match forms::form(id) {
                Some(meta) => {
                    let mut v = envelope(true, 0, vec![], vec![]);
                    v["Result"]["NeedReturnData"] = meta.business_info(&cfg.custom(meta.id));
                    v
                }
                None => failure(4, None, &format!("标识为“{id}”的业务对象不存在，或者被删除")),
            }
        }
        other => failure(4, None, &format!("服务 {other} 不存在")),
    };
    if is_write && state.faults.lose_next_write_answers > 0 {
        state.faults.lose_next_write_answers -= 1;
        return (StatusCode::BAD_GATEWAY, "upstream connection reset").into_response();
    }
    json_response(answer, new_sid)
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
