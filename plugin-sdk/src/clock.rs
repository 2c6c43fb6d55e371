//! Wall-clock time from the host.

/// Unix time in milliseconds.
pub fn now_ms() -> u64 {
    crate::bindings::daifa::supplier::clock::now_ms()
}
