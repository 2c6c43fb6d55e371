//! # daifa plugin SDK
//!
//! Write a daifa supplier adapter — the piece that talks to one supplier's
//! system — as a WebAssembly component. Implement [`SupplierAdapter`] (only
//! `describe` and `submit_order` are required), call [`export_adapter!`], and
//! build for `wasm32-wasip2`:
//!
//! ```no_run
//! use daifa_plugin_sdk::prelude::*;
//!
//! struct Acme;
//!
//! impl SupplierAdapter for Acme {
//!     fn describe() -> AdapterInfo {
//!         adapter_info!(Capabilities::SUBMIT | Capabilities::POLL)
//!     }
//!
//!     fn submit_order(order: PurchaseOrder) -> Result<SubmitReceipt, AdapterError> {
//!         let base = config::require("base_url")?;
//!         let body = serde_json::json!({
//!             "ref": order.po_number,
//!             "items": order.lines.iter()
//!                 .map(|l| serde_json::json!({ "sku": l.supplier_sku, "qty": l.quantity }))
//!                 .collect::<Vec<_>>(),
//!         });
//!         let resp = http::Request::post(format!("{base}/orders"))
//!             .header("Idempotency-Key", &order.idempotency_key)
//!             .json(&body)?
//!             .send()?
//!             .error_for_status()?;
//!         #[derive(serde::Deserialize)]
//!         struct Created { id: String }
//!         let created: Created = resp.json()?;
//!         info!("submitted {} as {}", order.po_number, created.id);
//!         Ok(SubmitReceipt::all_accepted(created.id, &order))
//!     }
//!
//!     fn poll_updates(cursor: Option<String>) -> Result<PollBatch, AdapterError> {
//!         Ok(PollBatch { updates: vec![], next_cursor: cursor })
//!     }
//! }
//!
//! export_adapter!(Acme);
//! # fn main() {}
//! ```
//!
//! The plugin may reach the outside world only through the host: HTTP to the
//! hosts its manifest allows ([`http`]), its configuration ([`config`]), a
//! small private key-value store ([`kv`]), the clock ([`clock`]) and the
//! host's log ([`info!`] and friends). There is no filesystem, environment or
//! socket access.

#![warn(missing_docs)]

// The generated bindings name this crate by its absolute path, which must
// also resolve from inside the crate.
extern crate self as daifa_plugin_sdk;

/// Raw bindings generated from `wit/v0.1.0` (the `daifa:supplier@0.1.0` world).
#[allow(missing_docs)]
pub mod bindings {
    wit_bindgen::generate!({
        path: "../wit/v0.1.0",
        world: "supplier-adapter",
        pub_export_macro: true,
        export_macro_name: "__export_supplier_adapter",
        default_bindings_module: "::daifa_plugin_sdk::bindings",
        runtime_path: "::daifa_plugin_sdk::__wit_bindgen::rt",
        bitflags_path: "::daifa_plugin_sdk::__wit_bindgen::rt::bitflags",
    });
}

#[doc(hidden)]
pub use wit_bindgen as __wit_bindgen;

pub use bindings::daifa::supplier::types::{
    AdapterError, AdapterInfo, Address, CallbackRequest, CallbackResult, CancelOutcome, Capabilities, ErpRef,
    LineResult, LineStatus, OrderLine, Parcel, ParcelLine, PollBatch, PurchaseOrder, RetryHint, StatusUpdate,
    StockLevel, SubmitReceipt, UpdateKind,
};

pub mod clock;
pub mod config;
mod errors;
pub mod http;
pub mod kv;
pub mod log;
pub mod mapping;

/// The API version this SDK builds plugins against.
pub const API_VERSION: &str = "0.1.0";

