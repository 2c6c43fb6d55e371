//! The plugin registry: installed packages per plugin, which version is
//! active, and the atomic hot swap between them. Installed packages and the
//! active choice live on disk, so a restart comes back as it was.
//!
//! Layout under the registry root:
//! `plugins/<name>/<version>/{manifest.toml,component.wasm,config.json}`,
//! `plugins/<name>/state.json`, `kv.sqlite` (every plugin's and connection's kv).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};

use arc_swap::ArcSwapOption;
use semver::Version;
use serde::{Deserialize, Serialize};

use super::error::{CallError, ValidationError};
use super::kv::{KvDb, KvStore};
use super::manifest::PluginConfig;
use super::package::{PluginPackage, ValidationReport, validate};
use super::plugin::LoadedPlugin;
use super::runtime::PluginRuntime;
use super::stats::StatsSnapshot;

#[path = "canary.rs"]
mod canary;
pub use canary::{CanaryDecision, CanaryPolicy, CanaryState};

/// Why a registry operation failed.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("package refused: {0}")]
    Invalid(#[from] ValidationError),
    #[error("no plugin named `{0}` is installed")]
    UnknownPlugin(String),
    #[error("plugin `{name}` has no installed version {version}")]
    UnknownVersion { name: String, version: Version },
    #[error("{0}")]
    Conflict(String),
    #[error("registry storage: {0}")]
    Io(String),
}

/// Persisted per-plugin choice.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
struct SlotState {
    active: Option<Version>,
    /// Previously active versions, most recent last (what rollback returns to).
    history: Vec<Version>,
    disabled: bool,
    /// A version taking a share of calls beside the active one.
    #[serde(default)]
    canary: Option<CanaryState>,
}

struct Slot {
    /// The version new calls get. Swapped atomically; calls in flight keep the
    /// `Arc` they loaded and finish on their version.
    active: ArcSwapOption<LoadedPlugin>,
    /// The canary, if one runs (see `canary.rs`).
    canary: ArcSwapOption<canary::Running>,
    inner: Mutex<SlotInner>,
    kv: Arc<KvStore>,
}

struct SlotInner {
    versions: BTreeMap<Version, Installed>,
    state: SlotState,
    load_errors: BTreeMap<Version, String>,
}

impl SlotInner {
    /// An installed version of plugin `name`, or the error naming it.
    fn installed(&self, name: &str, version: &Version) -> Result<&Installed, RegistryError> {
        self.versions
            .get(version)
            .ok_or_else(|| RegistryError::UnknownVersion { name: name.into(), version: version.clone() })
    }
}

struct Installed {
    plugin: Arc<LoadedPlugin>,
    config: PluginConfig,
}

/// One plugin as the admin API shows it.
#[derive(Debug, Clone, Serialize)]
pub struct PluginSummary {
    pub name: String,
    pub active: Option<String>,
    pub disabled: bool,
    pub rollback_to: Option<String>,
    /// Its use of the call slots shared by every plugin.
    pub call_slots: super::share::ShareSnapshot,
    /// A version taking a share of calls beside the active one.
    pub canary: Option<CanaryState>,
    pub versions: Vec<VersionSummary>,
}

/// One installed version.
#[derive(Debug, Clone, Serialize)]
pub struct VersionSummary {
    pub version: String,
    pub api_version: String,
    pub sha256: String,
    pub capabilities: Vec<&'static str>,
    pub allowed_outbound_hosts: String,
    /// Config with secrets redacted.
    pub config: PluginConfig,
    pub stats: StatsSnapshot,
    /// Set when the version is on disk but could not be loaded at start.
    pub load_error: Option<String>,
    /// Set once a call of it hit a limit or trapped (see `quarantine`).
    pub quarantine: Option<super::quarantine::QuarantineState>,
    /// Its last failed calls (newest last; redacted), since the host started.
    pub last_errors: Vec<super::journal::JournalEntry>,
}

