//! The plugin host: runs supplier adapters as sandboxed WebAssembly
//! components and swaps them without a restart.
//!
//! Owns: the wasmtime engine and linker (`runtime`), the host side of the WIT
//! imports (`host_state`, `http` with the address policy `egress`, `kv`), packages and their validation
//! (`manifest`, `package`, `allowlist`), one loaded version and its call path
//! (`plugin`), what plugins logged and their last errors (`journal`), call slots shared fairly between plugins (`share`), and
//! installed versions with hot swap (`registry`).
//! May call: nothing else in the host. Dispatch and tracking call into it.

pub mod allowlist;
pub mod bindings;
pub mod egress;
pub mod error;
pub mod host_state;
pub mod http;
pub mod invoke;
pub mod journal;
pub mod kv;
pub mod manifest;
pub mod metrics;
pub mod package;
pub mod plugin;
pub mod quarantine;
pub mod registry;
pub mod runtime;
pub mod share;
pub mod stats;
pub mod tape;

pub use error::{AdapterErrorKind, CallError, LimitKind, ValidationError};
pub use manifest::{Limits, Manifest, PluginConfig};
pub use package::{PluginPackage, ValidationReport};
pub use plugin::LoadedPlugin;
pub use registry::{CanaryDecision, CanaryPolicy, CanaryState, PluginSummary, Registry, RegistryError};
pub use runtime::{PluginRuntime, RuntimeConfig};
