//! Identifier newtypes: an ERP bill id can never be passed where a SKU is
//! expected.

use std::fmt;

use serde::{Deserialize, Serialize};

macro_rules! string_id {
    ($($(#[$doc:meta])* $name:ident;)*) => {$(
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub String);

        impl $name {
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl From<&str> for $name {
            fn from(s: &str) -> Self {
                $name(s.to_string())
            }
        }

        impl From<String> for $name {
            fn from(s: String) -> Self {
                $name(s)
            }
        }
    )*};
}

string_id! {
    /// Where an order came from: `kingdee`, `api`, `csv`, ...
    Source;
    /// The source system's internal id of the order (Kingdee `FID`); unique per source.
    ExternalId;
    /// The bill number people see (Kingdee `FBillNo`).
    BillNo;
    /// The source's id of one order line (Kingdee `FSaleOrderEntry_FEntryID`).
    ErpLineId;
    /// Our SKU (Kingdee material number).
    Sku;
    /// A supplier's own SKU.
    SupplierSku;
    /// A supplier (also the Kingdee supplier number).
    SupplierId;
    /// Our purchase-order number.
    PoNumber;
}

/// daifa's own id of an order (database key).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct OrderId(pub i64);

impl fmt::Display for OrderId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}
