//! Kingdee Cloud Galaxy (金蝶云星空 / K3Cloud) WebAPI: signed-header and
//! session auth, ExecuteBillQuery, Save / Submit / Audit / Push / View, and
//! the classification of its errors.

pub mod sign;
