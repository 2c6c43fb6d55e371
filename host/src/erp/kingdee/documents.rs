//! Documents daifa writes into Kingdee: purchase orders per supplier
//! allocation (PUR_PurchaseOrder), and shipment write-back (SAL_OUTSTOCK by
//! Push from the sales order, or a configured field update). Every write is
//! idempotent: look for our marker first, so a retry after a crash or a lost
//! session never creates a second document.

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::client::{BillQuery, KingdeeClient};
use super::protocol::KingdeeError;

/// A document in Kingdee.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErpDoc {
    pub id: i64,
    pub number: String,
    /// False when the document already existed (a retry found it).
    pub created: bool,
}

/// How purchase orders are written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PurchaseOrderSettings {
    pub bill_type: String,
    pub purchase_org: String,
    pub currency: String,
    /// Header field holding our PO number (the idempotency marker).
    pub marker_field: String,
    pub submit: bool,
    pub audit: bool,
    /// Kingdee currency numbers by ISO 4217 code (a supplier's currency is
    /// ISO; `currency` above is the default number).
    pub currency_numbers: std::collections::BTreeMap<String, String>,
}

impl PurchaseOrderSettings {
    /// The Kingdee currency number for an ISO code.
    pub fn currency_number(&self, iso: &str) -> Option<String> {
        self.currency_numbers.get(iso).cloned()
    }
}

impl Default for PurchaseOrderSettings {
    fn default() -> Self {
        PurchaseOrderSettings {
            bill_type: "CGDD01_SYS".into(),
            purchase_org: "100".into(),
            currency: "PRE001".into(),
            marker_field: "F_DAIFA_PoNo".into(),
            submit: true,
            audit: true,
            // Kingdee's preset currencies (PRE001 = CNY ... PRE007 = USD).
            currency_numbers: [
                ("CNY", "PRE001"),
                ("HKD", "PRE002"),
                ("EUR", "PRE003"),
                ("JPY", "PRE004"),
                ("TWD", "PRE005"),
                ("GBP", "PRE006"),
                ("USD", "PRE007"),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        }
    }
}

/// One purchase-order line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoLine {
    pub material: String,
    pub quantity: Decimal,
    pub unit_price: Decimal,
    pub tax_rate: Decimal,
    pub note: String,
}

/// Creates the purchase order for `po_number` unless it already exists.
pub async fn ensure_purchase_order(
    client: &KingdeeClient,
    s: &PurchaseOrderSettings,
    po_number: &str,
    supplier: &str,
    lines: &[PoLine],
) -> Result<ErpDoc, KingdeeError> {
    // Found: a crash or lost answer came after Save. Submit and Audit again
    // (done steps answer "already", which counts as success), so the
    // document ends audited whichever step was interrupted.
    if let Some(doc) = find_by_marker(client, "PUR_PurchaseOrder", &s.marker_field, po_number).await? {
        return finish(client, s, doc).await;
    }
    let model = po_model(s, po_number, supplier, &s.purchase_org, &s.currency, lines);
    let data = json!({ "NeedUpDateFields": [], "NeedReturnFields": [], "IsDeleteEntry": "true", "Model": model });
    let saved = match client.save("PUR_PurchaseOrder", data.clone()).await {
        Ok(e) => e,
        Err(KingdeeError::SessionLostDuringWrite(_)) => {
            // Did the Save land before the session went? Look, don't guess.
            if let Some(doc) = find_by_marker(client, "PUR_PurchaseOrder", &s.marker_field, po_number).await? {
                return finish(client, s, doc).await;
            }
            client.save("PUR_PurchaseOrder", data).await?
        }
        Err(e) => return Err(e),
    };
    let e = saved.first().ok_or_else(|| KingdeeError::Protocol("Save returned no entity".into()))?;
    let doc = ErpDoc { id: e.id.as_i64().unwrap_or(0), number: e.number.clone().unwrap_or_default(), created: true };
    finish(client, s, doc).await
}

