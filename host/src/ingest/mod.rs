//! Orders in: the Kingdee poller, the REST intake and CSV import. Every path
//! ends in `Store::ingest_batch`, so dedup, validation and exceptions behave
//! the same whatever the source.
//!
//! Owns: reading sources and turning their rows into `OrderContent`.
//! May call: `erp`, `store`, `domain`.

pub mod address;
pub mod csv;
pub mod kingdee;
pub mod mapping;
pub mod rest;

use std::collections::HashSet;
use std::str::FromStr;

use rust_decimal::Decimal;

/// SKUs we know (the catalog). When set, an order with an unknown SKU goes
/// to exception naming it.
pub type KnownSkus = std::sync::Arc<HashSet<String>>;

/// Why ingestion stopped.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error(transparent)]
    Kingdee(#[from] crate::erp::kingdee::KingdeeError),
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    #[error("{0}")]
    Input(String),
    /// The field mapping is wrong; nothing was stored. Fix the config.
    #[error("kingdee mapping: {0}")]
    Mapping(String),
}

/// Parses a decimal the way ERPs and spreadsheets write them; on failure
/// records a problem naming the field and returns zero.
pub(crate) fn decimal_or_problem(raw: &str, field: &str, problems: &mut Vec<String>) -> Decimal {
    let t = raw.trim();
    match Decimal::from_str(t).or_else(|_| Decimal::from_scientific(t)) {
        Ok(d) => d.normalize(),
        Err(_) => {
            problems.push(format!("{field}: `{raw}` is not a number"));
            Decimal::ZERO
        }
    }
}

/// Adds "unknown SKU" problems.
pub(crate) fn check_skus(content: &mut crate::domain::OrderContent, known: Option<&KnownSkus>) {
    if let Some(known) = known {
        for l in &content.lines {
            if !l.sku.as_str().is_empty() && !known.contains(l.sku.as_str()) {
                content.intake_problems.push(format!("line {}: unknown SKU {}", l.erp_line_id, l.sku));
            }
        }
    }
}
