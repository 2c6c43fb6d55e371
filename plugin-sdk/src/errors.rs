//! Constructors for [`AdapterError`] and conversions from what goes wrong in
//! plugin code, so `?` does the right thing.

use crate::bindings::daifa::supplier::http::HttpError;
use crate::{AdapterError, RetryHint};

impl AdapterError {
    /// The supplier refused the request; retrying will not help.
    pub fn rejected(msg: impl Into<String>) -> Self {
        AdapterError::Rejected(msg.into())
    }

    /// A temporary failure; the host retries with backoff.
    pub fn transient(msg: impl Into<String>) -> Self {
        AdapterError::Transient(RetryHint { message: msg.into(), retry_after_ms: None })
    }

    /// A temporary failure with a hint of when to retry.
    pub fn transient_after(msg: impl Into<String>, retry_after_ms: u64) -> Self {
        AdapterError::Transient(RetryHint { message: msg.into(), retry_after_ms: Some(retry_after_ms) })
    }

    /// Credentials refused.
    pub fn unauthorized(msg: impl Into<String>) -> Self {
        AdapterError::Unauthorized(msg.into())
    }

    /// The plugin's configuration is wrong or incomplete.
    pub fn misconfigured(msg: impl Into<String>) -> Self {
        AdapterError::Misconfigured(msg.into())
    }

    /// The adapter does not implement `operation`.
    pub fn unsupported(operation: &str) -> Self {
        AdapterError::Rejected(format!("this adapter does not support {operation}"))
    }
}

impl From<HttpError> for AdapterError {
    fn from(e: HttpError) -> Self {
        match e {
            HttpError::Denied(target) => AdapterError::misconfigured(format!("the host denied the request: {target}")),
            HttpError::Timeout => AdapterError::transient("supplier did not answer in time"),
            HttpError::ResponseTooLarge(limit) => {
                AdapterError::rejected(format!("supplier response larger than {limit} bytes"))
            }
            HttpError::InvalidRequest(m) => AdapterError::misconfigured(format!("invalid request: {m}")),
            HttpError::Transport(m) => AdapterError::transient(format!("transport: {m}")),
        }
    }
}

/// JSON that cannot be read is **transient**, not `rejected`.
///
/// `?` on a `serde_json` call cannot tell what the JSON was; most often it
/// is a supplier's answer, and if that answer was a 2xx the supplier may
/// have taken the order. `rejected` would make the host send the order to
/// another supplier (a possible double shipment); `transient` makes it retry
/// with the same idempotency key, within its retry budget, and then alert.
/// Where an unreadable input is the sender's fault for good (e.g. a webhook
/// body), answer it yourself or map the error with `AdapterError::rejected`.
impl From<serde_json::Error> for AdapterError {
    fn from(e: serde_json::Error) -> Self {
        AdapterError::transient(format!(
            "unexpected JSON ({e}); transient, as a supplier whose answer this was may have accepted the request"
        ))
    }
}
