//! Generated bindings for every supported version of the `daifa:supplier` WIT
//! package, and the host-facing types (always the newest version's).
//!
//! Adding 0.2: a `v0_2` module beside `v0_1`, a variant in [`ApiVersion`] and
//! in `instance::AdapterPre`; older versions convert to the newest types at
//! the call boundary, so host logic is written once.

/// Bindings for `daifa:supplier@0.1.0` (frozen in `wit/v0.1.0`).
pub mod v0_1 {
    wasmtime::component::bindgen!({
        path: "../wit/v0.1.0",
        world: "supplier-adapter",
        imports: { default: async | trappable },
        exports: { default: async },
        additional_derives: [PartialEq, Eq],
    });
}

pub use v0_1::daifa::supplier::http::{
    HttpError, Method as HttpMethod, Request as HttpRequest, Response as HttpResponse,
};
pub use v0_1::daifa::supplier::log::Level as LogLevel;
pub use v0_1::daifa::supplier::types::*;

/// An API version this host can load.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ApiVersion {
    V0_1,
}

impl ApiVersion {
    /// Every version the host loads, oldest first.
    pub const SUPPORTED: &'static [ApiVersion] = &[ApiVersion::V0_1];

    /// The `major.minor` series; any patch of a supported series loads.
    pub fn series(self) -> (u64, u64) {
        match self {
            ApiVersion::V0_1 => (0, 1),
        }
    }

    /// Finds the supported version for a plugin's semver.
    pub fn from_semver(v: &semver::Version) -> Option<ApiVersion> {
        Self::SUPPORTED.iter().copied().find(|a| a.series() == (v.major, v.minor) && v.pre.is_empty())
    }

    /// "0.1.x" style list for error messages.
    pub fn supported_list() -> String {
        Self::SUPPORTED
            .iter()
            .map(|a| format!("daifa:supplier@{}.{}.x", a.series().0, a.series().1))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

impl std::fmt::Display for ApiVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (a, b) = self.series();
        write!(f, "{a}.{b}")
    }
}

/// Approximate size in bytes of a value crossing the boundary, for the output
/// cap. Counts payload bytes (strings, lists), which dominate.
pub trait WireSize {
    fn wire_size(&self) -> usize;
}

impl WireSize for String {
    fn wire_size(&self) -> usize {
        self.len()
    }
}
impl WireSize for u8 {
    fn wire_size(&self) -> usize {
        1
    }
}
impl WireSize for u16 {
    fn wire_size(&self) -> usize {
        2
    }
}
impl WireSize for u32 {
    fn wire_size(&self) -> usize {
        4
    }
}
impl WireSize for u64 {
    fn wire_size(&self) -> usize {
        8
    }
}
impl<T: WireSize> WireSize for Option<T> {
    fn wire_size(&self) -> usize {
        self.as_ref().map_or(1, |v| 1 + v.wire_size())
    }
}
impl<T: WireSize> WireSize for Vec<T> {
    fn wire_size(&self) -> usize {
        8 + self.iter().map(WireSize::wire_size).sum::<usize>()
    }
}
impl<A: WireSize, B: WireSize> WireSize for (A, B) {
    fn wire_size(&self) -> usize {
        self.0.wire_size() + self.1.wire_size()
    }
}
impl<T: WireSize, E: WireSize> WireSize for Result<T, E> {
    fn wire_size(&self) -> usize {
        match self {
            Ok(v) => v.wire_size(),
            Err(e) => e.wire_size(),
        }
    }
}

macro_rules! wire_size_record {
    ($($ty:ty { $($field:ident),* })*) => {$(
        impl WireSize for $ty {
            fn wire_size(&self) -> usize {
                0 $(+ self.$field.wire_size())*
            }
        }
    )*};
}

wire_size_record! {
    LineResult { line_id, status }
    SubmitReceipt { supplier_ref, lines }
    ParcelLine { line_id, quantity }
    Parcel { carrier, tracking_number, lines, shipped_at }
    StatusUpdate { po_number, supplier_ref, at, kind }
    PollBatch { updates, next_cursor }
    StockLevel { supplier_sku, available, as_of }
    CallbackResult { updates, response_status, response_headers, response_body }
    AdapterInfo { name, version }
    RetryHint { message, retry_after_ms }
}

impl WireSize for LineStatus {
    fn wire_size(&self) -> usize {
        match self {
            LineStatus::Accepted => 1,
            LineStatus::Backordered(t) => 1 + t.wire_size(),
            LineStatus::Rejected(r) => 1 + r.wire_size(),
        }
    }
}

impl WireSize for UpdateKind {
    fn wire_size(&self) -> usize {
        match self {
            UpdateKind::Lines(l) => 1 + l.wire_size(),
            UpdateKind::Shipped(p) => 1 + p.wire_size(),
            UpdateKind::Cancelled(r) => 1 + r.wire_size(),
        }
    }
}

impl WireSize for CancelOutcome {
    fn wire_size(&self) -> usize {
        match self {
            CancelOutcome::Cancelled | CancelOutcome::Requested => 1,
            CancelOutcome::Refused(r) => 1 + r.wire_size(),
        }
    }
}

impl WireSize for AdapterError {
    fn wire_size(&self) -> usize {
        match self {
            AdapterError::Rejected(m) | AdapterError::Unauthorized(m) | AdapterError::Misconfigured(m) => {
                1 + m.wire_size()
            }
            AdapterError::Transient(h) => 1 + h.wire_size(),
        }
    }
}
