//! One loaded plugin version and the path of every call into it: permit from
//! the pool, fresh `Store` with limits and deadline, instantiate from the
//! pre-linked `InstancePre`, call, map whatever happened to a typed result.

use std::sync::Arc;
use std::time::{Duration, Instant};

use wasmtime::component::Component;
use wasmtime::{Store, Trap, UpdateDeadline};

use super::bindings::{
    AdapterError, AdapterInfo, ApiVersion, CallbackRequest, CallbackResult, CancelOutcome, Capabilities, PollBatch,
    PurchaseOrder, StockLevel, SubmitReceipt, WireSize, v0_1,
};
use super::error::{CallError, LimitKind};
use super::host_state::{HostState, PluginContext, Violation};
use super::manifest::Manifest;
use super::runtime::PluginRuntime;
use super::stats::PluginStats;

/// Pre-linked component, one variant per supported API version.
#[derive(Clone)]
pub(crate) enum AdapterPre {
    V0_1(v0_1::SupplierAdapterPre<HostState>),
}

/// An installed, compiled, validated plugin version, ready to call.
/// Callers hold an `Arc` for the duration of a call, so a hot swap never
/// pulls a version out from under a call in flight.
pub struct LoadedPlugin {
    pub manifest: Manifest,
    pub api: ApiVersion,
    /// What the plugin said of itself in the dry run.
    pub info: AdapterInfo,
    info_known: bool,
    /// Shared by every binding of this version (supplier connections).
    pub stats: Arc<PluginStats>,
    pub(crate) ctx: Arc<PluginContext>,
    pub(crate) component: Component,
    pre: AdapterPre,
    runtime: PluginRuntime,
}

/// Names a call for logs and errors.
#[derive(Debug, Clone, Copy)]
pub enum Op {
    Describe,
    SubmitOrder,
    PollUpdates,
    CancelOrder,
    QueryStock,
    HandleCallback,
}

impl Op {
    /// The WIT name, for metrics and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Op::Describe => "describe",
            Op::SubmitOrder => "submit-order",
            Op::PollUpdates => "poll-updates",
            Op::CancelOrder => "cancel-order",
            Op::QueryStock => "query-stock",
            Op::HandleCallback => "handle-callback",
        }
    }
}

/// The store and instance of one call.
struct Call {
    store: Store<HostState>,
    guest: v0_1::SupplierAdapter,
    started: Instant,
    timeout: Duration,
    _permit: super::share::Slot,
    _quarantine: Option<tokio::sync::OwnedSemaphorePermit>,
}

/// See [`LoadedPlugin::pinned_instance`].
pub struct PinnedInstance {
    store: Store<HostState>,
    guest: v0_1::SupplierAdapter,
}

impl PinnedInstance {
    /// Calls `submit-order` on the reused instance.
    pub async fn submit_order(
        &mut self,
        order: &PurchaseOrder,
    ) -> wasmtime::Result<Result<SubmitReceipt, AdapterError>> {
        self.guest.daifa_supplier_adapter().call_submit_order(&mut self.store, order).await
    }
}

/// Runs one export through the full host path.
macro_rules! invoke {
    ($self:ident, $op:expr, |$guest:ident, $store:ident| $call:expr) => {{ invoke!($self, $op, |_| None, |$guest, $store| $call) }};
    // `$check` looks at a successful answer: `Some(why)` refuses it as
    // more output than the request allows.
    ($self:ident, $op:expr, $check:expr, |$guest:ident, $store:ident| $call:expr) => {{
        $self.require($op)?;
        let Call { mut store, guest, started, timeout, _permit, _quarantine } = $self.begin($op).await?;
        let outcome = {
            let $store = &mut store;
            let $guest = guest.daifa_supplier_adapter();
            // One deadline for the whole call, instantiation included.
            tokio::time::timeout_at((started + timeout).into(), $call).await
        };
        $self.finish($op, store, started, timeout, outcome, $check)
    }};
}

/// Why a `query-stock` answer is more than was asked: at most one entry
/// per SKU asked, and none for a SKU not asked (one SKU asked must not
/// become a million stock updates in the host).
fn stock_beyond_asked(asked: &[String], got: &[StockLevel]) -> Option<String> {
    if got.len() > asked.len() {
        return Some(format!("query-stock answered {} entries for {} SKU(s) asked", got.len(), asked.len()));
    }
    let asked: std::collections::HashSet<&str> = asked.iter().map(|s| s.as_str()).collect();
    got.iter()
        .find(|l| !asked.contains(l.supplier_sku.as_str()))
        .map(|l| format!("query-stock answered for `{}`, which was not asked", l.supplier_sku))
}

