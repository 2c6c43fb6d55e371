//! The domain: orders, suppliers, purchase orders, shipments, and the order
//! state machine. Pure types and rules, no I/O.
//!
//! Owns: what an order is and which state changes are legal. May call:
//! nothing (every other module calls it).

pub mod access;
pub mod ids;
pub mod order;
pub mod purchase;
pub mod revision;
pub mod supplier;
pub mod values;

pub use ids::*;
pub use order::*;
pub use revision::{is_orderable, revision_cmp};
pub use supplier::*;
