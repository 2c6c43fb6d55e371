//! The process-wide plugin runtime: one wasmtime `Engine` (pooling allocator,
//! epoch interruption ticked from a dedicated thread, optional fuel), the
//! `Linker` with WASI p2 and the daifa host imports, the compiled-code cache
//! and the concurrency gate in front of the instance pool.

use std::hash::{Hash, Hasher};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use wasmtime::component::{Component, HasSelf, Linker};
use wasmtime::{Config, Enabled, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

use super::bindings::v0_1;
use super::egress::EgressPolicy;
use super::host_state::HostState;
use super::http::OutboundHttp;
use super::manifest::Ceilings;
use super::share::CallShare;

/// Runtime settings (from the host's config file; defaults fit one host).
#[derive(Debug, Clone, serde::Deserialize, serde::Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct RuntimeConfig {
    /// Calls that may run at once; sizes the instance pool. Further calls wait.
    pub max_concurrent_calls: u32,
    /// Most of those one plugin may hold (all its versions and connections
    /// together); default three quarters, so one plugin whose calls hang
    /// leaves room for the others.
    pub max_calls_per_plugin: Option<u32>,
    /// After a call of a plugin version hits a sandbox limit or traps,
    /// that version runs at most this many calls at once for
    /// `quarantine_ms` (see `plugins::quarantine`); 0 turns it off.
    pub quarantine_calls: u32,
    pub quarantine_ms: u64,
    /// Meanwhile its calls start at most one per this many ms.
    pub quarantine_spacing_ms: u64,
    /// Ceiling for any plugin's memory limit (also the pool's slot size).
    pub max_memory_bytes: u64,
    pub max_timeout_ms: u64,
    pub max_http_response_bytes: u64,
    pub max_output_bytes: u64,
    pub max_http_requests_per_call: u32,
    pub max_http_timeout_ms: u64,
    pub max_log_bytes_per_call: u64,
    /// Bound what one plugin can make the kv database (and a get's copy in
    /// host memory) hold.
    pub max_kv_keys: u32,
    pub max_kv_value_bytes: u64,
    pub max_kv_total_bytes: u64,
    /// Non-public address ranges plugins may still connect to (CIDR or one
    /// address; e.g. `127.0.0.1/32` for simulators on this machine). Every
    /// loopback, private, link-local, shared, multicast, reserved and
    /// metadata address is refused otherwise, checked on each connection.
    pub egress_allow_ips: Vec<String>,
    /// Largest component accepted for validation.
    pub max_package_bytes: usize,
    /// Longest a package's compile may take (waiting for a compile slot
    /// included) before the package is refused.
    pub compile_timeout_ms: u64,
    /// Compiles that may run at once.
    pub max_parallel_compiles: u32,
    /// Installed versions dry-run at once while the host starts.
    pub startup_parallelism: u32,
    /// Count fuel so manifests can set an instruction budget per call.
    pub fuel: bool,
    /// Epoch tick; the granularity of deadlines and of cooperative yields.
    pub epoch_tick_ms: u64,
    /// Where compiled code is cached; `None` compiles on every start.
    pub cache_dir: Option<PathBuf>,
    /// Bytes of each pooled linear memory kept resident between calls and
    /// reset in place; larger costs RSS, smaller costs page faults.
    pub keep_resident_bytes: u64,
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        RuntimeConfig {
            max_concurrent_calls: 64,
            max_calls_per_plugin: None,
            quarantine_calls: 1,
            quarantine_ms: 30_000,
            quarantine_spacing_ms: 100,
            max_memory_bytes: 256 << 20,
            max_timeout_ms: 120_000,
            max_http_response_bytes: 64 << 20,
            max_output_bytes: 16 << 20,
            max_http_requests_per_call: 256,
            max_http_timeout_ms: 120_000,
            max_log_bytes_per_call: 1 << 20,
            max_kv_keys: 100_000,
            max_kv_value_bytes: 1 << 20,
            max_kv_total_bytes: 64 << 20,
            egress_allow_ips: Vec::new(),
            max_package_bytes: 32 << 20,
            compile_timeout_ms: 60_000,
            max_parallel_compiles: 2,
            startup_parallelism: 8,
            fuel: false,
            epoch_tick_ms: 10,
            cache_dir: None,
            keep_resident_bytes: 4 << 20,
        }
    }
}

