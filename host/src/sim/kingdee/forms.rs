//! What the simulated K3Cloud knows about its forms: the header and entry
//! fields of SAL_SaleOrder, PUR_PurchaseOrder and SAL_OUTSTOCK as a stock
//! installation has them, plus the custom fields an installation added.
//! Queries and filters naming anything else are refused with MsgCode 9, as
//! the real server does; Save drops Model keys the form does not have.

use serde_json::{Value, json};

/// One form's metadata.
pub struct FormMeta {
    pub id: &'static str,
    pub name: &'static str,
    /// Bill-number prefix for new documents.
    pub prefix: &'static str,
    /// The entry (单据体) key, e.g. `FSaleOrderEntry`.
    pub entry: &'static str,
    pub header: &'static [&'static str],
    pub entry_fields: &'static [&'static str],
}

const SALE_HEADER: &[&str] = &[
    "FID",
    "FBillNo",
    "FDate",
    "FBillTypeID",
    "FBusinessType",
    "FSaleOrgId",
    "FSaleDeptId",
    "FSalerId",
    "FCustId",
    "FReceiveId",
    "FSettleId",
    "FChargeId",
    "FReceiveAddress",
    "FReceiveContact",
    "FLinkMan",
    "FLinkPhone",
    "FNetOrderBillNo",
    "FNote",
    "FDocumentStatus",
    "FCancelStatus",
    "FCloseStatus",
    "FCreateDate",
    "FModifyDate",
    "FApproveDate",
    "FCreatorId",
    "FModifierId",
    "FApproverId",
    "FSaleOrderFinance",
];
const SALE_ENTRY: &[&str] = &[
    "FEntryID",
    "FMaterialId",
    "FUnitID",
    "FQty",
    "FPrice",
    "FTaxPrice",
    "FEntryTaxRate",
    "FDeliveryDate",
    "FEntryNote",
    "FStockOutQty",
    "FMrpCloseStatus",
];
const PO_HEADER: &[&str] = &[
    "FID",
    "FBillNo",
    "FDate",
    "FBillTypeID",
    "FBusinessType",
    "FSupplierId",
    "FPurchaseOrgId",
    "FPurchaseDeptId",
    "FPurchaserId",
    "FProviderId",
    "FSettleId",
    "FChargeId",
    "FPOOrderFinance",
    "FNote",
    "FDocumentStatus",
    "FCancelStatus",
    "FCloseStatus",
    "FCreateDate",
    "FModifyDate",
    "FApproveDate",
    "FCreatorId",
    "FApproverId",
];
const PO_ENTRY: &[&str] = &[
    "FEntryID",
    "FMaterialId",
    "FUnitId",
    "FQty",
    "FPrice",
    "FTaxPrice",
    "FEntryTaxRate",
    "FDeliveryDate",
    "FRequireOrgId",
    "FReceiveOrgId",
    "FEntrySettleOrgId",
    "FEntryNote",
    // Set by Push from a sales order (直运 / MTO): the source and its line.
    "FSrcBillTypeId",
    "FSrcBillNo",
    "FSaleOrderNo",
    "FSaleOrderEntryId",
    "FPOOrderEntry_Link",
];
const OUT_HEADER: &[&str] = &[
    "FID",
    "FBillNo",
    "FDate",
    "FBillTypeID",
    "FSaleOrgId",
    "FStockOrgId",
    "FCustomerID",
    "FCarrierID",
    "FCarriageNO",
    "FReceiverID",
    "FReceiveAddress",
    "FLinkMan",
    "FLinkPhone",
    "FNote",
    "FDocumentStatus",
    "FCancelStatus",
    "FCreateDate",
    "FModifyDate",
    "FApproveDate",
    "FOutStockTrace",
];
const OUT_ENTRY: &[&str] = &[
    "FEntryID",
    "FMaterialID",
    "FUnitID",
    "FRealQty",
    "FMustQty",
    "FStockID",
    "FSrcBillNo",
    "FSrcType",
    "FSoorDerno",
    "FSrcEntryId",
    "FEntity_Link",
    "FEntryNote",
];

/// The forms the simulator serves.
pub const FORMS: &[FormMeta] = &[
    FormMeta {
        id: "SAL_SaleOrder",
        name: "销售订单",
        prefix: "XSDD",
        entry: "FSaleOrderEntry",
        header: SALE_HEADER,
        entry_fields: SALE_ENTRY,
    },
    FormMeta {
        id: "PUR_PurchaseOrder",
        name: "采购订单",
        prefix: "CGDD",
        entry: "FPOOrderEntry",
        header: PO_HEADER,
        entry_fields: PO_ENTRY,
    },
    FormMeta {
        id: "SAL_OUTSTOCK",
        name: "销售出库单",
        prefix: "XSCKD",
        entry: "FEntity",
        header: OUT_HEADER,
        entry_fields: OUT_ENTRY,
    },
];

/// A form by id (case-insensitive, as the server matches it).
pub fn form(id: &str) -> Option<&'static FormMeta> {
    FORMS.iter().find(|f| f.id.eq_ignore_ascii_case(id))
}

