//! Checking the package manifest against the config keys the code reads.

use std::collections::BTreeMap;

use super::MockHost;
use crate::config::ConfigKey;

/// The manifest's `[config.<key>]` tables, or a panic naming what is wrong
/// with the manifest text.
#[track_caller]
fn declared(manifest_toml: &str) -> BTreeMap<String, toml::Table> {
    let doc: toml::Table = match manifest_toml.parse() {
        Ok(doc) => doc,
        Err(e) => panic!("manifest is not valid TOML: {e}"),
    };
    let Some(config) = doc.get("config") else { return BTreeMap::new() };
    let Some(config) = config.as_table() else { panic!("manifest: `config` must be a table of [config.<key>] tables") };
    config
        .iter()
        .map(|(k, v)| match v.as_table() {
            Some(t) => (k.clone(), t.clone()),
            None => panic!("manifest: `config.{k}` must be a table ([config.{k}])"),
        })
        .collect()
}

/// Panics unless the manifest declares every key in `keys` the way the code
/// does, listing every problem at once:
///
/// - the manifest has no `[config.<name>]` table for a key;
/// - the code treats a key as secret and the manifest does not say
///   `secret = true` (the admin API would show it);
/// - `required` or `default` differ (the operator would be told one thing
///   and the code do another).
///
/// `keys` is usually `Settings::KEYS` from [`config_schema!`](crate::config_schema):
///
/// ```ignore
/// #[test]
/// fn manifest_declares_every_setting() {
///     daifa_plugin_sdk::testing::assert_manifest_declares(include_str!("../manifest.toml"), Settings::KEYS);
/// }
/// ```
#[track_caller]
pub fn assert_manifest_declares(manifest_toml: &str, keys: &[ConfigKey]) {
    let declared = declared(manifest_toml);
    let mut problems = Vec::new();
    for key in keys {
        let Some(table) = declared.get(key.name) else {
            problems.push(format!("`{}` is read by the code but the manifest has no [config.{}]", key.name, key.name));
            continue;
        };
        let flag = |name: &str| table.get(name).and_then(toml::Value::as_bool).unwrap_or(false);
        if key.secret && !flag("secret") {
            problems.push(format!("`{}` is secret in the code; mark it `secret = true` in the manifest", key.name));
        }
        if key.required != flag("required") {
            problems.push(format!(
                "`{}`: required is {} in the code, {} in the manifest",
                key.name,
                key.required,
                flag("required")
            ));
        }
        let manifest_default = table.get("default").and_then(toml::Value::as_str);
        if key.default != manifest_default {
            problems.push(format!(
                "`{}`: default is {:?} in the code, {:?} in the manifest",
                key.name, key.default, manifest_default
            ));
        }
    }
    if !problems.is_empty() {
        panic!("manifest and code disagree about config keys:\n  {}", problems.join("\n  "));
    }
}

/// Panics naming every key in `names` without a `[config.<name>]` table in
/// the manifest. Pairs with [`MockHost::config_reads`] to check the keys a
/// test run actually read:
///
/// ```ignore
/// assert_manifest_declares_keys(include_str!("../manifest.toml"), &host.config_reads());
/// ```
#[track_caller]
pub fn assert_manifest_declares_keys<S: AsRef<str>>(manifest_toml: &str, names: &[S]) {
    let declared = declared(manifest_toml);
    let missing: Vec<&str> = names.iter().map(AsRef::as_ref).filter(|n| !declared.contains_key(*n)).collect();
    if !missing.is_empty() {
        let list: Vec<String> = missing.iter().map(|n| format!("`{n}`")).collect();
        panic!("the code reads config keys the manifest does not declare ([config.<key>]): {}", list.join(", "));
    }
}

impl MockHost {
    /// Sets every key the manifest gives a `default` and that is not set
    /// yet, as the real host does when it installs the plugin. Call it after
    /// setting the operator's values.
    ///
    /// # Panics
    /// If the manifest is not valid TOML or a default is not a string.
    #[track_caller]
    pub fn apply_manifest_defaults(&self, manifest_toml: &str) -> &Self {
        for (key, table) in declared(manifest_toml) {
            let Some(default) = table.get("default") else { continue };
            let Some(default) = default.as_str() else { panic!("manifest: config.{key}.default must be a string") };
            self.with(|s| {
                s.config.entry(key).or_insert_with(|| default.to_string());
            });
        }
        self
    }
}
