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

/// How a purchase order is tied to its sales order in Kingdee.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum PoLink {
    /// Push from the sales order (SAL_SaleOrder → PUR_PurchaseOrder), so
    /// every PO line is linked to the line it buys and the ERP refuses to
    /// buy a line twice. POs of orders that did not come from Kingdee, and
    /// every PO when the ERP has no conversion rule, are saved instead.
    #[default]
    Push,
    /// Save a free-standing document found again by its marker.
    Save,
}

/// How purchase orders are written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PurchaseOrderSettings {
    /// Push from the sales order (default) or Save unlinked.
    pub link: PoLink,
    /// The conversion rule's id for Push; empty: the installation's
    /// default rule for SAL_SaleOrder → PUR_PurchaseOrder.
    pub push_rule: String,
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
            link: PoLink::default(),
            push_rule: String::new(),
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
    /// The sales-order line it buys (`FSaleOrderEntry_FEntryID`), when the
    /// order came from Kingdee: what a Push links it to.
    pub sale_entry: Option<i64>,
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
    /// The Kingdee sales order it buys for (`FBillNo`), when the order came
    /// from Kingdee.
    pub sale_bill_no: Option<String>,
    pub supplier: String,
    pub purchase_org: String,
    pub currency: String,
    pub lines: Vec<PoLine>,
}

/// Makes (or finds) the PUR_PurchaseOrder of many POs in a handful of
/// requests: one marker query for all; then, with `link = "push"`, one
/// Push, one query and one BatchSave per round for POs of Kingdee orders
/// (see `purchase_push`), and one BatchSave for the rest; one Submit and
/// one Audit for all numbers. On a real K3Cloud every request costs
/// 100–300 ms, so this is what keeps up with a busy day. A step that fails
/// as a whole falls back to one request per PO for what it covered, so a
/// bad PO costs only itself. Results come in input order.
pub async fn ensure_purchase_orders(
    client: &KingdeeClient,
    s: &PurchaseOrderSettings,
    docs: &[PoDoc],
) -> Vec<Result<ErpDoc, KingdeeError>> {
    let pushable = |d: &PoDoc| {
        s.link == PoLink::Push && d.sale_bill_no.is_some() && d.lines.iter().all(|l| l.sale_entry.is_some())
    };
    if !docs.iter().any(pushable) {
        return save_purchase_orders(client, s, docs).await;
    }
    // A PO already made (pushed or saved, under any setting) is found by
    // its marker: never push a second one.
    let found = match find_markers(client, s, docs).await {
        Ok(f) => f,
        Err(e) => return docs.iter().map(|_| Err(e.clone())).collect(),
    };
    let mut out: Vec<Option<Result<ErpDoc, KingdeeError>>> = docs.iter().map(|_| None).collect();
    let mut to_push: Vec<usize> = Vec::new();
    let mut to_save: Vec<usize> = Vec::new();
    for (i, d) in docs.iter().enumerate() {
        if found.contains_key(&d.po_number) || !pushable(d) {
            to_save.push(i);
        } else {
            to_push.push(i);
        }
    }
    let refs: Vec<&PoDoc> = to_push.iter().map(|&i| &docs[i]).collect();
    let pushed = super::purchase_push::push_purchase_orders(client, s, &refs).await;
    for (i, r) in to_push.into_iter().zip(pushed) {
        match r {
            Some(r) => out[i] = Some(r),
            // No conversion rule in this ERP: saved unlinked.
            None => to_save.push(i),
        }
    }
    to_save.sort_unstable();
    let rest: Vec<PoDoc> = to_save.iter().map(|&i| docs[i].clone()).collect();
    for (i, r) in to_save.into_iter().zip(save_purchase_orders(client, s, &rest).await) {
        out[i] = Some(r);
    }
    out.into_iter()
        .map(|r| r.unwrap_or_else(|| Err(KingdeeError::Protocol("purchase order left unmade".into()))))
        .collect()
}