impl RuntimeConfig {
    /// The ceilings manifests are checked against.
    pub fn ceilings(&self) -> Ceilings {
        Ceilings {
            memory_bytes: self.max_memory_bytes,
            timeout_ms: self.max_timeout_ms,
            http_response_bytes: self.max_http_response_bytes,
            output_bytes: self.max_output_bytes,
            http_requests_per_call: self.max_http_requests_per_call,
            http_timeout_ms: self.max_http_timeout_ms,
            log_bytes_per_call: self.max_log_bytes_per_call,
            kv_max_keys: self.max_kv_keys,
            kv_max_value_bytes: self.max_kv_value_bytes,
            kv_max_total_bytes: self.max_kv_total_bytes,
        }
    }
}

/// Shared by every plugin and call; cheap to clone.
#[derive(Clone)]
pub struct PluginRuntime {
    pub(crate) inner: Arc<RuntimeInner>,
}

pub(crate) struct RuntimeInner {
    pub(crate) engine: Engine,
    pub(crate) linker: Linker<HostState>,
    pub(crate) config: RuntimeConfig,
    pub(crate) http: OutboundHttp,
    /// Backpressure in front of the pooling allocator, shared fairly
    /// between plugins: waiting beats failing.
    pub(crate) share: CallShare,
    pub(crate) metrics: super::metrics::PluginMetrics,
    /// Versions that hit a limit or trapped, held to few calls at once.
    pub(crate) quarantine: super::quarantine::Quarantine,
    /// What plugins logged and their last errors.
    pub(crate) journal: super::journal::Journal,
    /// Compiles running at once (see [`PluginRuntime::compile`]).
    compile_slots: Arc<tokio::sync::Semaphore>,
    engine_hash: String,
    ticker: Ticker,
    compiles: AtomicU64,
    cache_hits: AtomicU64,
}

/// Ticks the engine's epoch from an OS thread (an executor task could be
/// starved by the very guest it should interrupt).
struct Ticker {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Drop for RuntimeInner {
    fn drop(&mut self) {
        self.ticker.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.ticker.thread.take() {
            let _ = t.join();
        }
    }
}

/// Why the runtime could not start.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("wasmtime engine: {0}")]
    Engine(String),
    #[error("http client: {0}")]
    Http(String),
    #[error("[runtime] {0}")]
    Config(String),
}

/// What one component may take of the pool every plugin shares. A Rust
/// wasip2 component (rest-json, the hostile fixture) needs one linear
/// memory, one table and a few core instances; these leave room for other
/// toolchains while keeping one component from emptying the pool.
pub const MAX_MEMORIES_PER_COMPONENT: u32 = 2;
/// See [`MAX_MEMORIES_PER_COMPONENT`].
pub const MAX_TABLES_PER_COMPONENT: u32 = 8;
/// See [`MAX_MEMORIES_PER_COMPONENT`].
pub const MAX_CORE_INSTANCES_PER_COMPONENT: u32 = 16;

