//! Supplier connections bound to plugins: each supplier gets its own
//! binding of its plugin (pinned version or the active one) with its own
//! config, secrets and kv. Bindings are cached and rebuilt when the
//! connection changes or the plugin's active version is swapped.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use super::Failure;
use crate::domain::SupplierId;
use crate::plugins::{LoadedPlugin, Registry};
use crate::store::Connection;

/// Reads a secret reference: `env:NAME` (the host's environment) or
/// `file:/path` (its content, without the trailing newline).
pub fn resolve_secret(reference: &str) -> Result<String, String> {
    if let Some(name) = reference.strip_prefix("env:") {
        return std::env::var(name).map_err(|_| format!("environment variable `{name}` is not set"));
    }
    if let Some(path) = reference.strip_prefix("file:") {
        return std::fs::read_to_string(path)
            .map(|s| s.trim_end_matches(['\r', '\n']).to_string())
            .map_err(|e| format!("secret file `{path}`: {e}"));
    }
    Err(format!("secret reference `{reference}` must start with `env:` or `file:`"))
}

/// The whole configuration a connection gives its plugin, secrets resolved.
pub fn effective_config(c: &Connection) -> Result<crate::plugins::PluginConfig, String> {
    let mut cfg = c.config.clone();
    cfg.extend(c.secrets.iter().map(|(k, v)| (k.clone(), v.clone())));
    for (k, r) in &c.secret_refs {
        cfg.insert(k.clone(), resolve_secret(r).map_err(|e| format!("secret `{k}`: {e}"))?);
    }
    Ok(cfg)
}

/// Binds `c`'s plugin (its pinned version, else the active one) with the
/// connection's own config, secrets resolved, and its own kv. Uncached:
/// [`Bindings::get`] caches this for dispatch; the stock refresh, which runs
/// rarely, calls it directly.
pub fn bind_connection(registry: &Registry, c: &Connection) -> Result<Arc<LoadedPlugin>, String> {
    let pinned = pinned_version(c)?;
    let cfg = effective_config(c)?;
    registry
        .bind(&c.plugin, pinned.as_ref(), &cfg, c.supplier.as_str())
        .map_err(|e| format!("binding {} to {}: {e}", c.supplier, c.plugin))
}

/// The version a connection pins, if any.
fn pinned_version(c: &Connection) -> Result<Option<semver::Version>, String> {
    c.pinned_version
        .as_deref()
        .map(|v| semver::Version::parse(v).map_err(|e| format!("connection of {}: version `{v}`: {e}", c.supplier)))
        .transpose()
}

struct Bound {
    base: String,
    revision: i64,
    plugin: Arc<LoadedPlugin>,
}

/// Cached bindings, by supplier and plugin version (a canary means two
/// versions serve one supplier at once).
pub struct Bindings {
    registry: Arc<Registry>,
    cache: Mutex<HashMap<(SupplierId, String), Bound>>,
}

impl Bindings {
    pub fn new(registry: Arc<Registry>) -> Bindings {
        Bindings { registry, cache: Mutex::default() }
    }

    /// The plugin to call for this connection: its pinned version, else
    /// the version the registry picks for this call (the active one, or a
    /// running canary for its share of calls).
    pub(crate) fn get(&self, c: &Connection) -> Result<Arc<LoadedPlugin>, Failure> {
        let version = match pinned_version(c).map_err(Failure::Setup)? {
            Some(v) => v,
            None => self.registry.get(&c.plugin).map_err(|e| Failure::Setup(e.to_string()))?.manifest.version.clone(),
        };
        let base = format!("{}@{version}", c.plugin);
        let key = (c.supplier.clone(), base.clone());
        if let Ok(cache) = self.cache.lock()
            && let Some(b) = cache.get(&key)
            && b.base == base
            && b.revision == c.revision
        {
            return Ok(b.plugin.clone());
        }
        let cfg = effective_config(c).map_err(Failure::Setup)?;
        let plugin = self
            .registry
            .bind(&c.plugin, Some(&version), &cfg, c.supplier.as_str())
            .map_err(|e| Failure::Setup(format!("binding {} to {}: {e}", c.supplier, c.plugin)))?;
        if let Ok(mut cache) = self.cache.lock() {
            // Bindings of an older revision of this connection go.
            cache.retain(|(s, _), b| s != &c.supplier || b.revision == c.revision);
            cache.insert(key, Bound { base, revision: c.revision, plugin: plugin.clone() });
        }
        Ok(plugin)
    }
}
