//! `daifa plugin new`, `build` and `test`: the author's loop. `new` writes
//! a crate from the template (SDK, manifest, fixtures, README) that works
//! against `daifa sim supplier` out of the box; `build` compiles it for
//! wasm32-wasip2 and packs the component with its manifest and sha256;
//! `test` runs each fixture through the production sandbox with its HTTP
//! answered from a recording (`invoke --replay`).

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};
use serde::Deserialize;

use daifa_host::config::HostConfig;
use daifa_host::plugins::invoke::Operation;
use daifa_host::plugins::tape::{Recording, Tape};
use daifa_host::plugins::{Manifest, PluginConfig, PluginPackage, PluginRuntime, Registry};

const TEMPLATE: [(&str, &str); 8] = [
    ("Cargo.toml", include_str!("../templates/plugin/Cargo.toml.tmpl")),
    ("manifest.toml", include_str!("../templates/plugin/manifest.toml")),
    ("src/lib.rs", include_str!("../templates/plugin/src/lib.rs")),
    ("README.md", include_str!("../templates/plugin/README.md")),
    ("fixtures/query-stock.toml", include_str!("../templates/plugin/fixtures/query-stock.toml")),
    ("fixtures/query-stock.http.json", include_str!("../templates/plugin/fixtures/query-stock.http.json")),
    ("fixtures/submit-order.toml", include_str!("../templates/plugin/fixtures/submit-order.toml")),
    ("fixtures/submit-order.http.json", include_str!("../templates/plugin/fixtures/submit-order.http.json")),
];

/// Where the SDK is: `--sdk`, `DAIFA_PLUGIN_SDK`, or the checkout this
/// binary was built from.
fn sdk_path(given: Option<PathBuf>) -> anyhow::Result<PathBuf> {
    let built_from = Path::new(env!("CARGO_MANIFEST_DIR")).join("../plugin-sdk");
    let path = given.or_else(|| std::env::var_os("DAIFA_PLUGIN_SDK").map(PathBuf::from)).unwrap_or(built_from);
    if !path.join("Cargo.toml").is_file() {
        bail!(
            "no daifa-plugin-sdk at {} — pass --sdk PATH (the plugin-sdk folder of a daifa checkout) or set \
             DAIFA_PLUGIN_SDK",
            path.display()
        );
    }
    Ok(std::fs::canonicalize(&path)?)
}

/// `daifa plugin new NAME [--dir D] [--sdk S]`.
pub(crate) fn new(name: &str, dir: Option<PathBuf>, sdk: Option<PathBuf>) -> anyhow::Result<()> {
    let valid = (2..=64).contains(&name.len())
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && !name.ends_with('-')
        && !name.contains("--")
        && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    // Names cargo refuses for a crate of its own.
    if !valid || matches!(name, "test" | "core" | "std" | "alloc" | "proc-macro") {
        bail!(
            "plugin name `{name}`: 2-64 lower-case letters, digits and single `-`s, starting with a letter and not \
             ending with `-`, not a name Rust reserves (e.g. acme-api)"
        );
    }
    let dir = dir.unwrap_or_else(|| PathBuf::from(name));
    if dir.is_file() {
        bail!("{} is a file; choose another place with --dir", dir.display());
    }
    // A folder holding only dotfiles (a fresh `git init`) is fine.
    let occupied = std::fs::read_dir(&dir)
        .map(|d| d.filter_map(Result::ok).any(|e| !e.file_name().to_string_lossy().starts_with('.')))
        .unwrap_or(false);
    if occupied {
        bail!("{} already holds files; choose an empty folder with --dir", dir.display());
    }
    let sdk = sdk_path(sdk)?;
    for (file, text) in TEMPLATE {
        let path = dir.join(file);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).with_context(|| parent.display().to_string())?;
        }
        let text = text.replace("{{name}}", name).replace("{{sdk}}", &sdk.display().to_string());
        std::fs::write(&path, text).with_context(|| path.display().to_string())?;
    }
    println!("created {name} in {}", dir.display());
    println!("next: cd {} && daifa plugin build && daifa plugin test", dir.display());
    Ok(())
}