impl PluginRuntime {
    /// Builds the engine, linker and ticker.
    pub fn new(config: RuntimeConfig) -> Result<PluginRuntime, RuntimeError> {
        let n = config.max_concurrent_calls.max(1);
        let mut pool = PoolingAllocationConfig::default();
        // A Rust wasip2 component instantiates a handful of core modules.
        // Per-component ceilings too: the totals alone let one component
        // take (nearly) every slot. Validation refuses a component over
        // them with a clear message; these are the backstop.
        pool.total_component_instances(n)
            .total_core_instances(n * 8)
            .total_memories(n * 2)
            .total_tables(n * 8)
            .max_memories_per_component(MAX_MEMORIES_PER_COMPONENT)
            .max_tables_per_component(MAX_TABLES_PER_COMPONENT)
            .max_core_instances_per_component(MAX_CORE_INSTANCES_PER_COMPONENT)
            // Twice the slots: with more tokio workers than cores, calls
            // held every slot and a new one still found no free fiber stack
            // ("maximum concurrent limit of 32 for fibers") — a stack goes
            // back to the pool a moment after its call's slot. 4 MiB of
            // address space each, 64 KiB kept resident.
            .total_stacks(n * 2)
            .max_memory_size(config.max_memory_bytes as usize)
            .max_unused_warm_slots(n.min(32))
            // Reset a slot by rewriting only the pages a call dirtied (found
            // with PAGEMAP_SCAN where the kernel has it) instead of madvise:
            // madvise from several threads means TLB shootdowns on every call.
            .linear_memory_keep_resident(config.keep_resident_bytes as usize)
            .table_keep_resident(64 << 10)
            .async_stack_keep_resident(64 << 10)
            .pagemap_scan(Enabled::Auto)
            .decommit_batch_size(16);

        let mut wc = Config::new();
        wc.epoch_interruption(true)
            .consume_fuel(config.fuel)
            .allocation_strategy(InstanceAllocationStrategy::Pooling(pool))
            .memory_init_cow(true)
            // Plugins of different suppliers share the host: no stack residue.
            .async_stack_zeroing(true)
            .max_wasm_stack(1 << 20)
            .async_stack_size(4 << 20)
            // Plugins are synchronous WASI p2 components; the async
            // component-model machinery only slows calls down.
            .concurrency_support(false);
        let engine = Engine::new(&wc).map_err(|e| RuntimeError::Engine(format!("{e:#}")))?;

        let mut linker = Linker::<HostState>::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker).map_err(|e| RuntimeError::Engine(format!("{e:#}")))?;
        v0_1::SupplierAdapter::add_to_linker::<_, HasSelf<HostState>>(&mut linker, |s| s)
            .map_err(|e| RuntimeError::Engine(format!("{e:#}")))?;

