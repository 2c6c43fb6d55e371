//! kingdee-supplier: a daifa supplier adapter for a supplier that runs
//! Kingdee K3Cloud itself. Our purchase order becomes the supplier's
//! SAL_SaleOrder through its own WebAPI (signed headers; Save → Submit →
//! Audit, idempotent on our PO number in a field the supplier chooses,
//! resumed where it stopped); its audited SAL_OUTSTOCKs, with carrier and
//! tracking number (FCarriageNO), become our shipments line by line; an
//! order it closes or voids becomes a cancellation.
//!
//! Material numbers, the customer we are in its books, its organisation,
//! bill type and carrier codes are config, so a second supplier on
//! K3Cloud needs no rebuild.

mod k3;

#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, HashMap};

use daifa_plugin_sdk::prelude::*;
use daifa_plugin_sdk::{config::Json, config_schema};
use serde_json::{Value, json};

use k3::{K3, quoted};

config_schema! {
    /// Every key the adapter reads; `manifest.toml` declares the same.
    struct Config {
        server_url: String { required, description = "The supplier's K3Cloud, e.g. https://erp.supplier.example/k3cloud/" },
        acct_id: String { required },
        user_name: String { required },
        app_id: String { required },
        app_secret: String { required, secret },
        lcid: u32 { default = "2052" },
        org_num: u32 { default = "0" },
        customer: String { required },
        sale_org: String { default = "100" },
        bill_type: String { default = "XSDD01_SYS" },
        po_field: String { default = "F_SUP_CustPoNo" },
        line_field: String { default = "FEntryNote" },
        material_map: Json<BTreeMap<String, String>> { default = "{}" },
        carrier_map: Json<BTreeMap<String, String>> { default = "{}" },
        page_size: u32 { default = "2000" },
    }
}

struct Adapter;

fn client(c: &Config) -> K3 {
    K3 {
        server_url: c.server_url.clone(),
        acct_id: c.acct_id.clone(),
        user_name: c.user_name.clone(),
        app_id: c.app_id.clone(),
        app_secret: c.app_secret.clone(),
        lcid: c.lcid.to_string(),
        org_num: c.org_num.to_string(),
    }
}

/// A configured field name (it goes into filters and field lists):
/// letters, digits and `_` only.
fn field_name<'a>(key: &str, f: &'a str) -> Result<&'a str, AdapterError> {
    if f.is_empty() || !f.chars().all(|ch| ch.is_ascii_alphanumeric() || ch == '_') {
        return Err(AdapterError::misconfigured(format!("{key} `{f}` is not a field name")));
    }
    Ok(f)
}

fn text(v: Option<&Value>) -> String {
    match v {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        _ => String::new(),
    }
}

/// Poll position: the newest SAL_OUTSTOCK and SAL_SaleOrder modify dates
/// seen, and the bills already read at exactly that date (the next query
/// starts at the date itself, so a bill saved in the same instant after the
/// read is not missed, and these are not reported twice).
#[derive(Default, serde::Serialize, serde::Deserialize)]
struct Cursor {
    #[serde(default)]
    out: String,
    #[serde(default)]
    out_seen: Vec<String>,
    #[serde(default)]
    so: String,
    #[serde(default)]
    so_seen: Vec<String>,
}

/// Moves `(at, seen)` past a row read at `date` with `bill`.
fn advance(at: &mut String, seen: &mut Vec<String>, date: &str, bill: &str) {
    if date > at.as_str() {
        *at = date.to_string();
        seen.clear();
    }
    if date == at.as_str() && !seen.iter().any(|b| b == bill) {
        seen.push(bill.to_string());
    }
}

impl SupplierAdapter for Adapter {
    fn describe() -> AdapterInfo {
        adapter_info!(Capabilities::SUBMIT | Capabilities::POLL)
    }

