//! The Kingdee WebAPI client: signed headers or a login session, reads that
//! re-authenticate once on session loss, and writes that never replay
//! blindly (the caller looks for the document first; see `documents`).

use std::sync::Mutex;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::protocol::{AUTH, DYNAMIC_FORM, KingdeeError, SuccessEntity, query_rows, response_status};
use super::sign::{AppCredentials, fresh_nonce, signed_headers};

/// How the client authenticates.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuthMode {
    /// Stateless signed headers on every call (SDK 8.x); the session id the
    /// server hands back is reused while it lasts.
    Signed,
    /// `AuthService.LoginByAppSecret`, then the session cookie.
    AppSecret,
    /// `AuthService.ValidateUser` with a password, then the session cookie.
    Password(String),
}

/// Where and who.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KingdeeConfig {
    /// e.g. `http://erp.example.com/k3cloud/`
    pub server_url: String,
    pub credentials: AppCredentials,
    pub auth: AuthMode,
    /// Per-request timeout (default 30 s).
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
}

fn default_timeout_ms() -> u64 {
    30_000
}

/// An ExecuteBillQuery request (`data`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct BillQuery {
    pub form_id: String,
    pub field_keys: String,
    pub filter_string: String,
    pub order_string: String,
    /// Keep 0: Kingdee treats it as an absolute end row, not a page size.
    pub top_row_count: i64,
    pub start_row: i64,
    pub limit: i64,
    #[serde(default)]
    pub sub_system_id: String,
}

/// The client. Cheap to share behind an `Arc`.
pub struct KingdeeClient {
    http: reqwest::Client,
    cfg: KingdeeConfig,
    session: Mutex<Option<String>>,
    /// The ERP host's clock minus ours, seconds, from the last answer's
    /// `Date` header (what the ingester uses to check the ERP's stamps).
    clock_offset: Mutex<Option<i64>>,
    metrics: Option<std::sync::Arc<crate::metrics::Metrics>>,
}

/// The WebAPI operation a service path names, as a metric label (a fixed
/// set, so a label never carries anything else).
fn service_label(service: &str) -> &'static str {
    const KNOWN: &[&str] = &[
        "ExecuteBillQuery",
        "Save",
        "BatchSave",
        "Submit",
        "Audit",
        "UnAudit",
        "Push",
        "View",
        "Delete",
        "Draft",
        "ValidateUser",
        "LoginByAppSecret",
        "LoginBySign",
        "LoginBySimplePassport",
        "Logout",
    ];
    let op = service.rsplit('.').next().unwrap_or(service);
    KNOWN.iter().find(|k| **k == op).copied().unwrap_or("other")
}

const SESSION_HEADER: &str = "kdservice-sessionid";

impl KingdeeClient {
    pub fn new(cfg: KingdeeConfig) -> Result<KingdeeClient, KingdeeError> {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::Client::builder()
            .timeout(Duration::from_millis(cfg.timeout_ms.max(1)))
            .build()
            .map_err(|e| KingdeeError::Protocol(e.to_string()))?;
        Ok(KingdeeClient { http, cfg, session: Mutex::new(None), clock_offset: Mutex::new(None), metrics: None })
    }

    /// Times every request into `metrics`.
    pub fn with_metrics(mut self, metrics: std::sync::Arc<crate::metrics::Metrics>) -> KingdeeClient {
        self.metrics = Some(metrics);
        self
    }

    /// The ERP host's clock minus ours in seconds, as last measured from an
    /// answer's `Date` header; `None` before the first answer or when the
    /// server sends none.
    pub fn erp_clock_offset(&self) -> Option<i64> {
        self.clock_offset.lock().ok().and_then(|o| *o)
    }