/// All plugins of this host.
pub struct Registry {
    runtime: PluginRuntime,
    root: Option<PathBuf>,
    /// Where kv stores live (`None`: in memory, for a host without a root).
    kv: Option<KvDb>,
    slots: RwLock<BTreeMap<String, Arc<Slot>>>,
    /// Admin operations run one at a time; calls never wait for this.
    admin: tokio::sync::Mutex<()>,
    /// kv stores of supplier bindings, by `plugin@hex(scope)`.
    scoped: Mutex<BTreeMap<String, Arc<KvStore>>>,
    /// Versions found on disk at open, not yet loaded.
    pending: Mutex<Vec<(String, Version, PathBuf)>>,
    /// (loaded, found) of those.
    loading: tokio::sync::watch::Sender<(usize, usize)>,
}

fn io(e: impl std::fmt::Display) -> RegistryError {
    RegistryError::Io(e.to_string())
}

impl Registry {
    /// Opens the registry at `root` (or in memory when `None`), loading every
    /// installed version and re-activating what was active.
    pub async fn open(runtime: PluginRuntime, root: Option<PathBuf>) -> Result<Registry, RegistryError> {
        let reg = Registry::open_deferred(runtime, root).await?;
        reg.load_installed().await;
        Ok(reg)
    }

    /// Opens the registry without loading what is installed: cheap, so the
    /// host can answer (and say it is not ready) while
    /// [`Registry::load_installed`] compiles and dry-runs each version.
    pub async fn open_deferred(runtime: PluginRuntime, root: Option<PathBuf>) -> Result<Registry, RegistryError> {
        let kv = match &root {
            Some(root) => {
                let db = KvDb::open(&root.join("kv.sqlite")).await.map_err(io)?;
                let imported = db.import_json_dir(&root.join("kv")).await.map_err(io)?;
                if imported > 0 {
                    tracing::info!(imported, "moved kv stores of the JSON format into kv.sqlite");
                }
                Some(db)
            }
            None => None,
        };
        let reg = Registry {
            runtime,
            root,
            kv,
            slots: RwLock::default(),
            admin: Default::default(),
            scoped: Default::default(),
            pending: Mutex::default(),
            loading: tokio::sync::watch::channel((0, 0)).0,
        };
        let Some(root) = reg.root.clone() else { return Ok(reg) };
        let plugins_dir = root.join("plugins");
        std::fs::create_dir_all(&plugins_dir).map_err(io)?;
        let mut pending = Vec::new();
        for entry in std::fs::read_dir(&plugins_dir).map_err(io)? {
            let dir = entry.map_err(io)?.path();
            let Some(name) = dir.file_name().and_then(|n| n.to_str()).map(str::to_string) else { continue };
            if !dir.is_dir() {
                continue;
            }
            let state: SlotState = match std::fs::read(dir.join("state.json")) {
                Ok(b) => serde_json::from_slice(&b).map_err(|e| io(format!("{}/state.json: {e}", dir.display())))?,
                Err(_) => SlotState::default(),
            };
            let slot = reg.slot_or_create(&name)?;
            slot.inner.lock().map_err(io)?.state = state;
            for entry in std::fs::read_dir(&dir).map_err(io)? {
                let vdir = entry.map_err(io)?.path();
                let Some(version) = vdir.file_name().and_then(|n| n.to_str()).and_then(|v| Version::parse(v).ok())
                else {
                    continue;
                };
                pending.push((name.clone(), version, vdir));
            }
        }
        reg.loading.send_replace((0, pending.len()));
        *reg.pending.lock().map_err(io)? = pending;
        Ok(reg)
    }

