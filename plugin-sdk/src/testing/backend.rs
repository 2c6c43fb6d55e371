//! What the SDK's host layer (`crate::host`) calls natively: the mock host
//! installed on the current thread.

use super::{CURRENT, LogLine, State, list_or_none};
use crate::bindings::daifa::supplier::http::{HttpError, Request, Response};
use crate::bindings::daifa::supplier::kv::KvError;
use crate::bindings::daifa::supplier::log::Level;

fn with<R>(call: &str, f: impl FnOnce(&mut State) -> R) -> R {
    let state = CURRENT.with(|c| c.borrow().clone());
    let Some(state) = state else {
        panic!(
            "daifa-plugin-sdk: `{call}` was called with no mock host on this thread; start the test with \
             `let host = daifa_plugin_sdk::testing::MockHost::install();`"
        )
    };
    f(&mut state.borrow_mut())
}

pub fn config_get(key: &str) -> Option<String> {
    with("config::get", |s| {
        if !s.config_reads.iter().any(|k| k == key) {
            s.config_reads.push(key.to_string());
        }
        s.config.get(key).cloned()
    })
}

pub fn config_keys() -> Vec<String> {
    with("config::keys", |s| s.config.keys().cloned().collect())
}

pub fn kv_get(key: &str) -> Option<Vec<u8>> {
    with("kv::get", |s| s.kv.get(key).cloned())
}

pub fn kv_set(key: &str, value: &[u8]) -> Result<(), KvError> {
    with("kv::set", |s| match &s.kv_write_error {
        Some(e) => Err(e.clone()),
        None => {
            s.kv.insert(key.to_string(), value.to_vec());
            Ok(())
        }
    })
}

pub fn kv_delete(key: &str) -> Result<(), KvError> {
    with("kv::delete", |s| match &s.kv_write_error {
        Some(e) => Err(e.clone()),
        None => {
            s.kv.remove(key);
            Ok(())
        }
    })
}

pub fn now_ms() -> u64 {
    with("clock::now_ms", |s| s.now_ms)
}

pub fn log(level: Level, message: &str, fields: &[(String, String)]) {
    // Also to stderr: the test harness shows it when a test fails.
    eprintln!("[{level:?}] {message} {fields:?}");
    with("log", |s| s.logs.push(LogLine { level, message: message.to_string(), fields: fields.to_vec() }));
}

pub fn http_send(req: &Request) -> Result<Response, HttpError> {
    let answer = with("http::send", |s| {
        s.requests.push(req.into());
        match s.expectations.iter().position(|e| e.matches(req)) {
            Some(i) => Ok(s.expectations.remove(i).reply.into_outcome()),
            None => Err(s.expectations.iter().map(|e| e.describe()).collect::<Vec<_>>()),
        }
    });
    match answer {
        Ok(outcome) => outcome,
        Err(pending) => panic!(
            "unexpected HTTP request {} {}\nexpected (unanswered):\n{}\nscript it with host.expect(..) or \
             host.expect_prefix(..)",
            super::http::method_name(req.method),
            req.url,
            list_or_none(&pending)
        ),
    }
}
