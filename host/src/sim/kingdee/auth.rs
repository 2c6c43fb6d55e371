//! Who may call the simulated K3Cloud: the login services (ValidateUser,
//! LoginByAppSecret, LoginBySign, Logout), the data-center list, session
//! cookies with a licence limit, and the SDK 8.x signed headers checked
//! whole: app key, account, user, locale and organisation, both HMACs, a
//! timestamp within 15 minutes and a nonce that is never accepted twice.

use axum::http::HeaderMap;
use base64::Engine as _;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::{KingdeeSimConfig, SimState};
use crate::erp::kingdee::sign;

/// How far a signed timestamp may be from the server's clock.
const WINDOW_SECS: i64 = 900;
/// A session unused this long is dropped (it no longer counts against
/// the licence either).
pub const SESSION_IDLE_SECS: i64 = 20 * 60;
/// Locales a K3Cloud user can log in with (Simplified / Traditional
/// Chinese, English).
const LCIDS: &[&str] = &["2052", "3076", "1033"];

fn unix_now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64)
}

/// Why a signed request was refused (for the simulator's log and tests).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SignError {
    Missing(&'static str),
    Mismatch(&'static str),
    Expired,
    ReplayedNonce,
}

impl SimState {
    /// A live session named by the header or the cookie (its use keeps it
    /// alive).
    pub(super) fn session_ok(&mut self, headers: &HeaderMap) -> bool {
        let now = unix_now();
        self.sessions.retain(|_, used| now - *used <= SESSION_IDLE_SECS);
        match session_id(headers).and_then(|s| self.sessions.get_mut(&s)) {
            Some(used) => {
                *used = now;
                true
            }
            None => false,
        }
    }

    /// A new session, unless the licence's session limit is reached.
    pub(super) fn new_session(&mut self, max_sessions: usize) -> Option<String> {
        let now = unix_now();
        self.sessions.retain(|_, used| now - *used <= SESSION_IDLE_SECS);
        if max_sessions > 0 && self.sessions.len() >= max_sessions {
            return None;
        }
        let sid = format!("{:016x}{:016x}", self.next_rand(), self.next_rand());
        self.sessions.insert(sid.clone(), now);
        Some(sid)
    }

    /// Checks the signed headers; a valid nonce is then spent.
    pub(super) fn check_signature(
        &mut self,
        cfg: &KingdeeSimConfig,
        path: &str,
        h: &HeaderMap,
    ) -> Result<(), SignError> {
        let get = |k: &'static str| {
            h.get(k)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
                .filter(|v| !v.is_empty())
                .ok_or(SignError::Missing(k))
        };
        let app = &cfg.app;
        let app_key = get("x-kd-appkey")?;
        if app_key != app.app_id {
            return Err(SignError::Mismatch("x-kd-appkey"));
        }
        let (client_id, enc) = app.app_id.split_once('_').unwrap_or(("", ""));
        if get("x-api-clientid")? != client_id {
            return Err(SignError::Mismatch("x-api-clientid"));
        }
        let data = base64::engine::general_purpose::STANDARD
            .decode(get("x-kd-appdata")?)
            .ok()
            .and_then(|d| String::from_utf8(d).ok())
            .ok_or(SignError::Mismatch("x-kd-appdata"))?;
        let parts: Vec<&str> = data.split(',').collect();
        let [acct, user, lcid, org] = parts[..] else { return Err(SignError::Mismatch("x-kd-appdata")) };
        if acct != app.acct_id {
            return Err(SignError::Mismatch("acct_id"));
        }
        if user != app.user_name {
            return Err(SignError::Mismatch("user_name"));
        }
        if !LCIDS.contains(&lcid) {
            return Err(SignError::Mismatch("lcid"));
        }
        if org != "0" && !cfg.orgs.iter().any(|o| o == org) {
            return Err(SignError::Mismatch("org_num"));
        }
        if get("x-kd-signature")? != sign::hmac_b64_hex(&format!("{app_key}{data}"), &app.app_secret) {
            return Err(SignError::Mismatch("x-kd-signature"));
        }
        let ts = get("x-api-timestamp")?;
        let now = unix_now();
        if ts.parse::<i64>().map_or(true, |t| (t - now).abs() > WINDOW_SECS) {
            return Err(SignError::Expired);
        }
        let nonce = get("x-api-nonce")?;
        let secret = sign::decode_app_secret(enc);
        if get("x-api-signature")? != sign::api_signature(&sign::encode_path(path), &nonce, &ts, &secret) {
            return Err(SignError::Mismatch("x-api-signature"));
        }
        // A timestamp is good for WINDOW_SECS either side of now, so a
        // request stays replayable for twice that: remember nonces as long.
        self.nonces.retain(|_, seen| now - *seen <= 2 * WINDOW_SECS);
        if self.nonces.insert(nonce, now).is_some() {
            return Err(SignError::ReplayedNonce);
        }
        Ok(())
    }
}

