//! `daifa route ...` (part of the binary, not the library): load the catalog
//! and policy, route waiting orders, explain a decision, compare a proposed
//! policy. Works on the configured store directly, so it needs no server.

use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::Subcommand;
use daifa_host::config::HostConfig;
use daifa_host::domain::{OrderId, OrderState};
use daifa_host::router::{self, Router};
use daifa_host::routing::{CatalogFile, Policy, explain};
use daifa_host::store::Store;
use daifa_host::util::now_ms;

#[derive(Subcommand)]
pub enum RouteCommand {
    /// Show every routing decision of an order: candidates, score parts, why each won or was excluded.
    Explain {
        /// daifa order id, or the ERP bill number.
        order: String,
        /// Print the stored decisions as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Route every order waiting in `received`, once.
    Run,
    /// Route stored orders under the active policy and FILE; show what changes.
    WhatIf {
        /// The proposed policy (TOML).
        file: PathBuf,
        /// Orders to compare (oldest first).
        #[arg(long, default_value_t = 1000)]
        orders: i64,
        /// Only orders in this state.
        #[arg(long)]
        state: Option<String>,
        /// Moved orders to list.
        #[arg(long, default_value_t = 20)]
        show: usize,
        #[arg(long)]
        json: bool,
    },
    /// Validate and load a routing policy file (its `version` must be new).
    Policy { file: PathBuf },
    /// Validate and load a catalog file (replaces the catalog).
    Catalog { file: PathBuf },
}

pub async fn run(cmd: RouteCommand, cfg: HostConfig) -> anyhow::Result<()> {
    let store = Store::open(&cfg.store).await.with_context(|| format!("opening the store at {}", cfg.store.url))?;
    let now = now_ms();
    match cmd {
        RouteCommand::Explain { order, json } => {
            let id = match order.parse::<i64>() {
                Ok(n) => OrderId(n),
                Err(_) => {
                    store.order_id_by_bill(&order).await?.with_context(|| format!("no order with bill {order}"))?
                }
            };
            let o = store.order(id).await?;
            let decisions = store.decisions(id).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&decisions)?);
                return Ok(());
            }
            println!(
                "order {id} ({}) to {} {}: {}",
                o.content.bill_no,
                o.content.ship_to.province,
                o.content.ship_to.city,
                o.state.as_str()
            );
            println!("  {}", o.state_reason);
            if decisions.is_empty() {
                println!("never routed");
            }
            for d in &decisions {
                print!("{}", explain::render(d.attempt, &d.cause, &d.tried, &d.decision));
            }
        }
        RouteCommand::Run => {
            let r = Router::new(store, cfg.router.clone(), now).await?;
            println!("{}", serde_json::to_string_pretty(&r.route_pending(now).await?)?);
        }
        RouteCommand::WhatIf { file, orders, state, show, json } => {
            let text = std::fs::read_to_string(&file).with_context(|| file.display().to_string())?;
            let proposed = Policy::from_toml(&text).map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
            let st = state.map(|s| s.parse::<OrderState>()).transpose().map_err(anyhow::Error::msg)?;
            let ids: Vec<OrderId> = store.list_orders(st, orders).await?.into_iter().map(|o| o.id).collect();
            let batch: Vec<_> = store
                .orders_content(&ids)
                .await?
                .into_iter()
                .map(|(id, _, c)| (format!("{id} ({})", c.bill_no), c))
                .collect();
            let r = Router::new(store, cfg.router.clone(), now).await?;
            let w = r.what_if(&batch, &proposed, now, show).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&w)?);
                return Ok(());
            }
            println!(
                "{} orders: current policy v{} vs proposed v{}",
                w.orders, w.current.policy_version, w.proposed.policy_version
            );
            println!("{:<12} {:>10} {:>10}", "supplier", "current %", "proposed %");
            let mut sups: Vec<_> = w.current.share_percent.keys().chain(w.proposed.share_percent.keys()).collect();
            sups.sort();
            sups.dedup();
            for s in sups {
                let a = w.current.share_percent.get(s).copied().unwrap_or_default();
                let b = w.proposed.share_percent.get(s).copied().unwrap_or_default();
                println!("{:<12} {:>10} {:>10}", s.as_str(), a, b);
            }
            println!("landed cost: {} → {} (Δ {})", w.current.landed_cost, w.proposed.landed_cost, w.cost_delta);
            println!(
                "on hold: {} → {}; split orders: {} → {}",
                w.current.on_hold, w.proposed.on_hold, w.current.split_orders, w.proposed.split_orders
            );
            println!("{} orders move; first {}:", w.moved_count, w.moved.len());
            for m in &w.moved {
                println!("  {}: {} [{}] → {} [{}]", m.order, m.current, m.current_cost, m.proposed, m.proposed_cost);
            }
        }
        RouteCommand::Policy { file } => {
            let c = router::RouterConfig { policy_file: Some(file), catalog_file: None, ..cfg.router };
            let did = router::load_files(&store, &c, now).await?;
            if did.is_empty() {
                bail!("this policy version is already the active one, with the same text");
            }
            did.iter().for_each(|l| println!("loaded {l}"));
        }
        RouteCommand::Catalog { file } => {
            let text = std::fs::read_to_string(&file).with_context(|| file.display().to_string())?;
            let loaded = CatalogFile::load_toml(&text, now).map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
            store.replace_catalog(&loaded, now).await?;
            println!(
                "loaded catalog {}: {} suppliers, {} offers",
                file.display(),
                loaded.suppliers.len(),
                loaded.entries.len()
            );
        }
    }
    Ok(())
}
