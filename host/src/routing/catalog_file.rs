//! The catalog as operators write it: a TOML file (or the same shape as JSON
//! through the admin API) with `[[supplier]]` and `[[offer]]` tables,
//! validated on load with errors that name the table and field.

use std::collections::{HashMap, HashSet};

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use super::catalog::SupplierProfile;
use super::toml_at::{Seg, at_line};
use crate::domain::{CatalogEntry, Coverage, Sku, Supplier, SupplierId, SupplierSku};

/// A whole catalog file.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CatalogFile {
    #[serde(default, rename = "supplier")]
    pub suppliers: Vec<SupplierSpec>,
    #[serde(default, rename = "offer")]
    pub offers: Vec<OfferSpec>,
}

/// One supplier: who it is, the plugin that reaches it, where it ships.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SupplierSpec {
    pub id: String,
    #[serde(default)]
    pub name: String,
    /// The adapter plugin that talks to it.
    pub plugin: String,
    #[serde(default = "yes")]
    pub enabled: bool,
    #[serde(default)]
    pub paused: bool,
    /// Ships only to these provinces or `province/city`s ...
    #[serde(default)]
    pub regions: Option<Vec<String>>,
    /// ... or everywhere except these (give one of the two; neither = everywhere).
    #[serde(default)]
    pub except_regions: Option<Vec<String>>,
    /// Per-parcel shipping cost by province.
    #[serde(default)]
    pub shipping: HashMap<String, Decimal>,
    pub default_shipping: Decimal,
    #[serde(default)]
    pub daily_capacity: Option<u32>,
    #[serde(default)]
    pub priority: i32,
    #[serde(default = "one")]
    pub preference: Decimal,
    /// The supplier's number in the ERP (defaults to `id`).
    #[serde(default)]
    pub erp_number: Option<String>,
    /// What it invoices in, ISO 4217 (default CNY).
    #[serde(default = "cny")]
    pub currency: String,
    /// The purchasing organisation buying from it (default: the host's).
    #[serde(default)]
    pub purchase_org: Option<String>,
}

/// One SKU a supplier carries.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OfferSpec {
    pub supplier: String,
    pub sku: String,
    /// The supplier's own SKU (defaults to ours).
    #[serde(default)]
    pub supplier_sku: Option<String>,
    pub unit_cost: Decimal,
    #[serde(default = "cny")]
    pub currency: String,
    #[serde(default)]
    pub lead_time_days: u32,
    /// Units available; absent = unknown (treated as available).
    #[serde(default)]
    pub stock: Option<u32>,
}

fn yes() -> bool {
    true
}
fn one() -> Decimal {
    Decimal::ONE
}
fn cny() -> String {
    "CNY".to_string()
}

/// A catalog file that failed to load.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct CatalogError(pub String);

/// A failed check and where it points.
struct Bad {
    table: &'static str,
    index: usize,
    field: &'static str,
    why: String,
}

/// What a valid file becomes.
#[derive(Debug, Clone, PartialEq)]
pub struct LoadedCatalog {
    pub suppliers: Vec<(Supplier, SupplierProfile)>,
    pub entries: Vec<CatalogEntry>,
}

impl CatalogFile {
    /// Parses TOML; errors name the line and field.
    pub fn from_toml(text: &str) -> Result<CatalogFile, CatalogError> {
        toml::from_str(text).map_err(|e| CatalogError(format!("catalog: {e}")))
    }

    /// Parses and checks a TOML catalog; every error names the line and field.
    pub fn load_toml(text: &str, now: i64) -> Result<LoadedCatalog, CatalogError> {
        let file = CatalogFile::from_toml(text)?;
        file.check(now).map_err(|b| {
            let path = [Seg::Key(b.table), Seg::Index(b.index), Seg::Key(b.field)];
            CatalogError(format!("catalog: {}{}", at_line(text, &path), b.why))
        })
    }

    /// Checks references and values; errors name the table index and field.
    pub fn validate(self, now: i64) -> Result<LoadedCatalog, CatalogError> {
        self.check(now).map_err(|b| CatalogError(b.why))
    }

