//! Orders pushed to us as JSON (`POST /api/v1/orders`) and the shared
//! conversion of loosely-typed order input into `OrderContent`. Idempotent on
//! (source, external id): the same order sent twice is stored once.

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use super::{KnownSkus, check_skus, decimal_or_problem};
use crate::domain::values;
use crate::domain::*;

/// One order as a client sends it. Numbers may be JSON numbers or strings;
/// either way they are read exactly ([`NumText`]).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OrderIn {
    pub external_id: String,
    pub bill_no: String,
    pub platform_order_no: Option<String>,
    pub customer: String,
    /// The selling organisation, for routing rules.
    pub sales_org: String,
    /// The marketplace (`tmall`, `jd`, ...), for routing rules.
    pub platform: String,
    pub ship_to: ShipTo,
    pub lines: Vec<LineIn>,
    pub remark: String,
    /// The sender's revision stamp; when absent the content decides whether
    /// a re-sent order is new.
    pub modified: Option<String>,
    pub cancelled: bool,
}

/// One line as a client sends it.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LineIn {
    pub line_id: String,
    pub sku: String,
    pub quantity: NumText,
    pub unit_price: NumText,
    pub tax_rate: NumText,
    /// The unit of measure (`kg`, `Pcs`, ...); empty = whole items. Only
    /// some units allow fractional quantities (`domain::values`).
    pub unit: String,
}

/// A number exactly as the client wrote it: a JSON number's own text (never
/// through a float, so `12345678901234567.891` and `2^64` stay exact), a
/// JSON string's contents, or empty for `null`. Anything else (`true`,
/// `[1]`) is kept as its JSON text and later reported as not a number.
///
/// Deserializes from JSON text (`serde_json::from_str` / `from_slice`, as
/// the API does), not from a parsed `serde_json::Value`, whose numbers have
/// already been rounded.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NumText(pub String);

impl From<String> for NumText {
    fn from(s: String) -> Self {
        NumText(s)
    }
}

impl From<&str> for NumText {
    fn from(s: &str) -> Self {
        NumText(s.to_string())
    }
}

impl Serialize for NumText {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for NumText {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = Box::<RawValue>::deserialize(d)?;
        let t = raw.get().trim();
        if t.starts_with('"') {
            serde_json::from_str::<String>(t).map(NumText).map_err(serde::de::Error::custom)
        } else if t == "null" {
            Ok(NumText::default())
        } else {
            Ok(NumText(t.to_string()))
        }
    }
}

impl OrderIn {
    /// Converts to content; what cannot be read becomes a named problem (the
    /// order is still stored, in exception), and so does text no store can
    /// keep (marked, see `OrderContent::scrub_text`). Only a missing id, or
    /// an id or source no store can keep, is refused.
    pub fn into_content(self, source: &str, known: Option<&KnownSkus>) -> Result<OrderContent, String> {
        if self.external_id.trim().is_empty() {
            return Err("external_id is missing".into());
        }
        values::check_storable("source", source)?;
        values::check_storable("external_id", &self.external_id)?;
        let mut problems = Vec::new();
        let lines = self
            .lines
            .into_iter()
            .enumerate()
            .map(|(i, l)| {
                let id = if l.line_id.is_empty() { (i + 1).to_string() } else { l.line_id };
                let tax = l.tax_rate.0;
                OrderLine {
                    quantity: decimal_or_problem(&l.quantity.0, &format!("line {id} quantity"), &mut problems),
                    unit_price: decimal_or_problem(&l.unit_price.0, &format!("line {id} unit_price"), &mut problems),
                    tax_rate: decimal_or_problem(
                        if tax.is_empty() { "0" } else { &tax },
                        &format!("line {id} tax_rate"),
                        &mut problems,
                    ),
                    erp_line_id: ErpLineId(id),
                    sku: Sku(l.sku),
                    unit: l.unit,
                }
            })
            .collect();
        let mut ship_to = self.ship_to;
        if ship_to.country.is_empty() {
            ship_to.country = "CN".into();
        }
        if let Some(m) = &self.modified
            && !crate::domain::revision::is_orderable(m)
        {
            // A stamp that cannot be ordered would not protect the order
            // against a stale retry: refuse it rather than ignore it.
            return Err(format!(
                "modified `{m}` is not a revision stamp (an RFC 3339 time, an ERP local time such as \
                 2026-11-25 10:00:00, or an integer version)"
            ));
        }
        let stamped = self.modified.is_some();
        let mut c = OrderContent {
            source: Source(source.to_string()),
            bill_no: BillNo(if self.bill_no.is_empty() { self.external_id.clone() } else { self.bill_no }),
            external_id: ExternalId(self.external_id),
            platform_order_no: self.platform_order_no,
            customer: self.customer,
            sales_org: self.sales_org,
            platform: self.platform,
            ship_to,
            lines,
            remark: self.remark,
            source_modified: self.modified.unwrap_or_default(),
            cancelled: self.cancelled,
            intake_problems: problems,
        };
        c.scrub_text();
        check_skus(&mut c, known);
        if !stamped {
            c.source_modified = format!("content:{}", c.content_hash());
        }
        Ok(c)
    }
}

/// What became of one submitted order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderResult {
    pub index: usize,
    pub external_id: String,
    /// `received`, `exception`, ... (the order's state), or `invalid` when it
    /// could not be stored at all.
    pub status: String,
    pub order_id: Option<i64>,
    pub reason: Option<String>,
}