/// Everything a plugin usually needs, in one `use`.
pub mod prelude {
    pub use crate::{
        AdapterError, AdapterInfo, Address, CallbackRequest, CallbackResult, CancelOutcome, Capabilities, ErpRef,
        LineResult, LineStatus, OrderLine, Parcel, ParcelLine, PollBatch, PurchaseOrder, RetryHint, StatusUpdate,
        StockLevel, SubmitReceipt, SupplierAdapter, UpdateKind,
    };
    pub use crate::{adapter_info, clock, config, debug, error, export_adapter, http, info, kv, warn};
}

/// A supplier adapter. Implement `describe` and `submit_order`; the other
/// operations answer "not supported" until you override them.
pub trait SupplierAdapter {
    /// Name, version and capabilities. [`adapter_info!`] fills in the crate's.
    fn describe() -> AdapterInfo;

    /// Sends one purchase order to the supplier. Must be safe to retry with
    /// the same `idempotency_key`.
    fn submit_order(order: PurchaseOrder) -> Result<SubmitReceipt, AdapterError>;

    /// Fetches status updates (acceptance, shipments, cancellations) since
    /// `cursor`.
    fn poll_updates(cursor: Option<String>) -> Result<PollBatch, AdapterError> {
        let _ = cursor;
        Err(AdapterError::unsupported("poll-updates"))
    }

    /// Asks the supplier to cancel an order.
    fn cancel_order(
        po_number: String,
        supplier_ref: Option<String>,
        reason: String,
    ) -> Result<CancelOutcome, AdapterError> {
        let _ = (po_number, supplier_ref, reason);
        Err(AdapterError::unsupported("cancel-order"))
    }

    /// Stock of the given supplier SKUs.
    fn query_stock(supplier_skus: Vec<String>) -> Result<Vec<StockLevel>, AdapterError> {
        let _ = supplier_skus;
        Err(AdapterError::unsupported("query-stock"))
    }

    /// Interprets a webhook the supplier pushed.
    fn handle_callback(req: CallbackRequest) -> Result<CallbackResult, AdapterError> {
        let _ = req;
        Err(AdapterError::unsupported("handle-callback"))
    }
}

impl<T: SupplierAdapter> bindings::exports::daifa::supplier::adapter::Guest for T {
    fn describe() -> AdapterInfo {
        T::describe()
    }
    fn submit_order(order: PurchaseOrder) -> Result<SubmitReceipt, AdapterError> {
        T::submit_order(order)
    }
    fn poll_updates(cursor: Option<String>) -> Result<PollBatch, AdapterError> {
        T::poll_updates(cursor)
    }
    fn cancel_order(
        po_number: String,
        supplier_ref: Option<String>,
        reason: String,
    ) -> Result<CancelOutcome, AdapterError> {
        T::cancel_order(po_number, supplier_ref, reason)
    }
    fn query_stock(supplier_skus: Vec<String>) -> Result<Vec<StockLevel>, AdapterError> {
        T::query_stock(supplier_skus)
    }
    fn handle_callback(req: CallbackRequest) -> Result<CallbackResult, AdapterError> {
        T::handle_callback(req)
    }
}

/// Exports a [`SupplierAdapter`] implementation as the component's adapter.
#[macro_export]
macro_rules! export_adapter {
    ($ty:ident) => {
        $crate::bindings::__export_supplier_adapter!($ty with_types_in $crate::bindings);
    };
}

/// `AdapterInfo` with the crate's name and version and the given capabilities.
#[macro_export]
macro_rules! adapter_info {
    ($caps:expr) => {
        $crate::AdapterInfo {
            name: env!("CARGO_PKG_NAME").to_string(),
            version: env!("CARGO_PKG_VERSION").to_string(),
            capabilities: $caps,
        }
    };
}

impl SubmitReceipt {
    /// A receipt accepting every line of `order`.
    pub fn all_accepted(supplier_ref: impl Into<String>, order: &PurchaseOrder) -> SubmitReceipt {
        SubmitReceipt {
            supplier_ref: supplier_ref.into(),
            lines: order
                .lines
                .iter()
                .map(|l| LineResult { line_id: l.line_id.clone(), status: LineStatus::Accepted })
                .collect(),
        }
    }
}