impl LoadedPlugin {
    pub(crate) fn new(
        manifest: Manifest,
        api: ApiVersion,
        ctx: Arc<PluginContext>,
        component: Component,
        pre: AdapterPre,
        runtime: PluginRuntime,
    ) -> LoadedPlugin {
        LoadedPlugin {
            info: AdapterInfo {
                name: manifest.name.clone(),
                version: manifest.version.to_string(),
                capabilities: Default::default(),
            },
            info_known: false,
            manifest,
            api,
            stats: Arc::new(PluginStats::default()),
            ctx,
            component,
            pre,
            runtime,
        }
    }

    pub(crate) fn set_info(&mut self, info: AdapterInfo) {
        self.info = info;
        self.info_known = true;
    }

    /// This version bound to one supplier connection: the same compiled
    /// component and limits, with `config` (checked against the manifest,
    /// defaults filled in), the allowlist that config expands to, and the
    /// connection's own kv store. Nothing is compiled or run.
    pub fn rebind(
        &self,
        config: &super::PluginConfig,
        kv: Arc<super::kv::KvStore>,
    ) -> Result<LoadedPlugin, super::ValidationError> {
        self.bind_with(config, kv, self.ctx.journal.clone(), None, self.stats.clone())
    }

    /// This version for a one-off call (`invoke`): `config` only (never a
    /// supplier connection's), an empty kv in memory, its own journal and
    /// counters, HTTP recorded or replayed by `tape`; its calls are not in
    /// the version's metrics and cannot put it in quarantine.
    pub fn scratch(
        &self,
        config: &super::PluginConfig,
        tape: Option<super::tape::Tape>,
    ) -> Result<LoadedPlugin, super::ValidationError> {
        self.bind_with(
            config,
            Arc::new(super::kv::KvStore::in_memory()),
            super::journal::Journal::default(),
            Some(tape),
            Arc::new(PluginStats::default()),
        )
    }

    /// `scratch`: `Some(tape)` for a one-off binding.
    fn bind_with(
        &self,
        config: &super::PluginConfig,
        kv: Arc<super::kv::KvStore>,
        journal: super::journal::Journal,
        scratch: Option<Option<super::tape::Tape>>,
        stats: Arc<PluginStats>,
    ) -> Result<LoadedPlugin, super::ValidationError> {
        let config = self.manifest.resolve_config(config)?;
        let allowlist =
            super::allowlist::Allowlist::compile(&self.manifest.permissions.allowed_outbound_hosts, &config)
                .map_err(super::ValidationError::Config)?;
        let (declared, secrets) = PluginContext::config_facts(&self.manifest, &config);
        let ctx = Arc::new(PluginContext {
            name: self.ctx.name.clone(),
            version: self.ctx.version.clone(),
            declared,
            secrets,
            journal,
            scratch: scratch.is_some(),
            tape: scratch.flatten(),
            config,
            allowlist,
            limits: self.ctx.limits.clone(),
            kv,
            http: self.ctx.http.clone(),
        });
        Ok(LoadedPlugin {
            manifest: self.manifest.clone(),
            api: self.api,
            info: self.info.clone(),
            info_known: self.info_known,
            stats,
            ctx,
            component: self.component.clone(),
            pre: self.pre.clone(),
            runtime: self.runtime.clone(),
        })
    }

    /// What this binding's plugin logged and its failed calls (a scratch
    /// binding has its own).
    pub fn journal(&self) -> &super::journal::Journal {
        &self.ctx.journal
    }

    /// The hosts this binding may reach, entries built from secret keys
    /// shown as their templates.
    pub fn allowlist_shown(&self) -> String {
        self.ctx.allowlist.redacted(&self.manifest.permissions.allowed_outbound_hosts, |k| {
            self.manifest.config.get(k).is_some_and(|f| f.secret)
        })
    }

    /// The HTTP tape of a scratch binding.
    pub fn tape(&self) -> Option<&super::tape::Tape> {
        self.ctx.tape.as_ref()
    }

    /// The compiled component (for tooling and benchmarks).
    pub fn component(&self) -> &Component {
        &self.component
    }

    /// `name@version`.
    pub fn id(&self) -> String {
        format!("{}@{}", self.manifest.name, self.manifest.version)
    }

