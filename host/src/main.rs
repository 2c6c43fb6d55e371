//! `daifa`: the command line over the host library.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};

use daifa_host::api::client::AdminClient;
use daifa_host::config::HostConfig;
use daifa_host::erp::kingdee::KingdeeClient;
use daifa_host::ingest::kingdee::KingdeeIngester;
use daifa_host::plugins::tape::Tape;
use daifa_host::plugins::{Manifest, PluginConfig, PluginPackage, PluginRuntime, Registry};
use daifa_host::store::Store;

mod dispatch_cli;
mod plugin_kit;
mod route_cli;
mod sim_cli;

#[derive(Parser)]
#[command(name = "daifa", version, about = "Drop-shipping order flow: ERP → routing → suppliers → tracking → ERP")]
struct Cli {
    /// Configuration file (default: ./daifa.toml if present).
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    /// Log format on stderr: `text`, or `json` (one object per line, for a
    /// log pipeline). Colours only when stderr is a terminal.
    #[arg(long, global = true, env = "DAIFA_LOG_FORMAT", default_value = "text", value_parser = ["text", "json"])]
    log_format: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the whole flow on this machine: simulators, host, bundled plugin
    /// (builds with the `sim` feature; `scripts/demo` turns it on).
    Demo(sim_cli::DemoArgs),
    /// Run the host: plugin registry, order store, admin API, Kingdee poller.
    Serve,
    /// Apply database migrations to the configured store.
    Migrate,
    /// Import orders from a CSV file (one row per order line).
    Import {
        file: PathBuf,
        /// Source name the orders are kept under.
        #[arg(long, default_value = "csv")]
        source: String,
    },
    /// Read orders from an ERP.
    #[command(subcommand)]
    Ingest(IngestCommand),
    /// Build, check and deploy plugins.
    #[command(subcommand)]
    Plugin(PluginCommand),
    /// Route orders: load catalog and policy, run, explain, what-if.
    #[command(subcommand)]
    Route(route_cli::RouteCommand),
    /// Connect suppliers to plugins; pause and resume them.
    #[command(subcommand)]
    Supplier(dispatch_cli::SupplierCommand),
    /// Purchase orders, the job queue, dead letters and circuit breakers.
    #[command(subcommand)]
    Dispatch(dispatch_cli::DispatchCommand),
    /// Apply `[retention]` now: forget what no unfinished order needs.
    Prune,
    /// Copy the configured SQLite store to FILE while the host runs.
    Backup {
        /// Where the copy goes (must not exist).
        #[arg(long)]
        out: PathBuf,
    },
    /// API tokens with roles, in the configured store (run on the host).
    #[command(subcommand)]
    Token(TokenCommand),
    /// Run a simulator of an external system.
    #[command(subcommand)]
    Sim(sim_cli::SimCommand),
}

/// An operation for `daifa plugin invoke`.
#[derive(Subcommand)]
enum InvokeOp {
    /// What the adapter says it can do.
    Describe,
    /// Send a purchase order (`--json po.json`: the WIT record, snake_case keys).
    SubmitOrder {
        #[arg(long)]
        json: PathBuf,
    },
    /// Read the supplier's update feed from a cursor.
    PollUpdates {
        #[arg(long)]
        cursor: Option<String>,
    },
    /// Cancel a purchase order at the supplier.
    CancelOrder {
        #[arg(long)]
        po: String,
        #[arg(long)]
        supplier_ref: Option<String>,
        #[arg(long, default_value = "cancelled by the customer")]
        reason: String,
    },
    /// Stock of the supplier's SKUs.
    QueryStock { skus: Vec<String> },
    /// A webhook as the supplier would send it.
    HandleCallback {
        /// The body, from a file.
        #[arg(long)]
        body: PathBuf,
        /// Headers, `name:value` (repeat).
        #[arg(short = 'H', long = "header")]
        headers: Vec<String>,
        #[arg(long, default_value = "POST")]
        method: String,
        #[arg(long, default_value = "/")]
        path: String,
        #[arg(long, default_value = "")]
        query: String,
    },
}