fn session_id(headers: &HeaderMap) -> Option<String> {
    headers.get("kdservice-sessionid").and_then(|v| v.to_str().ok()).map(str::to_string).or_else(|| {
        headers.get(axum::http::header::COOKIE).and_then(|v| v.to_str().ok()).and_then(|c| {
            c.split(';').find_map(|kv| kv.trim().strip_prefix("kdservice-sessionid=").map(str::to_string))
        })
    })
}

/// `sign` of LoginBySign: SHA-256 over the sorted, concatenated values.
pub fn login_sign(acct: &str, user: &str, app_id: &str, app_secret: &str, timestamp: &str) -> String {
    let mut parts = [acct, user, app_id, app_secret, timestamp];
    parts.sort_unstable();
    hex::encode(Sha256::digest(parts.concat().as_bytes()))
}

/// The login answer and the new session id, if any.
pub(super) fn login(
    cfg: &KingdeeSimConfig,
    state: &mut SimState,
    op: &str,
    data: &Value,
    raw: &Value,
    headers: &HeaderMap,
) -> (Value, Option<String>) {
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
    let refused = |message: &str, kind: i64| {
        json!({ "Message": message, "MessageCode": "CheckPasswordPolicy", "LoginResultType": kind, "Context": null,
                "KDSVCSessionId": null, "IsSuccessByAPI": false })
    };
    let app = &cfg.app;
    if op == "logout" {
        if let Some(sid) = session_id(headers) {
            state.sessions.remove(&sid);
        }
        return (json!(true), None);
    }
    // Every login names the data center (account) and a locale.
    let (acct, user) = match op {
        "validateuser" | "loginbyappsecret" | "loginbysign" => (arg(0, "acctid"), arg(1, "username")),
        _ => return (refused(&format!("不支持的登录方式 {op}"), -1), None),
    };
    if acct != app.acct_id {
        return (refused(&format!("数据中心 {acct} 不存在"), -1), None);
    }
    let lcid_at = match op {
        "validateuser" => 3,
        "loginbyappsecret" => 4,
        _ => 5,
    };
    let lcid = arg(lcid_at, "lcid");
    if !lcid.is_empty() && !LCIDS.contains(&lcid.as_str()) {
        return (refused(&format!("语言 {lcid} 不可用"), -1), None);
    }
    let ok = user == app.user_name
        && match op {
            "validateuser" => arg(2, "password") == cfg.password,
            "loginbyappsecret" => arg(2, "appid") == app.app_id && arg(3, "appsecret") == app.app_secret,
            _ => {
                let ts = arg(3, "timestamp");
                let fresh = ts.parse::<i64>().is_ok_and(|t| (t - unix_now()).abs() <= WINDOW_SECS);
                arg(2, "appid") == app.app_id
                    && fresh
                    && arg(4, "sign") == login_sign(&acct, &user, &app.app_id, &app.app_secret, &ts)
            }
        }
        && !state.faults.reject_signatures;
    if !ok {
        let message = if op == "validateuser" {
            "用户名或密码错误！"
        } else {
            "第三方系统登录授权验证失败，请检查应用ID、应用密钥或签名"
        };
        return (refused(message, if op == "validateuser" { 0 } else { -1 }), None);
    }
    let Some(sid) = state.new_session(cfg.max_sessions) else {
        return (refused("当前在线用户数已达到许可数上限，请稍后再登录", -1), None);
    };
    (
        json!({ "Message": null, "LoginResultType": 1, "Context": { "SessionId": sid, "UserToken": sid, "UserName": app.user_name,
                 "DBid": app.acct_id, "LogLocale": "zh-CN", "UserLocale": "zh-CN" },
                "KDSVCSessionId": sid, "IsSuccessByAPI": true }),
        Some(sid),
    )
}

/// `AccountService.GetDataCenterList`: the accounts a client can log into.
pub(super) fn data_centers(cfg: &KingdeeSimConfig) -> Value {
    json!([{ "Id": cfg.app.acct_id, "Number": "001", "Name": cfg.data_center_name, "DataBaseType": 3,
             "IsMultiCurrency": false, "ProductEdition": "PE_ENTERPRISE" }])
}
