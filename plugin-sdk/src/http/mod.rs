//! Outbound HTTP through the host. Only hosts on the plugin's allowlist are
//! reachable; the host follows redirects (re-checking each), caps response
//! bodies and enforces timeouts.
//!
//! ```no_run
//! # use daifa_plugin_sdk::{http, AdapterError};
//! # fn f() -> Result<(), AdapterError> {
//! let stock: serde_json::Value = http::Request::get("https://api.example.com/stock?sku=A1")
//!     .bearer("token")
//!     .send()?
//!     .error_for_status()?
//!     .json()?;
//! # Ok(()) }
//! ```

mod retry;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::AdapterError;
use crate::bindings::daifa::supplier::http as imp;

pub use imp::{HttpError, Method};
pub use retry::{RetryPolicy, send_with_retry};

/// An HTTP request under construction.
#[derive(Debug, Clone)]
pub struct Request {
    inner: imp::Request,
}

impl Request {
    /// A request with `method` to an absolute `url`.
    pub fn new(method: Method, url: impl Into<String>) -> Request {
        Request {
            inner: imp::Request { method, url: url.into(), headers: Vec::new(), body: Vec::new(), timeout_ms: None },
        }
    }

    /// `GET url`.
    pub fn get(url: impl Into<String>) -> Request {
        Request::new(Method::Get, url)
    }

    /// `POST url`.
    pub fn post(url: impl Into<String>) -> Request {
        Request::new(Method::Post, url)
    }

    /// `PUT url`.
    pub fn put(url: impl Into<String>) -> Request {
        Request::new(Method::Put, url)
    }

    /// `DELETE url`.
    pub fn delete(url: impl Into<String>) -> Request {
        Request::new(Method::Delete, url)
    }

    /// Adds a header.
    pub fn header(mut self, name: &str, value: &str) -> Request {
        self.inner.headers.push((name.to_string(), value.to_string()));
        self
    }

    /// Sets a header, replacing any of the same name (case-insensitive).
    pub fn set_header(mut self, name: &str, value: &str) -> Request {
        self.inner.headers.retain(|(k, _)| !k.eq_ignore_ascii_case(name));
        self.header(name, value)
    }

    /// Appends `key=value` pairs to the URL's query string, percent-encoded
    /// ([`encode_component`]); keeps an existing query and a `#fragment`.
    ///
    /// ```
    /// # use daifa_plugin_sdk::http::Request;
    /// let r = Request::get("https://x.example/events?type=ship").query(&[("since", "a b"), ("limit", "50")]);
    /// assert_eq!(r.url(), "https://x.example/events?type=ship&since=a+b&limit=50");
    /// ```
    pub fn query<K: AsRef<str>, V: AsRef<str>>(mut self, pairs: &[(K, V)]) -> Request {
        if pairs.is_empty() {
            return self;
        }
        let encoded =
            pairs.iter().map(|(k, v)| format!("{}={}", encode_component(k.as_ref()), encode_component(v.as_ref())));
        let encoded = encoded.collect::<Vec<_>>().join("&");
        let url = &self.inner.url;
        let (base, fragment) = match url.find('#') {
            Some(i) => url.split_at(i),
            None => (url.as_str(), ""),
        };
        let sep = match base.find('?') {
            None => "?",
            Some(_) if base.ends_with('?') || base.ends_with('&') => "",
            Some(_) => "&",
        };
        self.inner.url = format!("{base}{sep}{encoded}{fragment}");
        self
    }

    /// `Authorization: Bearer <token>`.
    pub fn bearer(self, token: &str) -> Request {
        self.header("authorization", &format!("Bearer {token}"))
    }

    /// A JSON body (and its content type).
    pub fn json<T: Serialize + ?Sized>(mut self, body: &T) -> Result<Request, AdapterError> {
        self.inner.body = serde_json::to_vec(body)
            .map_err(|e| AdapterError::rejected(format!("could not encode request body: {e}")))?;
        Ok(self.header("content-type", "application/json"))
    }