    fn note_server_date(&self, date: &str) {
        let Ok(server) = httpdate::parse_http_date(date) else { return };
        let now = std::time::SystemTime::now();
        // `Date` has one-second resolution and is stamped before the body is
        // sent: round toward zero so that a fast answer reads as 0.
        let offset = match server.duration_since(now) {
            Ok(ahead) => ahead.as_secs() as i64,
            Err(behind) => -(behind.duration().as_secs() as i64),
        };
        if let Ok(mut o) = self.clock_offset.lock() {
            *o = Some(offset);
        }
    }

    fn url(&self, service: &str) -> String {
        format!("{}/{service}.common.kdsvc", self.cfg.server_url.trim_end_matches('/'))
    }

    fn session(&self) -> Option<String> {
        self.session.lock().ok().and_then(|s| s.clone())
    }

    fn set_session(&self, sid: Option<String>) {
        if let Ok(mut s) = self.session.lock() {
            *s = sid;
        }
    }

    /// One POST; transport failures and 5xx are transient.
    async fn post(&self, service: &str, body: &Value) -> Result<String, KingdeeError> {
        let started = std::time::Instant::now();
        let result = self.post_once(service, body).await;
        if let Some(m) = &self.metrics {
            let outcome = match &result {
                Ok(_) => "ok",
                Err(KingdeeError::Transient { .. }) => "transient",
                Err(_) => "error",
            };
            m.erp_request(service_label(service), outcome, started.elapsed().as_secs_f64());
        }
        result
    }

    async fn post_once(&self, service: &str, body: &Value) -> Result<String, KingdeeError> {
        let url = self.url(service);
        let mut req = self
            .http
            .post(&url)
            .header("content-type", "application/json")
            .header("accept-charset", "utf-8")
            .body(body.to_string());
        if let Some(sid) = self.session() {
            req = req.header(SESSION_HEADER, &sid).header("cookie", format!("{SESSION_HEADER}={sid}"));
        }
        if self.cfg.auth == AuthMode::Signed {
            let ts = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
            for (k, v) in signed_headers(&self.cfg.credentials, &url, ts, &fresh_nonce()) {
                req = req.header(k, v);
            }
        }
        let resp =
            req.send().await.map_err(|e| KingdeeError::Transient { code: -1, message: format!("{service}: {e}") })?;
        let status = resp.status();
        if let Some(date) = resp.headers().get("date").and_then(|v| v.to_str().ok()) {
            self.note_server_date(date);
        }
        if let Some(sid) = resp.headers().get_all("set-cookie").iter().filter_map(|v| v.to_str().ok()).find_map(|c| {
            c.strip_prefix(&format!("{SESSION_HEADER}=")).map(|rest| rest.split(';').next().unwrap_or("").to_string())
        }) {
            self.set_session(Some(sid));
        }
        let text = resp.text().await.map_err(|e| KingdeeError::Transient { code: -1, message: e.to_string() })?;
        if status.is_server_error() || status.as_u16() == 429 {
            return Err(KingdeeError::Transient { code: -(status.as_u16() as i64), message: snippet(&text) });
        }
        if !status.is_success() {
            return Err(KingdeeError::Protocol(format!("HTTP {status}: {}", snippet(&text))));
        }
        Ok(text)
    }

    /// Logs in (session modes); a no-op with signed headers.
    pub async fn login(&self) -> Result<(), KingdeeError> {
        let c = &self.cfg.credentials;
        let (service, body) = match &self.cfg.auth {
            AuthMode::Signed => return Ok(()),
            AuthMode::AppSecret => (
                format!("{AUTH}.LoginByAppSecret"),
                json!({ "parameters": [c.acct_id, c.user_name, c.app_id, c.app_secret, c.lcid] }),
            ),
            AuthMode::Password(pw) => (
                format!("{AUTH}.ValidateUser"),
                json!({ "acctid": c.acct_id, "username": c.user_name, "password": pw, "lcid": c.lcid }),
            ),
        };
        self.set_session(None);
        let text = self.post(&service, &body).await?;
        let v: Value = serde_json::from_str(&text).map_err(|e| KingdeeError::Protocol(e.to_string()))?;
        let kind = v.get("LoginResultType").and_then(Value::as_i64).unwrap_or(0);
        // -5 (DealWithForm) is a successful login with a form to show.
        if kind != 1 && kind != -5 {
            let msg = v.get("Message").and_then(Value::as_str).unwrap_or("login refused");
            return Err(KingdeeError::Credentials(format!("login failed (LoginResultType {kind}): {msg}")));
        }
        let sid = v.get("KDSVCSessionId").and_then(Value::as_str).map(str::to_string);
        if sid.is_some() {
            self.set_session(sid);
        }
        Ok(())
    }

