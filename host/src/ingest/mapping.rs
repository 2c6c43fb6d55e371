//! Which SAL_SaleOrder fields hold what: two presets (a stock K3Cloud, and
//! one with daifa's custom `F_DAIFA_*` fields) plus per-field overrides from
//! the config, validated before a single order is read.
//!
//! Columns are looked up by FieldKey, never by position in the mapping, so
//! an unmapped (empty) field cannot shift every later column; an empty
//! *required* field, a FieldKey used twice or an override for a field that
//! does not exist stops ingestion with an error naming the field.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};

/// Which preset the mapping starts from.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum MappingPreset {
    /// A deployment that added daifa's custom fields (`F_DAIFA_DropShip`,
    /// `F_DAIFA_Province`, …): the receiver's address comes split.
    #[default]
    CustomFields,
    /// A stock K3Cloud: the receiver from `FLinkMan`/`FLinkPhone`, one
    /// `FReceiveAddress` parsed into province/city/district/street, and the
    /// drop-ship marker in the bill type.
    Standard,
}

/// The bill type a stock K3Cloud uses for drop-ship (直运) sales orders in
/// the standard preset; override `dropship_filter` if yours differs.
pub const STANDARD_DROPSHIP_BILL_TYPE: &str = "XSDD10_SYS";

/// The resolved mapping. Empty = not mapped (optional fields only).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SaleOrderMapping {
    pub form_id: String,
    pub fid: String,
    pub bill_no: String,
    pub modify_date: String,
    /// Audit stamp: an order approved without a new FModifyDate is found by it.
    pub approve_date: String,
    pub document_status: String,
    /// Only documents in this status are taken (C = approved).
    pub approved_status: String,
    /// A FilterString fragment selecting drop-ship orders (empty = all).
    pub dropship_filter: String,
    pub cancel_status: String,
    pub cancelled_value: String,
    pub customer: String,
    pub platform_order_no: String,
    pub sales_org: String,
    pub platform: String,
    pub remark: String,
    pub ship_name: String,
    pub ship_phone: String,
    /// One full address, parsed into province/city/district/street (used
    /// instead of the four split fields when set).
    pub ship_address: String,
    pub ship_province: String,
    pub ship_city: String,
    pub ship_district: String,
    pub ship_street: String,
    pub ship_postcode: String,
    /// A value, not a field: the country every order ships to.
    pub country: String,
    pub entry_id: String,
    pub material: String,
    pub quantity: String,
    pub unit_price: String,
    pub tax_rate: String,
    pub unit: String,
}

/// Mapping fields whose value is a literal, not a FieldKey.
const VALUES: &[&str] = &["form_id", "approved_status", "dropship_filter", "cancelled_value", "country"];
/// FieldKeys without which no order can be read.
const REQUIRED: &[&str] =
    &["fid", "bill_no", "modify_date", "document_status", "entry_id", "material", "quantity", "unit_price"];

impl SaleOrderMapping {
    /// The preset's mapping.
    pub fn preset(p: MappingPreset) -> SaleOrderMapping {
        let custom = p == MappingPreset::CustomFields;
        let s = |a: &str, b: &str| if custom { a.to_string() } else { b.to_string() };
        SaleOrderMapping {
            form_id: "SAL_SaleOrder".into(),
            fid: "FID".into(),
            bill_no: "FBillNo".into(),
            modify_date: "FModifyDate".into(),
            approve_date: "FApproveDate".into(),
            document_status: "FDocumentStatus".into(),
            approved_status: "C".into(),
            dropship_filter: s(
                "F_DAIFA_DropShip = '1'",
                &format!("FBillTypeID.FNumber = '{STANDARD_DROPSHIP_BILL_TYPE}'"),
            ),
            cancel_status: "FCancelStatus".into(),
            cancelled_value: "B".into(),
            customer: "FCustId.FNumber".into(),
            platform_order_no: "FNetOrderBillNo".into(),
            sales_org: "FSaleOrgId.FNumber".into(),
            platform: s("F_DAIFA_Platform", ""),
            remark: "FNote".into(),
            ship_name: s("F_DAIFA_ReceiverName", "FLinkMan"),
            ship_phone: s("F_DAIFA_ReceiverPhone", "FLinkPhone"),
            ship_address: s("", "FReceiveAddress"),
            ship_province: s("F_DAIFA_Province", ""),
            ship_city: s("F_DAIFA_City", ""),
            ship_district: s("F_DAIFA_District", ""),
            ship_street: s("FReceiveAddress", ""),
            ship_postcode: s("F_DAIFA_Postcode", ""),
            country: "CN".into(),
            entry_id: "FSaleOrderEntry_FEntryID".into(),
            material: "FMaterialId.FNumber".into(),
            quantity: "FQty".into(),
            unit_price: "FTaxPrice".into(),
            tax_rate: "FEntryTaxRate".into(),
            unit: s("", "FUnitID.FNumber"),
        }
    }