    fn submit_order(order: PurchaseOrder) -> Result<SubmitReceipt, AdapterError> {
        let c = Config::load()?;
        let k3 = client(&c);
        let field = field_name("po_field", &c.po_field)?;
        let line_field = field_name("line_field", &c.line_field)?;
        if order.lines.is_empty() {
            return Err(AdapterError::rejected(format!("purchase order {} has no lines", order.po_number)));
        }
        // Idempotent on our PO number: a retry finds the order a first
        // attempt saved and carries on from its status.
        let found = k3.query(
            "SAL_SaleOrder",
            &["FBillNo", "FDocumentStatus"],
            &format!("{field} = {}", quoted(std::slice::from_ref(&order.po_number))),
            "FID asc",
            1,
        )?;
        let (bill_no, mut status) = match found.first() {
            Some(row) => (text(row.first()), text(row.get(1))),
            None => {
                let a = &order.ship_to;
                let address = [&a.province, &a.city, &a.district, &a.street]
                    .iter()
                    .filter(|p| !p.is_empty())
                    .map(|p| p.as_str())
                    .collect::<Vec<_>>()
                    .join("");
                let entries: Vec<Value> = order
                    .lines
                    .iter()
                    .map(|l| {
                        let material =
                            c.material_map.get(&l.supplier_sku).cloned().unwrap_or_else(|| l.supplier_sku.clone());
                        let mut e =
                            json!({ "FMaterialId": { "FNumber": material }, "FQty": l.quantity, "FTaxPrice": l.unit_cost });
                        // Our line id rides on the line: its outbound lines
                        // name their source line, and so ours.
                        e[line_field] = json!(l.line_id);
                        e
                    })
                    .collect();
                let mut model = json!({
                    "FBillTypeID": { "FNUMBER": c.bill_type },
                    "FSaleOrgId": { "FNumber": c.sale_org },
                    "FCustId": { "FNumber": c.customer },
                    "FLinkMan": a.name,
                    "FLinkPhone": a.phone,
                    "FReceiveAddress": address,
                    "FNote": format!("daifa {}", order.po_number),
                    "FSaleOrderEntry": entries,
                });
                model[field] = json!(order.po_number);
                let saved = k3.operate("Save", "SAL_SaleOrder", json!({ "IsDeleteEntry": "true", "Model": model }))?;
                let number = text(saved.pointer("/Result/Number"));
                if number.is_empty() {
                    return Err(AdapterError::transient("Save answered without a bill number"));
                }
                (number, "A".to_string())
            }
        };
        // Z draft, A created, D re-review: submit; B in approval: audit; C done.
        if matches!(status.as_str(), "Z" | "A" | "D") {
            k3.operate("Submit", "SAL_SaleOrder", json!({ "Numbers": [bill_no] }))?;
            status = "B".into();
        }
        if status == "B" {
            k3.operate("Audit", "SAL_SaleOrder", json!({ "Numbers": [bill_no] }))?;
        }
        info!("{} is the supplier's sales order {bill_no}", order.po_number);
        Ok(SubmitReceipt { supplier_ref: bill_no, lines: vec![] })
    }

