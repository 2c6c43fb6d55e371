//! Recorded HTTP for `daifa plugin invoke --record/--replay` and the scratch
//! calls of the admin API: a recording keeps each exchange a plugin made
//! (with the binding's secret values taken out); a replay answers a
//! plugin's requests from one, so a run is repeatable offline and never
//! reaches the supplier.
//!
//! Owns: the recording's file format and the matching of a request to it.
//! Calls: nothing (the host state consults it before the network).

use std::sync::{Arc, Mutex};

use base64::Engine as _;
use serde::{Deserialize, Serialize};

use super::bindings::{HttpError, HttpMethod, HttpRequest, HttpResponse};
use super::journal::redact;

/// One request and what came back: a response (`status`, headers, body)
/// or the transport `error` the plugin saw.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Exchange {
    pub method: String,
    /// With secret config values replaced by `[redacted]`.
    pub url: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub request_headers: Vec<(String, String)>,
    /// UTF-8 text, or `base64:` and the bytes.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub request_body: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub response_headers: Vec<(String, String)>,
    /// UTF-8 text, or `base64:` and the bytes.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub response_body: String,
    /// `timeout`, `transport: …`, `too-large: N`, `invalid: …` instead of a response.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// A recording file: `{"exchanges": [...]}`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Recording {
    pub exchanges: Vec<Exchange>,
}

/// Headers whose values never go into a recording, whatever the config says.
fn credential_header(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    n == "authorization"
        || n == "cookie"
        || n == "proxy-authorization"
        || n.contains("token")
        || n.contains("key")
        || n.contains("secret")
        || n.contains("signature")
}

/// How a call's HTTP is taped.
#[derive(Clone)]
pub enum Tape {
    /// Goes to the network and keeps each exchange.
    Record(Arc<Mutex<Recording>>),
    /// Answers from a recording; each exchange answers once, in order per
    /// method and URL. Requests it cannot answer are kept for the report.
    Replay(Arc<Mutex<Replay>>),
}

/// A recording being replayed.
#[derive(Debug, Default)]
pub struct Replay {
    exchanges: Vec<(Exchange, bool)>,
    /// Requests no recorded exchange answered (`METHOD url`).
    pub misses: Vec<String>,
}

impl Replay {
    pub fn new(rec: Recording) -> Replay {
        Replay { exchanges: rec.exchanges.into_iter().map(|e| (e, false)).collect(), misses: Vec::new() }
    }

    /// Recorded exchanges no request used.
    pub fn unused(&self) -> Vec<String> {
        self.exchanges.iter().filter(|(_, used)| !used).map(|(e, _)| format!("{} {}", e.method, e.url)).collect()
    }
}

impl Tape {
    /// A tape that records.
    pub fn record() -> Tape {
        Tape::Record(Arc::new(Mutex::new(Recording::default())))
    }

    /// A tape that replays `rec`.
    pub fn replay(rec: Recording) -> Tape {
        Tape::Replay(Arc::new(Mutex::new(Replay::new(rec))))
    }

    /// The recording so far (`Record`) or `None`.
    pub fn recording(&self) -> Option<Recording> {
        match self {
            Tape::Record(r) => r.lock().ok().map(|r| r.clone()),
            Tape::Replay(_) => None,
        }
    }

    /// (misses, unused) of a replay.
    pub fn replay_report(&self) -> Option<(Vec<String>, Vec<String>)> {
        match self {
            Tape::Replay(r) => r.lock().ok().map(|r| (r.misses.clone(), r.unused())),
            Tape::Record(_) => None,
        }
    }

    /// The recorded answer to `req`, for a replay (`None`: go to the network).
    pub fn answer(&self, req: &HttpRequest, secrets: &[String]) -> Option<Result<HttpResponse, HttpError>> {
        let Tape::Replay(r) = self else { return None };
        let method = method_name(req.method);
        let url = redact(&req.url, secrets);
        let Ok(mut r) = r.lock() else {
            return Some(Err(HttpError::Transport("replay: the recording is unavailable".into())));
        };
        let hit = r.exchanges.iter_mut().find(|(e, used)| !*used && e.method == method && e.url == url);
        let Some((e, used)) = hit else {
            let unused = r.unused();
            r.misses.push(format!("{method} {url}"));
            return Some(Err(HttpError::Transport(format!(
                "replay: no recorded answer for {method} {url} (unused in the recording: {})",
                if unused.is_empty() { "none".to_string() } else { unused.join(", ") }
            ))));
        };
        *used = true;
        Some(match (&e.error, e.status) {
            (Some(m), _) => Err(error_from_text(m)),
            (None, status) => Ok(HttpResponse {
                status: status.unwrap_or(200),
                headers: e.response_headers.clone(),
                body: decode_body(&e.response_body),
            }),
        })
    }

