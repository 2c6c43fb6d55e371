//! The plugin's configuration, as the operator set it (secrets included).
//! The host fills in the manifest's defaults, so an unset key has none.
//!
//! Read single keys with [`get`], [`require`] and [`json`], or declare every
//! setting once with [`config_schema!`](crate::config_schema) and load them
//! typed and checked.

mod schema;

pub use schema::{ConfigKey, ConfigValue, Json, load_key};

use crate::AdapterError;

/// The value of `key`, if set.
pub fn get(key: &str) -> Option<String> {
    crate::host::config_get(key)
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
    crate::host::config_keys()
}

#[cfg(test)]
mod tests;