    fn poll_updates(cursor: Option<String>) -> Result<PollBatch, AdapterError> {
        let c = Config::load()?;
        let k3 = client(&c);
        let field = field_name("po_field", &c.po_field)?;
        let line_field = field_name("line_field", &c.line_field)?;
        let mut pos: Cursor = cursor.as_deref().and_then(|t| serde_json::from_str(t).ok()).unwrap_or_default();
        let limit = c.page_size.clamp(1, 10_000) as usize;
        let since = |d: &str| {
            if d.is_empty() { String::new() } else { format!(" and FModifyDate >= '{}'", d.replace('\'', "")) }
        };

        // Shipments: audited outbound documents, line by line.
        let rows = k3.query(
            "SAL_OUTSTOCK",
            &[
                "FBillNo",
                "FCarriageNO",
                "FCarrierID.FNumber",
                "FSoorDerno",
                "FMaterialID.FNumber",
                "FRealQty",
                "FModifyDate",
                "FSrcEntryId",
            ],
            &format!("FDocumentStatus = 'C'{}", since(&pos.out)),
            "FModifyDate asc, FID asc",
            limit,
        )?;
        // outbound bill → (sales order, carrier, tracking, lines as (source entry, material, qty))
        type Out = (String, String, String, String, Vec<(String, String, u32)>);
        let mut outs: Vec<Out> = Vec::new();
        let (was_at, was_seen) = (pos.out.clone(), pos.out_seen.clone());
        for r in &rows {
            let bill = text(r.first());
            let date = text(r.get(6));
            if date == was_at && was_seen.contains(&bill) {
                continue;
            }
            advance(&mut pos.out, &mut pos.out_seen, &date, &bill);
            if outs.last().map(|o| &o.0) != Some(&bill) {
                let carrier = text(r.get(2));
                let carrier = c.carrier_map.get(&carrier).cloned().unwrap_or(carrier);
                outs.push((bill.clone(), text(r.get(3)), carrier, text(r.get(1)), Vec::new()));
            }
            let qty = text(r.get(5)).parse::<f64>().unwrap_or(0.0);
            if qty.fract() != 0.0 || qty <= 0.0 {
                return Err(AdapterError::rejected(format!(
                    "outbound {bill}: quantity {qty} is not a whole positive number"
                )));
            }
            if let Some(o) = outs.last_mut() {
                o.4.push((text(r.get(7)), text(r.get(4)), qty as u32));
            }
        }

        // Orders it closed or voided.
        let closed = k3.query(
            "SAL_SaleOrder",
            &["FBillNo", field, "FCancelStatus", "FCloseStatus", "FModifyDate"],
            &format!("(FCancelStatus = 'B' or FCloseStatus = 'B'){}", since(&pos.so)),
            "FModifyDate asc, FID asc",
            limit,
        )?;
        let (so_at, so_was) = (pos.so.clone(), pos.so_seen.clone());

        // Our PO numbers and line ids for the sales orders shipped.
        let mut bills: Vec<String> = outs.iter().map(|o| o.1.clone()).collect();
        bills.sort();
        bills.dedup();
        let mut po_of: HashMap<String, String> = HashMap::new();
        // Their sales-order line → our PO line.
        let mut line_of: HashMap<String, String> = HashMap::new();
        for chunk in bills.chunks(500) {
            let rows = k3.query(
                "SAL_SaleOrder",
                &["FBillNo", field, "FSaleOrderEntry_FEntryID", line_field],
                &format!("FBillNo in ({})", quoted(chunk)),
                "FID asc",
                10_000,
            )?;
            for r in rows {
                po_of.insert(text(r.first()), text(r.get(1)));
                line_of.insert(text(r.get(2)), text(r.get(3)));
            }
        }
        let mut updates = Vec::new();
        for (bill, so, carrier, tracking, raw) in outs {
            let Some(po) = po_of.get(&so).filter(|p| !p.is_empty()) else {
                warn!("outbound {bill} ships sales order {so}, which is not one of ours: skipped");
                continue;
            };
            if tracking.is_empty() {
                warn!("outbound {bill} for {po} has no tracking number (FCarriageNO) yet: skipped until it has");
                continue;
            }
            let lines = raw
                .into_iter()
                .map(|(entry, material, quantity)| {
                    // Our line id when the sales-order line carries it, else
                    // our SKU for their material (the host resolves a SKU
                    // that is on one line only).
                    let line_id = line_of.get(&entry).filter(|l| !l.is_empty()).cloned().unwrap_or_else(|| {
                        c.material_map.iter().find(|(_, m)| **m == material).map_or(material, |(s, _)| s.clone())
                    });
                    ParcelLine { line_id, quantity }
                })
                .collect();
            updates.push(StatusUpdate {
                po_number: po.clone(),
                supplier_ref: Some(so),
                at: None,
                kind: UpdateKind::Shipped(vec![Parcel { carrier, tracking_number: tracking, lines, shipped_at: None }]),
            });
        }
        let mut seen = std::collections::HashSet::new();
        for r in &closed {
            let (bill, date) = (text(r.first()), text(r.get(4)));
            if date == so_at && so_was.contains(&bill) {
                continue;
            }
            advance(&mut pos.so, &mut pos.so_seen, &date, &bill);
            let po = text(r.get(1));
            if po.is_empty() || !seen.insert(po.clone()) {
                continue;
            }
            let why = if text(r.get(2)) == "B" { "voided" } else { "closed" };
            updates.push(StatusUpdate {
                po_number: po,
                supplier_ref: Some(bill.clone()),
                at: None,
                kind: UpdateKind::Cancelled(Some(format!("the supplier {why} its sales order {bill}"))),
            });
        }
        let next = serde_json::to_string(&pos).map_err(|e| AdapterError::transient(e.to_string()))?;
        Ok(PollBatch { updates, next_cursor: Some(next) })
    }
}

export_adapter!(Adapter);
