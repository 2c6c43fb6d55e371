//! `daifa`: the command line over the host library.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};

use daifa_host::api::client::AdminClient;
use daifa_host::config::HostConfig;
use daifa_host::demo::{self, DemoOptions};
use daifa_host::erp::kingdee::KingdeeClient;
use daifa_host::ingest::kingdee::KingdeeIngester;
use daifa_host::plugins::{Manifest, PluginConfig, PluginPackage, PluginRuntime, Registry};
use daifa_host::sim::kingdee::{KingdeeSim, KingdeeSimConfig};
use daifa_host::sim::rest_supplier::{SupplierSim, SupplierSimConfig};
use daifa_host::store::Store;

mod dispatch_cli;
mod route_cli;

#[derive(Parser)]
#[command(name = "daifa", version, about = "Drop-shipping order flow: ERP → routing → suppliers → tracking → ERP")]
struct Cli {
    /// Configuration file (default: ./daifa.toml if present).
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the whole flow on this machine: simulator, host, bundled plugin.
    Demo {
        /// Purchase orders to submit.
        #[arg(long, default_value_t = 2000)]
        orders: u64,
        /// Dispatch workers (jobs in flight at once).
        #[arg(long, default_value_t = 32)]
        concurrency: usize,
        /// Directory with the built plugin components.
        #[arg(long, default_value = "plugins/target/wasm32-wasip2/release")]
        plugin_dir: PathBuf,
        /// The rest-json manifest.
        #[arg(long, default_value = "plugins/rest-json/manifest.toml")]
        manifest: PathBuf,
        /// Keep data here instead of a temporary directory.
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// Keep the admin API running after the demo.
        #[arg(long)]
        keep_running: bool,
        /// Delay of every K3Cloud answer, ms (a real one costs 100–300 ms).
        #[arg(long, default_value_t = 0)]
        erp_latency_ms: u64,
        /// Most live K3Cloud sessions (0 = no limit).
        #[arg(long, default_value_t = 0)]
        erp_sessions: usize,
        /// Delay of every supplier answer, ms.
        #[arg(long, default_value_t = 0)]
        supplier_latency_ms: u64,
    },
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
    /// Run a simulator of an external system.
    #[command(subcommand)]
    Sim(SimCommand),
}

