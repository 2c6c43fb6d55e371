//! Wall-clock time from the host.

/// Unix time in milliseconds.
pub fn now_ms() -> u64 {
    crate::host::now_ms()
}