    async fn ensure_session(&self) -> Result<(), KingdeeError> {
        if self.cfg.auth != AuthMode::Signed && self.session().is_none() {
            self.login().await?;
        }
        Ok(())
    }

    /// Tells the metrics how the call ended: its error class if it failed
    /// (by MsgCode: credentials, data, other; or transient, session lost,
    /// protocol), and whether the ERP took our credentials (for `/readyz`
    /// and the `erp_credentials` alert).
    fn note_outcome<T>(&self, service: &str, r: &Result<T, KingdeeError>) {
        let Some(m) = &self.metrics else { return };
        if let Err(e) = r {
            let class = match e {
                KingdeeError::Credentials(_) => "credentials",
                KingdeeError::SessionLostDuringWrite(_) => "session_lost",
                KingdeeError::Transient { .. } => "transient",
                KingdeeError::Data { .. } => "data",
                KingdeeError::Other { .. } => "other",
                KingdeeError::Protocol(_) => "protocol",
            };
            m.erp_error(service_label(service), class);
        }
        match r {
            Err(KingdeeError::Credentials(why)) => m.erp_credentials(Some(why)),
            // It could not tell (no answer, or not one we understood).
            Err(
                KingdeeError::Transient { .. } | KingdeeError::Protocol(_) | KingdeeError::SessionLostDuringWrite(_),
            ) => {}
            // It answered the call itself, even if to refuse the data.
            _ => m.erp_credentials(None),
        }
    }

    /// A read: on session loss, authenticate again and retry once.
    async fn read(&self, service: &str, body: &Value) -> Result<String, KingdeeError> {
        let r = self.read_once(service, body).await;
        self.note_outcome(service, &r);
        r
    }

    async fn read_once(&self, service: &str, body: &Value) -> Result<String, KingdeeError> {
        self.ensure_session().await?;
        let text = self.post(service, body).await?;
        if !session_lost(&text) {
            return Ok(text);
        }
        tracing::info!(service, "Kingdee session lost; authenticating again");
        self.set_session(None);
        self.login().await?;
        let text = self.post(service, body).await?;
        if session_lost(&text) {
            return Err(KingdeeError::Credentials("session lost again right after re-authenticating".into()));
        }
        Ok(text)
    }

    /// A write: never replayed here. On session loss the session is renewed
    /// for later calls and the caller is told the outcome is unknown.
    async fn write(&self, op: &str, body: &Value) -> Result<Value, KingdeeError> {
        let r = self.write_once(op, body).await;
        self.note_outcome(op, &r);
        r
    }

    async fn write_once(&self, op: &str, body: &Value) -> Result<Value, KingdeeError> {
        self.ensure_session().await?;
        let service = format!("{DYNAMIC_FORM}.{op}");
        let text = self.post(&service, body).await?;
        if session_lost(&text) {
            self.set_session(None);
            let _ = self.login().await;
            return Err(KingdeeError::SessionLostDuringWrite(op.to_string()));
        }
        let v: Value =
            serde_json::from_str(&text).map_err(|e| KingdeeError::Protocol(format!("{e}: {}", snippet(&text))))?;
        let status = response_status(&v).ok_or_else(|| KingdeeError::Protocol(format!("{op}: no ResponseStatus")))?;
        if !status.is_success {
            return Err(KingdeeError::from_status(&status));
        }
        Ok(v)
    }