/// Saves unlinked POs found again by their marker.
async fn save_purchase_orders(
    client: &KingdeeClient,
    s: &PurchaseOrderSettings,
    docs: &[PoDoc],
) -> Vec<Result<ErpDoc, KingdeeError>> {
    if docs.is_empty() {
        return Vec::new();
    }
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
        if on {
            operate_all(client, op, "PUR_PurchaseOrder", &numbers, &mut failed).await;
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
    let numbers: Vec<&str> = docs.iter().map(|d| d.po_number.as_str()).collect();
    let keys = format!("FID,FBillNo,{}", s.marker_field);
    for r in rows_where_in(client, "PUR_PurchaseOrder", &keys, &s.marker_field, &numbers).await? {
        let (Some(id), Some(number), Some(po)) =
            (r.first().and_then(Value::as_i64), r.get(1).and_then(Value::as_str), r.get(2).and_then(Value::as_str))
        else {
            continue;
        };
        out.entry(po.to_string()).or_insert(ErpDoc { id, number: number.to_string(), created: false });
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

/// Runs `op` (Submit, Audit) on every number not yet in `failed` in one
/// request; if that is refused, one number at a time, so only the numbers
/// that fail on their own land in `failed` with their own error.
pub(crate) async fn operate_all(
    client: &KingdeeClient,
    op: &str,
    form: &str,
    numbers: &[String],
    failed: &mut std::collections::HashMap<String, KingdeeError>,
) {
    let pending: Vec<String> = numbers.iter().filter(|n| !failed.contains_key(*n)).cloned().collect();
    if pending.is_empty() {
        return;
    }
    match tolerate_done(client.operate(op, form, &pending).await) {
        Ok(()) => return,
        // Trying each alone would only meet the same outage N times.
        Err(e) if e.is_transient() || matches!(e, KingdeeError::SessionLostDuringWrite(_)) => {
            failed.extend(pending.into_iter().map(|n| (n, e.clone())));
            return;
        }
        Err(_) => {}
    }
    for n in pending {
        if let Err(e) = tolerate_done(client.operate(op, form, std::slice::from_ref(&n)).await) {
            failed.insert(n, e);
        }
    }
}

/// A retried Submit/Audit finding the work already done is success.
pub(super) fn tolerate_done(r: Result<(), KingdeeError>) -> Result<(), KingdeeError> {
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

pub(super) async fn find_where(
    client: &KingdeeClient,
    form: &str,
    filter: String,
) -> Result<Option<ErpDoc>, KingdeeError> {
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

/// Rows of `form` (columns `field_keys`, by FID) whose text `field` is
/// one of `values`: one query per 100 values, each value quoted as
/// Kingdee's filter text needs. The batch lookups all go through here.
pub(crate) async fn rows_where_in(
    client: &KingdeeClient,
    form: &str,
    field_keys: &str,
    field: &str,
    values: &[&str],
) -> Result<Vec<Vec<Value>>, KingdeeError> {
    let mut out = Vec::new();
    for chunk in values.chunks(100) {
        let list: Vec<String> = chunk.iter().map(|v| format!("'{}'", v.replace('\'', "''"))).collect();
        let rows = client
            .execute_bill_query(&BillQuery {
                form_id: form.into(),
                field_keys: field_keys.into(),
                filter_string: format!("{field} IN ({})", list.join(",")),
                order_string: "FID ASC".into(),
                ..Default::default()
            })
            .await?;
        out.extend(rows);
    }
    Ok(out)
}

/// Why a BatchSave left model `k` unsaved: its own errors (by DIndex),
/// with the field the first one names.
pub(crate) fn batch_item_error(errors: &[super::protocol::KdError], k: usize) -> KingdeeError {
    let mine: Vec<_> = errors.iter().filter(|e| e.d_index == Some(k as i64)).collect();
    let why: Vec<String> = mine.iter().filter_map(|e| e.message.clone()).collect();
    let field = mine.iter().find_map(|e| e.field_name.clone());
    let message = if why.is_empty() { "BatchSave left it unsaved".into() } else { why.join("; ") };
    KingdeeError::Data { code: 11, field, message }
}

/// A quantity as a query returns it (a JSON number, or text).
pub(crate) fn dec_of(v: &Value) -> Option<Decimal> {
    let text = match v {
        Value::Number(n) => n.to_string(),
        Value::String(s) => s.trim().to_string(),
        _ => return None,
    };
    text.parse::<Decimal>().ok().or_else(|| Decimal::from_scientific(&text).ok())
}

/// Kingdee takes quantities as JSON numbers; an exact decimal's text is a
/// valid JSON number, so no binary float is involved.
pub(crate) fn decimal_number(d: Decimal) -> Value {
    serde_json::from_str(&d.normalize().to_string()).unwrap_or(Value::Null)
}

pub use super::write_back::{ShipmentDoc, ShippedLine, WriteBack, write_back_shipment, write_back_shipments};
