//! OAuth 2.0 client credentials (RFC 6749 §4.4): fetch a bearer token from
//! the supplier's token endpoint, keep it in [`kv`](crate::kv) until shortly
//! before it expires, and send requests with it.
//!
//! ```no_run
//! # use daifa_plugin_sdk::prelude::*;
//! # fn f() -> Result<(), AdapterError> {
//! let auth = oauth2::ClientCredentials::new(
//!     "https://auth.example.com/oauth/token",
//!     config::require("client_id")?,
//!     config::require("client_secret")?,
//! )
//! .scope("orders:write");
//! let resp = auth.send_authorized(http::Request::get("https://api.example.com/orders/1"))?.error_for_status()?;
//! # Ok(()) }
//! ```

use serde::{Deserialize, Serialize};

use crate::AdapterError;
use crate::http::{Request, Response};

/// A client-credentials grant and its cached token.
#[derive(Debug, Clone)]
pub struct ClientCredentials {
    token_url: String,
    client_id: String,
    client_secret: String,
    scope: Option<String>,
    audience: Option<String>,
    basic_auth: bool,
    cache_key: String,
    safety_margin_ms: u64,
}

/// What is cached in kv.
#[derive(Serialize, Deserialize)]
struct Cached {
    access_token: String,
}

/// The token endpoint's answer (only what is used).
#[derive(Deserialize)]
struct Granted {
    access_token: String,
    #[serde(default)]
    expires_in: Option<serde_json::Value>,
}

/// How long a token without `expires_in` is kept.
const DEFAULT_LIFETIME_MS: u64 = 5 * 60 * 1000;

impl ClientCredentials {
    /// A grant at `token_url` for this client. The client id and secret go
    /// in the form body (see [`ClientCredentials::basic_auth`]); the token
    /// is cached under the kv key `oauth2.token.<client_id>`, with a safety
    /// margin of 60 s before its expiry.
    pub fn new(
        token_url: impl Into<String>,
        client_id: impl Into<String>,
        client_secret: impl Into<String>,
    ) -> ClientCredentials {
        let client_id = client_id.into();
        ClientCredentials {
            token_url: token_url.into(),
            cache_key: format!("oauth2.token.{client_id}"),
            client_id,
            client_secret: client_secret.into(),
            scope: None,
            audience: None,
            basic_auth: false,
            safety_margin_ms: 60_000,
        }
    }

    /// Asks for `scope` (space-separated scopes).
    pub fn scope(mut self, scope: impl Into<String>) -> Self {
        self.scope = Some(scope.into());
        self
    }

    /// Asks for a token for `audience` (Auth0-style providers).
    pub fn audience(mut self, audience: impl Into<String>) -> Self {
        self.audience = Some(audience.into());
        self
    }

    /// Sends the client id and secret as HTTP Basic auth instead of in the
    /// form (some providers require one or the other).
    pub fn basic_auth(mut self) -> Self {
        self.basic_auth = true;
        self
    }

    /// Caches the token under `key` instead.
    pub fn cache_key(mut self, key: impl Into<String>) -> Self {
        self.cache_key = key.into();
        self
    }

    /// Treats a token as expired `ms` before its `expires_in` says (for
    /// clock skew and slow requests). A token living less than twice the
    /// margin is kept for half its life instead.
    pub fn safety_margin_ms(mut self, ms: u64) -> Self {
        self.safety_margin_ms = ms;
        self
    }

    /// The cached token while it is fresh, else a new one.
    pub fn token(&self) -> Result<String, AdapterError> {
        match crate::kv::get_json::<Cached>(&self.cache_key) {
            Some(c) => Ok(c.access_token),
            None => self.fetch_token(),
        }
    }

    /// Drops the cached token (e.g. after the API refused it).
    pub fn forget_token(&self) -> Result<(), AdapterError> {
        crate::kv::delete(&self.cache_key)
    }