    /// Compiles and dry-runs every installed version found at open,
    /// `[runtime] startup_parallelism` at a time, and activates what was
    /// active as soon as it is loaded (unless an operator changed the choice
    /// meanwhile). A version that fails stays listed with its load error.
    pub async fn load_installed(&self) {
        use futures::StreamExt;
        let pending = std::mem::take(&mut *self.pending.lock().unwrap_or_else(|p| p.into_inner()));
        let parallel = self.runtime.config().startup_parallelism.max(1) as usize;
        let mut loads = futures::stream::iter(pending)
            .map(|(name, version, vdir)| async move {
                let loaded = self.load_version(&name, &vdir).await;
                (name, version, loaded)
            })
            .buffer_unordered(parallel);
        while let Some((name, version, loaded)) = loads.next().await {
            if let Err(e) = self.place_loaded(&name, version, loaded) {
                tracing::error!(plugin = %name, "recording a loaded version: {e}");
            }
            self.loading.send_modify(|(done, _)| *done += 1);
        }
    }

    async fn load_version(&self, name: &str, vdir: &Path) -> Result<Installed, String> {
        let kv = self.slot(name).map_err(|e| e.to_string())?.kv.clone();
        let pkg = PluginPackage::from_dir(vdir).map_err(|e| e.to_string())?;
        let config: PluginConfig =
            serde_json::from_slice(&std::fs::read(vdir.join("config.json")).map_err(|e| format!("config.json: {e}"))?)
                .map_err(|e| format!("config.json: {e}"))?;
        let scratch = Arc::new(KvStore::in_memory());
        let (dry, _) = validate(&self.runtime, &pkg, &config, scratch).await.map_err(|e| e.to_string())?;
        let plugin = dry.rebind(&dry.ctx.config, kv).map_err(|e| e.to_string())?;
        Ok(Installed { plugin: Arc::new(plugin), config })
    }

    fn place_loaded(
        &self,
        name: &str,
        version: Version,
        loaded: Result<Installed, String>,
    ) -> Result<(), RegistryError> {
        // Removed while it loaded: nothing to place.
        let Ok(slot) = self.slot(name) else { return Ok(()) };
        let mut inner = slot.inner.lock().map_err(io)?;
        match loaded {
            Ok(installed) => {
                if inner.state.active.as_ref() == Some(&version) && !inner.state.disabled {
                    slot.active.store(Some(installed.plugin.clone()));
                }
                if let Some(c) = inner.state.canary.as_ref().filter(|c| c.version == version) {
                    slot.start_running(installed.plugin.clone(), c.percent);
                }
                // An install of the same version meanwhile is newer.
                inner.versions.entry(version).or_insert(installed);
            }
            Err(e) => {
                tracing::error!(plugin = name, %version, "installed version failed to load: {e}");
                inner.load_errors.insert(version, e);
            }
        }
        Ok(())
    }

    /// Installed versions loaded so far at start, and how many there are.
    pub fn loaded(&self) -> (usize, usize) {
        *self.loading.borrow()
    }

    /// Completes once every version found at open has been loaded (or has
    /// failed to).
    pub async fn wait_loaded(&self) {
        let mut rx = self.loading.subscribe();
        let _ = rx.wait_for(|(done, total)| done >= total).await;
    }

    fn slot(&self, name: &str) -> Result<Arc<Slot>, RegistryError> {
        self.slots.read().map_err(io)?.get(name).cloned().ok_or_else(|| RegistryError::UnknownPlugin(name.to_string()))
    }

    fn slot_or_create(&self, name: &str) -> Result<Arc<Slot>, RegistryError> {
        let kv = self.kv_for(name)?;
        self.slot_with_kv(name, kv)
    }

    /// The plugin's kv store: the slot's if it exists, else opened fresh
    /// (without creating the slot, so a refused package leaves no trace).
    fn kv_for(&self, name: &str) -> Result<Arc<KvStore>, RegistryError> {
        if let Ok(slot) = self.slot(name) {
            return Ok(slot.kv.clone());
        }
        Ok(Arc::new(self.kv_store(name)))
    }

    fn kv_store(&self, scope: &str) -> KvStore {
        match &self.kv {
            Some(db) => db.scope(scope),
            None => KvStore::in_memory(),
        }
    }