        let mut h = std::hash::DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut h);
        let engine_hash = format!("{:016x}", h.finish());

        let stop = Arc::new(AtomicBool::new(false));
        let tick = Duration::from_millis(config.epoch_tick_ms.max(1));
        let thread = {
            let engine = engine.clone();
            let stop = stop.clone();
            std::thread::Builder::new()
                .name("daifa-epoch".into())
                .spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        std::thread::sleep(tick);
                        engine.increment_epoch();
                    }
                })
                .map_err(|e| RuntimeError::Engine(format!("epoch thread: {e}")))?
        };

        let egress = EgressPolicy::new(&config.egress_allow_ips).map_err(RuntimeError::Config)?;
        let http = OutboundHttp::new(egress).map_err(|e| RuntimeError::Http(e.to_string()))?;
        Ok(PluginRuntime {
            inner: Arc::new(RuntimeInner {
                engine,
                linker,
                metrics: Default::default(),
                compile_slots: Arc::new(tokio::sync::Semaphore::new(config.max_parallel_compiles.max(1) as usize)),
                share: CallShare::new(n, config.max_calls_per_plugin.unwrap_or((n * 3 / 4).max(1))),
                quarantine: super::quarantine::Quarantine::new(
                    config.quarantine_calls,
                    Duration::from_millis(config.quarantine_ms),
                    Duration::from_millis(config.quarantine_spacing_ms),
                ),
                journal: Default::default(),
                config,
                http,
                engine_hash,
                ticker: Ticker { stop, thread: Some(thread) },
                compiles: AtomicU64::new(0),
                cache_hits: AtomicU64::new(0),
            }),
        })
    }

    /// Adds the plugin call metrics to the host's registry.
    pub fn register_metrics(&self, registry: &mut prometheus_client::registry::Registry) {
        self.inner.metrics.register(registry, &self.inner.share);
    }

    /// What plugins logged and their calls' errors (`daifa plugin logs`).
    pub fn journal(&self) -> &super::journal::Journal {
        &self.inner.journal
    }

    /// The call slots every plugin shares.
    pub fn share(&self) -> &CallShare {
        &self.inner.share
    }

    /// The runtime's settings.
    pub fn config(&self) -> &RuntimeConfig {
        &self.inner.config
    }

    /// How many components were compiled, and how many were loaded from the
    /// compiled-code cache instead, since start.
    pub fn compile_counts(&self) -> (u64, u64) {
        (self.inner.compiles.load(Ordering::Relaxed), self.inner.cache_hits.load(Ordering::Relaxed))
    }

    /// The wasmtime engine (benchmarks and tests use it for bare calls).
    pub fn engine(&self) -> &Engine {
        &self.inner.engine
    }

    /// Compiles a component, or loads it from the cache keyed by the engine's
    /// compatibility hash and the component's sha256. CPU-heavy: runs off the
    /// async threads.
    ///
    /// At most `max_parallel_compiles` run at once, and a caller waits at
    /// most `compile_timeout_ms` (queueing included): a component built to
    /// compile for minutes is refused instead of holding up its installer.
    /// Its compile thread cannot be stopped, but keeps its compile slot until
    /// it ends, so such packages cannot pile up and take every core.
    pub async fn compile(&self, bytes: Arc<Vec<u8>>, sha256: String) -> wasmtime::Result<Component> {
        let inner = self.inner.clone();
        let limit = Duration::from_millis(inner.config.compile_timeout_ms);
        let work = async move {
            let slot = inner.compile_slots.clone().acquire_owned().await.map_err(wasmtime::Error::msg)?;
            tokio::task::spawn_blocking(move || {
                let _slot = slot;
                inner.compile_blocking(&bytes, &sha256)
            })
            .await
            .map_err(|e| wasmtime::Error::msg(format!("compile task: {e}")))?
        };
        match tokio::time::timeout(limit, work).await {
            Ok(r) => r,
            Err(_) => Err(wasmtime::Error::msg(format!(
                "compiling took over {limit:?} ([runtime] compile_timeout_ms); the package is refused"
            ))),
        }
    }
}

impl RuntimeInner {
    fn compile_blocking(&self, bytes: &[u8], sha256: &str) -> wasmtime::Result<Component> {
        let Some(dir) = &self.config.cache_dir else {
            self.compiles.fetch_add(1, Ordering::Relaxed);
            return Component::new(&self.engine, bytes);
        };
        let path = dir.join(&self.engine_hash).join(format!("{sha256}.cwasm"));
        if path.exists() {
            // SAFETY: the cache directory is written only by this host, with
            // code this engine compiled, under a key that includes the engine's
            // compatibility hash; the content hash names the source bytes.
            match unsafe { Component::deserialize_file(&self.engine, &path) } {
                Ok(c) => {
                    self.cache_hits.fetch_add(1, Ordering::Relaxed);
                    return Ok(c);
                }
                Err(e) => tracing::warn!(path = %path.display(), "ignoring unusable cache entry: {e:#}"),
            }
        }
        self.compiles.fetch_add(1, Ordering::Relaxed);
        let component = Component::new(&self.engine, bytes)?;
        match component.serialize() {
            Ok(code) => {
                if let Err(e) = crate::util::write_atomic_blocking(&path, &code) {
                    tracing::warn!(path = %path.display(), "could not cache compiled plugin: {e}");
                }
            }
            Err(e) => tracing::warn!("could not serialise compiled plugin: {e:#}"),
        }
        Ok(component)
    }
}
