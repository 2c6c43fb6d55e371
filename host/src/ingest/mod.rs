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

use rust_decimal::Decimal;
use std::collections::HashSet;

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

/// Parses a decimal the way ERPs and spreadsheets write them (`12.50`,
/// `1e3`), exactly: a value with more significant digits than a decimal
/// holds is a problem, never rounded into range. On failure records a
/// problem naming the field and returns zero. Bounds are checked later, by
/// `OrderContent::problems`, whatever the source.
pub(crate) fn decimal_or_problem(raw: &str, field: &str, problems: &mut Vec<String>) -> Decimal {
    match parse_decimal_exact(raw.trim()) {
        Ok(d) => d.normalize(),
        Err(why) => {
            problems.push(format!("{field}: `{raw}` {why}"));
            Decimal::ZERO
        }
    }
}

fn parse_decimal_exact(t: &str) -> Result<Decimal, &'static str> {
    const NOT_A_NUMBER: &str = "is not a number";
    const TOO_LONG: &str = "is out of range (a number of at most 28 significant digits is expected)";
    // Written like a number (sign, digits, fraction, exponent)?
    let is_number = |s: &str| {
        let s = s.strip_prefix(['+', '-']).unwrap_or(s);
        let (m, e) = s.split_once(['e', 'E']).unwrap_or((s, "0"));
        let e = e.strip_prefix(['+', '-']).unwrap_or(e);
        let (int, frac) = m.split_once('.').unwrap_or((m, ""));
        let digits = |d: &str| d.bytes().all(|b| b.is_ascii_digit());
        !(int.is_empty() && frac.is_empty()) && digits(int) && digits(frac) && !e.is_empty() && digits(e)
    };
    // The parser would skip `_` (`1_0` = 10): only text written like a
    // number is read at all.
    if !is_number(t) {
        return Err(NOT_A_NUMBER);
    }
    if let Some(e) = t.find(['e', 'E']) {
        // Scientific notation: the mantissa must be exact on its own.
        Decimal::from_str_exact(&t[..e]).map_err(|_| TOO_LONG)?;
        return Decimal::from_scientific(t).map_err(|_| TOO_LONG);
    }
    Decimal::from_str_exact(t).map_err(|_| TOO_LONG)
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

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(raw: &str) -> Result<String, String> {
        let mut p = Vec::new();
        let d = decimal_or_problem(raw, "q", &mut p);
        if p.is_empty() { Ok(d.to_string()) } else { Err(p.join("; ")) }
    }

    #[test]
    fn decimals_are_exact_or_a_named_problem() {
        assert_eq!(parse(" 12.50 ").unwrap(), "12.5");
        assert_eq!(parse("12345678901234567.891").unwrap(), "12345678901234567.891");
        assert_eq!(parse("18446744073709551616").unwrap(), "18446744073709551616");
        assert_eq!(parse("1e3").unwrap(), "1000");
        assert_eq!(parse("2.5E-1").unwrap(), "0.25");
        assert_eq!(parse("1.0000000000000000001").unwrap(), "1.0000000000000000001");
        assert_eq!(parse("many").unwrap_err(), "q: `many` is not a number");
        assert_eq!(parse("").unwrap_err(), "q: `` is not a number");
        assert_eq!(parse("1\u{0}").unwrap_err(), "q: `1\u{0}` is not a number");
        for long in ["1.00000000000000000000000000000001", "123456789012345678901234567890", "1e400"] {
            assert!(parse(long).unwrap_err().contains("is out of range"), "{long}: {:?}", parse(long));
        }
    }
}
