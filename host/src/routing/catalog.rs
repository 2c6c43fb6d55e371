//! What each supplier carries, where it ships and at what cost, indexed for
//! routing: SKU → offers.

use std::collections::HashMap;

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::domain::{CatalogEntry, Coverage, SupplierId};

/// A supplier as routing sees it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SupplierProfile {
    pub id: SupplierId,
    pub enabled: bool,
    pub paused: bool,
    /// Set while the supplier's dispatch circuit is open; not stored.
    #[serde(default, skip_serializing)]
    pub circuit_open: bool,
    pub coverage: Coverage,
    /// Shipping cost per parcel by province; `default_shipping` elsewhere.
    pub shipping: HashMap<String, Decimal>,
    pub default_shipping: Decimal,
    /// Orders per day; `None` = unlimited.
    pub daily_capacity: Option<u32>,
    /// Orders already given today (counted by the router; not stored).
    #[serde(default, skip_serializing)]
    pub used_today: u32,
    /// Routing priority (higher wins ties).
    pub priority: i32,
    /// Operator's multiplier on cost (1 = neutral, 0.9 = prefer).
    pub preference: Decimal,
    /// Who the supplier is in the ERP and what it is paid in.
    #[serde(default)]
    pub erp: SupplierErp,
}

/// A supplier's ERP identity: the supplier number purchase orders name, the
/// currency it invoices in (ISO 4217, also sent to it), and the purchasing
/// organisation that buys from it (`None` = the host's default).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct SupplierErp {
    /// Empty = the supplier's id.
    pub number: String,
    pub currency: String,
    pub purchase_org: Option<String>,
}

impl Default for SupplierErp {
    fn default() -> Self {
        SupplierErp { number: String::new(), currency: "CNY".into(), purchase_org: None }
    }
}

impl SupplierProfile {
    /// Does it ship to this place?
    pub fn serves(&self, province: &str, city: &str) -> bool {
        let hit = |list: &[String]| {
            list.iter().any(|area| match area.split_once('/') {
                Some((p, c)) => p == province && c == city,
                None => area == province,
            })
        };
        match &self.coverage {
            Coverage::Only(list) => hit(list),
            Coverage::Except(list) => !hit(list),
        }
    }

    /// Shipping cost of one parcel to `province`.
    pub fn shipping_to(&self, province: &str) -> Decimal {
        self.shipping.get(province).copied().unwrap_or(self.default_shipping)
    }

    pub fn has_capacity(&self) -> bool {
        self.daily_capacity.is_none_or(|c| self.used_today < c)
    }
}

/// Suppliers and their offers.
#[derive(Debug, Clone, Default)]
pub struct Catalog {
    pub suppliers: Vec<SupplierProfile>,
    by_id: HashMap<SupplierId, usize>,
    /// SKU → offers (supplier index, entry).
    offers: HashMap<String, Vec<(usize, CatalogEntry)>>,
    /// The moment the catalog describes (unix ms), against which stock
    /// figures age; the router sets it to the routing time. `None`: stock
    /// figures never age.
    pub as_of: Option<i64>,
}

impl Catalog {
    /// Builds the index; an entry for an unknown supplier is dropped.
    pub fn new(suppliers: Vec<SupplierProfile>, entries: Vec<CatalogEntry>) -> Catalog {
        let by_id: HashMap<SupplierId, usize> = suppliers.iter().enumerate().map(|(i, s)| (s.id.clone(), i)).collect();
        let mut offers: HashMap<String, Vec<(usize, CatalogEntry)>> = HashMap::new();
        for e in entries {
            if let Some(&i) = by_id.get(&e.supplier) {
                let list = offers.entry(e.sku.0.clone()).or_default();
                // One offer per (supplier, SKU): a later entry replaces an
                // earlier one (e.g. a fresher stock figure).
                match list.iter_mut().find(|(s, _)| *s == i) {
                    Some(slot) => slot.1 = e,
                    None => list.push((i, e)),
                }
            }
        }
        Catalog { suppliers, by_id, offers, as_of: None }
    }

    /// Offers for a SKU.
    pub fn offers(&self, sku: &str) -> &[(usize, CatalogEntry)] {
        self.offers.get(sku).map(Vec::as_slice).unwrap_or(&[])
    }

    pub fn supplier(&self, id: &SupplierId) -> Option<&SupplierProfile> {
        self.by_id.get(id).map(|&i| &self.suppliers[i])
    }

    /// Mutable access, for the router's capacity and circuit bookkeeping.
    pub fn supplier_mut(&mut self, id: &SupplierId) -> Option<&mut SupplierProfile> {
        self.by_id.get(id).map(|&i| &mut self.suppliers[i])
    }

    /// Every entry, for listing.
    pub fn entries(&self) -> impl Iterator<Item = &CatalogEntry> {
        self.offers.values().flat_map(|v| v.iter().map(|(_, e)| e))
    }

    /// Sets a fresh stock figure; false if the supplier does not offer the SKU.
    pub fn set_stock(&mut self, supplier: &SupplierId, sku: &str, stock: u32, at: i64) -> bool {
        let Some(&i) = self.by_id.get(supplier) else { return false };
        match self.offers.get_mut(sku).and_then(|v| v.iter_mut().find(|(s, _)| *s == i)) {
            Some((_, e)) => {
                e.stock = Some(stock);
                e.stock_confirmed_at = Some(at);
                true
            }
            None => false,
        }
    }

    /// The stock figure routing may trust: `None` (unknown) when it is older
    /// than `max_age_ms` at `as_of`.
    pub fn trusted_stock(&self, e: &CatalogEntry, max_age_ms: Option<i64>) -> Option<u32> {
        match (max_age_ms, e.stock_confirmed_at, self.as_of) {
            (Some(max), Some(at), Some(now)) if now - at > max => None,
            _ => e.stock,
        }
    }

    /// Is any supplier offering this SKU?
    pub fn knows(&self, sku: &str) -> bool {
        self.offers.contains_key(sku)
    }
}
