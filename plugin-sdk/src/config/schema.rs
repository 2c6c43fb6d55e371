//! Typed settings declared once: [`config_schema!`](crate::config_schema)
//! generates a struct, its `load()` and its `KEYS`, from which a test checks
//! the manifest (`testing::assert_manifest_declares`).

use serde::de::DeserializeOwned;

use crate::AdapterError;

/// One declared configuration key: what the code reads and the manifest's
/// `[config.<name>]` table must declare.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConfigKey {
    /// The key, e.g. `base_url`.
    pub name: &'static str,
    /// What it is for (shown to operators by the manifest).
    pub description: &'static str,
    /// The value when the operator sets none, as text (the manifest's `default`).
    pub default: Option<&'static str>,
    /// Loading fails when it is unset or blank.
    pub required: bool,
    /// Never echoed in error messages (the manifest marks it `secret = true`).
    pub secret: bool,
}

impl ConfigKey {
    /// An optional, non-secret key without default or description.
    pub const fn new(name: &'static str) -> ConfigKey {
        ConfigKey { name, description: "", default: None, required: false, secret: false }
    }
}

/// A type a setting can have: parsed from the key's text.
///
/// Implemented for `String`, `bool` (`true/false`, `yes/no`, `on/off`,
/// `1/0`), the integer types, `Option<T>` (unset or blank → `None`) and
/// [`Json<T>`] (any `serde` type, written as JSON).
pub trait ConfigValue: Sized {
    /// Parses `text`; the error says what was expected, without the value.
    fn parse(text: &str) -> Result<Self, String>;

    /// The value of an unset key without default; `None` means it must be
    /// set (loading fails naming the key).
    fn absent() -> Option<Self> {
        None
    }
}

impl ConfigValue for String {
    fn parse(text: &str) -> Result<Self, String> {
        Ok(text.to_string())
    }
}

impl ConfigValue for bool {
    fn parse(text: &str) -> Result<Self, String> {
        match text.trim().to_ascii_lowercase().as_str() {
            "true" | "yes" | "on" | "1" => Ok(true),
            "false" | "no" | "off" | "0" => Ok(false),
            _ => Err("expected true or false".to_string()),
        }
    }
}

macro_rules! integer_value {
    ($($t:ty),*) => {$(
        impl ConfigValue for $t {
            fn parse(text: &str) -> Result<Self, String> {
                text.trim()
                    .parse()
                    .map_err(|_| format!("expected a whole number from {} to {}", <$t>::MIN, <$t>::MAX))
            }
        }
    )*};
}
integer_value!(u8, u16, u32, u64, usize, i32, i64);

impl<T: ConfigValue> ConfigValue for Option<T> {
    fn parse(text: &str) -> Result<Self, String> {
        if text.trim().is_empty() { Ok(None) } else { T::parse(text).map(Some) }
    }

    fn absent() -> Option<Self> {
        Some(None)
    }
}

/// A setting written as JSON (maps, lists, structs): `Json<BTreeMap<String, String>>`.
/// Derefs to the value; `.0` takes it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Json<T>(pub T);

impl<T> std::ops::Deref for Json<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}

impl<T: DeserializeOwned> ConfigValue for Json<T> {
    fn parse(text: &str) -> Result<Self, String> {
        serde_json::from_str(text).map(Json).map_err(|e| format!("expected JSON of the right shape: {e}"))
    }
}

/// Reads `key` as a `T`: the operator's value, else the key's default, else
/// `T::absent()`. Errors are `misconfigured` and name the key; a secret's
/// value is never quoted.
pub fn load_key<T: ConfigValue>(key: &ConfigKey) -> Result<T, AdapterError> {
    let given = crate::config::get(key.name);
    if key.required && given.as_deref().is_none_or(|v| v.trim().is_empty()) {
        let what = if key.description.is_empty() { String::new() } else { format!(" ({})", key.description) };
        return Err(AdapterError::misconfigured(format!("config key `{}` is required but not set{what}", key.name)));
    }
    let Some(text) = given.or_else(|| key.default.map(str::to_string)) else {
        return T::absent().ok_or_else(|| AdapterError::misconfigured(format!("config key `{}` is not set", key.name)));
    };
    T::parse(&text).map_err(|why| {
        let got = if key.secret { String::new() } else { format!(", got `{}`", snippet(&text)) };
        AdapterError::misconfigured(format!("config key `{}`: {why}{got}", key.name))
    })
}