    fn slot(&mut self, name: &str) -> Option<&mut String> {
        Some(match name {
            "form_id" => &mut self.form_id,
            "fid" => &mut self.fid,
            "bill_no" => &mut self.bill_no,
            "modify_date" => &mut self.modify_date,
            "approve_date" => &mut self.approve_date,
            "document_status" => &mut self.document_status,
            "approved_status" => &mut self.approved_status,
            "dropship_filter" => &mut self.dropship_filter,
            "cancel_status" => &mut self.cancel_status,
            "cancelled_value" => &mut self.cancelled_value,
            "customer" => &mut self.customer,
            "platform_order_no" => &mut self.platform_order_no,
            "sales_org" => &mut self.sales_org,
            "platform" => &mut self.platform,
            "remark" => &mut self.remark,
            "ship_name" => &mut self.ship_name,
            "ship_phone" => &mut self.ship_phone,
            "ship_address" => &mut self.ship_address,
            "ship_province" => &mut self.ship_province,
            "ship_city" => &mut self.ship_city,
            "ship_district" => &mut self.ship_district,
            "ship_street" => &mut self.ship_street,
            "ship_postcode" => &mut self.ship_postcode,
            "country" => &mut self.country,
            "entry_id" => &mut self.entry_id,
            "material" => &mut self.material,
            "quantity" => &mut self.quantity,
            "unit_price" => &mut self.unit_price,
            "tax_rate" => &mut self.tax_rate,
            "unit" => &mut self.unit,
            _ => return None,
        })
    }

    /// `(mapping field, FieldKey)` of every mapped field that reads a column.
    pub fn fields(&self) -> Vec<(&'static str, &str)> {
        [
            ("fid", &self.fid),
            ("bill_no", &self.bill_no),
            ("modify_date", &self.modify_date),
            ("approve_date", &self.approve_date),
            ("document_status", &self.document_status),
            ("cancel_status", &self.cancel_status),
            ("customer", &self.customer),
            ("platform_order_no", &self.platform_order_no),
            ("sales_org", &self.sales_org),
            ("platform", &self.platform),
            ("remark", &self.remark),
            ("ship_name", &self.ship_name),
            ("ship_phone", &self.ship_phone),
            ("ship_address", &self.ship_address),
            ("ship_province", &self.ship_province),
            ("ship_city", &self.ship_city),
            ("ship_district", &self.ship_district),
            ("ship_street", &self.ship_street),
            ("ship_postcode", &self.ship_postcode),
            ("entry_id", &self.entry_id),
            ("material", &self.material),
            ("quantity", &self.quantity),
            ("unit_price", &self.unit_price),
            ("tax_rate", &self.tax_rate),
            ("unit", &self.unit),
        ]
        .into_iter()
        .map(|(n, k)| (n, k.as_str()))
        .filter(|(_, k)| !k.trim().is_empty())
        .collect()
    }

