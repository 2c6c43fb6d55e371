//! Per-call store state and the host side of the plugin imports (`http`,
//! `log`, `config`, `kv`, `clock`). Everything a plugin can reach goes through
//! here, checked against that plugin's grants and per-call budgets.

use std::sync::Arc;
use std::time::{Duration, Instant};

use wasmtime::component::ResourceTable;
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use super::allowlist::Allowlist;
use super::bindings::v0_1::daifa::supplier as api;
use super::bindings::{HttpError, HttpRequest, HttpResponse, LogLevel};
use super::error::LimitKind;
use super::http::{OutboundError, OutboundHttp};
use super::kv::{KvError, KvQuota, KvStore};
use super::manifest::{Limits, PluginConfig};

/// How much of a guest's stderr (panic messages) is kept per call.
pub const STDERR_CAPTURE_BYTES: usize = 8 << 10;

/// What every call of one plugin version shares.
pub struct PluginContext {
    pub name: String,
    pub version: String,
    pub config: PluginConfig,
    pub allowlist: Allowlist,
    pub limits: Limits,
    pub kv: Arc<KvStore>,
    pub http: OutboundHttp,
    /// The keys the manifest declares: reading any other is a mistake the
    /// author must hear about, not a silent `None`.
    pub declared: Arc<std::collections::BTreeSet<String>>,
    /// This binding's secret config values, kept out of the journal.
    pub secrets: Vec<String>,
    pub journal: super::journal::Journal,
    /// Record or replay this binding's HTTP (`invoke`; `None` in service).
    pub tape: Option<super::tape::Tape>,
    /// A one-off call for an author or operator (`invoke`): it is not
    /// counted in the version's metrics and cannot quarantine it.
    pub scratch: bool,
}

impl PluginContext {
    /// The declared keys and secret values of `manifest` under `config`.
    pub fn config_facts(
        manifest: &super::Manifest,
        config: &PluginConfig,
    ) -> (Arc<std::collections::BTreeSet<String>>, Vec<String>) {
        let declared = Arc::new(manifest.config.keys().cloned().collect());
        let secrets = manifest
            .config
            .iter()
            .filter(|(_, f)| f.secret)
            .filter_map(|(k, _)| config.get(k).filter(|v| v.len() >= 4).cloned())
            .collect();
        (declared, secrets)
    }
}

/// The first rule a call broke; it decides the call's error even if the
/// plugin carried on after the host refused it something.
#[derive(Debug, Clone)]
pub enum Violation {
    Limit(LimitKind, String),
    Denied(String),
}

/// Data of one `Store`: one call.
pub struct HostState {
    wasi: WasiCtx,
    table: ResourceTable,
    pub(crate) limiter: MemoryLimiter,
    pub(crate) plugin: Arc<PluginContext>,
    pub(crate) deadline: Instant,
    pub(crate) violation: Option<Violation>,
    pub(crate) stderr: MemoryOutputPipe,
    log_bytes: u64,
    pub(crate) http_requests: u32,
    pub(crate) http_bytes_sent: u64,
    pub(crate) http_bytes_received: u64,
}

impl HostState {
    pub fn new(plugin: Arc<PluginContext>, deadline: Instant) -> HostState {
        let stderr = MemoryOutputPipe::new(STDERR_CAPTURE_BYTES);
        // No preopens, env, args or network: the plugin's only ways out are
        // the daifa imports below.
        let wasi = WasiCtx::builder().stderr(stderr.clone()).build();
        HostState {
            wasi,
            table: ResourceTable::new(),
            limiter: MemoryLimiter::new(plugin.limits.memory_bytes),
            plugin,
            deadline,
            violation: None,
            stderr,
            log_bytes: 0,
            http_requests: 0,
            http_bytes_sent: 0,
            http_bytes_received: 0,
        }
    }

    /// Records the first violation of the call.
    pub(crate) fn violate(&mut self, v: Violation) {
        if self.violation.is_none() {
            self.violation = Some(v);
        }
    }

    fn remaining(&self) -> Duration {
        self.deadline.saturating_duration_since(Instant::now())
    }
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView { ctx: &mut self.wasi, table: &mut self.table }
    }
}

/// Caps linear memory and remembers whether the cap was hit, so the trap a
/// failed allocation causes can be reported as a memory limit.
pub struct MemoryLimiter {
    cap: u64,
    pub(crate) peak: u64,
    pub(crate) refused: Option<u64>,
}