    fn slot_with_kv(&self, name: &str, kv: Arc<KvStore>) -> Result<Arc<Slot>, RegistryError> {
        let mut slots = self.slots.write().map_err(io)?;
        if let Some(s) = slots.get(name) {
            return Ok(s.clone());
        }
        let slot = Arc::new(Slot {
            active: ArcSwapOption::empty(),
            canary: ArcSwapOption::empty(),
            inner: Mutex::new(SlotInner {
                versions: BTreeMap::new(),
                state: SlotState::default(),
                load_errors: BTreeMap::new(),
            }),
            kv,
        });
        slots.insert(name.to_string(), slot.clone());
        Ok(slot)
    }

    /// Largest component the runtime accepts (sizes upload limits).
    pub fn max_package_bytes(&self) -> usize {
        self.runtime.config().max_package_bytes
    }

    /// The active version of `name`, for one call. The hot path: one read
    /// lock and one atomic load.
    pub fn get(&self, name: &str) -> Result<Arc<LoadedPlugin>, CallError> {
        let unavailable = |detail: &str| CallError::Unavailable { plugin: name.to_string(), detail: detail.into() };
        let slot = self.slot(name).map_err(|_| unavailable("not installed"))?;
        slot.pick().ok_or_else(|| unavailable("no active version (disabled or never activated)"))
    }

    /// What plugins logged and their failed calls.
    pub fn journal(&self) -> &super::journal::Journal {
        self.runtime.journal()
    }

    /// An installed version of `name` as it was loaded (its install config),
    /// active or not.
    pub fn version(&self, name: &str, version: &Version) -> Result<Arc<LoadedPlugin>, RegistryError> {
        let slot = self.slot(name)?;
        let inner = slot.inner.lock().map_err(io)?;
        Ok(inner.installed(name, version)?.plugin.clone())
    }

    /// `name` bound to a supplier connection: the pinned version (or the
    /// active one), with the installed config overlaid by `overrides` and a
    /// kv store private to `scope` (the supplier), so many suppliers share
    /// one plugin without sharing settings, tokens or cursors.
    pub fn bind(
        &self,
        name: &str,
        pinned: Option<&Version>,
        overrides: &PluginConfig,
        scope: &str,
    ) -> Result<Arc<LoadedPlugin>, RegistryError> {
        let slot = self.slot(name)?;
        let (base, config) = {
            let inner = slot.inner.lock().map_err(io)?;
            if inner.state.disabled {
                return Err(RegistryError::Conflict(format!("plugin `{name}` is disabled")));
            }
            let version = match pinned {
                Some(v) => v.clone(),
                None => inner
                    .state
                    .active
                    .clone()
                    .ok_or_else(|| RegistryError::Conflict(format!("plugin `{name}` has no active version")))?,
            };
            let installed = inner.installed(name, &version)?;
            (installed.plugin.clone(), installed.config.clone())
        };
        let mut merged = config;
        merged.extend(overrides.iter().map(|(k, v)| (k.clone(), v.clone())));
        let kv = self.scoped_kv(name, scope)?;
        Ok(Arc::new(base.rebind(&merged, kv)?))
    }

    /// The config keys any installed version of `name` marks secret (`None`
    /// if it is not installed).
    pub fn secret_keys(&self, name: &str) -> Option<Vec<String>> {
        let slot = self.slot(name).ok()?;
        let inner = slot.inner.lock().ok()?;
        let mut keys: Vec<String> = inner
            .versions
            .values()
            .flat_map(|i| i.plugin.manifest.config.iter().filter(|(_, f)| f.secret).map(|(k, _)| k.clone()))
            .collect();
        keys.sort();
        keys.dedup();
        Some(keys)
    }

