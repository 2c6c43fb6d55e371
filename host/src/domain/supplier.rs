//! Suppliers, what they carry, purchase orders to them and their shipments.

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use super::ids::{ErpLineId, OrderId, PoNumber, Sku, SupplierId, SupplierSku};

/// A supplier and how daifa reaches it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Supplier {
    pub id: SupplierId,
    pub name: String,
    /// The adapter plugin that talks to it.
    pub plugin: String,
    pub enabled: bool,
    /// Orders per day it can take.
    pub daily_capacity: Option<u32>,
}

/// Where a supplier ships.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Coverage {
    /// Only these provinces (and, if listed, cities as `province/city`).
    Only(Vec<String>),
    /// Everywhere except these.
    Except(Vec<String>),
}

/// One SKU a supplier carries.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CatalogEntry {
    pub supplier: SupplierId,
    pub sku: Sku,
    pub supplier_sku: SupplierSku,
    pub unit_cost: Decimal,
    pub currency: String,
    pub lead_time_days: u32,
    pub stock: Option<u32>,
    /// Unix ms when the stock figure was last confirmed by the supplier.
    pub stock_confirmed_at: Option<i64>,
    pub coverage: Coverage,
}

/// One purchase order: one supplier's share of one sales order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PurchaseOrder {
    pub po_number: PoNumber,
    pub order: OrderId,
    pub supplier: SupplierId,
    pub lines: Vec<PurchaseLine>,
    /// The ERP's PUR_PurchaseOrder bill number, once created.
    pub erp_bill_no: Option<String>,
    pub supplier_ref: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PurchaseLine {
    pub erp_line: ErpLineId,
    pub sku: Sku,
    pub supplier_sku: SupplierSku,
    pub quantity: Decimal,
    pub unit_cost: Decimal,
}

/// A parcel the supplier shipped.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Shipment {
    pub po_number: PoNumber,
    pub carrier: String,
    pub tracking_numbers: Vec<String>,
    pub lines: Vec<(ErpLineId, Decimal)>,
    /// Unix ms.
    pub shipped_at: Option<i64>,
}
