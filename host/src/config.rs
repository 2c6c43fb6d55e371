//! Host configuration: defaults, then `daifa.toml` (or `--config FILE`), then
//! `DAIFA_*` environment variables (`DAIFA_ADMIN__TOKEN` sets `admin.token`).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::{Deserialize, Serialize};

use crate::erp::kingdee::KingdeeConfig;
use crate::erp::kingdee::documents::{PurchaseOrderSettings, WriteBack};
use crate::ingest::kingdee::KingdeeIngestConfig;
use crate::plugins::RuntimeConfig;
use crate::router::RouterConfig;
use crate::store::StoreConfig;

/// Everything the host reads at start.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HostConfig {
    /// Installed plugins, their kv stores and the compiled-code cache.
    pub data_dir: PathBuf,
    pub runtime: RuntimeConfig,
    pub admin: AdminConfig,
    /// Where orders live (SQLite file by default).
    pub store: StoreConfig,
    /// The Kingdee ERP, if this host reads one.
    pub kingdee: Option<KingdeeSection>,
    /// Routing: catalog and policy files, schedules, performance windows.
    pub router: RouterConfig,
    /// Dispatch and tracking: workers, leases, retries, circuit breakers,
    /// when ERP purchase orders are made, write-back.
    pub dispatch: crate::dispatch::DispatchConfig,
    /// Alert rules and where alerts go.
    pub alerts: crate::alerts::AlertsConfig,
    /// How long finished work is kept.
    pub retention: crate::store::RetentionConfig,
    /// How plugin canaries are judged.
    pub canary: crate::plugins::CanaryPolicy,
}

/// `[kingdee]`: connection, ingestion, documents.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KingdeeSection {
    pub client: KingdeeConfig,
    #[serde(default)]
    pub ingest: KingdeeIngestConfig,
    #[serde(default)]
    pub purchase_orders: PurchaseOrderSettings,
    #[serde(default)]
    pub write_back: WriteBack,
}

/// The admin API.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AdminConfig {
    pub bind: SocketAddr,
    /// Bearer token every admin request must carry. The API refuses to start
    /// without one.
    pub token: Option<String>,
}

impl Default for HostConfig {
    fn default() -> Self {
        HostConfig {
            data_dir: PathBuf::from("daifa-data"),
            runtime: RuntimeConfig::default(),
            admin: AdminConfig::default(),
            store: StoreConfig::default(),
            kingdee: None,
            router: RouterConfig::default(),
            dispatch: crate::dispatch::DispatchConfig::default(),
            alerts: crate::alerts::AlertsConfig::default(),
            retention: crate::store::RetentionConfig::default(),
            canary: crate::plugins::CanaryPolicy::default(),
        }
    }
}

impl Default for AdminConfig {
    fn default() -> Self {
        AdminConfig { bind: SocketAddr::from(([127, 0, 0, 1], 8700)), token: None }
    }
}

impl HostConfig {
    /// Loads the layered configuration. A named file must exist; the default
    /// `daifa.toml` is optional.
    pub fn load(file: Option<&Path>) -> Result<HostConfig, Box<figment::Error>> {
        let mut fig = Figment::from(Serialized::defaults(HostConfig::default()));
        fig = match file {
            Some(f) => fig.merge(Toml::file_exact(f)),
            None => fig.merge(Toml::file("daifa.toml")),
        };
        // Only `DAIFA_SECTION__KEY` (and DAIFA_DATA_DIR) are configuration:
        // other DAIFA_* variables (the CLI's DAIFA_ADMIN_TOKEN, test faults)
        // must not trip `deny_unknown_fields`.
        let env = Env::prefixed("DAIFA_").filter(|k| k.as_str().contains("__") || k == "data_dir").split("__");
        let mut cfg: HostConfig = fig.merge(env).extract().map_err(Box::new)?;
        if cfg.runtime.cache_dir.is_none() {
            cfg.runtime.cache_dir = Some(cfg.data_dir.join("cache"));
        }
        // The order store follows `data_dir` unless its URL is set: a host
        // moved to another data_dir must not keep writing orders under the
        // working directory (a newcomer's backup of data_dir missed them).
        let default_url = crate::store::StoreConfig::default().url;
        if cfg.store.url == default_url && cfg.data_dir != HostConfig::default().data_dir {
            cfg.store.url = format!("sqlite:{}", cfg.data_dir.join("daifa.db").display());
        }
        Ok(cfg)
    }
}

#[cfg(test)]
mod tests {

    /// Every key path of a TOML document (`a.b.c`).
    fn key_paths(v: &toml::Value, prefix: &str, out: &mut std::collections::BTreeSet<String>) {
        if let toml::Value::Table(t) = v {
            for (k, v) in t {
                let path = if prefix.is_empty() { k.clone() } else { format!("{prefix}.{k}") };
                out.insert(path.clone());
                key_paths(v, &path, out);
            }
        }
    }