    /// The plugin's own description (name, version, capabilities).
    pub async fn describe(&self) -> Result<AdapterInfo, CallError> {
        invoke!(self, Op::Describe, |g, s| async { g.call_describe(s).await.map(Ok::<_, AdapterError>) })
    }

    /// Submits one purchase order to the supplier.
    pub async fn submit_order(&self, order: &PurchaseOrder) -> Result<SubmitReceipt, CallError> {
        invoke!(self, Op::SubmitOrder, |g, s| g.call_submit_order(s, order))
    }

    /// Fetches status updates since `cursor`.
    pub async fn poll_updates(&self, cursor: Option<&str>) -> Result<PollBatch, CallError> {
        let cursor = cursor.map(str::to_string);
        invoke!(self, Op::PollUpdates, |g, s| g.call_poll_updates(s, cursor.as_deref()))
    }

    /// Asks the supplier to cancel an order.
    pub async fn cancel_order(
        &self,
        po_number: &str,
        supplier_ref: Option<&str>,
        reason: &str,
    ) -> Result<CancelOutcome, CallError> {
        invoke!(self, Op::CancelOrder, |g, s| g.call_cancel_order(s, po_number, supplier_ref, reason))
    }

    /// Asks the supplier for stock of its SKUs.
    pub async fn query_stock(&self, supplier_skus: &[String]) -> Result<Vec<StockLevel>, CallError> {
        let check = |got: &Vec<StockLevel>| stock_beyond_asked(supplier_skus, got);
        invoke!(self, Op::QueryStock, check, |g, s| g.call_query_stock(s, supplier_skus))
    }

    /// Lets the plugin interpret a webhook the supplier pushed to us.
    pub async fn handle_callback(&self, req: &CallbackRequest) -> Result<CallbackResult, CallError> {
        invoke!(self, Op::HandleCallback, |g, s| g.call_handle_callback(s, req))
    }

    /// A long-lived instance of this version, for measuring the raw cost of a
    /// call (benchmarks, diagnostics). It has no per-call deadline, fresh
    /// state or output checks: never use it to serve traffic.
    pub async fn pinned_instance(&self) -> Result<PinnedInstance, CallError> {
        let far = Instant::now() + Duration::from_secs(365 * 24 * 3600);
        let mut store = Store::new(&self.runtime.inner.engine, HostState::new(self.ctx.clone(), far));
        store.limiter(|s| &mut s.limiter);
        if self.runtime.inner.config.fuel {
            store.set_fuel(u64::MAX).map_err(|e| self.host_err(format!("{e:#}")))?;
        }
        store.set_epoch_deadline(1);
        store.epoch_deadline_callback(|_| Ok(UpdateDeadline::Yield(1)));
        let AdapterPre::V0_1(pre) = &self.pre;
        let guest = pre.instantiate_async(&mut store).await.map_err(|e| self.map_error(&mut store, e))?;
        Ok(PinnedInstance { store, guest })
    }

    /// Refuses an operation the plugin did not declare in `describe`.
    fn require(&self, op: Op) -> Result<(), CallError> {
        let (flag, name) = match op {
            Op::Describe => return Ok(()),
            Op::SubmitOrder => (Capabilities::SUBMIT, "submit"),
            Op::PollUpdates => (Capabilities::POLL, "poll"),
            Op::CancelOrder => (Capabilities::CANCEL, "cancel"),
            Op::QueryStock => (Capabilities::STOCK, "stock"),
            Op::HandleCallback => (Capabilities::CALLBACK, "callback"),
        };
        // Before the dry run has told us anything, let every call through.
        if self.info_known && !self.info.capabilities.contains(flag) {
            let err = CallError::Incompatible {
                plugin: self.id(),
                detail: format!("{op:?} needs capability `{name}`, which the plugin does not declare"),
            };
            self.stats.record(Duration::ZERO, Err(&err), 0, 0);
            return Err(err);
        }
        Ok(())
    }