    /// One kv store per (plugin, scope), opened once: two bindings of the
    /// same connection (a hot swap) share one quota lock and usage count.
    fn scoped_kv(&self, name: &str, scope: &str) -> Result<Arc<KvStore>, RegistryError> {
        let key = format!("{name}@{}", hex::encode(scope.as_bytes()));
        let mut kvs = self.scoped.lock().map_err(io)?;
        if let Some(kv) = kvs.get(&key) {
            return Ok(kv.clone());
        }
        let kv = Arc::new(self.kv_store(&key));
        kvs.insert(key, kv.clone());
        Ok(kv)
    }

    /// Runs every check on a package without installing it.
    pub async fn validate(
        &self,
        pkg: &PluginPackage,
        config: &PluginConfig,
    ) -> Result<ValidationReport, RegistryError> {
        let kv = Arc::new(KvStore::in_memory());
        let (_, report) = validate(&self.runtime, pkg, config, kv).await?;
        Ok(report)
    }

    /// Validates and installs a package (not yet active). Re-installing the
    /// same version with the same bytes replaces its config; different bytes
    /// under an installed version number are refused.
    pub async fn install(&self, pkg: &PluginPackage, config: &PluginConfig) -> Result<ValidationReport, RegistryError> {
        let m = &pkg.manifest;
        self.check_same_bytes(pkg)?;
        // Validate before touching any state: a refused package changes
        // nothing. The dry run gets a scratch kv, so neither a refused
        // package nor one never activated writes the live plugin's kv, and
        // the name is checked before it names a kv file. It runs outside the
        // admin lock: a slow compile or dry run must not hold up another
        // operator's `disable`.
        let (dry, report) = validate(&self.runtime, pkg, config, Arc::new(KvStore::in_memory())).await?;
        let _admin = self.admin.lock().await;
        // Checked again: another install may have won the race meanwhile.
        self.check_same_bytes(pkg)?;
        let kv = self.kv_for(&m.name)?;
        let plugin = dry.rebind(&dry.ctx.config, kv.clone())?;
        if let Some(root) = &self.root {
            let vdir = root.join("plugins").join(&m.name).join(m.version.to_string());
            let config_json = serde_json::to_vec_pretty(&plugin.ctx.config).map_err(io)?;
            crate::util::write_atomic(&vdir.join("component.wasm"), &pkg.component).await.map_err(io)?;
            crate::util::write_atomic(&vdir.join("manifest.toml"), m.to_toml().as_bytes()).await.map_err(io)?;
            crate::util::write_atomic(&vdir.join("config.json"), &config_json).await.map_err(io)?;
        }
        let slot = self.slot_with_kv(&m.name, kv)?;
        let plugin = Arc::new(plugin);
        let mut inner = slot.inner.lock().map_err(io)?;
        inner.load_errors.remove(&m.version);
        let config = plugin.ctx.config.clone();
        inner.versions.insert(m.version.clone(), Installed { plugin: plugin.clone(), config });
        if inner.state.active.as_ref() == Some(&m.version) && !inner.state.disabled {
            slot.active.store(Some(plugin));
        }
        tracing::info!(plugin = %m.name, version = %m.version, sha256 = %m.sha256, "installed plugin");
        Ok(report)
    }

    /// Different bytes under an installed version number are refused.
    fn check_same_bytes(&self, pkg: &PluginPackage) -> Result<(), RegistryError> {
        let m = &pkg.manifest;
        let Ok(slot) = self.slot(&m.name) else { return Ok(()) };
        let inner = slot.inner.lock().map_err(io)?;
        if let Some(existing) = inner.versions.get(&m.version)
            && !existing.plugin.manifest.sha256.eq_ignore_ascii_case(&m.sha256)
        {
            return Err(RegistryError::Conflict(format!(
                "{}@{} is already installed with sha256 {}; publish changed code under a new version",
                m.name, m.version, existing.plugin.manifest.sha256
            )));
        }
        Ok(())
    }

