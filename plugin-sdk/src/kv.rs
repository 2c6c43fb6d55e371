//! A small persistent key-value store private to this plugin and shared by
//! its versions: tokens, cursors. Quotas are set by the manifest's limits.

use crate::AdapterError;
use crate::bindings::daifa::supplier::kv as imp;

/// The bytes stored under `key`.
pub fn get(key: &str) -> Option<Vec<u8>> {
    imp::get(key)
}

/// The UTF-8 string stored under `key`.
pub fn get_string(key: &str) -> Option<String> {
    get(key).and_then(|b| String::from_utf8(b).ok())
}

/// Stores `value` under `key`.
pub fn set(key: &str, value: impl AsRef<[u8]>) -> Result<(), AdapterError> {
    imp::set(key, value.as_ref()).map_err(kv_err)
}

/// Removes `key`.
pub fn delete(key: &str) -> Result<(), AdapterError> {
    imp::delete(key).map_err(kv_err)
}

fn kv_err(e: imp::KvError) -> AdapterError {
    match e {
        imp::KvError::QuotaExceeded(m) => AdapterError::misconfigured(format!("kv quota: {m}")),
        imp::KvError::Unavailable(m) => AdapterError::transient(format!("kv unavailable: {m}")),
    }
}
