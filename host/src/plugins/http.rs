//! Outbound HTTP for plugins: one shared connection pool, every request and
//! every redirect hop checked against the calling plugin's allowlist, bodies
//! capped while streaming, a timeout per request.

use std::sync::Arc;
use std::time::Duration;

use reqwest::header::{CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue, LOCATION};
use url::Url;

use super::allowlist::{Allowlist, Denied};
use super::bindings::{HttpMethod, HttpRequest, HttpResponse};
use super::egress::{EgressDenied, EgressPolicy, GuardedResolver};

/// How many redirects the host follows for a plugin before giving up.
pub const MAX_REDIRECTS: usize = 5;

/// Why an outbound request failed.
#[derive(Debug, thiserror::Error)]
pub enum OutboundError {
    #[error("denied: {0}")]
    Denied(String),
    #[error("request timed out after {0:?}")]
    Timeout(Duration),
    #[error("response body larger than {limit} bytes")]
    TooLarge { limit: u64 },
    #[error("invalid request: {0}")]
    Invalid(String),
    #[error("transport: {0}")]
    Transport(String),
}

/// The host's HTTP client for plugins (cheap to clone; one pool per process).
#[derive(Clone)]
pub struct OutboundHttp {
    client: reqwest::Client,
    egress: Arc<EgressPolicy>,
}

