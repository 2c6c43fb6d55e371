//! `daifa import orders.csv`: one row per order line, grouped into orders by
//! `external_id`. A malformed row marks its order as an exception (named by
//! line number); a row without an id is kept as a reject. Nothing is dropped.

use std::collections::BTreeMap;
use std::io::Read;

use serde::Serialize;

use super::rest::{LineIn, OrderIn};
use super::{IngestError, KnownSkus};
use crate::domain::{Actor, ShipTo};
use crate::store::{IngestOutcome, Store};

/// The columns, in order (a header row is required).
pub const COLUMNS: [&str; 18] = [
    "external_id",
    "bill_no",
    "platform_order_no",
    "customer",
    "ship_name",
    "ship_phone",
    "province",
    "city",
    "district",
    "street",
    "postcode",
    "country",
    "line_id",
    "sku",
    "quantity",
    "unit_price",
    "tax_rate",
    "remark",
];

/// Optional columns: read when the header has them. `unit` is the line's
/// unit of measure (empty = whole items; see `domain::values`).
pub const OPTIONAL_COLUMNS: [&str; 3] = ["sales_org", "platform", "unit"];

/// What an import did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ImportReport {
    pub rows: usize,
    pub orders: usize,
    pub rejected_rows: usize,
    pub outcome: IngestOutcome,
}

/// Imports a CSV stream into the store under `source`.
pub async fn import(
    reader: impl Read,
    source: &str,
    store: &Store,
    known: Option<&KnownSkus>,
) -> Result<ImportReport, IngestError> {
    let mut rdr = csv::ReaderBuilder::new().flexible(true).trim(csv::Trim::All).from_reader(reader);
    let headers = rdr.headers().map_err(|e| IngestError::Input(format!("CSV header: {e}")))?.clone();
    let index: BTreeMap<&str, usize> = COLUMNS
        .iter()
        .map(|c| headers.iter().position(|h| h.eq_ignore_ascii_case(c)).map(|i| (*c, i)).ok_or(*c))
        .collect::<Result<_, _>>()
        .map_err(|missing| {
            IngestError::Input(format!("CSV header has no `{missing}` column (expected: {})", COLUMNS.join(",")))
        })?;
    let optional: BTreeMap<&str, usize> = OPTIONAL_COLUMNS
        .iter()
        .filter_map(|c| headers.iter().position(|h| h.eq_ignore_ascii_case(c)).map(|i| (*c, i)))
        .collect();
    let mut orders: BTreeMap<String, (OrderIn, Vec<String>)> = BTreeMap::new();
    let mut report = ImportReport::default();
    let now = crate::util::now_ms();
    for (n, rec) in rdr.records().enumerate() {
        let line_no = n + 2; // 1-based, after the header
        report.rows += 1;
        let rec = match rec {
            Ok(r) => r,
            Err(e) => {
                store.reject_row(source, "", &format!("line {line_no}: {e}"), now).await?;
                report.rejected_rows += 1;
                continue;
            }
        };
        let get =
            |c: &str| index.get(c).or_else(|| optional.get(c)).and_then(|i| rec.get(*i)).unwrap_or("").to_string();
        let id = get("external_id");
        if id.is_empty() {
            let raw = rec.iter().collect::<Vec<_>>().join(",");
            store.reject_row(source, &raw, &format!("line {line_no}: external_id is empty"), now).await?;
            report.rejected_rows += 1;
            continue;
        }
        let entry = orders.entry(id.clone()).or_insert_with(|| {
            (
                OrderIn {
                    external_id: id.clone(),
                    bill_no: get("bill_no"),
                    platform_order_no: Some(get("platform_order_no")).filter(|s| !s.is_empty()),
                    customer: get("customer"),
                    sales_org: get("sales_org"),
                    platform: get("platform"),
                    ship_to: ShipTo {
                        name: get("ship_name"),
                        phone: get("ship_phone"),
                        province: get("province"),
                        city: get("city"),
                        district: get("district"),
                        street: get("street"),
                        postcode: get("postcode"),
                        country: get("country"),
                    },
                    remark: get("remark"),
                    ..Default::default()
                },
                Vec::new(),
            )
        });
        if rec.len() != headers.len() {
            entry.1.push(format!("CSV line {line_no}: {} fields, expected {}", rec.len(), headers.len()));
            continue;
        }
        entry.0.lines.push(LineIn {
            line_id: get("line_id"),
            sku: get("sku"),
            quantity: get("quantity").into(),
            unit_price: get("unit_price").into(),
            tax_rate: get("tax_rate").into(),
            unit: get("unit"),
        });
    }
    let mut contents = Vec::with_capacity(orders.len());
    for (_, (order, problems)) in orders {
        match order.into_content(source, known) {
            Ok(mut c) => {
                c.intake_problems.extend(problems);
                contents.push(c);
            }
            Err(e) => {
                store.reject_row(source, "", &e, now).await?;
                report.rejected_rows += 1;
            }
        }
    }
    report.orders = contents.len();
    report.outcome = store.ingest_batch(contents, &Actor::Ingest(source.to_string()), now).await?;
    Ok(report)
}
