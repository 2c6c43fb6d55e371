//! Retrying a request within one adapter call.
//!
//! The host gives plugins no way to sleep (the WIT has no sleep import, and
//! spinning on the clock would burn the call's time and fuel budget). So
//! this helper only retries **at once**, for failures where an immediate
//! second try can help (a dropped connection, a 502 from a flapping proxy).
//! When the supplier asks for a wait (`Retry-After: N` with N > 0), it stops
//! and returns [`AdapterError::transient_after`]: the host then retries the
//! whole operation after the wait, with the same idempotency key.

use super::{HttpError, Request, Response};
use crate::AdapterError;

/// How [`send_with_retry`] retries. Start from `RetryPolicy::default()`
/// (3 attempts within 10 s, timeouts not retried).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in total, the first included (`1` = never retry). Keep it
    /// within the manifest's `limits.http_requests_per_call`.
    pub max_attempts: u32,
    /// No new attempt starts once this many milliseconds have passed since
    /// the first (by `clock::now_ms`); keep it below the call's timeout.
    pub max_total_ms: u64,
    /// Also retry `HttpError::Timeout`. Off by default: a timed-out request
    /// may have reached the supplier, and the retry eats the time the host
    /// gave the whole call.
    pub retry_timeouts: bool,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy { max_attempts: 3, max_total_ms: 10_000, retry_timeouts: false }
    }
}

/// Sends `request`, retrying at once on a transport error and on HTTP
/// 408/429/5xx without a `Retry-After` wait (or with `Retry-After: 0`).
///
/// - `Ok(response)`: an answer retrying would not change (2xx, 3xx, other
///   4xx) — still call [`Response::error_for_status`] for 4xx.
/// - `Err(transient)`: still failing when the attempts or the time ran out;
///   `retry_after_ms` is set when the supplier asked for a wait (the host
///   waits, then retries the operation).
/// - Other host errors (denied, invalid request, response too large) are
///   returned at once, as [`Request::send`] would.
///
/// Only retry requests that are safe to repeat: reads, and writes that carry
/// an idempotency key the supplier honours.
///
/// ```no_run
/// # use daifa_plugin_sdk::{http, AdapterError};
/// # fn f() -> Result<(), AdapterError> {
/// let req = http::Request::get("https://api.example.com/stock").query(&[("sku", "A1")]);
/// let resp = http::send_with_retry(req, http::RetryPolicy { max_attempts: 2, ..Default::default() })?
///     .error_for_status()?;
/// # Ok(()) }
/// ```
pub fn send_with_retry(request: Request, policy: RetryPolicy) -> Result<Response, AdapterError> {
    let start = crate::clock::now_ms();
    let mut attempt = 0u32;
    loop {
        attempt += 1;
        let outcome = request.send_raw();
        let out_of_budget = attempt >= policy.max_attempts.max(1)
            || crate::clock::now_ms().saturating_sub(start) >= policy.max_total_ms;
        let why = match outcome {
            Ok(resp) if !is_retryable_status(resp.status) => return Ok(resp),
            Ok(resp) => {
                let asks_to_wait = resp.retry_after_ms().is_some_and(|ms| ms > 0);
                if out_of_budget || asks_to_wait {
                    // A transient error for these statuses, carrying
                    // Retry-After as retry_after_ms.
                    return resp.error_for_status();
                }
                format!("HTTP {}", resp.status)
            }
            Err(e) if !out_of_budget && is_retryable_error(&e, &policy) => format!("{e:?}"),
            Err(e) => return Err(e.into()),
        };
        crate::log::log(
            crate::log::Level::Debug,
            &format!("{} failed ({why}); retrying at once", request.url()),
            &[("attempt", &attempt.to_string())],
        );
    }
}

fn is_retryable_status(status: u16) -> bool {
    matches!(status, 408 | 429 | 500..=599)
}

fn is_retryable_error(e: &HttpError, policy: &RetryPolicy) -> bool {
    match e {
        HttpError::Transport(_) => true,
        HttpError::Timeout => policy.retry_timeouts,
        HttpError::Denied(_) | HttpError::ResponseTooLarge(_) | HttpError::InvalidRequest(_) => false,
    }
}
