//! Orders pushed to us as JSON (`POST /api/v1/orders`) and the shared
//! conversion of loosely-typed order input into `OrderContent`. Idempotent on
//! (source, external id): the same order sent twice is stored once.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{KnownSkus, check_skus, decimal_or_problem};
use crate::domain::*;

/// One order as a client sends it. Numbers may be JSON numbers or strings.
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
    pub quantity: Value,
    pub unit_price: Value,
    pub tax_rate: Value,
}

fn num_text(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

impl OrderIn {
    /// Converts to content; what cannot be read becomes a named problem (the
    /// order is still stored, in exception). Only a missing id is refused.
    pub fn into_content(self, source: &str, known: Option<&KnownSkus>) -> Result<OrderContent, String> {
        if self.external_id.trim().is_empty() {
            return Err("external_id is missing".into());
        }
        let mut problems = Vec::new();
        let lines = self
            .lines
            .into_iter()
            .enumerate()
            .map(|(i, l)| {
                let id = if l.line_id.is_empty() { (i + 1).to_string() } else { l.line_id };
                let tax = num_text(&l.tax_rate);
                OrderLine {
                    quantity: decimal_or_problem(&num_text(&l.quantity), &format!("line {id} quantity"), &mut problems),
                    unit_price: decimal_or_problem(
                        &num_text(&l.unit_price),
                        &format!("line {id} unit_price"),
                        &mut problems,
                    ),
                    tax_rate: decimal_or_problem(
                        if tax.is_empty() { "0" } else { &tax },
                        &format!("line {id} tax_rate"),
                        &mut problems,
                    ),
                    erp_line_id: ErpLineId(id),
                    sku: Sku(l.sku),
                    unit: String::new(),
                }
            })
            .collect();
        let mut ship_to = self.ship_to;
        if ship_to.country.is_empty() {
            ship_to.country = "CN".into();
        }
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
            source_modified: String::new(),
            cancelled: self.cancelled,
            intake_problems: problems,
        };
        check_skus(&mut c, known);
        c.source_modified = self.modified.unwrap_or_else(|| format!("content:{}", c.content_hash()));
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