/// The crate's package name and version from its Cargo.toml.
fn crate_facts(dir: &Path) -> anyhow::Result<(String, String)> {
    #[derive(Deserialize)]
    struct Cargo {
        package: Package,
    }
    #[derive(Deserialize)]
    struct Package {
        name: String,
        version: String,
    }
    let path = dir.join("Cargo.toml");
    let text = std::fs::read_to_string(&path).with_context(|| format!("{}: not a plugin crate", path.display()))?;
    let c: Cargo =
        toml::from_str(&text).with_context(|| format!("{}: no [package] name and version", path.display()))?;
    Ok((c.package.name, c.package.version))
}

fn ensure_wasm_target() -> anyhow::Result<()> {
    let out = Command::new("rustup").args(["target", "list", "--installed"]).output();
    match out {
        Ok(o) if String::from_utf8_lossy(&o.stdout).lines().any(|l| l.trim() == "wasm32-wasip2") => Ok(()),
        Ok(_) => {
            eprintln!("installing the wasm32-wasip2 target (rustup target add wasm32-wasip2)");
            let ok = Command::new("rustup").args(["target", "add", "wasm32-wasip2"]).status()?.success();
            if ok { Ok(()) } else { bail!("`rustup target add wasm32-wasip2` failed") }
        }
        // No rustup: let cargo say what is missing.
        Err(_) => Ok(()),
    }
}

/// `daifa plugin build [DIR] [--out O]`: the package directory it wrote.
pub(crate) fn build(dir: &Path, out: Option<PathBuf>) -> anyhow::Result<PathBuf> {
    let (name, version) = crate_facts(dir)?;
    let manifest_path = dir.join("manifest.toml");
    let manifest = Manifest::from_toml(
        &std::fs::read_to_string(&manifest_path).with_context(|| manifest_path.display().to_string())?,
    )
    .with_context(|| manifest_path.display().to_string())?;
    if manifest.name != name {
        bail!(
            "manifest.toml names the plugin `{}` but Cargo.toml names the crate `{name}`: use one name (operators \
             see the manifest's, `describe` reports the crate's)",
            manifest.name
        );
    }
    if manifest.version.to_string() != version {
        bail!(
            "manifest.toml says version {} but Cargo.toml says {version}: bump both together (the host keeps each \
             version it installs)",
            manifest.version
        );
    }
    ensure_wasm_target()?;
    let status = Command::new("cargo")
        .args(["build", "--release", "--target", "wasm32-wasip2", "--manifest-path"])
        .arg(dir.join("Cargo.toml"))
        .status()
        .context("running cargo")?;
    if !status.success() {
        bail!("cargo build failed (see above)");
    }
    let target = target_dir(dir)?;
    let wasm = target.join("wasm32-wasip2/release").join(format!("{}.wasm", name.replace('-', "_")));
    // Two crates of one name sharing a CARGO_TARGET_DIR write the same file,
    // and cargo may call the other's build fresh: pack only what this
    // crate's sources made.
    let deps = std::fs::read_to_string(wasm.with_extension("d")).unwrap_or_default();
    let src = std::fs::canonicalize(dir.join("src")).with_context(|| dir.join("src").display().to_string())?;
    if !deps.contains(&src.display().to_string()) {
        bail!(
            "{} was not built from {}: another crate named `{name}` shares this target directory ({}); build with a \
             CARGO_TARGET_DIR of its own",
            wasm.display(),
            src.display(),
            target.display()
        );
    }
    let bytes = std::fs::read(&wasm).with_context(|| format!("{}: the built component", wasm.display()))?;
    let pkg = PluginPackage::pack(manifest, bytes);
    // Beside the crate whatever CARGO_TARGET_DIR says: where the README and
    // `daifa plugin test` look for it.
    let out = out.unwrap_or_else(|| dir.join("target/daifa-package"));
    if out.exists() {
        std::fs::remove_dir_all(&out).with_context(|| out.display().to_string())?;
    }
    pkg.write_dir(&out)?;
    println!(
        "built {}@{} ({} KiB, sha256 {}) into {}",
        pkg.manifest.name,
        pkg.manifest.version,
        pkg.component.len() / 1024,
        pkg.manifest.sha256,
        out.display()
    );
    Ok(out)
}