fn po_model(
    s: &PurchaseOrderSettings,
    po_number: &str,
    supplier: &str,
    purchase_org: &str,
    currency: &str,
    lines: &[PoLine],
) -> Value {
    json!({
        "FBillTypeID": { "FNUMBER": s.bill_type },
        "FSupplierId": { "FNumber": supplier },
        "FPurchaseOrgId": { "FNumber": purchase_org },
        (s.marker_field.as_str()): po_number,
        "FPOOrderFinance": { "FSettleCurrId": { "FNumber": currency }, "FIsIncludedTax": true },
        "FPOOrderEntry": lines.iter().map(|l| json!({
            "FMaterialId": { "FNumber": l.material },
            "FQty": decimal_number(l.quantity),
            "FTaxPrice": decimal_number(l.unit_price),
            "FEntryTaxRate": decimal_number(l.tax_rate),
            "FEntryNote": l.note,
        })).collect::<Vec<_>>(),
    })
}

/// One purchase order for [`ensure_purchase_orders`]: our PO number, the
/// supplier's ERP number, and the purchasing organisation and Kingdee
/// currency number it is bought in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoDoc {
    pub po_number: String,
    pub supplier: String,
    pub purchase_org: String,
    pub currency: String,
    pub lines: Vec<PoLine>,
}

/// [`ensure_purchase_order`] for many POs in a handful of requests: one
/// marker query for all, one BatchSave for the missing, one Submit and one
/// Audit for all numbers. On a real K3Cloud every request costs 100–300 ms,
/// so this is what keeps up with a busy day. A step that fails as a whole
/// falls back to one request per PO for what it covered, so a bad PO costs
/// only itself. Results come in input order.
pub async fn ensure_purchase_orders(
    client: &KingdeeClient,
    s: &PurchaseOrderSettings,
    docs: &[PoDoc],
) -> Vec<Result<ErpDoc, KingdeeError>> {
    let mut found: std::collections::HashMap<String, ErpDoc> = match find_markers(client, s, docs).await {
        Ok(f) => f,
        Err(_) => return one_by_one(client, s, docs).await,
    };
    let missing: Vec<&PoDoc> = docs.iter().filter(|d| !found.contains_key(&d.po_number)).collect();
    if !missing.is_empty() {
        let models: Vec<Value> = missing
            .iter()
            .map(|d| po_model(s, &d.po_number, &d.supplier, &d.purchase_org, &d.currency, &d.lines))
            .collect();
        let data = json!({ "NeedUpDateFields": [], "NeedReturnFields": [], "IsDeleteEntry": "true", "Model": models });
        match client.batch_save("PUR_PurchaseOrder", data).await {
            Ok((saved, _)) => {
                for e in saved {
                    let Some(d) = e.d_index.and_then(|i| usize::try_from(i).ok()).and_then(|i| missing.get(i)) else {
                        continue;
                    };
                    let doc =
                        ErpDoc { id: e.id.as_i64().unwrap_or(0), number: e.number.unwrap_or_default(), created: true };
                    found.insert(d.po_number.clone(), doc);
                }
            }
            // The answer was lost: what landed is found by its marker.
            Err(_) => {
                if let Ok(more) = find_markers(client, s, docs).await {
                    found.extend(more);
                }
            }
        }
    }
    let numbers: Vec<String> = found.values().map(|d| d.number.clone()).collect();
    let mut failed: std::collections::HashMap<String, KingdeeError> = Default::default();
    for (op, on) in [("Submit", s.submit), ("Audit", s.audit)] {
        let pending: Vec<String> = numbers.iter().filter(|n| !failed.contains_key(*n)).cloned().collect();
        if !on || pending.is_empty() {
            continue;
        }
        if tolerate_done(client.operate(op, "PUR_PurchaseOrder", &pending).await).is_err() {
            for n in pending {
                if let Err(e) = tolerate_done(client.operate(op, "PUR_PurchaseOrder", std::slice::from_ref(&n)).await) {
                    failed.insert(n, e);
                }
            }
        }
    }
    let mut out = Vec::with_capacity(docs.len());
    for d in docs {
        out.push(match found.remove(&d.po_number) {
            Some(doc) => match failed.remove(&doc.number) {
                Some(e) => Err(e),
                None => Ok(doc),
            },
            // Not saved in the batch: alone, for its own error (or success).
            None => ensure_one(client, s, d).await,
        });
    }
    out
}

