//! The routing core: which supplier ships which line. A pure function of
//! (order, catalog, policy, performance snapshot) → decision + explanation,
//! with no I/O, so it is fast, deterministic and easy to test.
//!
//! Owns: catalog lookups, routing policies, allocation, explanations.
//! May call: `domain`.

pub mod allocate;
pub mod catalog;
pub mod catalog_file;
pub mod explain;
pub mod performance;
pub mod policy;
mod toml_at;
pub mod whatif;

pub use allocate::{Candidate, Decision, Exclusion, LineAllocation, Outcome, route, route_excluding};
pub use catalog::{Catalog, SupplierProfile};
pub use catalog_file::{CatalogError, CatalogFile, LoadedCatalog};
pub use policy::{KeepTogether, Policy, PolicyError, RuleSet, TieBreaker};
pub use whatif::{WhatIf, compare};