impl MemoryLimiter {
    fn new(cap: u64) -> MemoryLimiter {
        MemoryLimiter { cap, peak: 0, refused: None }
    }
}

impl wasmtime::ResourceLimiter for MemoryLimiter {
    fn memory_growing(&mut self, _current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        if desired as u64 > self.cap {
            self.refused = Some(desired as u64);
            return Ok(false);
        }
        self.peak = self.peak.max(desired as u64);
        Ok(true)
    }

    fn table_growing(&mut self, _current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        Ok(desired <= 1_000_000)
    }
}

fn trap(msg: String) -> wasmtime::Error {
    wasmtime::Error::msg(msg)
}

impl api::http::Host for HostState {
    async fn send(&mut self, req: HttpRequest) -> wasmtime::Result<Result<HttpResponse, HttpError>> {
        let limits = &self.plugin.limits;
        if self.http_requests >= limits.http_requests_per_call {
            let msg = format!("more than {} HTTP requests in one call", limits.http_requests_per_call);
            self.violate(Violation::Limit(LimitKind::HttpRequests, msg.clone()));
            return Err(trap(msg));
        }
        self.http_requests += 1;
        let mut timeout = Duration::from_millis(limits.http_timeout_ms).min(self.remaining());
        if let Some(ms) = req.timeout_ms {
            timeout = timeout.min(Duration::from_millis(ms.into()));
        }
        let max_body = limits.http_response_bytes;
        let plugin = self.plugin.clone();
        let target = req.url.clone();
        self.http_bytes_sent += req.body.len() as u64;
        if let Some(tape) = &plugin.tape {
            // A replay still holds the plugin to its allowlist: a recording
            // must not make a request pass that production would refuse.
            if let Err(d) = plugin.allowlist.check(&req.url) {
                let what = d.to_string();
                self.violate(Violation::Denied(what.clone()));
                return Ok(Err(HttpError::Denied(what)));
            }
            if let Some(answer) = tape.answer(&req, &plugin.secrets) {
                if let Ok(r) = &answer {
                    self.http_bytes_received += r.body.len() as u64;
                }
                return Ok(answer);
            }
        }
        let sent = plugin.tape.as_ref().map(|_| req.clone());
        let result = self.send_live(&plugin, req, timeout, max_body, &target).await;
        if let (Some(tape), Some(req)) = (&plugin.tape, sent) {
            tape.keep(&req, &result, &plugin.secrets);
        }
        Ok(result)
    }
}

impl HostState {
    async fn send_live(
        &mut self,
        plugin: &PluginContext,
        req: HttpRequest,
        timeout: Duration,
        max_body: u64,
        target: &str,
    ) -> Result<HttpResponse, HttpError> {
        match plugin.http.send(&plugin.allowlist, req, timeout, max_body).await {
            Ok(resp) => {
                self.http_bytes_received += resp.body.len() as u64;
                Ok(resp)
            }
            Err(OutboundError::Denied(what)) => {
                tracing::warn!(plugin = %plugin.name, target = %target, "outbound request denied: {what}");
                self.violate(Violation::Denied(what.clone()));
                Err(HttpError::Denied(what))
            }
            Err(OutboundError::TooLarge { limit }) => {
                self.violate(Violation::Limit(
                    LimitKind::HttpResponseBytes,
                    format!("response from {target} is larger than {limit} bytes"),
                ));
                Err(HttpError::ResponseTooLarge(limit))
            }
            Err(OutboundError::Timeout(_)) => Err(HttpError::Timeout),
            Err(OutboundError::Invalid(m)) => Err(HttpError::InvalidRequest(m)),
            Err(OutboundError::Transport(m)) => Err(HttpError::Transport(m)),
        }
    }
}

