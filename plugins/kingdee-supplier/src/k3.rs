//! The supplier's K3Cloud WebAPI: stateless signed headers (auth version
//! 2.0, as the official SDK 8.x signs), the `{"formid", "data"}` body, and
//! the answers' error shapes mapped to what the host should do.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use daifa_plugin_sdk::prelude::*;
use daifa_plugin_sdk::webhook::hmac_sha256_hex;
use serde_json::{Value, json};

/// The fixed key the SDK XORs an app's encoded secret with.
const XOR_KEY: &[u8; 32] = b"0054f397c6234378b09ca7d3e5debce7";

/// Who signs, and where.
pub struct K3 {
    pub server_url: String,
    pub acct_id: String,
    pub user_name: String,
    pub app_id: String,
    pub app_secret: String,
    pub lcid: String,
    pub org_num: String,
}

/// `base64(lowercase_hex(HMAC-SHA256(key, msg)))`.
fn hmac_b64_hex(msg: &str, key: &str) -> String {
    B64.encode(hmac_sha256_hex(key.as_bytes(), msg.as_bytes()))
}

/// The client secret hidden in an AppId's second half (empty unless 32 chars).
pub fn decode_app_secret(encoded: &str) -> String {
    if encoded.len() != 32 {
        return String::new();
    }
    let Ok(bytes) = B64.decode(encoded) else { return String::new() };
    B64.encode(bytes.iter().zip(XOR_KEY.iter()).map(|(a, b)| a ^ b).collect::<Vec<u8>>())
}

/// Python's `quote(path)` with `/` → `%2F`.
pub fn encode_path(url: &str) -> String {
    let path = match url.find("://") {
        Some(i) => url[i + 3..].find('/').map_or("/", |p| &url[i + 3 + p..]),
        None => url,
    };
    let mut out = String::with_capacity(path.len() * 3);
    for b in path.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'_' | b'.' | b'-' | b'~' => out.push(b as char),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// A nonce the server has never seen: the SDK's nonce = timestamp would be
/// refused for a second call in the same second.
fn nonce() -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(clock::now_ms());
    format!("{:016x}{:06x}", h.finish(), clock::now_ms() % 0xff_ffff)
}

impl K3 {
    /// The signed headers for a call to `url` at unix second `ts`.
    pub fn headers(&self, url: &str, ts: u64, nonce: &str) -> Vec<(&'static str, String)> {
        let ts = ts.to_string();
        let (client_id, enc) = self.app_id.split_once('_').unwrap_or(("", ""));
        let client_secret = decode_app_secret(enc);
        let data = format!("{},{},{},{}", self.acct_id, self.user_name, self.lcid, self.org_num);
        let msg = format!("POST\n{}\n\nx-api-nonce:{nonce}\nx-api-timestamp:{ts}\n", encode_path(url));
        vec![
            ("X-Api-ClientID", client_id.to_string()),
            ("X-Api-Auth-Version", "2.0".into()),
            ("x-api-timestamp", ts.clone()),
            ("x-api-nonce", nonce.to_string()),
            ("x-api-signheaders", "x-api-timestamp,x-api-nonce".into()),
            ("X-Api-Signature", hmac_b64_hex(&msg, &client_secret)),
            ("X-Kd-Appkey", self.app_id.clone()),
            ("X-Kd-Appdata", B64.encode(&data)),
            ("X-Kd-Signature", hmac_b64_hex(&format!("{}{data}", self.app_id), &self.app_secret)),
        ]
    }

    /// One `DynamicFormService` call; the answer's JSON.
    pub fn call(&self, service: &str, form: Option<&str>, data: Value) -> Result<Value, AdapterError> {
        let url = format!(
            "{}/Kingdee.BOS.WebApi.ServicesStub.DynamicFormService.{service}.common.kdsvc",
            self.server_url.trim_end_matches('/')
        );
        let body = match form {
            Some(f) => json!({ "formid": f, "data": data }),
            None => json!({ "data": data }),
        };
        let mut req = http::Request::post(url.clone()).json(&body)?;
        for (k, v) in self.headers(&url, clock::now_ms() / 1000, &nonce()) {
            req = req.header(k, &v);
        }
        let resp = req.send()?.error_for_status()?;
        let v: Value = resp.json()?;
        // A query's errors come back inside its array.
        if let Some(status) = v.pointer("/0/0/Result/ResponseStatus") {
            return Err(status_error(status, service));
        }
        Ok(v)
    }

    /// A document operation whose `Result.ResponseStatus` must succeed.
    pub fn operate(&self, service: &str, form: &str, data: Value) -> Result<Value, AdapterError> {
        let v = self.call(service, Some(form), data)?;
        let status = v.pointer("/Result/ResponseStatus").cloned().unwrap_or(Value::Null);
        if status["IsSuccess"] == true {
            return Ok(v);
        }
        Err(status_error(&status, service))
    }

    /// ExecuteBillQuery rows.
    pub fn query(
        &self,
        form: &str,
        fields: &[&str],
        filter: &str,
        order: &str,
        limit: usize,
    ) -> Result<Vec<Vec<Value>>, AdapterError> {
        let v = self.call(
            "ExecuteBillQuery",
            None,
            json!({
                "FormId": form, "FieldKeys": fields.join(","), "FilterString": filter,
                "OrderString": order, "TopRowCount": 0, "StartRow": 0, "Limit": limit,
            }),
        )?;
        let rows = v.as_array().cloned().unwrap_or_default();
        Ok(rows.into_iter().map(|r| r.as_array().cloned().unwrap_or_default()).collect())
    }
}

/// The host's error class for a K3Cloud `ResponseStatus`.
pub fn status_error(status: &Value, service: &str) -> AdapterError {
    let code = status["MsgCode"].as_i64().unwrap_or(-1);
    let msg = status["Errors"]
        .as_array()
        .map(|es| {
            es.iter()
                .map(|e| match e["FieldName"].as_str().filter(|f| !f.is_empty()) {
                    Some(f) => format!("{f}: {}", e["Message"].as_str().unwrap_or("")),
                    None => e["Message"].as_str().unwrap_or("").to_string(),
                })
                .collect::<Vec<_>>()
                .join("; ")
        })
        .unwrap_or_default();
    let text = format!("the supplier's K3Cloud refused {service} (MsgCode {code}): {msg}");
    match code {
        // Session lost / signature refused, no permission, admin login.
        1 | 2 | 15 => AdapterError::unauthorized(text),
        // Exception, database, network-control conflict, call limit.
        4 | 6 | 13 | 14 => AdapterError::transient(text),
        // Licence, bad parameter, unknown field: our setup.
        7 | 8 => AdapterError::misconfigured(text),
        _ => AdapterError::rejected(text),
    }
}

/// `'a','b'` with quotes doubled, for an IN (...) filter.
pub fn quoted(values: &[String]) -> String {
    values.iter().map(|v| format!("'{}'", v.replace('\'', "''"))).collect::<Vec<_>>().join(",")
}
