//! The plugin manifest: who the plugin is, which API it targets, what it may
//! reach, what configuration it takes and the limits it runs under. Parsing
//! and checking only; no I/O.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::error::ValidationError;

/// Configuration values an operator gives a plugin (secrets included).
pub type PluginConfig = BTreeMap<String, String>;

/// `manifest.toml` of a plugin package.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// Lower-case letters, digits and `-`; the plugin's identity across versions.
    pub name: String,
    /// Semantic version of this package.
    pub version: semver::Version,
    /// The `daifa:supplier` WIT version the component was built against.
    pub api_version: semver::Version,
    /// Hex sha256 of the component bytes.
    pub sha256: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub permissions: Permissions,
    /// Configuration schema: field name → how it is used.
    #[serde(default)]
    pub config: BTreeMap<String, ConfigField>,
    #[serde(default)]
    pub limits: Limits,
}

/// What the plugin may reach.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Permissions {
    /// `scheme://host[:port]` entries; `{{ key }}` expands from the config, so
    /// an operator sets the supplier's endpoint once. Deny by default.
    #[serde(default)]
    pub allowed_outbound_hosts: Vec<String>,
}

/// One field of the configuration schema.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigField {
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub required: bool,
    /// Never shown by the admin API or logs.
    #[serde(default)]
    pub secret: bool,
    #[serde(default)]
    pub default: Option<String>,
}

/// Per-call limits. Absent fields take the defaults below; every value is
/// checked against the host's ceilings when the package is validated.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    pub memory_bytes: u64,
    pub timeout_ms: u64,
    /// Instruction budget per call; only enforced when the host runs with fuel.
    pub fuel: Option<u64>,
    pub http_requests_per_call: u32,
    pub http_response_bytes: u64,
    pub http_timeout_ms: u64,
    pub log_bytes_per_call: u64,
    pub output_bytes: u64,
    pub kv_max_keys: u32,
    pub kv_max_value_bytes: u64,
    /// Keys plus values the plugin's kv store may hold, in bytes.
    pub kv_max_total_bytes: u64,
    /// At most this many submits of one supplier connection at once,
    /// whatever the connection's `max_in_flight` says: 1 for an adapter
    /// that numbers documents from a kv counter (kv has no compare-and-set).
    pub calls_per_connection: Option<u32>,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            memory_bytes: 32 << 20,
            timeout_ms: 10_000,
            fuel: None,
            http_requests_per_call: 16,
            http_response_bytes: 4 << 20,
            http_timeout_ms: 5_000,
            log_bytes_per_call: 64 << 10,
            output_bytes: 1 << 20,
            kv_max_keys: 1_000,
            kv_max_value_bytes: 64 << 10,
            kv_max_total_bytes: 4 << 20,
            calls_per_connection: None,
        }
    }
}

impl Limits {
    /// The per-call wall-clock deadline.
    pub fn timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms)
    }
}

/// The host's ceilings: a manifest may ask for less, never more.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ceilings {
    pub memory_bytes: u64,
    pub timeout_ms: u64,
    pub http_response_bytes: u64,
    pub output_bytes: u64,
    pub http_requests_per_call: u32,
    pub http_timeout_ms: u64,
    pub log_bytes_per_call: u64,
    pub kv_max_keys: u32,
    pub kv_max_value_bytes: u64,
    pub kv_max_total_bytes: u64,
}

impl Manifest {
    /// Parses `manifest.toml` text.
    pub fn from_toml(text: &str) -> Result<Manifest, ValidationError> {
        toml::from_str(text).map_err(|e| ValidationError::Manifest(e.to_string()))
    }

    /// Renders the manifest as TOML.
    pub fn to_toml(&self) -> String {
        // A struct of strings, maps and integers always serialises.
        toml::to_string_pretty(self).unwrap_or_default()
    }