async fn one_by_one(
    client: &KingdeeClient,
    s: &PurchaseOrderSettings,
    docs: &[PoDoc],
) -> Vec<Result<ErpDoc, KingdeeError>> {
    let mut out = Vec::with_capacity(docs.len());
    for d in docs {
        out.push(ensure_one(client, s, d).await);
    }
    out
}

async fn ensure_one(client: &KingdeeClient, s: &PurchaseOrderSettings, d: &PoDoc) -> Result<ErpDoc, KingdeeError> {
    let mut one = s.clone();
    one.purchase_org = d.purchase_org.clone();
    one.currency = d.currency.clone();
    ensure_purchase_order(client, &one, &d.po_number, &d.supplier, &d.lines).await
}

/// The POs among `docs` that already have a PUR_PurchaseOrder, by marker.
async fn find_markers(
    client: &KingdeeClient,
    s: &PurchaseOrderSettings,
    docs: &[PoDoc],
) -> Result<std::collections::HashMap<String, ErpDoc>, KingdeeError> {
    let mut out = std::collections::HashMap::new();
    for chunk in docs.chunks(200) {
        let list: Vec<String> = chunk.iter().map(|d| format!("'{}'", d.po_number.replace('\'', "''"))).collect();
        let rows = client
            .execute_bill_query(&BillQuery {
                form_id: "PUR_PurchaseOrder".into(),
                field_keys: format!("FID,FBillNo,{}", s.marker_field),
                filter_string: format!("{} IN ({})", s.marker_field, list.join(",")),
                order_string: "FID ASC".into(),
                ..Default::default()
            })
            .await?;
        for r in rows {
            let (Some(id), Some(number), Some(po)) =
                (r.first().and_then(Value::as_i64), r.get(1).and_then(Value::as_str), r.get(2).and_then(Value::as_str))
            else {
                continue;
            };
            out.entry(po.to_string()).or_insert(ErpDoc { id, number: number.to_string(), created: false });
        }
    }
    Ok(out)
}

async fn finish(client: &KingdeeClient, s: &PurchaseOrderSettings, doc: ErpDoc) -> Result<ErpDoc, KingdeeError> {
    if s.submit {
        tolerate_done(client.operate("Submit", "PUR_PurchaseOrder", std::slice::from_ref(&doc.number)).await)?;
    }
    if s.audit {
        tolerate_done(client.operate("Audit", "PUR_PurchaseOrder", std::slice::from_ref(&doc.number)).await)?;
    }
    Ok(doc)
}

/// A retried Submit/Audit finding the work already done is success.
fn tolerate_done(r: Result<(), KingdeeError>) -> Result<(), KingdeeError> {
    match r {
        Err(KingdeeError::Data { code: 11, message, .. }) if message.contains('已') => Ok(()),
        other => other,
    }
}

async fn find_by_marker(
    client: &KingdeeClient,
    form: &str,
    field: &str,
    value: &str,
) -> Result<Option<ErpDoc>, KingdeeError> {
    find_where(client, form, format!("{field} = '{}'", value.replace('\'', "''"))).await
}

async fn find_where(client: &KingdeeClient, form: &str, filter: String) -> Result<Option<ErpDoc>, KingdeeError> {
    let rows = client
        .execute_bill_query(&BillQuery {
            form_id: form.into(),
            field_keys: "FID,FBillNo".into(),
            filter_string: filter,
            order_string: "FID ASC".into(),
            limit: 2,
            ..Default::default()
        })
        .await?;
    Ok(rows.first().map(|r| ErpDoc {
        id: r.first().and_then(Value::as_i64).unwrap_or(0),
        number: r.get(1).and_then(Value::as_str).unwrap_or_default().to_string(),
        created: false,
    }))
}

