//! A small persistent key-value store private to this plugin and shared by
//! its versions: tokens, cursors. Quotas are set by the manifest's limits.
//!
//! Besides raw bytes, values can be stored as JSON, optionally with an
//! expiry ([`set_json_for`]) — a cached token, a rate-limit window:
//!
//! ```no_run
//! # use daifa_plugin_sdk::{kv, AdapterError};
//! # fn f() -> Result<(), AdapterError> {
//! kv::set_json_for("warehouses", &vec!["SZ", "HZ"], 10 * 60 * 1000)?;
//! let cached: Option<Vec<String>> = kv::get_json("warehouses"); // None after 10 minutes
//! # Ok(()) }
//! ```

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::AdapterError;
use crate::bindings::daifa::supplier::kv::KvError;

/// The bytes stored under `key`.
pub fn get(key: &str) -> Option<Vec<u8>> {
    crate::host::kv_get(key)
}

/// The UTF-8 string stored under `key`.
pub fn get_string(key: &str) -> Option<String> {
    get(key).and_then(|b| String::from_utf8(b).ok())
}

/// Stores `value` under `key`.
pub fn set(key: &str, value: impl AsRef<[u8]>) -> Result<(), AdapterError> {
    crate::host::kv_set(key, value.as_ref()).map_err(kv_err)
}

/// Removes `key`.
pub fn delete(key: &str) -> Result<(), AdapterError> {
    crate::host::kv_delete(key).map_err(kv_err)
}

/// How JSON values are stored: the value and, if it expires, when (unix ms).
#[derive(Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Envelope<T> {
    value: T,
    expires_at_ms: Option<u64>,
}

/// The JSON value stored under `key` by [`set_json`] or [`set_json_for`].
///
/// `None` when the key is unset, expired (the entry is then deleted, best
/// effort) or holds something that does not decode as `T` — e.g. a value
/// an older version of the plugin stored in another shape; that case is
/// logged as a warning. A plain JSON value stored with [`set`] is read too.
pub fn get_json<T: DeserializeOwned>(key: &str) -> Option<T> {
    let bytes = get(key)?;
    let envelope = match serde_json::from_slice::<Envelope<serde_json::Value>>(&bytes) {
        Ok(env) => env,
        Err(_) => Envelope { value: serde_json::from_slice(&bytes).ok()?, expires_at_ms: None },
    };
    if envelope.expires_at_ms.is_some_and(|at| crate::clock::now_ms() >= at) {
        let _ = delete(key);
        return None;
    }
    match serde_json::from_value(envelope.value) {
        Ok(v) => Some(v),
        Err(e) => {
            crate::log::log(
                crate::log::Level::Warn,
                &format!("kv key `{key}` does not hold the expected JSON ({e}); treating it as unset"),
                &[],
            );
            None
        }
    }
}

/// Stores `value` as JSON under `key`, without expiry.
pub fn set_json<T: Serialize + ?Sized>(key: &str, value: &T) -> Result<(), AdapterError> {
    store(key, value, None)
}

/// Stores `value` as JSON under `key`; [`get_json`] reads it as `None` once
/// `ttl_ms` milliseconds have passed (by [`clock::now_ms`](crate::clock::now_ms)).
pub fn set_json_for<T: Serialize + ?Sized>(key: &str, value: &T, ttl_ms: u64) -> Result<(), AdapterError> {
    store(key, value, Some(crate::clock::now_ms().saturating_add(ttl_ms)))
}

fn store<T: Serialize + ?Sized>(key: &str, value: &T, expires_at_ms: Option<u64>) -> Result<(), AdapterError> {
    let bytes = serde_json::to_vec(&Envelope { value, expires_at_ms })
        .map_err(|e| AdapterError::rejected(format!("could not encode kv value `{key}`: {e}")))?;
    set(key, bytes)
}

fn kv_err(e: KvError) -> AdapterError {
    match e {
        KvError::QuotaExceeded(m) => AdapterError::misconfigured(format!("kv quota: {m}")),
        KvError::Unavailable(m) => AdapterError::transient(format!("kv unavailable: {m}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::MockHost;

    #[derive(Serialize, serde::Deserialize, Debug, PartialEq)]
    struct Cursor {
        page: u32,
    }

    #[test]
    fn json_values_round_trip_and_expire() {
        let host = MockHost::install();
        set_json("cursor", &Cursor { page: 3 }).unwrap();
        set_json_for("token", "abc", 1000).unwrap();
        assert_eq!(get_json::<Cursor>("cursor"), Some(Cursor { page: 3 }));
        assert_eq!(get_json::<String>("token").as_deref(), Some("abc"));
        host.advance_ms(999);
        assert_eq!(get_json::<String>("token").as_deref(), Some("abc"));
        host.advance_ms(1);
        assert_eq!(get_json::<String>("token"), None);
        assert_eq!(host.kv_get("token"), None, "an expired entry is deleted");
        assert_eq!(get_json::<Cursor>("cursor"), Some(Cursor { page: 3 }), "no expiry");
    }

    #[test]
    fn foreign_or_mismatched_values() {
        let host = MockHost::install();
        host.kv_set("plain", r#"{"page":9}"#).kv_set("bytes", [0xff, 0x00]);
        assert_eq!(get_json::<Cursor>("plain"), Some(Cursor { page: 9 }), "plain JSON stored with kv::set");
        assert_eq!(get_json::<Cursor>("bytes"), None);
        set_json("cursor", "not a cursor").unwrap();
        assert_eq!(get_json::<Cursor>("cursor"), None);
        host.assert_logged(crate::log::Level::Warn, "kv key `cursor` does not hold the expected JSON");
        assert_eq!(get_json::<Cursor>("unset"), None);
    }
}