/// Where a field key lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FieldPlace {
    /// A header field; the path below it (`FSupplierId.FNumber` → `FNumber`).
    Header(String, Option<String>),
    /// An entry field, e.g. `FSaleOrderEntry_FEntryID` or `FQty`.
    Entry(String, Option<String>),
}

/// Properties a base-data reference has (`FSupplierId.FNumber`).
const REF_PROPERTIES: &[&str] =
    &["FNumber", "FName", "FID", "FCODE", "FShortName", "FUserID", "FUserName", "FMasterId"];

/// Whether `field.sub` names something: a property of a base-data
/// reference (`…Id`/`…ID` fields), anything below a sub-entity
/// (`…Finance`, `FOutStockTrace`) or a custom field (whose type the
/// simulator does not know).
fn sub_ok(field: &str, sub: &str, custom: bool) -> bool {
    if custom || field.ends_with("Finance") || field == "FOutStockTrace" || field == "FEntity_Link" {
        return true;
    }
    let is_ref =
        (field.ends_with("Id") || field.ends_with("ID")) && !matches!(field, "FID" | "FEntryID" | "FSrcEntryId");
    is_ref && !sub.contains('.') && REF_PROPERTIES.iter().any(|p| p.eq_ignore_ascii_case(sub))
}

impl FormMeta {
    /// Resolves a FieldKey against the form and its custom fields; `None` =
    /// the form has no such field (or the field has no such property).
    pub fn resolve(&self, key: &str, custom: &[String]) -> Option<FieldPlace> {
        let place = self.resolve_field(key, custom)?;
        let (FieldPlace::Header(name, sub) | FieldPlace::Entry(name, sub)) = &place;
        match sub {
            Some(s) if !sub_ok(name, s, custom.iter().any(|c| c == name)) => None,
            _ => Some(place),
        }
    }

    fn resolve_field(&self, key: &str, custom: &[String]) -> Option<FieldPlace> {
        let (head, sub) = match key.split_once('.') {
            Some((h, s)) => (h, Some(s.to_string())),
            None => (key, None),
        };
        let entry_prefix = format!("{}_", self.entry);
        if head.len() > entry_prefix.len() && head[..entry_prefix.len()].eq_ignore_ascii_case(&entry_prefix) {
            let rest = &head[entry_prefix.len()..];
            return self
                .entry_fields
                .iter()
                .find(|f| f.eq_ignore_ascii_case(rest))
                .map(|f| FieldPlace::Entry(f.to_string(), sub));
        }
        if let Some(f) = self.header.iter().find(|f| f.eq_ignore_ascii_case(head)) {
            return Some(FieldPlace::Header(f.to_string(), sub));
        }
        if let Some(f) = custom.iter().find(|f| f.eq_ignore_ascii_case(head)) {
            return Some(FieldPlace::Header(f.clone(), sub));
        }
        // FEntryID alone names the header-level FID's sibling on no form.
        if head.eq_ignore_ascii_case("FEntryID") {
            return None;
        }
        self.entry_fields.iter().find(|f| f.eq_ignore_ascii_case(head)).map(|f| FieldPlace::Entry(f.to_string(), sub))
    }

    /// QueryBusinessInfo's answer: the form's entities and fields.
    pub fn business_info(&self, custom: &[String]) -> Value {
        let fields = |keys: Vec<String>| keys.into_iter().map(|k| json!({ "Key": k, "Name": k })).collect::<Vec<_>>();
        let mut header: Vec<String> = self.header.iter().map(|s| s.to_string()).collect();
        header.extend(custom.iter().cloned());
        json!({
            "Id": self.id,
            "Name": [{ "Key": 2052, "Value": self.name }],
            "Entrys": [
                { "Key": "FBillHead", "EntityType": 0, "Fields": fields(header) },
                { "Key": self.entry, "EntityType": 1, "Fields": fields(self.entry_fields.iter().map(|s| s.to_string()).collect()) },
            ],
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_standard_entry_and_custom_fields() {
        let so = form("sal_saleorder").unwrap();
        let custom = vec!["F_DAIFA_DropShip".to_string()];
        assert_eq!(
            so.resolve("fbilltypeid.FNumber", &custom),
            Some(FieldPlace::Header("FBillTypeID".into(), Some("FNumber".into())))
        );
        assert_eq!(so.resolve("FSaleOrderEntry_FEntryID", &custom), Some(FieldPlace::Entry("FEntryID".into(), None)));
        assert_eq!(so.resolve("FQty", &custom), Some(FieldPlace::Entry("FQty".into(), None)));
        assert_eq!(so.resolve("F_DAIFA_DropShip", &custom), Some(FieldPlace::Header("F_DAIFA_DropShip".into(), None)));
        assert_eq!(so.resolve("F_DAIFA_DropShip", &[]), None, "custom fields exist only where installed");
        assert_eq!(so.resolve("FNoSuchField", &custom), None);
        assert_eq!(so.resolve("FCustId.FNoSuchProp", &custom), None, "a reference has only its properties");
        assert_eq!(so.resolve("FBillNo.Whatever", &custom), None, "a text field has none");
        assert!(so.resolve("FCustId.fnumber", &custom).is_some());
        let po = form("PUR_PurchaseOrder").unwrap();
        assert_eq!(po.resolve("FCarriageNO", &[]), None);
    }
}