/// An outbound document pushed from `sale_bill_no` for exactly `lines`
/// that has no tracking number yet.
async fn unfinished_outstock(
    client: &KingdeeClient,
    tracking_field: &str,
    sale_bill_no: &str,
    lines: &[ShippedLine],
) -> Result<Option<(i64, String)>, KingdeeError> {
    let rows = client
        .execute_bill_query(&BillQuery {
            form_id: "SAL_OUTSTOCK".into(),
            field_keys: "FID,FBillNo,FSrcEntryId".into(),
            filter_string: format!(
                "FSoorDerno = '{}' AND ({tracking_field} IS NULL OR {tracking_field} = '')",
                sale_bill_no.replace('\'', "''")
            ),
            order_string: "FID ASC".into(),
            ..Default::default()
        })
        .await?;
    let mut docs: std::collections::BTreeMap<i64, (String, Vec<i64>)> = Default::default();
    for r in &rows {
        let (Some(fid), Some(no)) = (r.first().and_then(Value::as_i64), r.get(1).and_then(Value::as_str)) else {
            continue;
        };
        let d = docs.entry(fid).or_insert_with(|| (no.to_string(), Vec::new()));
        d.1.extend(r.get(2).and_then(Value::as_i64));
    }
    let mut want: Vec<i64> = lines.iter().map(|l| l.entry_id).collect();
    want.sort_unstable();
    Ok(docs.into_iter().find_map(|(fid, (no, mut src))| {
        src.sort_unstable();
        (lines.is_empty() || src == want).then_some((fid, no))
    }))
}

/// Kingdee takes quantities as JSON numbers; an exact decimal's text is a
/// valid JSON number, so no binary float is involved.
fn decimal_number(d: Decimal) -> Value {
    serde_json::from_str(&d.normalize().to_string()).unwrap_or(Value::Null)
}

/// How shipments are written back. In the config every key is optional:
/// `[kingdee.write_back]` alone means the SAL_OUTSTOCK defaults;
/// `mode = "field_update"` needs the two sales-order fields.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "mode", try_from = "WriteBackToml")]
pub enum WriteBack {
    /// Push SAL_SaleOrder → SAL_OUTSTOCK, then set carrier and tracking
    /// number on the outbound document (optionally submit and audit).
    OutStock { carrier_field: String, tracking_field: String, submit: bool, audit: bool },
    /// Update fields on the sales order itself.
    FieldUpdate { carrier_field: String, tracking_field: String },
}

/// `[kingdee.write_back]` as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WriteBackToml {
    mode: Option<String>,
    carrier_field: Option<String>,
    tracking_field: Option<String>,
    submit: Option<bool>,
    audit: Option<bool>,
}

impl TryFrom<WriteBackToml> for WriteBack {
    type Error = String;
    fn try_from(t: WriteBackToml) -> Result<WriteBack, String> {
        match t.mode.as_deref().unwrap_or("out_stock") {
            "out_stock" => {
                let WriteBack::OutStock { carrier_field, tracking_field, submit, audit } = WriteBack::default() else {
                    return Err("the default write-back is SAL_OUTSTOCK".into());
                };
                Ok(WriteBack::OutStock {
                    carrier_field: t.carrier_field.unwrap_or(carrier_field),
                    tracking_field: t.tracking_field.unwrap_or(tracking_field),
                    submit: t.submit.unwrap_or(submit),
                    audit: t.audit.unwrap_or(audit),
                })
            }
            "field_update" => match (t.carrier_field, t.tracking_field, t.submit.or(t.audit)) {
                (_, _, Some(_)) => Err("mode = \"field_update\" takes no submit or audit".into()),
                (Some(carrier_field), Some(tracking_field), None) => {
                    Ok(WriteBack::FieldUpdate { carrier_field, tracking_field })
                }
                _ => Err("mode = \"field_update\" needs carrier_field and tracking_field (sales-order fields)".into()),
            },
            other => Err(format!("write_back mode `{other}`: use \"out_stock\" or \"field_update\"")),
        }
    }
}

impl Default for WriteBack {
    fn default() -> Self {
        WriteBack::OutStock {
            carrier_field: "FCarrierID".into(),
            tracking_field: "FCarriageNO".into(),
            submit: true,
            audit: true,
        }
    }
}

/// One shipped sales-order line: its entry id (`FSaleOrderEntry_FEntryID`)
/// and the quantity in this shipment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShippedLine {
    pub entry_id: i64,
    pub quantity: Decimal,
}

