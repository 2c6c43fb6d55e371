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

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::AdapterError;
use crate::bindings::daifa::supplier::http as imp;

pub use imp::Method;

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

    /// Sends the request. Errors are transport-level; HTTP error statuses
    /// come back as a [`Response`] (see [`Response::error_for_status`]).
    pub fn send(self) -> Result<Response, AdapterError> {
        let resp = imp::send(&self.inner)?;
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

    /// The body parsed as JSON.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, AdapterError> {
        serde_json::from_slice(&self.body).map_err(|e| {
            AdapterError::rejected(format!("unexpected response from supplier (HTTP {}): {e}", self.status))
        })
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
            408 | 429 | 500..=599 => match self.header("retry-after").and_then(|v| v.trim().parse::<u64>().ok()) {
                Some(secs) => AdapterError::transient_after(msg, secs * 1000),
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
mod tests {
    #[test]
    fn form_encoding() {
        assert_eq!(super::encode_form(&[("a b", "x&y=z"), ("k", "中")]), "a+b=x%26y%3Dz&k=%E4%B8%AD");
    }
}