    /// An `application/x-www-form-urlencoded` body.
    pub fn form(mut self, fields: &[(&str, &str)]) -> Request {
        self.inner.body = encode_form(fields).into_bytes();
        self.header("content-type", "application/x-www-form-urlencoded")
    }

    /// A raw body.
    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Request {
        self.inner.body = body.into();
        self
    }

    /// A timeout shorter than the host's.
    pub fn timeout_ms(mut self, ms: u32) -> Request {
        self.inner.timeout_ms = Some(ms);
        self
    }

    /// The method.
    pub fn method(&self) -> Method {
        self.inner.method
    }

    /// The URL as built so far.
    pub fn url(&self) -> &str {
        &self.inner.url
    }

    /// The first header named `name` (case-insensitive).
    pub fn header_value(&self, name: &str) -> Option<&str> {
        self.inner.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    /// Sends the request. Errors are transport-level; HTTP error statuses
    /// come back as a [`Response`] (see [`Response::error_for_status`]).
    pub fn send(self) -> Result<Response, AdapterError> {
        Ok(self.send_raw()?)
    }

    /// Sends the request, keeping the host's [`HttpError`] as it is (for
    /// code that decides itself what a timeout or transport error means).
    pub fn send_raw(&self) -> Result<Response, HttpError> {
        let resp = crate::host::http_send(&self.inner)?;
        Ok(Response { status: resp.status, headers: resp.headers, body: resp.body })
    }
}

/// An HTTP response.
#[derive(Debug, Clone)]
pub struct Response {
    /// Status code.
    pub status: u16,
    /// Headers as received (names lower-case).
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Vec<u8>,
}

impl Response {
    /// The first header named `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    /// The body as text (lossy UTF-8).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// `true` for 2xx.
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// The body parsed as JSON.
    ///
    /// If it cannot be read, a 2xx answer is a **transient** error, not a
    /// rejection: the supplier said yes (it may have taken the order) and
    /// only its answer is unreadable, so the host retries with the same
    /// idempotency key instead of sending the order elsewhere. A non-2xx
    /// answer that cannot be read is `rejected` (call
    /// [`Response::error_for_status`] first to classify error statuses).
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, AdapterError> {
        serde_json::from_slice(&self.body).map_err(|e| {
            if self.is_success() {
                AdapterError::transient(format!(
                    "supplier answered HTTP {} but the body could not be read ({e}); it may have \
                     accepted the request, so retry with the same idempotency key",
                    self.status
                ))
            } else {
                AdapterError::rejected(format!("unexpected response from supplier (HTTP {}): {e}", self.status))
            }
        })
    }

    /// The `Retry-After` header in milliseconds, if it is a number of
    /// seconds (an HTTP date is ignored).
    pub fn retry_after_ms(&self) -> Option<u64> {
        self.header("retry-after").and_then(|v| v.trim().parse::<u64>().ok()).map(|s| s.saturating_mul(1000))
    }

    /// Maps error statuses to the adapter error a host expects: 401/403 →
    /// unauthorized, 408/429/5xx → transient (honouring `Retry-After`
    /// seconds), other 4xx → rejected with the body's text.
    pub fn error_for_status(self) -> Result<Response, AdapterError> {
        let s = self.status;
        if (200..400).contains(&s) {
            return Ok(self);
        }
        let text: String = self.text().chars().take(500).collect();
        let msg = format!("HTTP {s}: {text}");
        Err(match s {
            401 | 403 => AdapterError::unauthorized(msg),
            408 | 429 | 500..=599 => match self.retry_after_ms() {
                Some(ms) => AdapterError::transient_after(msg, ms),
                None => AdapterError::transient(msg),
            },
            _ => AdapterError::rejected(msg),
        })
    }
}

/// `application/x-www-form-urlencoded` encoding of `fields`.
pub fn encode_form(fields: &[(&str, &str)]) -> String {
    fields.iter().map(|(k, v)| format!("{}={}", encode_component(k), encode_component(v))).collect::<Vec<_>>().join("&")
}

/// Percent-encodes a URL query component (spaces as `+`).
pub fn encode_component(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => out.push(b as char),
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

#[cfg(test)]
mod tests;