fn snippet(s: &str) -> String {
    let mut out: String = s.chars().take(80).collect();
    if out.len() < s.len() {
        out.push('…');
    }
    out
}

/// Declares a plugin's settings once: a struct with one typed field per
/// config key, `Settings::load()` reading and checking them all, and
/// `Settings::KEYS` listing them (for
/// `testing::assert_manifest_declares`, so `cargo test` catches a key the
/// manifest lacks).
///
/// Each field is `name: Type { options }`; the field name is the config
/// key. Options, comma-separated, in any order: `required`, `secret`,
/// `default = "text"` (as the manifest writes it), `description = "…"`.
/// Types: anything implementing [`ConfigValue`] — `String`, `bool`,
/// integers, `Option<T>`, [`Json<T>`].
///
/// ```
/// use std::collections::BTreeMap;
/// use daifa_plugin_sdk::config::Json;
///
/// daifa_plugin_sdk::config_schema! {
///     /// What this adapter reads from its config.
///     pub struct Settings {
///         base_url: String { required, description = "Supplier API base URL" },
///         api_token: Option<String> { secret, description = "Bearer token" },
///         page_size: u32 { default = "100", description = "Events per poll" },
///         sandbox: bool { default = "false" },
///         field_map: Json<BTreeMap<String, String>> { default = "{}" },
///     }
/// }
///
/// assert_eq!(Settings::KEYS[0].name, "base_url");
/// assert!(Settings::KEYS[1].secret);
/// // In the adapter: `let s = Settings::load()?;` → `misconfigured` naming the key.
/// ```
#[macro_export]
macro_rules! config_schema {
    (
        $(#[$meta:meta])*
        $vis:vis struct $name:ident {
            $(
                $(#[$fmeta:meta])*
                $fvis:vis $field:ident : $ty:ty { $($opt:tt)* }
            ),* $(,)?
        }
    ) => {
        $(#[$meta])*
        $vis struct $name {
            $( $(#[$fmeta])* $fvis $field: $ty, )*
        }

        impl $name {
            /// Every config key these settings read, as declared.
            #[allow(dead_code)]
            pub const KEYS: &'static [$crate::config::ConfigKey] =
                &[ $( $crate::__config_key!($field; $($opt)*) ),* ];

            /// Reads and checks every key; the first problem is a
            /// `misconfigured` error naming its key.
            pub fn load() -> ::core::result::Result<Self, $crate::AdapterError> {
                ::core::result::Result::Ok(Self {
                    $( $field: $crate::config::load_key::<$ty>(&$crate::__config_key!($field; $($opt)*))?, )*
                })
            }
        }
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __config_key {
    ($field:ident; $($opt:ident $(= $val:expr)?),* $(,)?) => {{
        #[allow(unused_mut)]
        let mut key = $crate::config::ConfigKey::new(stringify!($field));
        $( $crate::__config_opt!(key, $opt $(= $val)?); )*
        key
    }};
}

#[doc(hidden)]
#[macro_export]
macro_rules! __config_opt {
    ($k:ident, required) => { $k.required = true; };
    ($k:ident, secret) => { $k.secret = true; };
    ($k:ident, default = $v:expr) => { $k.default = ::core::option::Option::Some($v); };
    ($k:ident, description = $v:expr) => { $k.description = $v; };
    ($k:ident, $($other:tt)*) => {
        ::core::compile_error!(concat!(
            "config_schema!: unknown option `", stringify!($($other)*),
            "`; use required, secret, default = \"…\" or description = \"…\""
        ));
    };
}
