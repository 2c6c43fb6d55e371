//! Plugin packages (manifest + component bytes) and their validation: every
//! check a package must pass before it may be installed, each failing with
//! its own [`ValidationError`].

use std::path::Path;
use std::sync::Arc;

use super::allowlist::Allowlist;
use super::bindings::{ApiVersion, v0_1};
use super::error::{CallError, ValidationError};
use super::host_state::PluginContext;
use super::kv::KvStore;
use super::manifest::{Manifest, PluginConfig};
use super::plugin::{AdapterPre, LoadedPlugin};
use super::runtime::PluginRuntime;

/// The export every supplier adapter provides, without its version.
const ADAPTER_EXPORT: &str = "daifa:supplier/adapter@";
/// Import namespaces the host links (WASI p2 with an empty context, and ours).
const PROVIDED_IMPORTS: &str = "daifa:supplier/{http,log,config,kv,clock,types}@0.1, wasi:*@0.2";

/// A plugin package: what an operator uploads.
#[derive(Debug, Clone)]
pub struct PluginPackage {
    pub manifest: Manifest,
    pub component: Arc<Vec<u8>>,
}

/// Why a package could not be read.
#[derive(Debug, thiserror::Error)]
pub enum PackageError {
    #[error("{path}: {source}")]
    Io { path: String, source: std::io::Error },
    #[error(transparent)]
    Invalid(#[from] ValidationError),
}

impl PluginPackage {
    /// Reads `manifest.toml` and `component.wasm` from a package directory.
    pub fn from_dir(dir: &Path) -> Result<PluginPackage, PackageError> {
        let read = |name: &str| {
            let path = dir.join(name);
            std::fs::read(&path).map_err(|source| PackageError::Io { path: path.display().to_string(), source })
        };
        let text = String::from_utf8(read("manifest.toml")?)
            .map_err(|_| ValidationError::Manifest("manifest.toml is not UTF-8".into()))?;
        Ok(PluginPackage { manifest: Manifest::from_toml(&text)?, component: Arc::new(read("component.wasm")?) })
    }
}

impl PluginPackage {
    /// Builds a package from a manifest and component bytes, stamping the
    /// manifest with the component's sha256 (what `daifa plugin pack` does).
    pub fn pack(mut manifest: Manifest, component: Vec<u8>) -> PluginPackage {
        manifest.sha256 = crate::util::sha256_hex(&component);
        PluginPackage { manifest, component: Arc::new(component) }
    }

    /// Writes the package as a directory `from_dir` reads.
    pub fn write_dir(&self, dir: &Path) -> std::io::Result<()> {
        std::fs::create_dir_all(dir)?;
        crate::util::write_atomic_blocking(&dir.join("component.wasm"), &self.component)?;
        crate::util::write_atomic_blocking(&dir.join("manifest.toml"), self.manifest.to_toml().as_bytes())
    }
}

/// What a successful validation learned about a package.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ValidationReport {
    pub name: String,
    pub version: String,
    pub api_version: String,
    pub sha256: String,
    pub size_bytes: usize,
    pub imports: Vec<String>,
    pub allowed_outbound_hosts: String,
    pub describe_name: String,
    pub describe_version: String,
}