    /// The preset with `overrides` applied, checked: every override names
    /// a mapping field, required fields are set, the address is mapped one
    /// way or the other, no FieldKey is used twice, keys look like keys.
    pub fn resolve(preset: MappingPreset, overrides: &BTreeMap<String, String>) -> Result<Self, String> {
        let mut m = SaleOrderMapping::preset(preset);
        for (name, value) in overrides {
            match m.slot(name) {
                Some(slot) => *slot = value.trim().to_string(),
                None => return Err(format!("mapping.{name} is not a mapping field")),
            }
        }
        for name in REQUIRED.iter().chain(["form_id", "approved_status"].iter()) {
            if m.slot(name).is_none_or(|v| v.is_empty()) {
                return Err(format!("mapping.{name} is empty; it is required"));
            }
        }
        if m.ship_address.is_empty() && (m.ship_province.is_empty() || m.ship_city.is_empty()) {
            return Err("mapping: set ship_address (one full address) or ship_province and ship_city".into());
        }
        if m.ship_address.is_empty() && m.ship_street.is_empty() {
            return Err("mapping.ship_street is empty; it is required unless ship_address is set".into());
        }
        let mut seen: HashMap<String, &str> = HashMap::new();
        for (name, key) in m.fields() {
            if !key.chars().all(|c| c.is_alphanumeric() || matches!(c, '_' | '.')) {
                return Err(format!("mapping.{name} = `{key}` is not a FieldKey (letters, digits, `_` and `.`)"));
            }
            if let Some(other) = seen.insert(key.to_ascii_lowercase(), name) {
                return Err(format!("mapping.{other} and mapping.{name} both read `{key}`; each field needs its own"));
            }
        }
        debug_assert!(VALUES.iter().all(|v| !m.fields().iter().any(|(n, _)| n == v)));
        Ok(m)
    }

    /// The FieldKeys list and where each mapping field's column is.
    pub fn columns(&self) -> Columns {
        let fields = self.fields();
        let keys = fields.iter().map(|(_, k)| k.to_string()).collect::<Vec<_>>();
        let index = fields.iter().enumerate().map(|(i, (n, _))| (*n, i)).collect();
        Columns { keys, index }
    }
}

/// Where each mapped field's value is in a query row.
#[derive(Debug, Clone)]
pub struct Columns {
    /// FieldKeys in the order sent.
    pub keys: Vec<String>,
    index: HashMap<&'static str, usize>,
}

impl Columns {
    /// The column of a mapping field, if mapped.
    pub fn get(&self, field: &str) -> Option<usize> {
        self.index.get(field).copied()
    }

    /// The mapping field that reads `key` (to name it in an ERP error).
    pub fn field_of(&self, key: &str) -> Option<&'static str> {
        let i = self.keys.iter().position(|k| k.eq_ignore_ascii_case(key))?;
        self.index.iter().find(|(_, c)| **c == i).map(|(n, _)| *n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn over(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect()
    }

    #[test]
    fn presets_resolve() {
        for p in [MappingPreset::CustomFields, MappingPreset::Standard] {
            let m = SaleOrderMapping::resolve(p, &BTreeMap::new()).unwrap();
            assert_eq!(m.columns().keys.len(), m.fields().len());
        }
    }

    #[test]
    fn errors_name_the_field() {
        let e = SaleOrderMapping::resolve(MappingPreset::CustomFields, &over(&[("quantity", "")])).unwrap_err();
        assert!(e.contains("mapping.quantity is empty"), "{e}");
        let e = SaleOrderMapping::resolve(MappingPreset::CustomFields, &over(&[("ship_city", "F_DAIFA_Province")]))
            .unwrap_err();
        assert!(e.contains("mapping.ship_province and mapping.ship_city"), "{e}");
        let e = SaleOrderMapping::resolve(MappingPreset::CustomFields, &over(&[("qty", "FQty")])).unwrap_err();
        assert!(e.contains("mapping.qty is not a mapping field"), "{e}");
        let e = SaleOrderMapping::resolve(MappingPreset::CustomFields, &over(&[("remark", "FNote,FQty")])).unwrap_err();
        assert!(e.contains("mapping.remark"), "{e}");
    }

    #[test]
    fn an_unmapped_optional_field_shifts_nothing() {
        let m = SaleOrderMapping::resolve(MappingPreset::CustomFields, &over(&[("ship_postcode", "")])).unwrap();
        let c = m.columns();
        assert_eq!(c.get("ship_postcode"), None);
        assert_eq!(c.keys[c.get("quantity").unwrap()], "FQty");
        assert_eq!(c.field_of("fqty"), Some("quantity"));
    }
}
