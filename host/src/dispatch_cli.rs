//! `daifa supplier ...` and `daifa dispatch ...`: supplier connections,
//! purchase orders, dead letters and circuits through the admin API.
//! Secrets are read from a file or an environment variable here (never
//! from argv, which shells keep in history), or passed as references the
//! host resolves itself.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::Subcommand;
use reqwest::Method;
use serde_json::{Value, json};

use crate::Server;

#[derive(Subcommand)]
pub(crate) enum SupplierCommand {
    /// Bind a supplier to a plugin with its own config and secrets.
    Connect {
        supplier: String,
        #[arg(long)]
        plugin: String,
        /// Pin a plugin version (default: follow the active one).
        #[arg(long)]
        version: Option<String>,
        /// Plain config values, `key=value`.
        #[arg(short = 'c', long = "set", value_parser = crate::parse_kv)]
        set: Vec<(String, String)>,
        /// A secret read from a file here: `key=PATH`.
        #[arg(long = "secret-file", value_parser = crate::parse_kv)]
        secret_file: Vec<(String, String)>,
        /// A secret read from this shell's environment: `key=VAR`.
        #[arg(long = "secret-env", value_parser = crate::parse_kv)]
        secret_env: Vec<(String, String)>,
        /// A secret the host reads itself at each bind: `key=env:VAR` or `key=file:/path`.
        #[arg(long = "secret-ref", value_parser = crate::parse_kv)]
        secret_ref: Vec<(String, String)>,
        #[arg(long, default_value_t = 8)]
        max_in_flight: u32,
        /// Calls per second (0 = no limit).
        #[arg(long, default_value_t = 0)]
        rate_per_sec: u32,
        #[arg(long, default_value_t = 5000)]
        poll_interval_ms: i64,
        #[command(flatten)]
        server: Server,
    },
    /// Show every connection (secret values are never shown).
    List {
        #[command(flatten)]
        server: Server,
    },
    /// Remove a supplier's connection (its queued work waits for a new one).
    Disconnect {
        supplier: String,
        #[command(flatten)]
        server: Server,
    },
    /// Resume dispatch to a supplier paused after refusing our credentials.
    Resume {
        supplier: String,
        #[command(flatten)]
        server: Server,
    },
}

#[derive(Subcommand)]
pub(crate) enum DispatchCommand {
    /// Purchase orders, newest first.
    Pos {
        #[arg(long)]
        state: Option<String>,
        #[arg(long)]
        supplier: Option<String>,
        #[arg(long)]
        order: Option<i64>,
        #[arg(long, default_value_t = 50)]
        limit: i64,
        #[command(flatten)]
        server: Server,
    },
    /// One purchase order with its history and shipments.
    Po {
        po_number: String,
        #[command(flatten)]
        server: Server,
    },
    /// Jobs per kind and state.
    Jobs {
        #[command(flatten)]
        server: Server,
    },
    /// Jobs that gave up, with every error.
    DeadLetters {
        #[command(flatten)]
        server: Server,
    },
    /// Send a dead letter round again.
    Retry {
        job: i64,
        #[command(flatten)]
        server: Server,
    },
    /// Give up on a dead letter for good.
    Discard {
        job: i64,
        #[command(flatten)]
        server: Server,
    },
    /// Circuit breakers and their transitions.
    Circuits {
        #[command(flatten)]
        server: Server,
    },
    /// What needs a person.
    Events {
        #[command(flatten)]
        server: Server,
    },
}

fn print(v: Value) {
    println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
}

pub(crate) async fn supplier(cmd: SupplierCommand) -> anyhow::Result<()> {
    match cmd {
        SupplierCommand::Connect {
            supplier,
            plugin,
            version,
            set,
            secret_file,
            secret_env,
            secret_ref,
            max_in_flight,
            rate_per_sec,
            poll_interval_ms,
            server,
        } => {
            let mut secrets = BTreeMap::new();
            for (k, path) in secret_file {
                let v = std::fs::read_to_string(PathBuf::from(&path))
                    .with_context(|| format!("secret `{k}`: reading {path}"))?;
                secrets.insert(k, v.trim_end_matches(['\r', '\n']).to_string());
            }
            for (k, var) in secret_env {
                let Ok(v) = std::env::var(&var) else { bail!("secret `{k}`: environment variable `{var}` is not set") };
                secrets.insert(k, v);
            }
            let body = json!({
                "plugin": plugin,
                "version": version,
                "config": set.into_iter().collect::<BTreeMap<_, _>>(),
                "secrets": secrets,
                "secret_refs": secret_ref.into_iter().collect::<BTreeMap<_, _>>(),
                "max_in_flight": max_in_flight,
                "rate_per_sec": rate_per_sec,
                "poll_interval_ms": poll_interval_ms,
            });
            print(server.client().call(Method::PUT, &format!("/suppliers/{supplier}/connection"), Some(&body)).await?);
        }
        SupplierCommand::List { server } => {
            print(server.client().call(Method::GET, "/suppliers/connections", None).await?)
        }
        SupplierCommand::Disconnect { supplier, server } => {
            print(server.client().call(Method::DELETE, &format!("/suppliers/{supplier}/connection"), None).await?)
        }
        SupplierCommand::Resume { supplier, server } => {
            print(server.client().call(Method::POST, &format!("/suppliers/{supplier}/connection/resume"), None).await?)
        }
    }
    Ok(())
}

pub(crate) async fn dispatch(cmd: DispatchCommand) -> anyhow::Result<()> {
    let (server, method, path) = match cmd {
        DispatchCommand::Pos { state, supplier, order, limit, server } => {
            let mut q = vec![format!("limit={limit}")];
            q.extend(state.map(|s| format!("state={s}")));
            q.extend(supplier.map(|s| format!("supplier={s}")));
            q.extend(order.map(|o| format!("order={o}")));
            (server, Method::GET, format!("/purchase-orders?{}", q.join("&")))
        }
        DispatchCommand::Po { po_number, server } => (server, Method::GET, format!("/purchase-orders/{po_number}")),
        DispatchCommand::Jobs { server } => (server, Method::GET, "/dispatch/jobs".into()),
        DispatchCommand::DeadLetters { server } => (server, Method::GET, "/dispatch/dead-letters".into()),
        DispatchCommand::Retry { job, server } => (server, Method::POST, format!("/dispatch/dead-letters/{job}/retry")),
        DispatchCommand::Discard { job, server } => {
            (server, Method::POST, format!("/dispatch/dead-letters/{job}/discard"))
        }
        DispatchCommand::Circuits { server } => (server, Method::GET, "/dispatch/circuits".into()),
        DispatchCommand::Events { server } => (server, Method::GET, "/operator-events".into()),
    };
    print(server.client().call(method, &path, None).await?);
    Ok(())
}