    /// Fetches a new token from the token endpoint and caches it. A 400, 401
    /// or 403 from the endpoint is `unauthorized` (wrong client id, secret
    /// or scope); 429/5xx are transient.
    pub fn fetch_token(&self) -> Result<String, AdapterError> {
        let mut form = vec![("grant_type", "client_credentials")];
        if !self.basic_auth {
            form.push(("client_id", &self.client_id));
            form.push(("client_secret", &self.client_secret));
        }
        if let Some(s) = &self.scope {
            form.push(("scope", s));
        }
        if let Some(a) = &self.audience {
            form.push(("audience", a));
        }
        let mut req = Request::post(&self.token_url).form(&form).header("accept", "application/json");
        if self.basic_auth {
            use base64::Engine as _;
            let pair = format!(
                "{}:{}",
                crate::http::encode_component(&self.client_id),
                crate::http::encode_component(&self.client_secret)
            );
            req = req
                .header("authorization", &format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(pair)));
        }
        let resp = req.send()?;
        if matches!(resp.status, 400 | 401 | 403) {
            let text: String = resp.text().chars().take(300).collect();
            return Err(AdapterError::unauthorized(format!(
                "token endpoint refused the client credentials (HTTP {}): {text}",
                resp.status
            )));
        }
        let granted: Granted = resp.error_for_status()?.json()?;
        let lifetime_ms = granted.expires_in.as_ref().and_then(seconds).map(|s| s.saturating_mul(1000));
        let keep_ms = match lifetime_ms {
            None => DEFAULT_LIFETIME_MS,
            Some(l) if l > self.safety_margin_ms.saturating_mul(2) => l - self.safety_margin_ms,
            Some(l) => l / 2,
        };
        let cached = Cached { access_token: granted.access_token };
        if let Err(e) = crate::kv::set_json_for(&self.cache_key, &cached, keep_ms) {
            // The token still works for this call; the next one fetches again.
            crate::log::log(crate::log::Level::Warn, &format!("could not cache the OAuth2 token: {e:?}"), &[]);
        }
        Ok(cached.access_token)
    }

    /// Sends `request` with `Authorization: Bearer <token>`. If the API
    /// answers 401, the cached token is dropped, a new one fetched and the
    /// request sent once more; that second answer is returned whatever it
    /// is (call [`Response::error_for_status`] on it).
    pub fn send_authorized(&self, request: Request) -> Result<Response, AdapterError> {
        let token = self.token()?;
        let resp = request.clone().set_header("authorization", &format!("Bearer {token}")).send()?;
        if resp.status != 401 {
            return Ok(resp);
        }
        let _ = self.forget_token();
        let token = self.fetch_token()?;
        request.set_header("authorization", &format!("Bearer {token}")).send()
    }
}

/// `expires_in` as seconds: a number, or a number in a string.
fn seconds(v: &serde_json::Value) -> Option<u64> {
    match v {
        serde_json::Value::Number(n) => n.as_u64(),
        serde_json::Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::Method;
    use crate::testing::{MockHost, Reply};

    const TOKEN_URL: &str = "https://auth.example/token";
    const API: &str = "https://api.example/orders";

    fn client() -> ClientCredentials {
        ClientCredentials::new(TOKEN_URL, "id 1", "s&cret").scope("orders").audience("api")
    }

    fn grant(token: &str, expires_in: u64) -> Reply {
        Reply::json(
            200,
            &serde_json::json!({ "access_token": token, "token_type": "Bearer", "expires_in": expires_in }),
        )
    }

    #[test]
    fn fetches_once_and_caches_until_the_margin() {
        let host = MockHost::install();
        host.expect(Method::Post, TOKEN_URL, grant("t1", 3600)).expect(Method::Get, API, Reply::status(200)).expect(
            Method::Get,
            API,
            Reply::status(200),
        );
        client().send_authorized(Request::get(API)).unwrap();
        client().send_authorized(Request::get(API)).unwrap();
        host.assert_http_done();
        let sent = host.requests();
        let form = sent[0].body_form();
        let field = |k: &str| form.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        assert_eq!(field("grant_type"), Some("client_credentials"));
        assert_eq!((field("client_id"), field("client_secret")), (Some("id 1"), Some("s&cret")));
        assert_eq!((field("scope"), field("audience")), (Some("orders"), Some("api")));
        assert_eq!(sent[2].header("authorization"), Some("Bearer t1"));

        // 3600 s minus the 60 s margin.
        host.advance_ms(3_540_000);
        host.expect(Method::Post, TOKEN_URL, grant("t2", 3600));
        assert_eq!(client().token().unwrap(), "t2");
    }

    #[test]
    fn a_401_refreshes_the_token_and_retries_once() {
        let host = MockHost::install();
        host.kv_set("oauth2.token.id 1", r#"{"value":{"access_token":"old"},"expires_at_ms":null}"#);
        host.expect(Method::Get, API, Reply::status(401)).expect(Method::Post, TOKEN_URL, grant("new", 3600)).expect(
            Method::Get,
            API,
            Reply::status(401),
        );
        let resp = client().send_authorized(Request::get(API)).unwrap();
        assert_eq!(resp.status, 401, "the second answer is returned as it is");
        host.assert_http_done();
        let sent = host.requests();
        assert_eq!(sent[0].header("authorization"), Some("Bearer old"));
        assert_eq!(sent[2].header("authorization"), Some("Bearer new"));
        assert!(matches!(resp.error_for_status(), Err(AdapterError::Unauthorized(_))));
    }

    #[test]
    fn refused_credentials_are_unauthorized_and_basic_auth_works() {
        let host = MockHost::install();
        host.expect(Method::Post, TOKEN_URL, Reply::json(400, &serde_json::json!({ "error": "invalid_client" })));
        match client().token() {
            Err(AdapterError::Unauthorized(m)) => assert!(m.contains("invalid_client"), "{m}"),
            other => panic!("{other:?}"),
        }
        host.expect(Method::Post, TOKEN_URL, grant("t", 10));
        assert_eq!(client().basic_auth().token().unwrap(), "t");
        let sent = host.last_request();
        assert_eq!(sent.header("authorization"), Some("Basic aWQrMTpzJTI2Y3JldA=="));
        assert!(!sent.body_text().contains("client_secret"));
        // A 10 s token with a 60 s margin is kept for half its life.
        host.advance_ms(5_000);
        host.expect(Method::Post, TOKEN_URL, grant("t3", 10));
        assert_eq!(client().basic_auth().token().unwrap(), "t3");
    }
}