#[derive(Subcommand)]
enum PluginCommand {
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
enum IngestCommand {
    /// One scan of Kingdee SAL_SaleOrder (the `[kingdee]` config section).
    Kingdee,
}

#[derive(Subcommand)]
enum SimCommand {
    /// A JSON-over-HTTP supplier (the rest-json dialect).
    Supplier {
        #[arg(long, default_value_t = 8801)]
        port: u16,
        #[arg(long, default_value = "sim-token")]
        token: String,
    },
    /// A Kingdee K3Cloud WebAPI server (at /k3cloud/), with sample orders.
    Kingdee(KingdeeSimArgs),
}

/// The K3Cloud simulator's installation, faults and clock, so each case
/// integrations trip over can be reproduced by hand.
#[derive(clap::Args)]
struct KingdeeSimArgs {
    #[arg(long, default_value_t = 8802)]
    port: u16,
    /// Sales orders to generate.
    #[arg(long, default_value_t = 1000)]
    orders: usize,
    /// Which installation: ours with daifa's custom fields (`daifa`), a stock
    /// K3Cloud without custom fields (`stock`), or a supplier's own K3Cloud
    /// (`supplier`: our purchase orders become its sales orders).
    #[arg(long, value_parser = ["daifa", "stock", "supplier"], default_value = "daifa")]
    company: String,
    /// Most rows one query answers (real servers: 10,000 or less).
    #[arg(long, default_value_t = 10_000)]
    row_cap: usize,
    /// The ERP clock's offset from UTC in seconds (28800 = China; add skew).
    #[arg(long, default_value_t = 8 * 3600, allow_hyphen_values = true)]
    clock_offset: i64,
    /// Delay before every answer, milliseconds.
    #[arg(long, default_value_t = 0)]
    latency_ms: u64,
    /// Most live sessions (the licence); 0 = no limit.
    #[arg(long, default_value_t = 0)]
    max_sessions: usize,
    /// Share of requests answered HTTP 503 before anything is done, from 0
    /// to 1 (0.05 = one in twenty).
    #[arg(long, default_value = "0", value_parser = parse_rate)]
    fail_rate: u32,
    /// Answer the next N writes with a network-control conflict (MsgCode 13).
    #[arg(long, default_value_t = 0)]
    conflict_writes: u32,
    /// Carry out the next N writes, then drop the answer (HTTP 502).
    #[arg(long, default_value_t = 0)]
    lose_write_answers: u32,
    /// Drop every session after this many authenticated requests.
    #[arg(long)]
    expire_sessions_after: Option<u64>,
    /// Material numbers the supplier company knows (comma-separated; empty =
    /// any).
    #[arg(long, value_delimiter = ',')]
    materials: Vec<String>,
}

/// A share from 0 to 1, kept in per mille (the simulator's resolution).
fn parse_rate(s: &str) -> Result<u32, String> {
    let d: rust_decimal::Decimal = s.trim().parse().map_err(|_| format!("`{s}` is not a number from 0 to 1"))?;
    if d < rust_decimal::Decimal::ZERO || d > rust_decimal::Decimal::ONE {
        return Err(format!("`{s}` is not between 0 and 1"));
    }
    (d * rust_decimal::Decimal::from(1000)).round().to_string().parse().map_err(|e| format!("{e}"))
}

pub(crate) fn parse_kv(s: &str) -> Result<(String, String), String> {
    s.split_once('=').map(|(k, v)| (k.to_string(), v.to_string())).ok_or_else(|| format!("`{s}`: expected key=value"))
}

fn to_config(set: Vec<(String, String)>) -> PluginConfig {
    set.into_iter().collect()
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    // The demo prints its own story; services log what they do.
    let default_filter =
        if matches!(cli.command, Command::Demo { .. }) { "warn" } else { "warn,daifa=info,daifa_host=info" };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| default_filter.into()),
        )
        .with_writer(std::io::stderr)
        .init();
    match cli.command {
        Command::Demo {
            orders,
            concurrency,
            plugin_dir,
            manifest,
            data_dir,
            keep_running,
            erp_latency_ms,
            erp_sessions,
            supplier_latency_ms,
        } => {
            demo::run(DemoOptions {
                orders,
                concurrency,
                plugin_dir,
                manifest,
                data_dir,
                keep_running,
                erp_latency_ms,
                erp_sessions,
                supplier_latency_ms,
            })
            .await
        }
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
        Command::Sim(SimCommand::Supplier { port, token }) => {
            let sim = SupplierSim::start(SupplierSimConfig { token: Some(token), ..Default::default() }, port).await?;
            println!("supplier simulator on {}", sim.base_url());
            tokio::signal::ctrl_c().await?;
            Ok(())
        }
        Command::Sim(SimCommand::Kingdee(a)) => {
            let base = match a.company.as_str() {
                "stock" => KingdeeSimConfig::stock(),
                "supplier" => KingdeeSimConfig::supplier_company(a.materials.iter().cloned()),
                _ => KingdeeSimConfig::default(),
            };
            let cfg = KingdeeSimConfig {
                row_cap: a.row_cap,
                clock_offset_secs: a.clock_offset,
                max_sessions: a.max_sessions,
                ..base
            };
            let sim = KingdeeSim::start(cfg, a.port).await?;
            let orders = if a.company == "supplier" { 0 } else { a.orders };
            sim.generate(orders);
            sim.with(|s| {
                s.faults.slow_ms = a.latency_ms;
                s.faults.fail_per_mille = a.fail_rate;
                s.faults.conflict_next_writes = a.conflict_writes;
                s.faults.lose_next_write_answers = a.lose_write_answers;
                s.faults.expire_sessions_after = a.expire_sessions_after;
            });
            let c = sim.credentials();
            println!("K3Cloud simulator ({}) on {} with {orders} sales orders", a.company, sim.server_url());
            println!(
                "  acct_id={} user_name={} app_id={} app_secret={}",
                c.acct_id, c.user_name, c.app_id, c.app_secret
            );
            tokio::signal::ctrl_c().await?;
            Ok(())
        }
    }
}

async fn plugin(cmd: PluginCommand, config: Option<PathBuf>) -> anyhow::Result<()> {
    let print = |v: serde_json::Value| println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
    match cmd {
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
        PluginCommand::Install { package, set, activate, server } => {
            let pkg = PluginPackage::from_dir(&package)?;
            print(server.client().install(&pkg, &to_config(set), activate).await?);
        }
        PluginCommand::Activate { name, version, server } => print(server.client().activate(&name, &version).await?),
        PluginCommand::Rollback { name, server } => print(server.client().rollback(&name).await?),
        PluginCommand::Disable { name, server } => print(server.client().disable(&name).await?),
        PluginCommand::List { server } => print(server.client().list().await?),
    }
    Ok(())
}
