//! A mock host for native unit tests of an adapter (feature `testing`).
//!
//! Natively there is no daifa host: every SDK host call (config, kv, clock,
//! log, http) goes to the [`MockHost`] installed on the test's thread. Each
//! test installs a fresh one, scripts what the host should answer, calls the
//! adapter's functions directly and asserts on what it sent, stored and
//! logged:
//!
//! ```no_run
//! use daifa_plugin_sdk::prelude::*;
//! use daifa_plugin_sdk::testing::{MockHost, Reply};
//!
//! # fn my_submit() -> Result<(), AdapterError> { Ok(()) }
//! let host = MockHost::install();
//! host.set_config("base_url", "https://api.example.com");
//! host.expect(http::Method::Post, "https://api.example.com/orders",
//!             Reply::json(201, &serde_json::json!({ "id": "S-1" })));
//! my_submit().unwrap();
//! assert_eq!(host.requests()[0].header("idempotency-key"), Some("key-1"));
//! host.assert_http_done();
//! ```
//!
//! Enable it for tests only:
//!
//! ```toml
//! [dev-dependencies]
//! daifa-plugin-sdk = { version = "0.1", features = ["testing"] }
//! ```
//!
//! The mock is native-only: in a wasm build every call goes to the real host.

pub(crate) mod backend;
mod http;
mod manifest;
#[cfg(test)]
mod tests;

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;

pub use self::http::{Reply, SentRequest};
pub use self::manifest::{assert_manifest_declares, assert_manifest_declares_keys};
pub use crate::bindings::daifa::supplier::http::{HttpError, Method};
pub use crate::bindings::daifa::supplier::kv::KvError;
pub use crate::log::Level;

use self::http::{Expectation, UrlMatch};
#[cfg(test)]
use crate::config::ConfigKey;

/// The clock's start: 2026-01-01T00:00:00Z, in unix milliseconds.
pub const DEFAULT_NOW_MS: u64 = 1_767_225_600_000;

/// One line the adapter logged.
#[derive(Debug, Clone)]
pub struct LogLine {
    /// Its level.
    pub level: Level,
    /// The message.
    pub message: String,
    /// `key=value` fields.
    pub fields: Vec<(String, String)>,
}

#[derive(Default)]
struct State {
    config: BTreeMap<String, String>,
    config_reads: Vec<String>,
    kv: BTreeMap<String, Vec<u8>>,
    kv_write_error: Option<KvError>,
    now_ms: u64,
    logs: Vec<LogLine>,
    expectations: Vec<Expectation>,
    requests: Vec<SentRequest>,
}

thread_local! {
    static CURRENT: RefCell<Option<Rc<RefCell<State>>>> = const { RefCell::new(None) };
}

/// The host the SDK talks to in a native test: config, kv, clock and log are
/// in memory, and HTTP answers come from scripted expectations.
///
/// [`MockHost::install`] puts a fresh mock on the current thread (each Rust
/// test runs on its own thread, so tests never share one); dropping the
/// handle removes it. All methods take `&self` and return `&Self` where that
/// allows chaining.
#[must_use = "the mock host is removed when this handle is dropped: bind it with `let host = ...`"]
pub struct MockHost {
    state: Rc<RefCell<State>>,
}

impl MockHost {
    /// Installs a fresh mock host on this thread (replacing any other) and
    /// returns its handle. Config and kv start empty, the clock at
    /// [`DEFAULT_NOW_MS`], and no HTTP request is expected.
    pub fn install() -> MockHost {
        let state = Rc::new(RefCell::new(State { now_ms: DEFAULT_NOW_MS, ..State::default() }));
        CURRENT.with(|c| *c.borrow_mut() = Some(state.clone()));
        MockHost { state }
    }

    fn with<R>(&self, f: impl FnOnce(&mut State) -> R) -> R {
        f(&mut self.state.borrow_mut())
    }

    // --- config ---

    /// Sets config `key` as an operator would (the host passes values as
    /// text; set defaults yourself or with [`MockHost::apply_manifest_defaults`]).
    pub fn set_config(&self, key: &str, value: &str) -> &Self {
        self.with(|s| s.config.insert(key.to_string(), value.to_string()));
        self
    }

    /// Removes config `key`.
    pub fn remove_config(&self, key: &str) -> &Self {
        self.with(|s| s.config.remove(key));
        self
    }

    /// Every key the adapter asked for with `config::get` (and the helpers
    /// built on it), in first-read order, set or not. Feed it to
    /// [`assert_manifest_declares_keys`] to catch keys the manifest lacks.
    pub fn config_reads(&self) -> Vec<String> {
        self.with(|s| s.config_reads.clone())
    }

    // --- kv ---

    /// The bytes stored under `key`.
    pub fn kv_get(&self, key: &str) -> Option<Vec<u8>> {
        self.with(|s| s.kv.get(key).cloned())
    }