    async fn begin(&self, op: Op) -> Result<Call, CallError> {
        // A call that never waits on I/O never returns `Pending`; count it
        // against tokio's cooperative budget so busy callers still let other
        // tasks (timers, admin operations) run.
        tokio::task::consume_budget().await;
        let started = Instant::now();
        let timeout = self.manifest.limits.timeout();
        let deadline = started + timeout;
        let rt = &self.runtime.inner;
        // A version in quarantine waits for its own few slots first (its
        // calls then take no shared slot while they wait). Not counted as a
        // failure of the call's own: it is the version's earlier ones.
        // A scratch call (invoke) neither waits in nor feeds the quarantine.
        let quarantine = if self.ctx.scratch {
            None
        } else {
            match rt.quarantine.enter(&self.id(), timeout).await {
                Ok(q) => q,
                Err(detail) => {
                    let err = CallError::Crowded {
                        plugin: self.id(),
                        holder: self.id(),
                        detail: format!("{op:?}: {detail}"),
                    };
                    rt.metrics.record(&self.manifest.name, &self.ctx.version, op.as_str(), Err(&err), 0.0, 0);
                    return Err(err);
                }
            }
        };
        // Not counted in this plugin's stats: the holder's overload.
        let permit = match rt.share.acquire(&self.manifest.name, timeout).await {
            Ok(p) => p,
            Err(c) => {
                let err = CallError::Crowded {
                    plugin: self.id(),
                    holder: c.holder.clone(),
                    detail: format!(
                        "{op:?}: no free call slot within {timeout:?}; `{}` holds {} of {}",
                        c.holder, c.holder_slots, c.total
                    ),
                };
                rt.metrics.record(&self.manifest.name, &self.ctx.version, op.as_str(), Err(&err), 0.0, 0);
                return Err(err);
            }
        };

        let mut store = Store::new(&rt.engine, HostState::new(self.ctx.clone(), deadline));
        store.limiter(|s| &mut s.limiter);
        if rt.config.fuel {
            let budget = self.manifest.limits.fuel.unwrap_or(u64::MAX);
            store.set_fuel(budget).map_err(|e| self.host_err(format!("{e:#}")))?;
        }
        // Wake up every tick: yield so a busy guest cannot hog a tokio worker,
        // and trap once the call's deadline has passed.
        store.set_epoch_deadline(1);
        store.epoch_deadline_callback(|mut ctx| {
            let state = ctx.data_mut();
            if Instant::now() >= state.deadline {
                let msg = "wall-clock deadline reached while running wasm".to_string();
                state.violate(Violation::Limit(LimitKind::Deadline, msg));
                Ok(UpdateDeadline::Interrupt)
            } else {
                // tokio's own yield, not a self-wake: a self-woken task is
                // rescheduled ahead of the injection queue, so tasks woken
                // from other threads waited 61 ticks (~610 ms) behind
                // spinning guests; a deferred task lets them run first.
                Ok(UpdateDeadline::YieldCustom(1, Box::pin(tokio::task::yield_now())))
            }
        });

        let AdapterPre::V0_1(pre) = &self.pre;
        let guest = match tokio::time::timeout_at(deadline.into(), pre.instantiate_async(&mut store)).await {
            Ok(Ok(g)) => g,
            Ok(Err(e)) => return Err(self.map_error(&mut store, e)),
            Err(_) => return Err(self.limit(LimitKind::Deadline, format!("instantiation took over {timeout:?}"))),
        };
        Ok(Call { store, guest, started, timeout, _permit: permit, _quarantine: quarantine })
    }

