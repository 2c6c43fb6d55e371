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
    if let Some(doc) = find_by_marker(client, "PUR_PurchaseOrder", &s.marker_field, po_number).await? {
        return Ok(doc);
    }
    let model = json!({
        "FBillTypeID": { "FNUMBER": s.bill_type },
        "FSupplierId": { "FNumber": supplier },
        "FPurchaseOrgId": { "FNumber": s.purchase_org },
        (s.marker_field.as_str()): po_number,
        "FPOOrderFinance": { "FSettleCurrId": { "FNumber": s.currency }, "FIsIncludedTax": true },
        "FPOOrderEntry": lines.iter().map(|l| json!({
            "FMaterialId": { "FNumber": l.material },
            "FQty": l.quantity.to_string().parse::<f64>().unwrap_or(0.0),
            "FTaxPrice": l.unit_price.to_string().parse::<f64>().unwrap_or(0.0),
            "FEntryTaxRate": l.tax_rate.to_string().parse::<f64>().unwrap_or(0.0),
            "FEntryNote": l.note,
        })).collect::<Vec<_>>(),
    });
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
    let rows = client
        .execute_bill_query(&BillQuery {
            form_id: form.into(),
            field_keys: "FID,FBillNo".into(),
            filter_string: format!("{field} = '{}'", value.replace('\'', "''")),
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

/// How shipments are written back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "mode", deny_unknown_fields)]
pub enum WriteBack {
    /// Push SAL_SaleOrder → SAL_OUTSTOCK, then set carrier and tracking
    /// number on the outbound document (optionally submit and audit).
    OutStock { carrier_field: String, tracking_field: String, submit: bool, audit: bool },
    /// Update fields on the sales order itself.
    FieldUpdate { carrier_field: String, tracking_field: String },
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

/// Writes one shipment back to the sales order `sale_bill_no` (FID `sale_fid`).
pub async fn write_back_shipment(
    client: &KingdeeClient,
    how: &WriteBack,
    sale_fid: i64,
    sale_bill_no: &str,
    carrier: &str,
    tracking: &str,
) -> Result<ErpDoc, KingdeeError> {
    match how {
        WriteBack::OutStock { carrier_field, tracking_field, submit, audit } => {
            if let Some(doc) = find_by_marker(client, "SAL_OUTSTOCK", tracking_field, tracking).await? {
                return Ok(doc);
            }
            let pushed = client
                .push(
                    "SAL_SaleOrder",
                    json!({ "Numbers": [sale_bill_no], "TargetFormId": "SAL_OUTSTOCK", "IsEnableDefaultRule": "true", "IsDraftWhenSaveFail": "true" }),
                )
                .await?;
            let e = pushed.first().ok_or_else(|| KingdeeError::Protocol("Push returned no document".into()))?;
            let id = e.id.as_i64().unwrap_or(0);
            let number = e.number.clone().unwrap_or_default();
            let model = json!({ "FID": id, (carrier_field.as_str()): { "FNumber": carrier }, (tracking_field.as_str()): tracking });
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
