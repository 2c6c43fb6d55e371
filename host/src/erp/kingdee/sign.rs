//! Kingdee's stateless signed headers (WebAPI SDK 8.x, auth version 2.0),
//! shared by the client (signing) and the simulator (checking).

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The fixed key the SDK XORs an app's encoded secret with (it ships it
/// rot13-obfuscated as `0054s397p6234378o09pn7q3r5qropr7`).
const XOR_KEY: &[u8; 32] = b"0054f397c6234378b09ca7d3e5debce7";

/// Who signs.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AppCredentials {
    /// Data-centre (account set) id.
    pub acct_id: String,
    pub user_name: String,
    /// `clientId_encodedSecret`.
    pub app_id: String,
    pub app_secret: String,
    /// Language of the ERP's messages (2052: simplified Chinese).
    #[serde(default = "default_lcid")]
    pub lcid: u32,
    /// Organisation number (0: the user's default).
    #[serde(default)]
    pub org_num: u32,
}

fn default_lcid() -> u32 {
    2052
}

/// `base64(lowercase_hex(HMAC-SHA256(key, msg)))` — base64 of the hex text.
pub fn hmac_b64_hex(msg: &str, key: &str) -> String {
    // HMAC accepts keys of any length; the error case cannot happen.
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key.as_bytes()).expect("HMAC takes any key length");
    mac.update(msg.as_bytes());
    B64.encode(hex::encode(mac.finalize().into_bytes()))
}

/// The client secret hidden in an AppId's second half (empty unless 32 chars).
pub fn decode_app_secret(encoded: &str) -> String {
    if encoded.len() != 32 {
        return String::new();
    }
    let Ok(bytes) = B64.decode(encoded) else { return String::new() };
    let xored: Vec<u8> = bytes.iter().zip(XOR_KEY.iter()).map(|(a, b)| a ^ b).collect();
    B64.encode(xored)
}

/// Python's `quote(path)` with `/` then replaced by `%2F` (upper-case hex).
pub fn encode_path(url_or_path: &str) -> String {
    let path = match url_or_path.find("://") {
        Some(i) => url_or_path[i + 3..].find('/').map_or("/", |p| &url_or_path[i + 3 + p..]),
        None => url_or_path,
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

/// `X-Kd-Appdata` plaintext: `acctId,userName,lcid,orgNum`.
pub fn app_data(c: &AppCredentials) -> String {
    format!("{},{},{},{}", c.acct_id, c.user_name, c.lcid, c.org_num)
}

/// `X-Api-Signature` for a path, nonce and timestamp.
pub fn api_signature(path_enc: &str, nonce: &str, ts: &str, client_secret: &str) -> String {
    let msg = format!("POST\n{path_enc}\n\nx-api-nonce:{nonce}\nx-api-timestamp:{ts}\n");
    hmac_b64_hex(&msg, client_secret)
}

/// A nonce no other request of any process will send: the server refuses
/// a nonce it has seen (the official SDK's nonce = timestamp would collide
/// for two calls in one second).
pub fn fresh_nonce() -> String {
    use sha2::Digest;
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    let seed = format!("{}:{nanos}:{}", std::process::id(), COUNTER.fetch_add(1, Ordering::Relaxed));
    hex::encode(&sha2::Sha256::digest(seed.as_bytes())[..12])
}

/// Every signed header for a call to `url` at unix second `ts`.
pub fn signed_headers(c: &AppCredentials, url: &str, ts: u64, nonce: &str) -> Vec<(&'static str, String)> {
    let ts = ts.to_string();
    let (client_id, enc) = c.app_id.split_once('_').unwrap_or(("", ""));
    let client_secret = decode_app_secret(enc);
    let data = app_data(c);
    vec![
        ("X-Api-ClientID", client_id.to_string()),
        ("X-Api-Auth-Version", "2.0".into()),
        ("x-api-timestamp", ts.clone()),
        ("x-api-nonce", nonce.to_string()),
        ("x-api-signheaders", "x-api-timestamp,x-api-nonce".into()),
        ("X-Api-Signature", api_signature(&encode_path(url), nonce, &ts, &client_secret)),
        ("X-Kd-Appkey", c.app_id.clone()),
        ("X-Kd-Appdata", B64.encode(&data)),
        ("X-Kd-Signature", hmac_b64_hex(&format!("{}{data}", c.app_id), &c.app_secret)),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The vector in shared/reference/kingdee-k3cloud-webapi.md, computed with
    /// the official SDK's code.
    #[test]
    fn reproduces_the_reference_vector_bit_for_bit() {
        let c = AppCredentials {
            acct_id: "5db25ac8d2b819".into(),
            user_name: "webapi".into(),
            app_id: "204399_72epSbtEQMC92Vwt2d3LRa9LRqSc1tqJ".into(),
            app_secret: "fb7d46647ac346dbb5fcd45b65512a45".into(),
            lcid: 2052,
            org_num: 0,
        };
        let url = "http://erp.example.com/k3cloud/Kingdee.BOS.WebApi.ServicesStub.DynamicFormService.ExecuteBillQuery.common.kdsvc";
        assert_eq!(
            encode_path(url),
            "%2Fk3cloud%2FKingdee.BOS.WebApi.ServicesStub.DynamicFormService.ExecuteBillQuery.common.kdsvc"
        );
        assert_eq!(decode_app_secret("72epSbtEQMC92Vwt2d3LRa9LRqSc1tqJ"), "31ecfd13effe724e7e78fc17f8f94b66");
        let h: std::collections::HashMap<_, _> =
            signed_headers(&c, url, 1_700_000_000, "1700000000").into_iter().collect();
        assert_eq!(h["X-Api-ClientID"], "204399");
        assert_eq!(
            h["X-Api-Signature"],
            "ZTJhY2RiZTYxNmFhZDMxN2MyZmU2ZTMxN2I0ZmFjZGE2ZGVlMTgyNTM4YzdkOTNlYzFlNzhmZGU1M2E4YTRmNg=="
        );
        assert_eq!(h["X-Kd-Appdata"], "NWRiMjVhYzhkMmI4MTksd2ViYXBpLDIwNTIsMA==");
        assert_eq!(
            h["X-Kd-Signature"],
            "OWQ2YWVhM2JmOGVlYWEzYjVlZGI0NzM3MjlmYzA4NTkyYjhiMTAwNTgxODk5MmQ5NWIxMzBjZTQxNjk5ZWFiYg=="
        );
    }
}
