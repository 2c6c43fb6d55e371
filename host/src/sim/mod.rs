//! Simulators of the external systems daifa talks to, speaking their real
//! wire protocols on 127.0.0.1. Used by tests and `daifa demo`; never a mock
//! of daifa's own code.
//!
//! Owns: the simulated systems' state. May call: nothing in daifa.

pub mod catalog;
pub mod edi_supplier;
pub mod kingdee;
pub mod orders;
pub mod rest_supplier;