    /// The UTF-8 text stored under `key`.
    pub fn kv_get_string(&self, key: &str) -> Option<String> {
        self.kv_get(key).and_then(|b| String::from_utf8(b).ok())
    }

    /// Seeds `key` with `value`, as if an earlier call had stored it.
    pub fn kv_set(&self, key: &str, value: impl AsRef<[u8]>) -> &Self {
        self.with(|s| s.kv.insert(key.to_string(), value.as_ref().to_vec()));
        self
    }

    /// Removes `key` from the store.
    pub fn kv_remove(&self, key: &str) -> &Self {
        self.with(|s| s.kv.remove(key));
        self
    }

    /// Every stored key, sorted.
    pub fn kv_keys(&self) -> Vec<String> {
        self.with(|s| s.kv.keys().cloned().collect())
    }

    /// Makes every kv `set`/`delete` fail with `error` from now on (`None`
    /// heals the store): test what the adapter does when kv is full or down.
    pub fn fail_kv_writes(&self, error: Option<KvError>) -> &Self {
        self.with(|s| s.kv_write_error = error);
        self
    }

    // --- clock ---

    /// What `clock::now_ms()` answers.
    pub fn now_ms(&self) -> u64 {
        self.with(|s| s.now_ms)
    }

    /// Sets the clock (unix milliseconds).
    pub fn set_now_ms(&self, ms: u64) -> &Self {
        self.with(|s| s.now_ms = ms);
        self
    }

    /// Moves the clock forward by `ms`.
    pub fn advance_ms(&self, ms: u64) -> &Self {
        self.with(|s| s.now_ms = s.now_ms.saturating_add(ms));
        self
    }

    // --- log ---

    /// Every line logged so far, oldest first.
    pub fn logs(&self) -> Vec<LogLine> {
        self.with(|s| s.logs.clone())
    }

    /// Panics unless a line at `level` whose message contains `needle` was
    /// logged; the message lists what was logged.
    #[track_caller]
    pub fn assert_logged(&self, level: Level, needle: &str) {
        let logs = self.logs();
        if !logs.iter().any(|l| l.level == level && l.message.contains(needle)) {
            let seen: Vec<String> = logs.iter().map(|l| format!("  {:?}: {}", l.level, l.message)).collect();
            panic!("no {level:?} log line containing {needle:?}; logged:\n{}", list_or_none(&seen));
        }
    }

    // --- http ---

    /// Expects one request with `method` to exactly `url` (query included)
    /// and answers it with `reply`.
    ///
    /// Each expectation answers once. A request takes the oldest unanswered
    /// expectation it matches, so two expectations for the same URL answer
    /// in the order they were added; a request that matches none panics,
    /// listing what was expected.
    pub fn expect(&self, method: Method, url: &str, reply: Reply) -> &Self {
        self.push(method, UrlMatch::Exact(url.to_string()), reply)
    }

    /// Like [`MockHost::expect`], matching every URL that starts with
    /// `prefix` (e.g. the endpoint without its query string).
    pub fn expect_prefix(&self, method: Method, prefix: &str, reply: Reply) -> &Self {
        self.push(method, UrlMatch::Prefix(prefix.to_string()), reply)
    }

    fn push(&self, method: Method, url: UrlMatch, reply: Reply) -> &Self {
        self.with(|s| s.expectations.push(Expectation { method, url, reply }));
        self
    }

    /// Every request the adapter sent, in order (answered or not).
    pub fn requests(&self) -> Vec<SentRequest> {
        self.with(|s| s.requests.clone())
    }

    /// The last request the adapter sent. Panics if there was none.
    #[track_caller]
    pub fn last_request(&self) -> SentRequest {
        self.with(|s| s.requests.last().cloned()).unwrap_or_else(|| panic!("the adapter sent no HTTP request"))
    }

    /// Panics if an expected request was never sent.
    #[track_caller]
    pub fn assert_http_done(&self) {
        let pending = self.with(|s| s.expectations.iter().map(Expectation::describe).collect::<Vec<_>>());
        if !pending.is_empty() {
            panic!("expected HTTP requests that were never sent:\n{}", pending.join("\n"));
        }
    }
}

impl Drop for MockHost {
    fn drop(&mut self) {
        // Only uninstall if a later `install` has not replaced this mock;
        // `try_with` because the thread may be shutting down.
        let _ = CURRENT.try_with(|c| {
            let mut cur = c.borrow_mut();
            if cur.as_ref().is_some_and(|s| Rc::ptr_eq(s, &self.state)) {
                *cur = None;
            }
        });
    }
}

fn list_or_none(lines: &[String]) -> String {
    if lines.is_empty() { "  (none)".to_string() } else { lines.join("\n") }
}