#[derive(Subcommand)]
enum PluginCommand {
    /// Start a plugin crate from the template: SDK, manifest, fixtures and
    /// a README; it talks to `daifa sim supplier` as it is.
    New {
        name: String,
        /// Where (default: ./NAME).
        #[arg(long)]
        dir: Option<PathBuf>,
        /// The plugin-sdk folder of a daifa checkout (default: the one this
        /// binary was built from, or DAIFA_PLUGIN_SDK).
        #[arg(long)]
        sdk: Option<PathBuf>,
    },
    /// Build a plugin crate for wasm32-wasip2 and pack it with its manifest
    /// and sha256 (default: into target/daifa-package).
    Build {
        #[arg(default_value = ".")]
        dir: PathBuf,
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Build, then run every fixtures/*.toml of the crate in the production
    /// sandbox, its HTTP answered from the fixture's recording.
    Test {
        #[arg(default_value = ".")]
        dir: PathBuf,
    },
    /// Make a package directory: the manifest stamped with the component's sha256.
    Pack {
        #[arg(long)]
        manifest: PathBuf,
        #[arg(long)]
        component: PathBuf,
        #[arg(long)]
        out: PathBuf,
    },
    /// Run every install check locally, without a server.
    Validate {
        package: PathBuf,
        /// Config values, `key=value`.
        #[arg(short = 'c', long = "set", value_parser = parse_kv)]
        set: Vec<(String, String)>,
    },
    /// Run one operation of a package (or of a plugin crate, built first)
    /// locally, in the production sandbox
    /// with its limits (validated and dry-run first, as an install would):
    /// prints the typed answer or error and what the call used against each
    /// limit; the plugin's log lines go to stderr. Config from `-c`,
    /// `--config-file` (TOML `key = "value"`) and `DAIFA_PLUGIN_<KEY>`
    /// environment variables (for secrets: not in the shell history).
    Invoke {
        package: PathBuf,
        #[command(subcommand)]
        operation: InvokeOp,
        #[arg(short = 'c', long = "set", value_parser = parse_kv, global = true)]
        set: Vec<(String, String)>,
        #[arg(long, global = true)]
        config_file: Option<PathBuf>,
        /// Non-public addresses the plugin may reach, as `[runtime]
        /// egress_allow_ips` (e.g. `127.0.0.1/32` for a simulator here).
        #[arg(long = "allow-ip", global = true)]
        allow_ips: Vec<String>,
        /// Save the call's HTTP exchanges to FILE (JSON; secret config
        /// values and credential headers are taken out).
        #[arg(long, global = true, conflicts_with = "replay")]
        record: Option<PathBuf>,
        /// Answer the plugin's HTTP from FILE (made by `--record`) instead
        /// of the network: repeatable and offline.
        #[arg(long, global = true)]
        replay: Option<PathBuf>,
    },
    /// Show a running host's recent log lines and failed calls of a plugin.
    Logs {
        name: String,
        /// Keep printing new lines as they come (Ctrl-C stops).
        #[arg(short, long)]
        follow: bool,
        /// Print each line as JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        server: Server,
    },
    /// Upload a package to a host's admin API.
    Install {
        package: PathBuf,
        #[arg(short = 'c', long = "set", value_parser = parse_kv)]
        set: Vec<(String, String)>,
        #[arg(long)]
        activate: bool,
        #[command(flatten)]
        server: Server,
    },
    /// Make an installed version the active one.
    Activate {
        name: String,
        version: String,
        #[command(flatten)]
        server: Server,
    },
    /// Go back to the previously active version.
    Rollback {
        name: String,
        #[command(flatten)]
        server: Server,
    },
    /// Stop new calls to a plugin.
    Disable {
        name: String,
        #[command(flatten)]
        server: Server,
    },
    /// Send PERCENT % of the plugin's calls to an installed VERSION beside
    /// the active one; the host judges it and rolls it back or promotes it.
    Canary {
        name: String,
        version: String,
        /// Share of calls, 1-99.
        #[arg(long)]
        percent: u8,
        #[command(flatten)]
        server: Server,
    },
    /// End the plugin's canary without promoting it.
    CanaryStop {
        name: String,
        #[command(flatten)]
        server: Server,
    },
    /// Remove an installed version (not the active one); the last one
    /// removes the plugin.
    Remove {
        name: String,
        version: String,
        #[command(flatten)]
        server: Server,
    },
    /// Show plugins, versions and call counters.
    List {
        #[command(flatten)]
        server: Server,
    },
}

#[derive(clap::Args)]
pub(crate) struct Server {
    /// Admin API base URL.
    #[arg(long, default_value = "http://127.0.0.1:8700")]
    server: String,
    /// Admin token.
    #[arg(long, env = "DAIFA_ADMIN_TOKEN", hide_env_values = true)]
    token: String,
}

impl Server {
    pub(crate) fn client(&self) -> AdminClient {
        AdminClient::new(&self.server, &self.token)
    }
}

#[derive(Subcommand)]
enum TokenCommand {
    /// Create a token and print it (the only time it is shown).
    Create {
        /// Who or what it is for (shown in the audit log).
        #[arg(long)]
        name: String,
        /// viewer, operator, plugin-deployer or admin.
        #[arg(long)]
        role: String,
    },
    /// List tokens (never their secrets).
    List,
    /// Revoke a token by id; calls with it are refused from then on.
    Revoke { id: String },
}

#[derive(Subcommand)]
enum IngestCommand {
    /// One scan of Kingdee SAL_SaleOrder (the `[kingdee]` config section).
    Kingdee,
}

pub(crate) fn parse_kv(s: &str) -> Result<(String, String), String> {
    s.split_once('=').map(|(k, v)| (k.to_string(), v.to_string())).ok_or_else(|| format!("`{s}`: expected key=value"))
}

fn to_config(set: Vec<(String, String)>) -> PluginConfig {
    set.into_iter().collect()
}

// glibc's malloc was a fifth of the host's CPU in a busy run (many small
// rows, JSON values and strings freed across threads); mimalloc keeps
// per-thread free lists.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    // The demo prints its own story; services log what they do.
    let default_filter = match &cli.command {
        Command::Demo { .. } => "warn",
        // An author wants every line the plugin logs, and little else.
        Command::Plugin(PluginCommand::Invoke { .. }) => "warn,daifa::plugin=trace",
        // Fixtures print their own verdicts; the plugin's lines are in them.
        Command::Plugin(PluginCommand::Test { .. }) => "warn,daifa_host::plugins=error",
        _ => "warn,daifa=info,daifa_host=info",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| default_filter.into());
    let logs = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    if cli.log_format == "json" {
        logs.json().with_current_span(true).with_span_list(false).init();
    } else {
        use std::io::IsTerminal;
        logs.with_ansi(std::io::stderr().is_terminal()).init();
    }
    match cli.command {
        Command::Demo(args) => sim_cli::demo(args).await,
        Command::Serve => {
            daifa_host::serve::serve(
                HostConfig::load(cli.config.as_deref())?,
                daifa_host::serve::shutdown_signal(),
                |_| {},
            )
            .await
        }
        Command::Supplier(cmd) => dispatch_cli::supplier(cmd).await,
        Command::Dispatch(cmd) => dispatch_cli::dispatch(cmd).await,
        Command::Prune => {
            let cfg = HostConfig::load(cli.config.as_deref())?;
            let store = Store::open(&cfg.store).await?;
            let pruned = store.prune(&cfg.retention, daifa_host::util::now_ms()).await?;
            store.close().await;
            println!("{}", serde_json::to_string_pretty(&pruned)?);
            Ok(())
        }
        Command::Backup { out } => {
            let cfg = HostConfig::load(cli.config.as_deref())?;
            let store = Store::connect(&cfg.store).await?;
            store.backup_to(&out).await?;
            store.close().await;
            println!("backed up {} to {}", cfg.store.url, out.display());
            Ok(())
        }
        Command::Token(cmd) => {
            let cfg = HostConfig::load(cli.config.as_deref())?;
            let store = Store::open(&cfg.store).await?;
            let now = daifa_host::util::now_ms();
            match cmd {
                TokenCommand::Create { name, role } => {
                    let role = daifa_host::domain::access::Role::parse(&role).map_err(anyhow::Error::msg)?;
                    let (t, secret) = store.create_token(&name, role, now).await?;
                    eprintln!("created token {} ({}, {}); it is shown once:", t.id, t.name, t.role);
                    println!("{secret}");
                }
                TokenCommand::List => println!("{}", serde_json::to_string_pretty(&store.tokens().await?)?),
                TokenCommand::Revoke { id } => {
                    if !store.revoke_token(&id, now).await? {
                        bail!("no live token with id `{id}`");
                    }
                    println!("revoked {id}");
                }
            }
            store.close().await;
            Ok(())
        }
        Command::Migrate => {
            let cfg = HostConfig::load(cli.config.as_deref())?;
            let store = Store::connect(&cfg.store).await?;
            store.migrate().await?;
            println!("migrated {}", cfg.store.url);
            Ok(())
        }
        Command::Import { file, source } => {
            let cfg = HostConfig::load(cli.config.as_deref())?;
            let store = Store::open(&cfg.store).await?;
            let f = std::fs::File::open(&file).with_context(|| file.display().to_string())?;
            let r = daifa_host::ingest::csv::import(f, &source, &store, None).await?;
            println!("{}", serde_json::to_string_pretty(&r)?);
            Ok(())
        }
        Command::Ingest(IngestCommand::Kingdee) => {
            let cfg = HostConfig::load(cli.config.as_deref())?;
            let Some(kd) = cfg.kingdee.clone() else { bail!("no [kingdee] section in the configuration") };
            let store = Store::open(&cfg.store).await?;
            let client = Arc::new(KingdeeClient::new(kd.client)?);
            let mut ingester = KingdeeIngester::new(client, store, kd.ingest);
            // Crash tests only: stall after fetching page N, before committing
            // it, so the test can kill -9 the process at exactly that point.
            if let Some(page) =
                std::env::var("DAIFA_FAULT_STALL_BEFORE_COMMIT").ok().and_then(|v| v.parse::<usize>().ok())
            {
                ingester = ingester.with_before_commit(Arc::new(move |p| {
                    if p == page {
                        eprintln!("fault: stalled before committing page {p}");
                        loop {
                            std::thread::sleep(std::time::Duration::from_secs(3600));
                        }
                    }
                }));
            }
            let r = ingester.scan().await?;
            println!("{}", serde_json::to_string_pretty(&r)?);
            Ok(())
        }
        Command::Plugin(cmd) => plugin(cmd, cli.config).await,
        Command::Route(cmd) => route_cli::run(cmd, HostConfig::load(cli.config.as_deref())?).await,
        Command::Sim(cmd) => sim_cli::sim(cmd).await,
    }
}

async fn plugin(cmd: PluginCommand, config: Option<PathBuf>) -> anyhow::Result<()> {
    let print = |v: serde_json::Value| println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
    match cmd {
        PluginCommand::New { name, dir, sdk } => plugin_kit::new(&name, dir, sdk)?,
        PluginCommand::Build { dir, out } => {
            plugin_kit::build(&dir, out)?;
        }
        PluginCommand::Test { dir } => plugin_kit::test(&dir, config.as_deref()).await?,
        PluginCommand::Pack { manifest, component, out } => {
            let m = Manifest::from_toml(
                &std::fs::read_to_string(&manifest).with_context(|| manifest.display().to_string())?,
            )?;
            let bytes = std::fs::read(&component).with_context(|| component.display().to_string())?;
            let pkg = PluginPackage::pack(m, bytes);
            pkg.write_dir(&out)?;
            println!(
                "packed {}@{} sha256 {} into {}",
                pkg.manifest.name,
                pkg.manifest.version,
                pkg.manifest.sha256,
                out.display()
            );
        }
        PluginCommand::Validate { package, set } => {
            let cfg = HostConfig::load(config.as_deref())?;
            let runtime = PluginRuntime::new(daifa_host::plugins::RuntimeConfig { cache_dir: None, ..cfg.runtime })?;
            let registry = Registry::open(runtime, None).await?;
            let pkg = PluginPackage::from_dir(&package)?;
            let report = registry.validate(&pkg, &to_config(set)).await?;
            print(serde_json::to_value(report)?);
        }
        PluginCommand::Invoke { package, operation, set, config_file, allow_ips, record, replay } => {
            let cfg = HostConfig::load(config.as_deref())?;
            let mut rt = daifa_host::plugins::RuntimeConfig { cache_dir: None, ..cfg.runtime };
            rt.egress_allow_ips.extend(allow_ips);
            let runtime = PluginRuntime::new(rt)?;
            let registry = Registry::open(runtime, None).await?;
            // A plugin crate (not a package): build and pack it first.
            let package = if package.join("Cargo.toml").is_file() && !package.join("component.wasm").is_file() {
                plugin_kit::build(&package, None)?
            } else {
                package
            };
            let pkg = PluginPackage::from_dir(&package)?;
            let values = invoke_config(&pkg, set, config_file.as_deref())?;
            let op = invoke_operation(operation)?;
            let tape = match (&record, &replay) {
                (Some(_), _) => Some(Tape::record()),
                (None, Some(path)) => {
                    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
                    Some(Tape::replay(
                        serde_json::from_str(&text)
                            .with_context(|| format!("{}: not a recording (`--record` makes one)", path.display()))?,
                    ))
                }
                (None, None) => None,
            };
            let report = daifa_host::plugins::invoke::invoke(&registry, &pkg, &values, op, tape.clone()).await?;
            if let (Some(path), Some(rec)) = (&record, tape.as_ref().and_then(Tape::recording)) {
                std::fs::write(path, serde_json::to_string_pretty(&rec)?)
                    .with_context(|| format!("writing {}", path.display()))?;
                eprintln!("recorded {} HTTP exchange(s) to {}", rec.exchanges.len(), path.display());
            }
            eprintln!("{}", report.answer);
            print(serde_json::to_value(&report)?);
            if !report.ok {
                std::process::exit(1);
            }
        }
        PluginCommand::Logs { name, follow, json, server } => {
            let client = server.client();
            let mut after = 0;
            loop {
                let page = client.logs(&name, after).await?;
                let lines = page.get("lines").and_then(|l| l.as_array()).cloned().unwrap_or_default();
                for l in &lines {
                    if json {
                        println!("{l}");
                    } else {
                        println!("{}", log_line(l));
                    }
                }
                after = page.get("next").and_then(|n| n.as_u64()).unwrap_or(after);
                if !follow {
                    break;
                }
                if lines.is_empty() {
                    tokio::select! {
                        _ = tokio::time::sleep(std::time::Duration::from_secs(1)) => {}
                        _ = tokio::signal::ctrl_c() => break,
                    }
                }
            }
        }
        PluginCommand::Install { package, set, activate, server } => {
            let pkg = PluginPackage::from_dir(&package)?;
            print(server.client().install(&pkg, &to_config(set), activate).await?);
        }
        PluginCommand::Activate { name, version, server } => print(server.client().activate(&name, &version).await?),
        PluginCommand::Rollback { name, server } => print(server.client().rollback(&name).await?),
        PluginCommand::Disable { name, server } => print(server.client().disable(&name).await?),
        PluginCommand::Remove { name, version, server } => print(server.client().remove(&name, &version).await?),
        PluginCommand::Canary { name, version, percent, server } => {
            print(server.client().start_canary(&name, &version, percent).await?)
        }
        PluginCommand::CanaryStop { name, server } => print(server.client().stop_canary(&name).await?),
        PluginCommand::List { server } => print(server.client().list().await?),
    }
    Ok(())
}

/// One journal line as text: time, version, level, operation, message.
fn log_line(l: &serde_json::Value) -> String {
    let s = |k: &str| l.get(k).and_then(|v| v.as_str()).unwrap_or_default().to_string();
    let at = l.get("at_ms").and_then(|v| v.as_i64()).unwrap_or(0);
    let time = httpdate::fmt_http_date(std::time::UNIX_EPOCH + std::time::Duration::from_millis(at.max(0) as u64));
    let op = s("operation");
    let op = if op.is_empty() { String::new() } else { format!(" {op}") };
    format!("{time} {} {:>10}{op}: {}", s("version"), s("level"), s("message"))
}

/// `daifa plugin invoke`'s config: the manifest's keys from the environment
/// (`DAIFA_PLUGIN_<KEY>`), then `--config-file`, then `-c` (later wins).
fn invoke_config(
    pkg: &PluginPackage,
    set: Vec<(String, String)>,
    file: Option<&std::path::Path>,
) -> anyhow::Result<daifa_host::plugins::PluginConfig> {
    let mut values = daifa_host::plugins::PluginConfig::new();
    for key in pkg.manifest.config.keys() {
        let var = format!("DAIFA_PLUGIN_{}", key.to_ascii_uppercase().replace('-', "_"));
        if let Ok(v) = std::env::var(&var) {
            values.insert(key.clone(), v);
        }
    }
    if let Some(path) = file {
        let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let table: std::collections::BTreeMap<String, toml::Value> =
            toml::from_str(&text).with_context(|| format!("{}: expected `key = \"value\"` lines", path.display()))?;
        for (k, v) in table {
            let v = match v {
                toml::Value::String(s) => s,
                other => other.to_string(),
            };
            values.insert(k, v);
        }
    }
    values.extend(set);
    Ok(values)
}

/// The operation with its input read and checked.
fn invoke_operation(op: InvokeOp) -> anyhow::Result<daifa_host::plugins::invoke::Operation> {
    use daifa_host::plugins::invoke::{Operation, PurchaseOrderJson};
    Ok(match op {
        InvokeOp::Describe => Operation::Describe,
        InvokeOp::SubmitOrder { json } => {
            let text = std::fs::read_to_string(&json).with_context(|| format!("reading {}", json.display()))?;
            let po: PurchaseOrderJson =
                serde_json::from_str(&text).with_context(|| format!("{}: not a purchase order", json.display()))?;
            Operation::SubmitOrder(Box::new(po.into_binding().map_err(|e| anyhow::anyhow!("{}: {e}", json.display()))?))
        }
        InvokeOp::PollUpdates { cursor } => Operation::PollUpdates { cursor },
        InvokeOp::CancelOrder { po, supplier_ref, reason } => {
            Operation::CancelOrder { po_number: po, supplier_ref, reason }
        }
        InvokeOp::QueryStock { skus } => Operation::QueryStock(skus),
        InvokeOp::HandleCallback { body, headers, method, path, query } => {
            let bytes = std::fs::read(&body).with_context(|| format!("reading {}", body.display()))?;
            let headers = headers
                .into_iter()
                .map(|h| {
                    h.split_once(':')
                        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
                        .ok_or_else(|| anyhow::anyhow!("header `{h}`: expected name:value"))
                })
                .collect::<anyhow::Result<Vec<_>>>()?;
            Operation::HandleCallback(daifa_host::plugins::bindings::CallbackRequest {
                method,
                path,
                query,
                headers,
                body: bytes,
            })
        }
    })
}