/// Cargo's target directory for the crate (honours CARGO_TARGET_DIR).
fn target_dir(dir: &Path) -> anyhow::Result<PathBuf> {
    let out = Command::new("cargo")
        .args(["metadata", "--format-version", "1", "--no-deps", "--manifest-path"])
        .arg(dir.join("Cargo.toml"))
        .output()
        .context("running cargo metadata")?;
    if !out.status.success() {
        bail!("cargo metadata failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    let v: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    v["target_directory"].as_str().map(PathBuf::from).context("cargo metadata gave no target_directory")
}

/// One `fixtures/*.toml`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Fixture {
    operation: String,
    /// A recording next to the fixture; without one the call goes live.
    #[serde(default)]
    replay: Option<PathBuf>,
    #[serde(default)]
    config: std::collections::BTreeMap<String, toml::Value>,
    #[serde(default)]
    input: Option<toml::Value>,
    #[serde(default)]
    expect: Expect,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Expect {
    #[serde(default = "yes")]
    ok: bool,
    /// Texts the answer (or error) must contain.
    #[serde(default)]
    contains: Vec<String>,
}

impl Default for Expect {
    fn default() -> Self {
        Expect { ok: true, contains: Vec::new() }
    }
}

fn yes() -> bool {
    true
}

/// `daifa plugin test [DIR]`: builds, then runs every fixture; fails if any does.
pub(crate) async fn test(dir: &Path, config_file: Option<&Path>) -> anyhow::Result<()> {
    let package = build(dir, None)?;
    let pkg = PluginPackage::from_dir(&package)?;
    let cfg = HostConfig::load(config_file)?;
    let runtime = PluginRuntime::new(daifa_host::plugins::RuntimeConfig { cache_dir: None, ..cfg.runtime })?;
    let mut fixtures: Vec<PathBuf> = std::fs::read_dir(dir.join("fixtures"))
        .with_context(|| format!("{}: no fixtures folder", dir.join("fixtures").display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    fixtures.sort();
    if fixtures.is_empty() {
        bail!("{}: no *.toml fixtures to run", dir.join("fixtures").display());
    }
    let mut failed = 0;
    for path in &fixtures {
        let name = path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
        // A fresh registry per fixture: nothing carries over between them.
        let registry = Registry::open(runtime.clone(), None).await?;
        match run_fixture(&registry, &pkg, path).await {
            Ok(()) => println!("ok     {name}"),
            Err(e) => {
                failed += 1;
                println!("FAILED {name}: {e:#}");
            }
        }
    }
    println!("{} fixture(s), {failed} failed", fixtures.len());
    if failed > 0 {
        bail!("{failed} of {} fixture(s) failed", fixtures.len());
    }
    Ok(())
}

async fn run_fixture(registry: &Registry, pkg: &PluginPackage, path: &Path) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(path)?;
    let f: Fixture = toml::from_str(&text).with_context(|| path.display().to_string())?;
    let config: PluginConfig = f
        .config
        .into_iter()
        .map(|(k, v)| {
            let v = match v {
                toml::Value::String(s) => s,
                other => other.to_string(),
            };
            (k, v)
        })
        .collect();
    let input = match f.input {
        Some(v) => serde_json::to_value(v)?,
        None => serde_json::Value::Null,
    };
    let op = Operation::from_json(&f.operation, input).map_err(anyhow::Error::msg)?;
    let tape = match &f.replay {
        Some(rel) => {
            let file = path.parent().unwrap_or(Path::new(".")).join(rel);
            let text = std::fs::read_to_string(&file).with_context(|| format!("replay {}", file.display()))?;
            let rec: Recording = serde_json::from_str(&text).with_context(|| format!("replay {}", file.display()))?;
            Some(Tape::replay(rec))
        }
        None => None,
    };
    let report = daifa_host::plugins::invoke::invoke(registry, pkg, &config, op, tape).await?;
    if report.ok != f.expect.ok {
        bail!(
            "expected {}, got {}: {}",
            if f.expect.ok { "success" } else { "an error" },
            verdict(report.ok),
            report.answer
        );
    }
    let missing: Vec<&String> = f.expect.contains.iter().filter(|c| !report.answer.contains(c.as_str())).collect();
    if !missing.is_empty() {
        bail!("the answer lacks {missing:?}; it was:\n{}", report.answer);
    }
    if let Some(misses) = report.replay_misses.as_ref().filter(|m| !m.is_empty()) {
        bail!("requests the recording could not answer: {misses:?}");
    }
    if let Some(unused) = report.replay_unused.as_ref().filter(|u| !u.is_empty()) {
        bail!("recorded exchanges the plugin never asked for: {unused:?}");
    }
    Ok(())
}

fn verdict(ok: bool) -> &'static str {
    if ok { "success" } else { "an error" }
}