    /// ExecuteBillQuery: rows of cells in FieldKeys order.
    pub async fn execute_bill_query(&self, q: &BillQuery) -> Result<Vec<Vec<Value>>, KingdeeError> {
        let text = self.read(&format!("{DYNAMIC_FORM}.ExecuteBillQuery"), &json!({ "data": q })).await?;
        query_rows(&text)
    }

    /// Save (create, or update when the model carries its FID).
    pub async fn save(&self, form_id: &str, data: Value) -> Result<Vec<SuccessEntity>, KingdeeError> {
        let v = self.write("Save", &json!({ "formid": form_id, "data": data })).await?;
        Ok(response_status(&v).map(|s| s.success_entitys).unwrap_or_default())
    }

    /// BatchSave: each model saved on its own. Answers the documents saved
    /// (with their `DIndex`, the model's position) and the errors of the
    /// others; an error for the whole request is an `Err`.
    pub async fn batch_save(
        &self,
        form_id: &str,
        data: Value,
    ) -> Result<(Vec<SuccessEntity>, Vec<super::protocol::KdError>), KingdeeError> {
        self.ensure_session().await?;
        let body = json!({ "formid": form_id, "data": data });
        let text = self.post(&format!("{DYNAMIC_FORM}.BatchSave"), &body).await?;
        if session_lost(&text) {
            self.set_session(None);
            let _ = self.login().await;
            return Err(KingdeeError::SessionLostDuringWrite("BatchSave".into()));
        }
        let v: Value =
            serde_json::from_str(&text).map_err(|e| KingdeeError::Protocol(format!("{e}: {}", snippet(&text))))?;
        let status =
            response_status(&v).ok_or_else(|| KingdeeError::Protocol("BatchSave: no ResponseStatus".into()))?;
        if status.is_success || !status.success_entitys.is_empty() {
            return Ok((status.success_entitys, status.errors));
        }
        Err(KingdeeError::from_status(&status))
    }

    /// Submit, Audit (or another numbers-based operation).
    pub async fn operate(&self, op: &str, form_id: &str, numbers: &[String]) -> Result<(), KingdeeError> {
        self.write(op, &json!({ "formid": form_id, "data": { "CreateOrgId": 0, "Numbers": numbers, "Ids": "" } }))
            .await?;
        Ok(())
    }

    /// Push (down-stream document generation, e.g. SAL_SaleOrder → SAL_OUTSTOCK).
    pub async fn push(&self, form_id: &str, data: Value) -> Result<Vec<SuccessEntity>, KingdeeError> {
        let v = self.write("Push", &json!({ "formid": form_id, "data": data })).await?;
        Ok(response_status(&v).map(|s| s.success_entitys).unwrap_or_default())
    }

    /// View one document by number.
    pub async fn view(&self, form_id: &str, number: &str) -> Result<Value, KingdeeError> {
        let body = json!({ "formid": form_id, "data": { "CreateOrgId": 0, "Number": number, "Id": "" } });
        let text = self.read(&format!("{DYNAMIC_FORM}.View"), &body).await?;
        let v: Value = serde_json::from_str(&text).map_err(|e| KingdeeError::Protocol(e.to_string()))?;
        match response_status(&v) {
            Some(s) if !s.is_success => Err(KingdeeError::from_status(&s)),
            _ => v
                .get("Result")
                .and_then(|r| r.get("Result"))
                .cloned()
                .ok_or_else(|| KingdeeError::Protocol("View: no Result.Result".into())),
        }
    }
}

/// MsgCode 1, at the top level or inside a query array.
fn session_lost(text: &str) -> bool {
    if !text.contains("\"MsgCode\":1") && !text.contains("\"MsgCode\": 1") {
        return false;
    }
    let Ok(v) = serde_json::from_str::<Value>(text) else { return false };
    let status = response_status(&v).or_else(|| v.get(0).and_then(|r| r.get(0)).and_then(response_status));
    status.is_some_and(|s| !s.is_success && s.msg_code == 1)
}

fn snippet(s: &str) -> String {
    s.chars().take(300).collect()
}