    /// Makes `version` the one new calls get. Calls in flight finish on the
    /// version they started with.
    pub async fn activate(&self, name: &str, version: &Version) -> Result<(), RegistryError> {
        let _admin = self.admin.lock().await;
        self.activate_locked(name, version).await
    }

    /// [`Registry::activate`] with the admin lock already held.
    async fn activate_locked(&self, name: &str, version: &Version) -> Result<(), RegistryError> {
        let slot = self.slot(name)?;
        let (plugin, next) = {
            let inner = slot.inner.lock().map_err(io)?;
            let plugin = inner.installed(name, version)?.plugin.clone();
            let mut next = inner.state.clone();
            if let Some(prev) = next.active.take().filter(|p| p != version) {
                next.history.retain(|v| v != &prev);
                next.history.push(prev);
            }
            next.active = Some(version.clone());
            next.disabled = false;
            // A new active choice ends any canary (promoting it, or not).
            next.canary = None;
            (plugin, next)
        };
        self.commit(name, &slot, next, Some(plugin)).await?;
        tracing::info!(plugin = name, %version, "activated plugin version");
        Ok(())
    }

    /// Re-activates the version that was active before the current one.
    pub async fn rollback(&self, name: &str) -> Result<Version, RegistryError> {
        let _admin = self.admin.lock().await;
        let slot = self.slot(name)?;
        let (plugin, next, target) = {
            let inner = slot.inner.lock().map_err(io)?;
            let mut next = inner.state.clone();
            let target = loop {
                let Some(v) = next.history.pop() else {
                    return Err(RegistryError::Conflict(format!(
                        "plugin `{name}` has no earlier version to roll back to"
                    )));
                };
                // Skip versions that are no longer loadable.
                if inner.versions.contains_key(&v) {
                    break v;
                }
            };
            next.active = Some(target.clone());
            next.disabled = false;
            next.canary = None;
            (inner.versions[&target].plugin.clone(), next, target)
        };
        self.commit(name, &slot, next, Some(plugin)).await?;
        tracing::warn!(plugin = name, version = %target, "rolled back plugin");
        Ok(target)
    }

    /// Stops new calls to `name`; calls in flight finish. `activate` re-enables.
    pub async fn disable(&self, name: &str) -> Result<(), RegistryError> {
        let _admin = self.admin.lock().await;
        let slot = self.slot(name)?;
        let mut next = slot.inner.lock().map_err(io)?.state.clone();
        next.disabled = true;
        next.canary = None;
        self.commit(name, &slot, next, None).await?;
        tracing::warn!(plugin = name, "disabled plugin");
        Ok(())
    }

    /// Removes an installed version: its files go and it can no longer be
    /// activated. The active version cannot be removed while it serves
    /// (activate another or disable first). Removing the last version
    /// removes the plugin; its kv data stays, for a re-install to find.
    pub async fn remove(&self, name: &str, version: &Version) -> Result<(), RegistryError> {
        let _admin = self.admin.lock().await;
        let slot = self.slot(name)?;
        let (next, last) = {
            let inner = slot.inner.lock().map_err(io)?;
            if !inner.versions.contains_key(version) && !inner.load_errors.contains_key(version) {
                return Err(RegistryError::UnknownVersion { name: name.into(), version: version.clone() });
            }
            if inner.state.active.as_ref() == Some(version) && !inner.state.disabled {
                return Err(RegistryError::Conflict(format!(
                    "{name}@{version} is the active version; activate another version or disable {name} first"
                )));
            }
            if inner.state.canary.as_ref().is_some_and(|c| &c.version == version) {
                return Err(RegistryError::Conflict(format!("{name}@{version} is the canary; stop the canary first")));
            }
            let mut next = inner.state.clone();
            next.history.retain(|v| v != version);
            if next.active.as_ref() == Some(version) {
                next.active = None;
            }
            let last = inner.versions.keys().chain(inner.load_errors.keys()).all(|v| v == version);
            (next, last)
        };
        let active = slot.active.load_full();
        if let Some(root) = &self.root {
            let dir = root.join("plugins").join(name);
            let gone = if last { dir } else { dir.join(version.to_string()) };
            if !last {
                self.commit(name, &slot, next.clone(), active).await?;
            }
            match tokio::fs::remove_dir_all(&gone).await {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(io(e)),
            }
        }
        {
            let mut inner = slot.inner.lock().map_err(io)?;
            inner.versions.remove(version);
            inner.load_errors.remove(version);
            inner.state = next;
        }
        if last {
            self.slots.write().map_err(io)?.remove(name);
        }
        tracing::warn!(plugin = name, %version, removed_plugin = last, "removed plugin version");
        Ok(())
    }