impl OutboundHttp {
    /// Builds the shared client. Redirects are off: the host follows them
    /// itself so each hop is checked against the allowlist.
    pub fn new(egress: EgressPolicy) -> Result<OutboundHttp, reqwest::Error> {
        // reqwest is built without a bundled crypto provider; use ring. An
        // error here only means another part of the process installed one.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let egress = Arc::new(egress);
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            // A proxy from the environment would connect for us, past the
            // address check below.
            .no_proxy()
            .dns_resolver(Arc::new(GuardedResolver { policy: egress.clone() }))
            .pool_idle_timeout(Duration::from_secs(60))
            .pool_max_idle_per_host(32)
            .user_agent(concat!("daifa/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(OutboundHttp { client, egress })
    }

    /// Sends a plugin's request within `timeout`, reading at most `max_body` bytes.
    pub async fn send(
        &self,
        allow: &Allowlist,
        req: HttpRequest,
        timeout: Duration,
        max_body: u64,
    ) -> Result<HttpResponse, OutboundError> {
        let url = allow.check(&req.url).map_err(|d| OutboundError::Denied(d.to_string()))?;
        let headers = to_header_map(&req.headers)?;
        match tokio::time::timeout(timeout, self.follow(allow, url, req.method, headers, req.body, max_body)).await {
            Ok(r) => r,
            Err(_) => Err(OutboundError::Timeout(timeout)),
        }
    }

    async fn follow(
        &self,
        allow: &Allowlist,
        mut url: Url,
        mut method: HttpMethod,
        mut headers: HeaderMap,
        mut body: Vec<u8>,
        max_body: u64,
    ) -> Result<HttpResponse, OutboundError> {
        for _hop in 0..=MAX_REDIRECTS {
            // An address in the URL is never resolved, so it is checked here;
            // names are checked by the resolver on every connection.
            let literal = match url.host() {
                Some(url::Host::Ipv4(ip)) => Some(std::net::IpAddr::V4(ip)),
                Some(url::Host::Ipv6(ip)) => Some(std::net::IpAddr::V6(ip)),
                _ => None,
            };
            if let Some(ip) = literal {
                self.egress.check(ip).map_err(OutboundError::Denied)?;
            }
            let resp = self
                .client
                .request(to_reqwest_method(method), url.clone())
                .headers(headers.clone())
                .body(body.clone())
                .send()
                .await
                .map_err(transport_error)?;
            let status = resp.status();
            if status.is_redirection()
                && let Some(location) = resp.headers().get(LOCATION)
            {
                let location =
                    location.to_str().map_err(|_| OutboundError::Transport("redirect Location is not text".into()))?;
                let next = url
                    .join(location)
                    .map_err(|_| OutboundError::Transport(format!("bad redirect Location `{location}`")))?;
                allow.check_url(&next).map_err(|d| match d {
                    Denied::NotAllowed(t) => {
                        OutboundError::Denied(format!("redirect to {t} is not on the plugin's allowlist"))
                    }
                    other => OutboundError::Denied(format!("redirect: {other}")),
                })?;
                let code = status.as_u16();
                let cross_origin = next.origin() != url.origin();
                if cross_origin {
                    // Credentials were meant for the first origin only:
                    // whatever looks like one stays behind.
                    let names: Vec<HeaderName> =
                        headers.keys().filter(|n| credential_like(n.as_str())).cloned().collect();
                    for n in names {
                        headers.remove(n);
                    }
                }
                // Another origin never gets the body either (303 semantics,
                // even for 307/308, which would replay it).
                if code == 303 || ((code == 301 || code == 302) && method == HttpMethod::Post) || cross_origin {
                    if method != HttpMethod::Head {
                        method = HttpMethod::Get;
                    }
                    body.clear();
                    headers.remove(CONTENT_TYPE);
                }
                url = next;
                continue;
            }
            return read_capped(resp, max_body).await;
        }
        Err(OutboundError::Transport(format!("more than {MAX_REDIRECTS} redirects")))
    }
}

async fn read_capped(mut resp: reqwest::Response, max_body: u64) -> Result<HttpResponse, OutboundError> {
    let status = resp.status().as_u16();
    let headers: Vec<(String, String)> = resp
        .headers()
        .iter()
        .map(|(k, v)| (k.as_str().to_string(), String::from_utf8_lossy(v.as_bytes()).into_owned()))
        .collect();
    // Headers are part of what the plugin receives: they count against
    // the same cap as the body (name, ": ", value, CRLF per header).
    let header_bytes: u64 = headers.iter().map(|(k, v)| (k.len() + v.len() + 4) as u64).sum();
    if header_bytes > max_body {
        return Err(OutboundError::TooLarge { limit: max_body });
    }
    let room = max_body - header_bytes;
    if resp.content_length().is_some_and(|n| n > room) {
        return Err(OutboundError::TooLarge { limit: max_body });
    }
    let mut body = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(|e| OutboundError::Transport(error_chain(&e)))? {
        if (body.len() + chunk.len()) as u64 > room {
            return Err(OutboundError::TooLarge { limit: max_body });
        }
        body.extend_from_slice(&chunk);
    }
    Ok(HttpResponse { status, headers, body })
}

/// Headers the host sets itself: where the request goes (`Host`), how the
/// connection and body are framed, and hop-by-hop headers. A plugin
/// setting them could reach another virtual host than its allowlist names
/// or smuggle a second request.
const HOST_OWNED: &[&str] = &[
    "host",
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "content-length",
    "expect",
    "forwarded",
    "x-forwarded-for",
    "x-forwarded-host",
];

/// A header that carries a credential, by its name.
fn credential_like(name: &str) -> bool {
    const WORDS: &[&str] =
        &["auth", "cookie", "token", "key", "secret", "signature", "session", "password", "credential", "sign"];
    let n = name.to_ascii_lowercase();
    WORDS.iter().any(|w| n.contains(w))
}

fn to_header_map(headers: &[(String, String)]) -> Result<HeaderMap, OutboundError> {
    let mut map = HeaderMap::with_capacity(headers.len());
    for (k, v) in headers {
        let name = HeaderName::from_bytes(k.as_bytes())
            .map_err(|_| OutboundError::Invalid(format!("header name `{k}` is not valid")))?;
        if HOST_OWNED.contains(&name.as_str()) {
            return Err(OutboundError::Invalid(format!("header `{k}` is set by the host, not by a plugin")));
        }
        let value = HeaderValue::from_str(v)
            .map_err(|_| OutboundError::Invalid(format!("value of header `{k}` is not valid")))?;
        map.append(name, value);
    }
    Ok(map)
}

fn to_reqwest_method(m: HttpMethod) -> reqwest::Method {
    match m {
        HttpMethod::Get => reqwest::Method::GET,
        HttpMethod::Head => reqwest::Method::HEAD,
        HttpMethod::Post => reqwest::Method::POST,
        HttpMethod::Put => reqwest::Method::PUT,
        HttpMethod::Patch => reqwest::Method::PATCH,
        HttpMethod::Delete => reqwest::Method::DELETE,
    }
}

/// A failed send: the egress policy's refusal (raised inside the resolver)
/// is the plugin's capability denial, anything else a transport error.
fn transport_error(e: reqwest::Error) -> OutboundError {
    let mut src: Option<&(dyn std::error::Error + 'static)> = Some(&e);
    while let Some(cause) = src {
        if let Some(denied) = cause.downcast_ref::<EgressDenied>() {
            return OutboundError::Denied(denied.to_string());
        }
        src = cause.source();
    }
    OutboundError::Transport(error_chain(&e))
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(cause) = src {
        s.push_str(": ");
        s.push_str(&cause.to_string());
        src = cause.source();
    }
    s
}