    fn finish<T: WireSize>(
        &self,
        op: Op,
        mut store: Store<HostState>,
        started: Instant,
        timeout: Duration,
        outcome: Result<wasmtime::Result<Result<T, AdapterError>>, tokio::time::error::Elapsed>,
        check: impl FnOnce(&T) -> Option<String>,
    ) -> Result<T, CallError> {
        let result = match outcome {
            Err(_) => Err(self.limit(LimitKind::Deadline, format!("call did not finish within {timeout:?}"))),
            Ok(Err(e)) => Err(self.map_error(&mut store, e)),
            Ok(Ok(value)) => {
                if let Some(v) = store.data().violation.clone() {
                    // The plugin carried on after being refused; the refusal wins.
                    Err(self.violation(v))
                } else if value.wire_size() as u64 > self.manifest.limits.output_bytes {
                    Err(self.limit(
                        LimitKind::OutputBytes,
                        format!(
                            "returned about {} bytes; the limit is {}",
                            value.wire_size(),
                            self.manifest.limits.output_bytes
                        ),
                    ))
                } else {
                    match value {
                        Ok(v) => match check(&v) {
                            Some(why) => Err(self.limit(LimitKind::OutputBytes, why)),
                            None => Ok(v),
                        },
                        Err(e) => Err(CallError::Adapter { plugin: self.id(), error: e.into() }),
                    }
                }
            }
        };
        let fuel = if self.runtime.inner.config.fuel {
            let budget = self.manifest.limits.fuel.unwrap_or(u64::MAX);
            budget.saturating_sub(store.get_fuel().unwrap_or(budget))
        } else {
            0
        };
        let peak = store.data().limiter.peak;
        let elapsed = started.elapsed();
        self.stats.record(elapsed, result.as_ref().map(|_| ()), fuel, peak);
        let s = store.data();
        self.stats.record_http(s.http_requests.into(), s.http_bytes_sent, s.http_bytes_received);
        if !self.ctx.scratch {
            if let Err(e @ (CallError::LimitExceeded { .. } | CallError::Trap { .. })) = &result {
                self.runtime.inner.quarantine.impose(&self.id(), &e.to_string());
            }
            self.runtime.inner.metrics.record(
                &self.manifest.name,
                &self.ctx.version,
                op.as_str(),
                result.as_ref().map(|_| ()),
                elapsed.as_secs_f64(),
                fuel,
            );
        }
        if let Err(e) = &result {
            self.ctx.journal.call_error(
                &self.manifest.name,
                &self.ctx.version,
                op.as_str(),
                self.redact(&e.to_string()),
            );
        }
        match &result {
            Ok(_) => {}
            // The adapter's own words usually carry the supplier's answer:
            // logged, with this connection's secrets taken out.
            Err(CallError::Adapter { error, .. }) => tracing::warn!(
                plugin = %self.manifest.name,
                version = %self.ctx.version,
                operation = op.as_str(),
                "adapter error: {}",
                self.redact(&error.to_string())
            ),
            Err(e) => tracing::warn!(
                plugin = %self.id(),
                operation = op.as_str(),
                kind = e.kind_label(),
                "plugin call failed: {}",
                self.redact(&e.to_string())
            ),
        }
        // The store is dropped here whatever happened: a trapped or cancelled
        // instance is never reused.
        result
    }

    fn map_error(&self, store: &mut Store<HostState>, e: wasmtime::Error) -> CallError {
        let state = store.data();
        if let Some(v) = state.violation.clone() {
            return self.violation(v);
        }
        if let Some(trap) = e.downcast_ref::<Trap>() {
            match trap {
                Trap::OutOfFuel => {
                    let budget = self.manifest.limits.fuel.unwrap_or(u64::MAX);
                    return self.limit(LimitKind::Fuel, format!("used its budget of {budget} fuel"));
                }
                Trap::StackOverflow => {
                    return self.limit(LimitKind::Stack, "wasm call stack exhausted (deep recursion)".into());
                }
                Trap::Interrupt => {
                    return self.limit(LimitKind::Deadline, "interrupted at the call's deadline".into());
                }
                _ => {}
            }
        }
        if let Some(wanted) = state.limiter.refused {
            return self.limit(
                LimitKind::Memory,
                format!(
                    "tried to grow linear memory to {wanted} bytes; the limit is {}",
                    self.manifest.limits.memory_bytes
                ),
            );
        }
        let stderr = state.stderr.contents();
        let stderr = String::from_utf8_lossy(&stderr);
        // Rust guests print their panic message to stderr before trapping.
        let panic = stderr.find("panicked at").map_or(stderr.trim(), |i| stderr[i..].trim());
        let panic = panic
            .lines()
            .map(str::trim)
            .filter(|l| !l.starts_with("note: run with `RUST_BACKTRACE"))
            .collect::<Vec<_>>()
            .join(" ");
        if let Some(trap) = e.downcast_ref::<Trap>() {
            tracing::debug!(plugin = %self.id(), "trap detail: {e:?}");
            let reason = if panic.is_empty() { trap.to_string() } else { format!("{panic} ({trap})") };
            CallError::Trap { plugin: self.id(), reason }
        } else {
            let reason = if panic.is_empty() { format!("{e:#}") } else { format!("{e:#}; guest stderr: {panic}") };
            // Errors raised outside wasm (instantiation, type conversion).
            CallError::Host { plugin: self.id(), detail: reason }
        }
    }

    fn violation(&self, v: Violation) -> CallError {
        match v {
            Violation::Limit(kind, detail) => self.limit(kind, detail),
            Violation::Denied(target) => CallError::CapabilityDenied { plugin: self.id(), target },
        }
    }

    fn limit(&self, kind: LimitKind, detail: String) -> CallError {
        CallError::LimitExceeded { plugin: self.id(), kind, detail }
    }

    /// `text` with every secret config value of this binding replaced.
    fn redact(&self, text: &str) -> String {
        super::journal::redact(text, &self.ctx.secrets)
    }

    fn host_err(&self, detail: String) -> CallError {
        CallError::Host { plugin: self.id(), detail }
    }
}
