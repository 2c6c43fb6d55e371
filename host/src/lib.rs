//! daifa — the order-flow host of a drop-shipping business.
//!
//! Data flows one way: ERP → orders → routing → dispatch → supplier →
//! tracking → ERP. This crate is the host as a library; `main.rs` is a thin
//! CLI over it so tests and benchmarks run the same code.

pub mod alerts;
pub mod api;
pub mod config;
pub mod console;
#[cfg(feature = "sim")]
pub mod demo;
pub mod dispatch;
pub mod domain;
pub mod erp;
pub mod ingest;
pub mod metrics;
pub mod plugins;
pub mod router;
pub mod routing;
pub mod serve;
#[cfg(feature = "sim")]
pub mod sim;
pub mod store;
pub mod tracking;
pub mod util;