    /// Persists the new state, then swaps what calls see.
    async fn commit(
        &self,
        name: &str,
        slot: &Slot,
        next: SlotState,
        active: Option<Arc<LoadedPlugin>>,
    ) -> Result<(), RegistryError> {
        if let Some(root) = &self.root {
            let bytes = serde_json::to_vec_pretty(&next).map_err(io)?;
            crate::util::write_atomic(&root.join("plugins").join(name).join("state.json"), &bytes).await.map_err(io)?;
        }
        let mut inner = slot.inner.lock().map_err(io)?;
        if next.canary.is_none() {
            slot.canary.store(None);
        }
        inner.state = next;
        slot.active.store(active);
        Ok(())
    }

    /// Every plugin with its versions and counters.
    pub fn list(&self) -> Vec<PluginSummary> {
        let Ok(slots) = self.slots.read() else { return Vec::new() };
        slots
            .iter()
            .filter_map(|(name, slot)| {
                let inner = slot.inner.lock().ok()?;
                let mut versions: Vec<VersionSummary> = inner
                    .versions
                    .iter()
                    .map(|(v, i)| {
                        let p = &i.plugin;
                        VersionSummary {
                            version: v.to_string(),
                            api_version: p.manifest.api_version.to_string(),
                            sha256: p.manifest.sha256.clone(),
                            capabilities: capability_names(p.info.capabilities),
                            allowed_outbound_hosts: p
                                .ctx
                                .allowlist
                                .redacted(&p.manifest.permissions.allowed_outbound_hosts, |k| {
                                    p.manifest.config.get(k).is_some_and(|f| f.secret)
                                }),
                            config: p.manifest.redact(&i.config),
                            stats: p.stats.snapshot(),
                            load_error: None,
                            quarantine: self.runtime.inner.quarantine.state(&p.id()),
                            last_errors: self.runtime.inner.journal.last_errors(&p.id()),
                        }
                    })
                    .collect();
                versions.extend(inner.load_errors.iter().map(|(v, e)| VersionSummary {
                    version: v.to_string(),
                    api_version: String::new(),
                    sha256: String::new(),
                    capabilities: Vec::new(),
                    allowed_outbound_hosts: String::new(),
                    config: PluginConfig::new(),
                    stats: StatsSnapshot::default(),
                    load_error: Some(e.clone()),
                    quarantine: None,
                    last_errors: Vec::new(),
                }));
                Some(PluginSummary {
                    name: name.clone(),
                    active: slot.active.load().as_ref().map(|p| p.manifest.version.to_string()),
                    disabled: inner.state.disabled,
                    rollback_to: inner.state.history.last().map(Version::to_string),
                    call_slots: self.runtime.share().snapshot(name),
                    canary: inner.state.canary.clone(),
                    versions,
                })
            })
            .collect()
    }
}

fn capability_names(c: super::bindings::Capabilities) -> Vec<&'static str> {
    use super::bindings::Capabilities as C;
    [(C::SUBMIT, "submit"), (C::POLL, "poll"), (C::CANCEL, "cancel"), (C::STOCK, "stock"), (C::CALLBACK, "callback")]
        .into_iter()
        .filter(|(f, _)| c.contains(*f))
        .map(|(_, n)| n)
        .collect()
}
