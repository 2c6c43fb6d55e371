//! `daifa demo` and `daifa sim`: the simulators of external systems and the
//! demo driven over them. They live behind the `sim` feature so a
//! production build carries no simulator; without it both commands say how
//! to get them.

use std::path::PathBuf;

use clap::Subcommand;

/// `daifa demo`'s options.
#[derive(clap::Args)]
pub struct DemoArgs {
    /// Purchase orders to submit.
    #[arg(long, default_value_t = 2000)]
    pub orders: u64,
    /// Dispatch workers (jobs in flight at once). More workers put more
    /// answers in each store transaction (one writer on SQLite).
    #[arg(long, default_value_t = 256)]
    pub concurrency: usize,
    /// Directory with the built plugin components.
    #[arg(long, default_value = "plugins/target/wasm32-wasip2/release")]
    pub plugin_dir: PathBuf,
    /// The rest-json manifest.
    #[arg(long, default_value = "plugins/rest-json/manifest.toml")]
    pub manifest: PathBuf,
    /// Keep data here instead of a temporary directory.
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Keep the admin API running after the demo.
    #[arg(long)]
    pub keep_running: bool,
    /// Delay of every K3Cloud answer, ms (a real one costs 100–300 ms).
    #[arg(long, default_value_t = 0)]
    pub erp_latency_ms: u64,
    /// Most live K3Cloud sessions (0 = no limit).
    #[arg(long, default_value_t = 0)]
    pub erp_sessions: usize,
    /// Delay of every supplier answer, ms.
    #[arg(long, default_value_t = 0)]
    pub supplier_latency_ms: u64,
    /// End with one JSON summary line (counts, stage times, shares) for
    /// scripts and benchmarks.
    #[arg(long)]
    pub json: bool,
    /// Every supplier on rest-json (the JSON warehouses), instead of one
    /// EDI X12 partner and one supplier on its own K3Cloud among them.
    #[arg(long)]
    pub json_only: bool,
}

#[derive(Subcommand)]
pub enum SimCommand {
    /// A JSON-over-HTTP supplier (the rest-json dialect); `POST /_sim/ship`
    /// makes it ship everything it holds.
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
pub struct KingdeeSimArgs {
    #[arg(long, default_value_t = 8802)]
    pub port: u16,
    /// Sales orders to generate.
    #[arg(long, default_value_t = 1000)]
    pub orders: usize,
    /// Which installation: ours with daifa's custom fields (`daifa`), a stock
    /// K3Cloud without custom fields (`stock`), or a supplier's own K3Cloud
    /// (`supplier`: our purchase orders become its sales orders).
    #[arg(long, value_parser = ["daifa", "stock", "supplier"], default_value = "daifa")]
    pub company: String,
    /// Most rows one query answers (real servers: 10,000 or less).
    #[arg(long, default_value_t = 10_000)]
    pub row_cap: usize,
    /// The ERP clock's offset from UTC in seconds (28800 = China; add skew).
    #[arg(long, default_value_t = 8 * 3600, allow_hyphen_values = true)]
    pub clock_offset: i64,
    /// Delay before every answer, milliseconds.
    #[arg(long, default_value_t = 0)]
    pub latency_ms: u64,
    /// Most live sessions (the licence); 0 = no limit.
    #[arg(long, default_value_t = 0)]
    pub max_sessions: usize,
    /// Share of requests answered HTTP 503 before anything is done, from 0
    /// to 1 (0.05 = one in twenty).
    #[arg(long, default_value = "0", value_parser = parse_rate)]
    pub fail_rate: u32,
    /// Answer the next N writes with a network-control conflict (MsgCode 13).
    #[arg(long, default_value_t = 0)]
    pub conflict_writes: u32,
    /// Carry out the next N writes, then drop the answer (HTTP 502).
    #[arg(long, default_value_t = 0)]
    pub lose_write_answers: u32,
    /// Drop every session after this many authenticated requests.
    #[arg(long)]
    pub expire_sessions_after: Option<u64>,
    /// Material numbers the supplier company knows (comma-separated; empty =
    /// any).
    #[arg(long, value_delimiter = ',')]
    pub materials: Vec<String>,
}

/// A share from 0 to 1, kept in per mille (the simulator's resolution).
fn parse_rate(s: &str) -> Result<u32, String> {
    let d: rust_decimal::Decimal = s.trim().parse().map_err(|_| format!("`{s}` is not a number from 0 to 1"))?;
    if d < rust_decimal::Decimal::ZERO || d > rust_decimal::Decimal::ONE {
        return Err(format!("`{s}` is not between 0 and 1"));
    }
    (d * rust_decimal::Decimal::from(1000)).round().to_string().parse().map_err(|e| format!("{e}"))
}

#[cfg(feature = "sim")]
pub async fn demo(a: DemoArgs) -> anyhow::Result<()> {
    daifa_host::demo::run(daifa_host::demo::DemoOptions {
        orders: a.orders,
        concurrency: a.concurrency,
        plugin_dir: a.plugin_dir,
        manifest: a.manifest,
        data_dir: a.data_dir,
        keep_running: a.keep_running,
        erp_latency_ms: a.erp_latency_ms,
        erp_sessions: a.erp_sessions,
        supplier_latency_ms: a.supplier_latency_ms,
        json: a.json,
        json_only: a.json_only,
    })
    .await
}

#[cfg(feature = "sim")]
pub async fn sim(cmd: SimCommand) -> anyhow::Result<()> {
    use daifa_host::sim::kingdee::{KingdeeSim, KingdeeSimConfig};
    use daifa_host::sim::rest_supplier::{SupplierSim, SupplierSimConfig};
    match cmd {
        SimCommand::Supplier { port, token } => {
            let sim = SupplierSim::start(SupplierSimConfig { token: Some(token.clone()), ..Default::default() }, port)
                .await?;
            println!("supplier simulator on {} (bearer token {token:?})", sim.base_url());
            println!(
                "  it ships what it holds on POST {}/_sim/ship; then poll-updates sees the parcels",
                sim.base_url()
            );
            tokio::signal::ctrl_c().await?;
            Ok(())
        }
        SimCommand::Kingdee(a) => {
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

#[cfg(not(feature = "sim"))]
const NO_SIM: &str = "this daifa was built without simulators: build it with `--features sim` \
     (scripts/demo does), e.g. cargo run -p daifa-host --features sim -- demo";

#[cfg(not(feature = "sim"))]
pub async fn demo(_: DemoArgs) -> anyhow::Result<()> {
    anyhow::bail!(NO_SIM)
}

#[cfg(not(feature = "sim"))]
pub async fn sim(_: SimCommand) -> anyhow::Result<()> {
    anyhow::bail!(NO_SIM)
}
