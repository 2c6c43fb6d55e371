//! The one door to the host. Every SDK module reaches the host through these
//! functions, so one switch decides where a call goes:
//!
//! - on `wasm` targets: the component's imports (the real host);
//! - natively with the `testing` feature: the thread-local
//!   [`MockHost`](crate::testing::MockHost) of the running test;
//! - natively without it: a panic that says how to set up the mock (the
//!   generated import stubs would otherwise abort the test binary).

#[cfg(target_family = "wasm")]
mod imp {
    use crate::bindings::daifa::supplier as b;
    use crate::bindings::daifa::supplier::http::{HttpError, Request, Response};
    use crate::bindings::daifa::supplier::kv::KvError;
    use crate::bindings::daifa::supplier::log::Level;

    pub fn config_get(key: &str) -> Option<String> {
        b::config::get(key)
    }
    pub fn config_keys() -> Vec<String> {
        b::config::keys()
    }
    pub fn kv_get(key: &str) -> Option<Vec<u8>> {
        b::kv::get(key)
    }
    pub fn kv_set(key: &str, value: &[u8]) -> Result<(), KvError> {
        b::kv::set(key, value)
    }
    pub fn kv_delete(key: &str) -> Result<(), KvError> {
        b::kv::delete(key)
    }
    pub fn now_ms() -> u64 {
        b::clock::now_ms()
    }
    pub fn log(level: Level, message: &str, fields: &[(String, String)]) {
        b::log::log(level, message, fields)
    }
    pub fn http_send(req: &Request) -> Result<Response, HttpError> {
        b::http::send(req)
    }
}

#[cfg(all(not(target_family = "wasm"), any(test, feature = "testing")))]
use crate::testing::backend as imp;

#[cfg(all(not(target_family = "wasm"), not(any(test, feature = "testing"))))]
mod imp {
    use crate::bindings::daifa::supplier::http::{HttpError, Request, Response};
    use crate::bindings::daifa::supplier::kv::KvError;
    use crate::bindings::daifa::supplier::log::Level;

    #[cold]
    fn no_host(call: &str) -> ! {
        panic!(
            "daifa-plugin-sdk: `{call}` needs the daifa host, which only exists when the plugin runs as a \
             wasm component. To unit-test natively, enable the `testing` feature of daifa-plugin-sdk in \
             [dev-dependencies] and set up a testing::MockHost (`let host = MockHost::install();`)."
        )
    }
    pub fn config_get(_: &str) -> Option<String> {
        no_host("config::get")
    }
    pub fn config_keys() -> Vec<String> {
        no_host("config::keys")
    }
    pub fn kv_get(_: &str) -> Option<Vec<u8>> {
        no_host("kv::get")
    }
    pub fn kv_set(_: &str, _: &[u8]) -> Result<(), KvError> {
        no_host("kv::set")
    }
    pub fn kv_delete(_: &str) -> Result<(), KvError> {
        no_host("kv::delete")
    }
    pub fn now_ms() -> u64 {
        no_host("clock::now_ms")
    }
    pub fn log(_: Level, _: &str, _: &[(String, String)]) {
        no_host("log")
    }
    pub fn http_send(_: &Request) -> Result<Response, HttpError> {
        no_host("http::send")
    }
}

pub(crate) use imp::{config_get, config_keys, http_send, kv_delete, kv_get, kv_set, log, now_ms};
