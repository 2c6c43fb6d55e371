//! The typed errors of the plugin runtime: what a single call can fail with
//! ([`CallError`]) and why a package is refused ([`ValidationError`]).

use std::fmt;
use std::time::Duration;

use super::bindings::AdapterError;

/// Which sandbox limit a call ran into.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum LimitKind {
    /// Linear memory beyond the plugin's cap.
    Memory,
    /// The wall-clock deadline of the call.
    Deadline,
    /// The fuel (instruction) budget.
    Fuel,
    /// The wasm call stack (deep recursion).
    Stack,
    /// An HTTP response body beyond the plugin's cap.
    HttpResponseBytes,
    /// Too many HTTP requests in one call.
    HttpRequests,
    /// Log output beyond the per-call cap.
    LogBytes,
    /// A return value beyond the output cap.
    OutputBytes,
}

impl LimitKind {
    /// Every kind, for metrics that want a stable set of labels.
    pub const ALL: [LimitKind; 8] = [
        LimitKind::Memory,
        LimitKind::Deadline,
        LimitKind::Fuel,
        LimitKind::Stack,
        LimitKind::HttpResponseBytes,
        LimitKind::HttpRequests,
        LimitKind::LogBytes,
        LimitKind::OutputBytes,
    ];

    /// Stable lower-case name (metrics label, API field).
    pub fn as_str(self) -> &'static str {
        match self {
            LimitKind::Memory => "memory",
            LimitKind::Deadline => "deadline",
            LimitKind::Fuel => "fuel",
            LimitKind::Stack => "stack",
            LimitKind::HttpResponseBytes => "http-response-bytes",
            LimitKind::HttpRequests => "http-requests",
            LimitKind::LogBytes => "log-bytes",
            LimitKind::OutputBytes => "output-bytes",
        }
    }
}

impl fmt::Display for LimitKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why one call into a plugin failed. Every failure of the sandbox is mapped
/// to one of these; none of them affects other calls or other plugins.
#[derive(Debug, Clone, thiserror::Error)]
pub enum CallError {
    /// The adapter ran and reported a supplier-side failure.
    #[error("plugin `{plugin}` reported: {error}")]
    Adapter { plugin: String, error: AdapterErrorKind },
    /// The call hit a sandbox limit.
    #[error("plugin `{plugin}` exceeded its {kind} limit: {detail}")]
    LimitExceeded { plugin: String, kind: LimitKind, detail: String },
    /// The plugin asked for something it is not granted (e.g. an HTTP target
    /// outside its allowlist).
    #[error("plugin `{plugin}` was denied: {target}")]
    CapabilityDenied { plugin: String, target: String },
    /// The plugin trapped (panic, `unreachable`, bad memory access, ...).
    #[error("plugin `{plugin}` trapped: {reason}")]
    Trap { plugin: String, reason: String },
    /// The plugin does not implement what the host called.
    #[error("plugin `{plugin}` is incompatible: {detail}")]
    Incompatible { plugin: String, detail: String },
    /// No active version of the plugin (not installed, or disabled).
    #[error("plugin `{plugin}` is unavailable: {detail}")]
    Unavailable { plugin: String, detail: String },
    /// The host itself failed around the call (instantiation, ...).
    #[error("host failure calling plugin `{plugin}`: {detail}")]
    Host { plugin: String, detail: String },
    /// No call slot came free in time: another plugin (`holder`) held them.
    /// The overload is the holder's, not an error of `plugin`.
    #[error("plugin `{plugin}` got no call slot: {detail}")]
    Crowded { plugin: String, holder: String, detail: String },
}

impl CallError {
    /// A short stable label for metrics and logs.
    pub fn kind_label(&self) -> &'static str {
        match self {
            CallError::Adapter { .. } => "adapter",
            CallError::LimitExceeded { .. } => "limit",
            CallError::CapabilityDenied { .. } => "denied",
            CallError::Trap { .. } => "trap",
            CallError::Incompatible { .. } => "incompatible",
            CallError::Unavailable { .. } => "unavailable",
            CallError::Host { .. } => "host",
            CallError::Crowded { .. } => "crowded",
        }
    }
}

/// The adapter's own error, as a host-side enum (kept separate from the
/// generated binding type so callers never depend on a WIT version).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AdapterErrorKind {
    #[error("rejected: {0}")]
    Rejected(String),
    #[error("transient: {message}")]
    Transient { message: String, retry_after: Option<Duration> },
    #[error("unauthorized: {0}")]
    Unauthorized(String),
    #[error("misconfigured: {0}")]
    Misconfigured(String),
}

impl From<AdapterError> for AdapterErrorKind {
    fn from(e: AdapterError) -> Self {
        match e {
            AdapterError::Rejected(m) => AdapterErrorKind::Rejected(m),
            AdapterError::Transient(h) => AdapterErrorKind::Transient {
                message: h.message,
                retry_after: h.retry_after_ms.map(Duration::from_millis),
            },
            AdapterError::Unauthorized(m) => AdapterErrorKind::Unauthorized(m),
            AdapterError::Misconfigured(m) => AdapterErrorKind::Misconfigured(m),
        }
    }
}

/// Why a plugin package was refused. Each variant says exactly what is wrong;
/// the active version of the plugin (if any) keeps serving.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ValidationError {
    #[error("package is {size} bytes; the limit is {limit} bytes")]
    TooLarge { size: usize, limit: usize },
    #[error("sha256 mismatch: manifest says {expected}, component bytes hash to {actual}")]
    Sha256Mismatch { expected: String, actual: String },
    #[error("not a WebAssembly component: {0}")]
    NotAComponent(String),
    #[error("component does not implement daifa:supplier/adapter (world supplier-adapter); it exports: {exports}")]
    WrongWorld { exports: String },
    #[error("unsupported API version: the plugin targets daifa:supplier@{wanted}; this host supports {supported}")]
    UnsupportedApiVersion { wanted: String, supported: String },
    #[error("manifest says api_version {manifest}, but the component implements daifa:supplier@{component}")]
    ApiVersionMismatch { manifest: String, component: String },
    #[error("component imports {import}, which this host does not provide ({provided})")]
    UnsatisfiedImport { import: String, provided: String },
    #[error("invalid manifest: {0}")]
    Manifest(String),
    #[error("invalid config: {0}")]
    Config(String),
    #[error("component failed to compile: {0}")]
    Compile(String),
    /// More of the instance pool than one plugin may hold: every plugin
    /// shares it, so one component with a hundred memories would leave the
    /// others none while its call runs.
    #[error("component would take more of the instance pool shared by every plugin than one plugin may: {0}")]
    PoolShare(String),
    #[error("component does not match the supplier-adapter world: {0}")]
    ExportMismatch(String),
    #[error("dry-run instantiation failed: {0}")]
    DryRun(String),
}