    /// Checks the fields that do not need the component or the config.
    pub fn check(&self, ceilings: &Ceilings) -> Result<(), ValidationError> {
        let bad = |m: String| Err(ValidationError::Manifest(m));
        if self.name.is_empty()
            || self.name.len() > 64
            || !self.name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        {
            return bad(format!("name `{}`: use 1-64 lower-case letters, digits and `-`", self.name));
        }
        if self.sha256.len() != 64 || !self.sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
            return bad(format!("sha256 `{}` is not 64 hex digits", self.sha256));
        }
        let l = &self.limits;
        let over = |field: &str, got: u64, max: u64| {
            bad(format!("limits.{field} = {got} exceeds this host's ceiling of {max}"))
        };
        if l.memory_bytes > ceilings.memory_bytes {
            return over("memory_bytes", l.memory_bytes, ceilings.memory_bytes);
        }
        if l.timeout_ms > ceilings.timeout_ms {
            return over("timeout_ms", l.timeout_ms, ceilings.timeout_ms);
        }
        if l.http_response_bytes > ceilings.http_response_bytes {
            return over("http_response_bytes", l.http_response_bytes, ceilings.http_response_bytes);
        }
        if l.output_bytes > ceilings.output_bytes {
            return over("output_bytes", l.output_bytes, ceilings.output_bytes);
        }
        for (field, got, max) in [
            ("http_requests_per_call", u64::from(l.http_requests_per_call), u64::from(ceilings.http_requests_per_call)),
            ("http_timeout_ms", l.http_timeout_ms, ceilings.http_timeout_ms),
            ("log_bytes_per_call", l.log_bytes_per_call, ceilings.log_bytes_per_call),
            ("kv_max_keys", u64::from(l.kv_max_keys), u64::from(ceilings.kv_max_keys)),
            ("kv_max_value_bytes", l.kv_max_value_bytes, ceilings.kv_max_value_bytes),
            ("kv_max_total_bytes", l.kv_max_total_bytes, ceilings.kv_max_total_bytes),
        ] {
            if got > max {
                return over(field, got, max);
            }
        }
        for (field, v) in [
            ("memory_bytes", l.memory_bytes),
            ("timeout_ms", l.timeout_ms),
            ("http_timeout_ms", l.http_timeout_ms),
            ("output_bytes", l.output_bytes),
        ] {
            if v == 0 {
                return bad(format!("limits.{field} must be greater than 0"));
            }
        }
        if l.calls_per_connection == Some(0) {
            return bad("limits.calls_per_connection must be greater than 0 (leave it out for no cap)".into());
        }
        for (key, field) in &self.config {
            if field.secret && field.default.is_some() {
                return bad(format!("config.{key}: a secret field cannot ship a default value"));
            }
        }
        Ok(())
    }

    /// Checks operator-supplied values against the schema and returns the
    /// effective config (defaults filled in).
    pub fn resolve_config(&self, given: &PluginConfig) -> Result<PluginConfig, ValidationError> {
        if let Some(unknown) = given.keys().find(|k| !self.config.contains_key(*k)) {
            let known: Vec<&str> = self.config.keys().map(String::as_str).collect();
            return Err(ValidationError::Config(format!(
                "unknown key `{unknown}`; this plugin takes: {}",
                known.join(", ")
            )));
        }
        let mut out = PluginConfig::new();
        for (key, field) in &self.config {
            match given.get(key).or(field.default.as_ref()) {
                Some(v) => {
                    out.insert(key.clone(), v.clone());
                }
                None if field.required => {
                    return Err(ValidationError::Config(format!(
                        "required key `{key}` is missing ({})",
                        field.description
                    )));
                }
                None => {}
            }
        }
        Ok(out)
    }

    /// The config with secret values replaced, for display.
    pub fn redact(&self, config: &PluginConfig) -> PluginConfig {
        config
            .iter()
            .map(|(k, v)| {
                let secret = self.config.get(k).is_some_and(|f| f.secret);
                (k.clone(), if secret { "***".into() } else { v.clone() })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CEIL: Ceilings = Ceilings {
        memory_bytes: 64 << 20,
        timeout_ms: 60_000,
        http_response_bytes: 16 << 20,
        output_bytes: 4 << 20,
        http_requests_per_call: 64,
        http_timeout_ms: 60_000,
        log_bytes_per_call: 1 << 20,
        kv_max_keys: 10_000,
        kv_max_value_bytes: 1 << 20,
        kv_max_total_bytes: 64 << 20,
    };

    fn manifest(extra: &str) -> Result<Manifest, ValidationError> {
        Manifest::from_toml(&format!(
            "name = \"acme\"\nversion = \"1.0.0\"\napi_version = \"0.1.0\"\nsha256 = \"{}\"\n{extra}",
            "ab".repeat(32)
        ))
    }

    #[test]
    fn limits_above_ceiling_are_named() {
        let m = manifest("[limits]\nmemory_bytes = 999999999999").unwrap();
        let e = m.check(&CEIL).unwrap_err().to_string();
        assert!(e.contains("limits.memory_bytes"), "{e}");
        // Every limit has a ceiling: the values an attacker tried.
        for (field, value) in [
            ("kv_max_keys", "4000000000"),
            ("kv_max_value_bytes", "1073741824"),
            ("kv_max_total_bytes", "1099511627776"),
            ("log_bytes_per_call", "100000000000"),
            ("http_requests_per_call", "4000000000"),
            ("http_timeout_ms", "86400000"),
        ] {
            let m = manifest(&format!("[limits]\n{field} = {value}")).unwrap();
            let e = m.check(&CEIL).unwrap_err().to_string();
            assert!(e.contains(&format!("limits.{field} = {value}")) && e.contains("ceiling"), "{field}: {e}");
        }
    }

    #[test]
    fn a_connection_cap_of_zero_is_refused() {
        assert_eq!(manifest("[limits]\ncalls_per_connection = 1").unwrap().limits.calls_per_connection, Some(1));
        let e = manifest("[limits]\ncalls_per_connection = 0").unwrap().check(&CEIL).unwrap_err().to_string();
        assert!(e.contains("calls_per_connection must be greater than 0"), "{e}");
    }

    #[test]
    fn unknown_manifest_field_is_named() {
        let e = manifest("colour = \"red\"").unwrap_err().to_string();
        assert!(e.contains("colour"), "{e}");
    }

    #[test]
    fn config_schema_is_enforced() {
        let m = manifest(
            "[config.base_url]\nrequired = true\n[config.token]\nsecret = true\n[config.path]\ndefault = \"/o\"",
        )
        .unwrap();
        m.check(&CEIL).unwrap();
        let e = m.resolve_config(&PluginConfig::new()).unwrap_err();
        assert!(e.to_string().contains("base_url"));
        let mut given = PluginConfig::new();
        given.insert("base_url".into(), "http://x".into());
        given.insert("token".into(), "s3cret".into());
        let cfg = m.resolve_config(&given).unwrap();
        assert_eq!(cfg["path"], "/o");
        assert_eq!(m.redact(&cfg)["token"], "***");
        given.insert("nope".into(), "1".into());
        assert!(m.resolve_config(&given).unwrap_err().to_string().contains("`nope`"));
    }
}
