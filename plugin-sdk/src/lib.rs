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
//!
//! Helpers on top: typed settings ([`config_schema!`]), JSON values with
//! expiry in kv ([`kv::set_json_for`]), query strings ([`http::Request::query`]),
//! retries within a call ([`http::send_with_retry`]), OAuth2 client
//! credentials ([`oauth2`]) and webhook signatures ([`webhook`]).
//!
//! # Testing natively
//!
//! Natively (plain `cargo test`, no `--target`) there is no host, and
//! [`export_adapter!`] exports nothing, so the adapter crate links and its
//! `#[cfg(test)]` unit tests call its functions directly (a `cdylib` crate
//! needs no `rlib` for that; adding `rlib` turns off LTO for the component).
//! Host calls go to a [`testing::MockHost`] (feature `testing`; without it
//! they panic saying so):
//!
//! ```toml
//! [dev-dependencies]
//! daifa-plugin-sdk = { version = "0.1", features = ["testing"] }
//! ```
//!
//! ```ignore
//! use daifa_plugin_sdk::testing::{MockHost, Reply};
//!
//! #[test]
//! fn submit_sends_the_idempotency_key() {
//!     let host = MockHost::install(); // fresh for this test (thread-local)
//!     host.set_config("base_url", "https://api.example.com");
//!     host.expect(http::Method::Post, "https://api.example.com/orders",
//!                 Reply::json(201, &serde_json::json!({ "id": "S-1" })));
//!     let receipt = Acme::submit_order(order()).unwrap();
//!     assert_eq!(receipt.supplier_ref, "S-1");
//!     assert_eq!(host.last_request().header("Idempotency-Key"), Some("key-1"));
//!     host.assert_http_done();
//! }
//! ```

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
        // So tests can `assert_eq!` on receipts, updates and errors.
        additional_derives: [PartialEq],
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
mod host;
pub mod http;
pub mod kv;
pub mod log;
pub mod mapping;
pub mod oauth2;
#[cfg(all(not(target_family = "wasm"), any(test, feature = "testing")))]
pub mod testing;
pub mod webhook;

/// The API version this SDK builds plugins against.
pub const API_VERSION: &str = "0.1.0";

/// Everything a plugin usually needs, in one `use`.
pub mod prelude {
    pub use crate::{
        AdapterError, AdapterInfo, Address, CallbackRequest, CallbackResult, CancelOutcome, Capabilities, ErpRef,
        LineResult, LineStatus, OrderLine, Parcel, ParcelLine, PollBatch, PurchaseOrder, RetryHint, StatusUpdate,
        StockLevel, SubmitReceipt, SupplierAdapter, UpdateKind,
    };
    pub use crate::{
        adapter_info, clock, config, config_schema, debug, error, export_adapter, http, info, kv, oauth2, warn, webhook,
    };
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
///
/// Only wasm builds get the export; natively it expands to a check that the
/// type implements [`SupplierAdapter`], so the adapter crate links into
/// native unit tests (see "Testing natively").
#[macro_export]
macro_rules! export_adapter {
    ($ty:ident) => {
        #[cfg(target_family = "wasm")]
        $crate::bindings::__export_supplier_adapter!($ty with_types_in $crate::bindings);
        #[cfg(not(target_family = "wasm"))]
        const _: fn() -> $crate::AdapterInfo = <$ty as $crate::SupplierAdapter>::describe;
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