/// Writes one shipment back to the sales order `sale_bill_no` (FID
/// `sale_fid`): only the `lines` it carries, so the parts of a split order
/// each ship their own lines once (an empty list means the whole order).
pub async fn write_back_shipment(
    client: &KingdeeClient,
    how: &WriteBack,
    sale_fid: i64,
    sale_bill_no: &str,
    lines: &[ShippedLine],
    carrier: &str,
    tracking: &str,
) -> Result<ErpDoc, KingdeeError> {
    match how {
        WriteBack::OutStock { carrier_field, tracking_field, submit, audit } => {
            // The tracking number identifies the shipment only together with
            // its sales order: two carriers (or two suppliers' carriers) may
            // issue the same number, and the other order's document is not
            // this shipment's.
            let filter = format!(
                "{tracking_field} = '{}' AND FSoorDerno = '{}'",
                tracking.replace('\'', "''"),
                sale_bill_no.replace('\'', "''")
            );
            if let Some(doc) = find_where(client, "SAL_OUTSTOCK", filter).await? {
                return Ok(doc);
            }
            // A push whose follow-up Save was lost (crash, lost answer) left
            // an outbound document without a tracking number: finish that
            // one, since pushed-quantity control refuses a second push.
            let (id, number) = match unfinished_outstock(client, tracking_field, sale_bill_no, lines).await? {
                Some(found) => found,
                None => {
                    let mut push = json!({ "TargetFormId": "SAL_OUTSTOCK", "IsEnableDefaultRule": "true" });
                    if lines.is_empty() {
                        push["Numbers"] = json!([sale_bill_no]);
                    } else {
                        let ids: Vec<String> = lines.iter().map(|l| l.entry_id.to_string()).collect();
                        push["EntryIds"] = json!(ids.join(","));
                    }
                    let pushed = client.push("SAL_SaleOrder", push).await?;
                    let e = pushed.first().ok_or_else(|| KingdeeError::Protocol("Push returned no document".into()))?;
                    (e.id.as_i64().unwrap_or(0), e.number.clone().unwrap_or_default())
                }
            };
            // The push proposes what is left of each line; ship what shipped.
            let rows = client
                .execute_bill_query(&BillQuery {
                    form_id: "SAL_OUTSTOCK".into(),
                    field_keys: "FEntity_FEntryID,FSrcEntryId,FRealQty".into(),
                    filter_string: format!("FID = {id}"),
                    order_string: "FEntity_FEntryID ASC".into(),
                    ..Default::default()
                })
                .await?;
            let entries: Vec<Value> = rows
                .iter()
                .filter_map(|r| {
                    let src = r.get(1).and_then(Value::as_i64)?;
                    let shipped = lines.iter().find(|l| l.entry_id == src)?;
                    Some(json!({ "FEntryID": r.first()?, "FRealQty": decimal_number(shipped.quantity) }))
                })
                .collect();
            let mut model = json!({ "FID": id, (carrier_field.as_str()): { "FNumber": carrier }, (tracking_field.as_str()): tracking });
            if !entries.is_empty() {
                model["FEntity"] = Value::Array(entries);
            }
            client.save("SAL_OUTSTOCK", json!({ "IsDeleteEntry": "false", "Model": model })).await?;
            if *submit {
                tolerate_done(client.operate("Submit", "SAL_OUTSTOCK", std::slice::from_ref(&number)).await)?;
            }
            if *audit {
                tolerate_done(client.operate("Audit", "SAL_OUTSTOCK", std::slice::from_ref(&number)).await)?;
            }
            Ok(ErpDoc { id, number, created: true })
        }
        WriteBack::FieldUpdate { carrier_field, tracking_field } => {
            let model =
                json!({ "FID": sale_fid, (carrier_field.as_str()): carrier, (tracking_field.as_str()): tracking });
            client
                .save("SAL_SaleOrder", json!({ "NeedUpDateFields": [carrier_field, tracking_field], "IsDeleteEntry": "false", "Model": model }))
                .await?;
            Ok(ErpDoc { id: sale_fid, number: sale_bill_no.to_string(), created: true })
        }
    }
}
