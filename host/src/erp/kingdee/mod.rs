//! Kingdee Cloud Galaxy (金蝶云星空 / K3Cloud) WebAPI: signed-header and
//! session auth, ExecuteBillQuery, Save / Submit / Audit / Push / View, and
//! the classification of its errors.

pub mod client;
pub mod documents;
pub mod protocol;
pub mod purchase_amend;
mod purchase_push;
pub mod sign;
pub mod write_back;

pub use client::{AuthMode, BillQuery, KingdeeClient, KingdeeConfig};
pub use protocol::KingdeeError;
pub use sign::AppCredentials;