    #[test]
    fn the_example_config_parses_and_names_every_key() {
        let text = include_str!("../../daifa.example.toml");
        let parsed: HostConfig = toml::from_str(text).expect("daifa.example.toml parses");
        assert!(parsed.kingdee.is_some());
        let known = HostConfig { kingdee: parsed.kingdee.clone(), ..HostConfig::default() };
        let (mut want, mut have) = (Default::default(), Default::default());
        key_paths(&toml::Value::try_from(&known).unwrap(), "", &mut want);
        key_paths(&toml::from_str::<toml::Value>(text).unwrap(), "", &mut have);
        let missing: Vec<_> = want.difference(&have).collect();
        assert!(missing.is_empty(), "daifa.example.toml lacks {missing:?}");
        // Keys with a default may be left out: a minimal Kingdee section starts.
        let minimal = "[kingdee.client]\nserver_url = \"http://erp/k3cloud/\"\nauth = \"signed\"\n\
                       [kingdee.client.credentials]\nacct_id = \"a\"\nuser_name = \"u\"\napp_id = \"i\"\napp_secret = \"s\"\n";
        let c: HostConfig = toml::from_str(minimal).expect("a minimal [kingdee] section");
        let k = c.kingdee.unwrap();
        assert_eq!((k.client.credentials.lcid, k.client.credentials.org_num, k.client.timeout_ms), (2052, 0, 30_000));
    }

    use super::*;

    // figment's test jail fixes the closure's error type.
    #[allow(clippy::result_large_err)]
    #[test]
    fn file_then_env_layering_and_unknown_keys() {
        figment::Jail::expect_with(|jail| {
            jail.create_file("d.toml", "data_dir = \"/x\"\n[runtime]\nmax_concurrent_calls = 7\n")?;
            jail.set_env("DAIFA_ADMIN__TOKEN", "t0k");
            // The CLI's own variable is not configuration.
            jail.set_env("DAIFA_ADMIN_TOKEN", "for-the-cli");
            let c = HostConfig::load(Some(Path::new("d.toml"))).map_err(|e| e.to_string())?;
            assert_eq!(c.data_dir, PathBuf::from("/x"));
            assert_eq!(c.runtime.max_concurrent_calls, 7);
            assert_eq!(c.admin.token.as_deref(), Some("t0k"));
            assert_eq!(c.runtime.cache_dir, Some(PathBuf::from("/x/cache")));
            assert_eq!(c.store.url, "sqlite:/x/daifa.db", "the store follows data_dir unless set");
            // Optional tables may be written empty; a wrong mode is named.
            jail.create_file(
                "kd.toml",
                "[kingdee.client]\nserver_url = \"http://x/k3cloud/\"\nauth = \"signed\"\n\
                 credentials = { acct_id = \"a\", user_name = \"u\", app_id = \"i\", app_secret = \"s\", lcid = 2052, org_num = 0 }\n\
                 [kingdee.write_back]\n[kingdee.purchase_orders]\n",
            )?;
            let c = HostConfig::load(Some(Path::new("kd.toml"))).map_err(|e| e.to_string())?;
            assert_eq!(c.kingdee.map(|k| k.write_back), Some(WriteBack::default()));
            jail.create_file("kd2.toml", "[kingdee.write_back]\nmode = \"field_update\"\n")?;
            let e = HostConfig::load(Some(Path::new("kd2.toml"))).unwrap_err().to_string();
            assert!(e.contains("carrier_field"), "{e}");
            let client = "[kingdee.client]\nserver_url = \"http://x/k3cloud/\"\nauth = \"signed\"\n\
                 credentials = { acct_id = \"a\", user_name = \"u\", app_id = \"i\", app_secret = \"s\", lcid = 2052, org_num = 0 }\n";
            jail.create_file("kd3.toml", &format!("{client}[kingdee.purchase_orders]\nlink = \"save\"\n"))?;
            let k = HostConfig::load(Some(Path::new("kd3.toml"))).map_err(|e| e.to_string())?.kingdee;
            assert_eq!(k.map(|k| k.purchase_orders.link), Some(crate::erp::kingdee::documents::PoLink::Save));
            jail.create_file("kd4.toml", &format!("{client}[kingdee.purchase_orders]\nlink = \"pushed\"\n"))?;
            let e = HostConfig::load(Some(Path::new("kd4.toml"))).unwrap_err().to_string();
            assert!(e.contains("pushed") && e.contains("save"), "{e}");
            jail.create_file("bad.toml", "[runtime]\nmax_concurent_calls = 7\n")?;
            let e = HostConfig::load(Some(Path::new("bad.toml"))).unwrap_err().to_string();
            assert!(e.contains("max_concurent_calls"), "{e}");
            Ok(())
        });
    }
}
