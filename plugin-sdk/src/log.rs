//! Structured logging into the host's log, tagged with the plugin's name.
//! The host caps log volume per call; a flood fails the call.

pub use crate::bindings::daifa::supplier::log::Level;

/// Logs `message` with `key=value` fields.
pub fn log(level: Level, message: &str, fields: &[(&str, &str)]) {
    let fields: Vec<(String, String)> = fields.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    crate::host::log(level, message, &fields);
}

/// Logs at debug level, `format!` style.
#[macro_export]
macro_rules! debug {
    ($($arg:tt)*) => { $crate::log::log($crate::log::Level::Debug, &format!($($arg)*), &[]) };
}

/// Logs at info level, `format!` style.
#[macro_export]
macro_rules! info {
    ($($arg:tt)*) => { $crate::log::log($crate::log::Level::Info, &format!($($arg)*), &[]) };
}

/// Logs at warn level, `format!` style.
#[macro_export]
macro_rules! warn {
    ($($arg:tt)*) => { $crate::log::log($crate::log::Level::Warn, &format!($($arg)*), &[]) };
}

/// Logs at error level, `format!` style.
#[macro_export]
macro_rules! error {
    ($($arg:tt)*) => { $crate::log::log($crate::log::Level::Error, &format!($($arg)*), &[]) };
}