/// Runs every check on a package and returns the plugin ready to serve.
///
/// Order matters: cheap checks first, so the clearest error wins.
pub async fn validate(
    runtime: &PluginRuntime,
    pkg: &PluginPackage,
    config: &PluginConfig,
    kv: Arc<KvStore>,
) -> Result<(LoadedPlugin, ValidationReport), ValidationError> {
    let rt = &runtime.inner;
    let bytes = &pkg.component;
    let m = &pkg.manifest;
    if bytes.len() > rt.config.max_package_bytes {
        return Err(ValidationError::TooLarge { size: bytes.len(), limit: rt.config.max_package_bytes });
    }
    m.check(&rt.config.ceilings())?;
    let actual = crate::util::sha256_hex(bytes);
    if !actual.eq_ignore_ascii_case(&m.sha256) {
        return Err(ValidationError::Sha256Mismatch { expected: m.sha256.clone(), actual });
    }
    check_header(bytes)?;
    let config = m.resolve_config(config)?;
    let allowlist =
        Allowlist::compile(&m.permissions.allowed_outbound_hosts, &config).map_err(ValidationError::Config)?;

    let component = runtime.compile(bytes.clone(), actual.clone()).await.map_err(|e| {
        let why = format!("{e:#}");
        // The engine checks the per-component pool ceilings as it compiles.
        if why.contains("pooling allocator") { ValidationError::PoolShare(why) } else { ValidationError::Compile(why) }
    })?;
    // A component loaded from the compile cache was checked by no one.
    check_resources(&component)?;
    let ty = component.component_type();

    let exports: Vec<String> = ty.exports(&rt.engine).map(|(n, _)| n.to_string()).collect();
    let Some(export) = exports.iter().find(|n| n.starts_with(ADAPTER_EXPORT)) else {
        let list = if exports.is_empty() { "nothing".to_string() } else { exports.join(", ") };
        return Err(ValidationError::WrongWorld { exports: list });
    };
    let wanted = &export[ADAPTER_EXPORT.len()..];
    let api = semver::Version::parse(wanted).ok().and_then(|v| ApiVersion::from_semver(&v).map(|a| (a, v)));
    let Some((api, component_version)) = api else {
        return Err(ValidationError::UnsupportedApiVersion {
            wanted: wanted.to_string(),
            supported: ApiVersion::supported_list(),
        });
    };
    if component_version != m.api_version {
        return Err(ValidationError::ApiVersionMismatch {
            manifest: m.api_version.to_string(),
            component: component_version.to_string(),
        });
    }

    let imports: Vec<String> = ty.imports(&rt.engine).map(|(n, _)| n.to_string()).collect();
    if let Some(foreign) = imports.iter().find(|n| !n.starts_with("wasi:") && !n.starts_with("daifa:supplier/")) {
        return Err(ValidationError::UnsatisfiedImport {
            import: format!("`{foreign}`"),
            provided: PROVIDED_IMPORTS.into(),
        });
    }
    let instance_pre = rt.linker.instantiate_pre(&component).map_err(|e| ValidationError::UnsatisfiedImport {
        import: format!("{e:#}"),
        provided: PROVIDED_IMPORTS.into(),
    })?;
    let pre = match api {
        ApiVersion::V0_1 => AdapterPre::V0_1(
            v0_1::SupplierAdapterPre::new(instance_pre)
                .map_err(|e| ValidationError::ExportMismatch(format!("{e:#}")))?,
        ),
    };

    let (declared, secrets) = PluginContext::config_facts(m, &config);
    let ctx = Arc::new(PluginContext {
        name: m.name.clone(),
        version: m.version.to_string(),
        declared,
        secrets,
        journal: rt.journal.clone(),
        tape: None,
        scratch: false,
        config,
        allowlist,
        limits: m.limits.clone(),
        kv,
        http: rt.http.clone(),
    });
    let mut plugin = LoadedPlugin::new(m.clone(), api, ctx, component, pre, runtime.clone());
    // Dry run: instantiate for real and ask the plugin who it is.
    let info = plugin.describe().await.map_err(|e| match e {
        CallError::Trap { reason, .. } => ValidationError::DryRun(format!("describe trapped: {reason}")),
        other => ValidationError::DryRun(other.to_string()),
    })?;
    plugin.set_info(info.clone());
    let report = ValidationReport {
        name: m.name.clone(),
        version: m.version.to_string(),
        api_version: component_version.to_string(),
        sha256: actual,
        size_bytes: bytes.len(),
        imports,
        // An entry built from a secret key shows as its template: the report
        // goes back over the API and into logs.
        allowed_outbound_hosts: plugin
            .ctx
            .allowlist
            .redacted(&m.permissions.allowed_outbound_hosts, |k| m.config.get(k).is_some_and(|f| f.secret)),
        describe_name: info.name,
        describe_version: info.version,
    };
    Ok((plugin, report))
}

/// A core module and a component share the `\0asm` magic and differ in the
/// version/layer word; telling them apart up front gives a clear message.
/// Refuses a component that would hold more of the shared instance pool
/// than one plugin may. Core instances are counted by the pool itself at
/// the dry run (`max_core_instances_per_component`).
fn check_resources(component: &wasmtime::component::Component) -> Result<(), ValidationError> {
    use super::runtime::{MAX_MEMORIES_PER_COMPONENT, MAX_TABLES_PER_COMPONENT};
    let Some(r) = component.resources_required() else {
        // Only a component that imports core modules has no static count,
        // and the host provides none: it fails at instantiation anyway.
        return Ok(());
    };
    for (what, needs, limit) in [
        ("linear memories", r.num_memories, MAX_MEMORIES_PER_COMPONENT),
        ("tables", r.num_tables, MAX_TABLES_PER_COMPONENT),
    ] {
        if needs > limit {
            return Err(ValidationError::PoolShare(format!(
                "the component transitively contains {needs} {what}; the most one plugin may have is {limit}"
            )));
        }
    }
    Ok(())
}

fn check_header(bytes: &[u8]) -> Result<(), ValidationError> {
    if bytes.len() < 8 || &bytes[..4] != b"\0asm" {
        return Err(ValidationError::NotAComponent("no `\\0asm` header: this is not WebAssembly at all".into()));
    }
    match bytes[6..8] {
        [1, 0] => Ok(()),
        [0, 0] => Err(ValidationError::NotAComponent(
            "this is a core WebAssembly module; build the plugin for wasm32-wasip2 (or wrap it with `wasm-tools component new`)".into(),
        )),
        _ => Err(ValidationError::NotAComponent(format!(
            "unknown WebAssembly layer {:?}",
            &bytes[4..8]
        ))),
    }
}
