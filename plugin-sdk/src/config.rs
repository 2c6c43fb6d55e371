//! The plugin's configuration, as the operator set it (secrets included).

use crate::AdapterError;
use crate::bindings::daifa::supplier::config as imp;

/// The value of `key`, if set.
pub fn get(key: &str) -> Option<String> {
    imp::get(key)
}

/// The value of `key`, or a `misconfigured` error naming it.
pub fn require(key: &str) -> Result<String, AdapterError> {
    get(key)
        .filter(|v| !v.is_empty())
        .ok_or_else(|| AdapterError::misconfigured(format!("config key `{key}` is not set")))
}

/// The value of `key`, or `default`.
pub fn get_or(key: &str, default: &str) -> String {
    get(key).unwrap_or_else(|| default.to_string())
}

/// `key` parsed as JSON (for structured settings such as field maps).
pub fn json<T: serde::de::DeserializeOwned>(key: &str) -> Result<Option<T>, AdapterError> {
    match get(key) {
        None => Ok(None),
        Some(text) => serde_json::from_str(&text)
            .map(Some)
            .map_err(|e| AdapterError::misconfigured(format!("config key `{key}` is not valid JSON: {e}"))),
    }
}

/// Every configured key.
pub fn keys() -> Vec<String> {
    imp::keys()
}
