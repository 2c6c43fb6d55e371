//! Scripted HTTP for the mock host: what to answer, and what was sent.

use crate::bindings::daifa::supplier::http::{HttpError, Method, Request, Response};

/// What the mock host answers to one expected request: a response, or an
/// [`HttpError`] as the real host would report (timeout, transport, …).
#[derive(Debug, Clone)]
pub struct Reply {
    outcome: Result<Response, HttpError>,
}

impl Reply {
    /// A response with `status` and no body.
    pub fn status(status: u16) -> Reply {
        Reply { outcome: Ok(Response { status, headers: Vec::new(), body: Vec::new() }) }
    }

    /// A JSON response (`content-type: application/json`).
    ///
    /// # Panics
    /// If `body` cannot be serialised (a bug in the test).
    pub fn json<T: serde::Serialize + ?Sized>(status: u16, body: &T) -> Reply {
        let bytes = serde_json::to_vec(body).unwrap_or_else(|e| panic!("Reply::json: cannot serialise body: {e}"));
        Reply::status(status).header("content-type", "application/json").body(bytes)
    }

    /// A text response (`content-type: text/plain`), or any raw body you
    /// give a content type with [`Reply::header`].
    pub fn text(status: u16, body: &str) -> Reply {
        Reply::status(status).header("content-type", "text/plain; charset=utf-8").body(body)
    }

    /// The host's own failure instead of a response, e.g.
    /// `Reply::error(HttpError::Timeout)`.
    pub fn error(error: HttpError) -> Reply {
        Reply { outcome: Err(error) }
    }

    /// Adds a response header (the real host passes names lower-case; so
    /// does this).
    pub fn header(mut self, name: &str, value: &str) -> Reply {
        if let Ok(r) = &mut self.outcome {
            r.headers.push((name.to_ascii_lowercase(), value.to_string()));
        }
        self
    }

    /// Replaces the response body.
    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Reply {
        if let Ok(r) = &mut self.outcome {
            r.body = body.into();
        }
        self
    }

    pub(super) fn into_outcome(self) -> Result<Response, HttpError> {
        self.outcome
    }
}

/// A request the adapter sent through the mock host.
#[derive(Debug, Clone)]
pub struct SentRequest {
    /// The method.
    pub method: Method,
    /// The absolute URL, query included.
    pub url: String,
    /// Headers as the adapter set them, in order.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Vec<u8>,
    /// The adapter's own timeout, if it set one.
    pub timeout_ms: Option<u32>,
}

impl SentRequest {
    /// The first header named `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    /// The body as text (lossy UTF-8).
    pub fn body_text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body parsed as JSON.
    ///
    /// # Panics
    /// If the body is not JSON, showing it.
    #[track_caller]
    pub fn body_json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("request body is not JSON ({e}): {}", self.body_text()))
    }

    /// The body decoded as `application/x-www-form-urlencoded` pairs.
    pub fn body_form(&self) -> Vec<(String, String)> {
        decode_pairs(&self.body_text())
    }

    /// The URL's query decoded into pairs (empty without a query).
    pub fn query(&self) -> Vec<(String, String)> {
        let no_fragment = self.url.split('#').next().unwrap_or_default();
        no_fragment.split_once('?').map(|(_, q)| decode_pairs(q)).unwrap_or_default()
    }

    /// The URL without its query string and fragment.
    pub fn path_url(&self) -> &str {
        self.url.split(['?', '#']).next().unwrap_or_default()
    }
}

impl From<&Request> for SentRequest {
    fn from(r: &Request) -> SentRequest {
        SentRequest {
            method: r.method,
            url: r.url.clone(),
            headers: r.headers.clone(),
            body: r.body.clone(),
            timeout_ms: r.timeout_ms,
        }
    }
}

pub(super) enum UrlMatch {
    Exact(String),
    Prefix(String),
}

pub(super) struct Expectation {
    pub method: Method,
    pub url: UrlMatch,
    pub reply: Reply,
}

impl Expectation {
    pub fn matches(&self, req: &Request) -> bool {
        self.method == req.method
            && match &self.url {
                UrlMatch::Exact(u) => *u == req.url,
                UrlMatch::Prefix(p) => req.url.starts_with(p.as_str()),
            }
    }

    pub fn describe(&self) -> String {
        let answer = match &self.reply.outcome {
            Ok(r) => format!("HTTP {}", r.status),
            Err(e) => format!("{e:?}"),
        };
        match &self.url {
            UrlMatch::Exact(u) => format!("  {} {u} → {answer}", method_name(self.method)),
            UrlMatch::Prefix(p) => format!("  {} {p}… (prefix) → {answer}", method_name(self.method)),
        }
    }
}

/// `GET`, `POST`, …
pub(super) fn method_name(m: Method) -> &'static str {
    match m {
        Method::Get => "GET",
        Method::Head => "HEAD",
        Method::Post => "POST",
        Method::Put => "PUT",
        Method::Patch => "PATCH",
        Method::Delete => "DELETE",
    }
}

fn decode_pairs(s: &str) -> Vec<(String, String)> {
    s.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect()
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = s.get(i + 1..i + 3).and_then(|h| u8::from_str_radix(h, 16).ok());
                match hex {
                    Some(b) => {
                        out.push(b);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}