    fn check(self, now: i64) -> Result<LoadedCatalog, Bad> {
        let sup = |i: usize, field: &'static str, why: String| Bad { table: "supplier", index: i, field, why };
        let off = |i: usize, field: &'static str, why: String| Bad { table: "offer", index: i, field, why };
        let mut ids = HashSet::new();
        let mut suppliers = Vec::with_capacity(self.suppliers.len());
        for (i, s) in self.suppliers.into_iter().enumerate() {
            let at = format!("supplier[{i}] `{}`", s.id);
            if s.id.trim().is_empty() {
                return Err(sup(i, "id", format!("supplier[{i}]: id is empty")));
            }
            if !ids.insert(s.id.clone()) {
                return Err(sup(i, "id", format!("{at}: id appears twice")));
            }
            if s.plugin.trim().is_empty() {
                return Err(sup(i, "plugin", format!("{at}: plugin is empty")));
            }
            if s.default_shipping < Decimal::ZERO {
                return Err(sup(i, "default_shipping", format!("{at}: default_shipping must not be negative")));
            }
            if let Some((p, c)) = s.shipping.iter().find(|(_, c)| **c < Decimal::ZERO) {
                return Err(sup(i, "shipping", format!("{at}: shipping.{p} = {c} must not be negative")));
            }
            if s.currency.len() != 3 || !s.currency.bytes().all(|b| b.is_ascii_uppercase()) {
                return Err(sup(i, "currency", format!("{at}: currency `{}` is not an ISO 4217 code", s.currency)));
            }
            if s.preference <= Decimal::ZERO {
                return Err(sup(i, "preference", format!("{at}: preference must be above 0")));
            }
            let coverage = match (s.regions, s.except_regions) {
                (Some(_), Some(_)) => {
                    return Err(sup(i, "except_regions", format!("{at}: give regions or except_regions, not both")));
                }
                (Some(r), None) if r.is_empty() => {
                    return Err(sup(i, "regions", format!("{at}: regions is empty (the supplier would ship nowhere)")));
                }
                (Some(r), None) => Coverage::Only(r),
                (None, e) => Coverage::Except(e.unwrap_or_default()),
            };
            let id = SupplierId(s.id);
            let erp_number = s.erp_number.unwrap_or_else(|| id.0.clone());
            suppliers.push((
                Supplier {
                    id: id.clone(),
                    name: if s.name.is_empty() { id.0.clone() } else { s.name },
                    plugin: s.plugin,
                    enabled: s.enabled,
                    daily_capacity: s.daily_capacity,
                },
                SupplierProfile {
                    id,
                    enabled: s.enabled,
                    paused: s.paused,
                    circuit_open: false,
                    coverage,
                    shipping: s.shipping,
                    default_shipping: s.default_shipping,
                    daily_capacity: s.daily_capacity,
                    used_today: 0,
                    priority: s.priority,
                    preference: s.preference,
                    erp: crate::routing::catalog::SupplierErp {
                        number: erp_number,
                        currency: s.currency,
                        purchase_org: s.purchase_org,
                    },
                },
            ));
        }
        let mut seen = HashSet::new();
        let mut entries = Vec::with_capacity(self.offers.len());
        for (i, o) in self.offers.into_iter().enumerate() {
            let at = format!("offer[{i}] ({} / {})", o.supplier, o.sku);
            let Some((_, profile)) = suppliers.iter().find(|(s, _)| s.id.0 == o.supplier) else {
                return Err(off(i, "supplier", format!("{at}: supplier `{}` is not defined", o.supplier)));
            };
            if o.sku.trim().is_empty() {
                return Err(off(i, "sku", format!("offer[{i}]: sku is empty")));
            }
            if o.unit_cost < Decimal::ZERO {
                return Err(off(i, "unit_cost", format!("{at}: unit_cost {} must not be negative", o.unit_cost)));
            }
            if !seen.insert((o.supplier.clone(), o.sku.clone())) {
                return Err(off(i, "sku", format!("{at}: this supplier already offers this SKU")));
            }
            entries.push(CatalogEntry {
                supplier: SupplierId(o.supplier),
                supplier_sku: SupplierSku(o.supplier_sku.unwrap_or_else(|| o.sku.clone())),
                sku: Sku(o.sku),
                unit_cost: o.unit_cost,
                currency: o.currency,
                lead_time_days: o.lead_time_days,
                stock: o.stock,
                stock_confirmed_at: o.stock.map(|_| now),
                coverage: profile.coverage.clone(),
            });
        }
        Ok(LoadedCatalog { suppliers, entries })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OK: &str = r#"
[[supplier]]
id = "S1"
plugin = "rest-json"
regions = ["广东省", "浙江省/杭州市"]
default_shipping = "8"
shipping = { "广东省" = "5" }

[[offer]]
supplier = "S1"
sku = "A"
unit_cost = "10.50"
stock = 3
"#;

    #[test]
    fn loads_and_validates() {
        let c = CatalogFile::from_toml(OK).unwrap().validate(7).unwrap();
        assert_eq!(c.suppliers[0].1.coverage, Coverage::Only(vec!["广东省".into(), "浙江省/杭州市".into()]));
        assert_eq!(c.entries[0].supplier_sku.0, "A");
        assert_eq!(c.entries[0].stock_confirmed_at, Some(7));
    }

    #[test]
    fn errors_name_the_place() {
        let e = CatalogFile::from_toml(&OK.replace("unit_cost", "unit_cots")).unwrap_err();
        assert!(e.0.contains("unit_cots") && e.0.contains("line"), "{e}");
        let e = CatalogFile::from_toml(&OK.replace("supplier = \"S1\"", "supplier = \"S9\""))
            .unwrap()
            .validate(0)
            .unwrap_err();
        assert!(e.0.contains("offer[0]") && e.0.contains("S9"), "{e}");
        let e = CatalogFile::from_toml(&OK.replace("regions = [\"广东省\", \"浙江省/杭州市\"]", "regions = []"))
            .unwrap()
            .validate(0)
            .unwrap_err();
        assert!(e.0.contains("supplier[0] `S1`: regions is empty"), "{e}");
        let e =
            CatalogFile::from_toml(&format!("{OK}\n[[offer]]\nsupplier = \"S1\"\nsku = \"A\"\nunit_cost = \"1\"\n"))
                .unwrap()
                .validate(0)
                .unwrap_err();
        assert!(e.0.contains("offer[1]") && e.0.contains("already"), "{e}");
        let e = CatalogFile::load_toml(&OK.replace("unit_cost = \"10.50\"", "unit_cost = \"-2\""), 0).unwrap_err();
        assert!(e.0.contains("line 12, offer[0] (S1 / A): unit_cost -2 must not be negative"), "{e}");
    }
}