impl api::log::Host for HostState {
    async fn log(&mut self, level: LogLevel, message: String, fields: Vec<(String, String)>) -> wasmtime::Result<()> {
        let size = message.len() + fields.iter().map(|(k, v)| k.len() + v.len()).sum::<usize>();
        self.log_bytes += size as u64;
        let cap = self.plugin.limits.log_bytes_per_call;
        if self.log_bytes > cap {
            let msg = format!("more than {cap} bytes of log in one call");
            self.violate(Violation::Limit(LimitKind::LogBytes, msg.clone()));
            return Err(trap(msg));
        }
        // A plugin's text stays inside its own record: newlines, control and
        // colour codes are escaped and field names are reduced to a plain
        // alphabet, so no plugin can write a line that reads as another
        // target's (a forged `daifa::audit` line) or as the host's own
        // `plugin=` field.
        // The binding's secret values never reach a log, the host's or the
        // journal: taken out before escaping, as the plugin wrote them.
        let secrets = &self.plugin.secrets;
        let fields = fields
            .iter()
            .map(|(k, v)| format!("plugin.{}={:?}", plain_key(k), super::journal::redact(v, secrets)))
            .collect::<Vec<_>>()
            .join(" ");
        let message = super::journal::redact(&message, secrets).escape_debug().to_string();
        let p = &self.plugin.name;
        let level_name = match level {
            LogLevel::Trace => "trace",
            LogLevel::Debug => "debug",
            LogLevel::Info => "info",
            LogLevel::Warn => "warn",
            LogLevel::Error => "error",
        };
        let line = if fields.is_empty() { message.clone() } else { format!("{message} {fields}") };
        self.plugin.journal.log(p, &self.plugin.version, level_name, line);
        match level {
            LogLevel::Trace => tracing::trace!(target: "daifa::plugin", plugin = %p, %fields, "{message}"),
            LogLevel::Debug => tracing::debug!(target: "daifa::plugin", plugin = %p, %fields, "{message}"),
            LogLevel::Info => tracing::info!(target: "daifa::plugin", plugin = %p, %fields, "{message}"),
            LogLevel::Warn => tracing::warn!(target: "daifa::plugin", plugin = %p, %fields, "{message}"),
            LogLevel::Error => tracing::error!(target: "daifa::plugin", plugin = %p, %fields, "{message}"),
        }
        Ok(())
    }
}

/// A log field name as a plugin may write it: letters, digits, `_`, `-`
/// and `.`; anything else becomes `_`.
fn plain_key(k: &str) -> String {
    let k: String =
        k.chars().map(|c| if c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.') { c } else { '_' }).collect();
    if k.is_empty() { "_".into() } else { k }
}

impl api::config::Host for HostState {
    async fn get(&mut self, key: String) -> wasmtime::Result<Option<String>> {
        if !self.plugin.declared.contains(&key) {
            // Refused like an HTTP target off the allowlist, and the call
            // stops: the message names the fix, so the author meets it on
            // the first `invoke`, not as a `None` in production.
            let what = format!(
                "config key `{key}`, which the manifest does not declare (add a [config.{key}] table to \
                 manifest.toml; declared: {})",
                if self.plugin.declared.is_empty() {
                    "none".to_string()
                } else {
                    self.plugin.declared.iter().map(String::as_str).collect::<Vec<_>>().join(", ")
                }
            );
            self.violate(Violation::Denied(what.clone()));
            // Stop the call here: carrying on without the value could place
            // an order with a half-made request.
            return Err(trap(what));
        }
        Ok(self.plugin.config.get(&key).cloned())
    }

    async fn keys(&mut self) -> wasmtime::Result<Vec<String>> {
        Ok(self.plugin.config.keys().cloned().collect())
    }
}

impl api::kv::Host for HostState {
    async fn get(&mut self, key: String) -> wasmtime::Result<Option<Vec<u8>>> {
        // A store that cannot be read answers as empty: the WIT `get` has no
        // error case, and a plugin must treat a missing token as "fetch one".
        Ok(self.plugin.kv.get(&key).await.unwrap_or_else(|e| {
            tracing::warn!(plugin = %self.plugin.name, "kv get failed: {e}");
            None
        }))
    }

    async fn set(&mut self, key: String, value: Vec<u8>) -> wasmtime::Result<Result<(), api::kv::KvError>> {
        let l = &self.plugin.limits;
        let quota = KvQuota {
            max_keys: l.kv_max_keys,
            max_value_bytes: l.kv_max_value_bytes,
            max_total_bytes: l.kv_max_total_bytes,
        };
        Ok(self.plugin.kv.set(key, value, quota).await.map_err(kv_error))
    }

    async fn delete(&mut self, key: String) -> wasmtime::Result<Result<(), api::kv::KvError>> {
        Ok(self.plugin.kv.delete(&key).await.map_err(kv_error))
    }
}

fn kv_error(e: KvError) -> api::kv::KvError {
    match e {
        KvError::Quota(m) => api::kv::KvError::QuotaExceeded(m),
        KvError::Io(m) => api::kv::KvError::Unavailable(m),
    }
}

impl api::clock::Host for HostState {
    async fn now_ms(&mut self) -> wasmtime::Result<u64> {
        Ok(crate::util::now_ms().max(0) as u64)
    }
}

impl api::types::Host for HostState {}