    /// Keeps one exchange (secrets out) when recording.
    pub fn keep(&self, req: &HttpRequest, got: &Result<HttpResponse, HttpError>, secrets: &[String]) {
        let Tape::Record(r) = self else { return };
        let headers = req
            .headers
            .iter()
            .map(|(k, v)| {
                let v = if credential_header(k) { "[redacted]".to_string() } else { redact(v, secrets) };
                (k.clone(), v)
            })
            .collect();
        let mut exchange = Exchange {
            method: method_name(req.method).to_string(),
            url: redact(&req.url, secrets),
            request_headers: headers,
            request_body: encode_body(&req.body, secrets),
            status: None,
            response_headers: Vec::new(),
            response_body: String::new(),
            error: None,
        };
        match got {
            Ok(resp) => {
                exchange.status = Some(resp.status);
                exchange.response_headers = resp.headers.clone();
                exchange.response_body = encode_body(&resp.body, &[]);
            }
            Err(e) => exchange.error = Some(error_text(e)),
        }
        if let Ok(mut r) = r.lock() {
            r.exchanges.push(exchange);
        }
    }
}

fn method_name(m: HttpMethod) -> &'static str {
    match m {
        HttpMethod::Get => "GET",
        HttpMethod::Post => "POST",
        HttpMethod::Put => "PUT",
        HttpMethod::Patch => "PATCH",
        HttpMethod::Delete => "DELETE",
        HttpMethod::Head => "HEAD",
    }
}

fn encode_body(b: &[u8], secrets: &[String]) -> String {
    match std::str::from_utf8(b) {
        Ok(t) if !t.starts_with("base64:") => redact(t, secrets),
        _ => format!("base64:{}", base64::engine::general_purpose::STANDARD.encode(b)),
    }
}

fn decode_body(s: &str) -> Vec<u8> {
    match s.strip_prefix("base64:") {
        Some(b) => base64::engine::general_purpose::STANDARD.decode(b).unwrap_or_else(|_| s.as_bytes().to_vec()),
        None => s.as_bytes().to_vec(),
    }
}

fn error_text(e: &HttpError) -> String {
    match e {
        HttpError::Timeout => "timeout".into(),
        HttpError::Transport(m) => format!("transport: {m}"),
        HttpError::ResponseTooLarge(n) => format!("too-large: {n}"),
        HttpError::InvalidRequest(m) => format!("invalid: {m}"),
        HttpError::Denied(m) => format!("denied: {m}"),
    }
}

fn error_from_text(t: &str) -> HttpError {
    if t == "timeout" {
        return HttpError::Timeout;
    }
    if let Some(n) = t.strip_prefix("too-large: ").and_then(|n| n.parse().ok()) {
        return HttpError::ResponseTooLarge(n);
    }
    if let Some(m) = t.strip_prefix("invalid: ") {
        return HttpError::InvalidRequest(m.into());
    }
    if let Some(m) = t.strip_prefix("denied: ") {
        return HttpError::Denied(m.into());
    }
    HttpError::Transport(t.strip_prefix("transport: ").unwrap_or(t).into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(method: HttpMethod, url: &str) -> HttpRequest {
        HttpRequest {
            method,
            url: url.into(),
            headers: vec![("authorization".into(), "Bearer s3cret-token".into()), ("x-trace".into(), "1".into())],
            body: b"{\"k\":\"s3cret-token\"}".to_vec(),
            timeout_ms: None,
        }
    }

    #[test]
    fn a_recording_replays_in_order_without_its_secrets() {
        let secrets = vec!["s3cret-token".to_string()];
        let rec = Tape::record();
        let ok = |s: u16, b: &str| Ok(HttpResponse { status: s, headers: vec![], body: b.as_bytes().to_vec() });
        rec.keep(&req(HttpMethod::Get, "http://x/a?t=s3cret-token"), &ok(200, "first"), &secrets);
        rec.keep(&req(HttpMethod::Get, "http://x/a?t=s3cret-token"), &ok(200, "second"), &secrets);
        rec.keep(&req(HttpMethod::Post, "http://x/b"), &Err(HttpError::Timeout), &secrets);
        let recording = rec.recording().unwrap();
        let text = serde_json::to_string(&recording).unwrap();
        assert!(!text.contains("s3cret-token"), "{text}");
        assert_eq!(recording.exchanges[0].url, "http://x/a?t=[redacted]");

        let rep = Tape::replay(serde_json::from_str(&text).unwrap());
        let body = |r: Option<Result<HttpResponse, HttpError>>| String::from_utf8(r.unwrap().unwrap().body).unwrap();
        assert_eq!(body(rep.answer(&req(HttpMethod::Get, "http://x/a?t=s3cret-token"), &secrets)), "first");
        assert_eq!(body(rep.answer(&req(HttpMethod::Get, "http://x/a?t=s3cret-token"), &secrets)), "second");
        assert!(matches!(rep.answer(&req(HttpMethod::Post, "http://x/b"), &secrets), Some(Err(HttpError::Timeout))));
        let miss = rep.answer(&req(HttpMethod::Get, "http://x/a?t=s3cret-token"), &secrets).unwrap().unwrap_err();
        assert!(matches!(&miss, HttpError::Transport(m) if m.contains("no recorded answer for GET http://x/a")));
        let (misses, unused) = rep.replay_report().unwrap();
        assert_eq!((misses.len(), unused.len()), (1, 0));
    }

    #[test]
    fn binary_bodies_survive() {
        let bytes = vec![0u8, 255, 1, 2];
        assert_eq!(decode_body(&encode_body(&bytes, &[])), bytes);
        assert_eq!(decode_body(&encode_body(b"base64:looks-encoded", &[])), b"base64:looks-encoded");
    }
}
