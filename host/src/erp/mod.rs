//! ERP clients. Kingdee K3Cloud first.
//!
//! Owns: talking to ERPs (auth, queries, documents). May call: `domain`.

pub mod kingdee;
pub mod time;
