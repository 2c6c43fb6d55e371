//! Canary deployment: an installed version takes `percent` % of a plugin's
//! calls (and so of every supplier's dispatches through it) beside the
//! active one. [`Registry::judge_canaries`] compares the two since the
//! canary started — failure rate and mean latency — and rolls the canary
//! back on a breach, or promotes it after enough good calls. The canary
//! survives a restart (it is part of the plugin's `state.json`); the
//! comparison starts again from zero then.

use std::sync::Arc;

use semver::Version;
use serde::{Deserialize, Serialize};

use super::{Registry, RegistryError, Slot, io};
use crate::plugins::plugin::LoadedPlugin;
use crate::plugins::stats::StatsSnapshot;

/// `[canary]`: when a canary is judged, and how.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CanaryPolicy {
    /// How often running canaries are judged.
    pub check_secs: u64,
    /// Canary calls before any verdict.
    pub min_calls: u64,
    /// Rolled back when its failure rate exceeds the stable version's by
    /// more than this many percentage points.
    pub max_extra_failure_pct: f64,
    /// Rolled back when its mean latency exceeds the stable version's by
    /// this factor (both with `min_calls`).
    pub max_latency_ratio: f64,
    /// Promoted after this many canary calls without a breach (0: never by
    /// itself).
    pub promote_after_calls: u64,
}

impl Default for CanaryPolicy {
    fn default() -> Self {
        CanaryPolicy {
            check_secs: 10,
            min_calls: 50,
            max_extra_failure_pct: 5.0,
            max_latency_ratio: 3.0,
            promote_after_calls: 1_000,
        }
    }
}

/// The persisted part of a canary.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CanaryState {
    pub version: Version,
    pub percent: u8,
    pub started_at: i64,
}

/// A running canary: its version, share, and both versions' counters when
/// it started.
pub(super) struct Running {
    pub(super) plugin: Arc<LoadedPlugin>,
    pub(super) percent: u8,
    pub(super) canary_base: StatsSnapshot,
    pub(super) stable_base: StatsSnapshot,
}

/// What a judgement did.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CanaryDecision {
    pub plugin: String,
    pub version: String,
    /// `rolled_back` or `promoted`.
    pub action: &'static str,
    pub reason: String,
}

/// Calls, failures and mean latency (µs) between two snapshots.
fn since(now: &StatsSnapshot, base: &StatsSnapshot) -> (u64, u64, f64) {
    let calls = now.calls.saturating_sub(base.calls);
    let ok = now.ok.saturating_sub(base.ok);
    let total_us = (now.mean_us * now.calls) as f64 - (base.mean_us * base.calls) as f64;
    let mean = if calls > 0 { (total_us / calls as f64).max(0.0) } else { 0.0 };
    (calls, calls.saturating_sub(ok), mean)
}

impl Slot {
    /// The version this call goes to: the canary's share of calls, the
    /// active version otherwise.
    pub(super) fn pick(&self) -> Option<Arc<LoadedPlugin>> {
        if let Some(c) = self.canary.load_full()
            && fastrand::u8(0..100) < c.percent
        {
            return Some(c.plugin.clone());
        }
        self.active.load_full()
    }
}

impl Registry {
    /// Sends `percent` % (1–99) of `name`'s calls to installed `version`.
    pub async fn start_canary(&self, name: &str, version: &Version, percent: u8) -> Result<(), RegistryError> {
        if !(1..=99).contains(&percent) {
            return Err(RegistryError::Conflict(format!("a canary takes 1-99 % of calls, not {percent}")));
        }
        let _admin = self.admin.lock().await;
        let slot = self.slot(name)?;
        let (next, plugin) = {
            let inner = slot.inner.lock().map_err(io)?;
            let plugin = inner.installed(name, version)?.plugin.clone();
            if inner.state.active.as_ref() == Some(version) {
                return Err(RegistryError::Conflict(format!("{name}@{version} is already the active version")));
            }
            if inner.state.active.is_none() || inner.state.disabled {
                return Err(RegistryError::Conflict(format!(
                    "plugin `{name}` has no active version to compare a canary with"
                )));
            }
            let mut next = inner.state.clone();
            next.canary = Some(CanaryState { version: version.clone(), percent, started_at: crate::util::now_ms() });
            (next, plugin)
        };
        let active = slot.active.load_full();
        self.commit(name, &slot, next, active).await?;
        slot.start_running(plugin, percent);
        tracing::warn!(plugin = name, %version, percent, "canary started");
        Ok(())
    }

    /// Ends `name`'s canary without promoting it; the version it was.
    pub async fn stop_canary(&self, name: &str) -> Result<Version, RegistryError> {
        let _admin = self.admin.lock().await;
        self.stop_canary_locked(name).await
    }

    async fn stop_canary_locked(&self, name: &str) -> Result<Version, RegistryError> {
        let slot = self.slot(name)?;
        let (next, version) = {
            let inner = slot.inner.lock().map_err(io)?;
            let Some(c) = inner.state.canary.clone() else {
                return Err(RegistryError::Conflict(format!("plugin `{name}` has no canary")));
            };
            let mut next = inner.state.clone();
            next.canary = None;
            (next, c.version)
        };
        let active = slot.active.load_full();
        self.commit(name, &slot, next, active).await?;
        slot.canary.store(None);
        Ok(version)
    }

    /// Judges every running canary against `policy`: rolls back a breach,
    /// promotes one with enough good calls. What it did.
    pub async fn judge_canaries(&self, policy: &CanaryPolicy) -> Vec<CanaryDecision> {
        let slots: Vec<(String, Arc<Slot>)> = match self.slots.read() {
            Ok(s) => s.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
            Err(_) => return vec![],
        };
        let mut decisions = Vec::new();
        for (name, slot) in slots {
            let (Some(c), Some(stable)) = (slot.canary.load_full(), slot.active.load_full()) else { continue };
            let version = c.plugin.manifest.version.clone();
            let (calls, failed, mean) = since(&c.plugin.stats.snapshot(), &c.canary_base);
            let (s_calls, s_failed, s_mean) = since(&stable.stats.snapshot(), &c.stable_base);
            if calls < policy.min_calls {
                continue;
            }
            let rate = failed as f64 * 100.0 / calls as f64;
            let s_rate = if s_calls > 0 { s_failed as f64 * 100.0 / s_calls as f64 } else { 0.0 };
            let breach = if rate > s_rate + policy.max_extra_failure_pct {
                Some(format!(
                    "{failed} of {calls} canary calls failed ({rate:.1} %) against {s_rate:.1} % for {} (limit +{} points)",
                    stable.manifest.version, policy.max_extra_failure_pct
                ))
            } else if s_calls >= policy.min_calls && s_mean > 0.0 && mean > s_mean * policy.max_latency_ratio {
                Some(format!(
                    "canary mean latency {:.1} ms against {:.1} ms for {} (limit ×{})",
                    mean / 1000.0,
                    s_mean / 1000.0,
                    stable.manifest.version,
                    policy.max_latency_ratio
                ))
            } else {
                None
            };
            let _admin = self.admin.lock().await;
            // Changed by an operator meanwhile: not ours to judge now.
            if slot.canary.load().as_ref().map(|r| r.plugin.manifest.version.clone()) != Some(version.clone()) {
                continue;
            }
            let outcome = match breach {
                Some(reason) => self.stop_canary_locked(&name).await.map(|_| CanaryDecision {
                    plugin: name.clone(),
                    version: version.to_string(),
                    action: "rolled_back",
                    reason,
                }),
                None if policy.promote_after_calls > 0 && calls >= policy.promote_after_calls => {
                    let reason = format!(
                        "{calls} canary calls, {rate:.1} % failed against {s_rate:.1} %, mean {:.1} ms against {:.1} ms",
                        mean / 1000.0,
                        s_mean / 1000.0
                    );
                    self.activate_locked(&name, &version).await.map(|_| CanaryDecision {
                        plugin: name.clone(),
                        version: version.to_string(),
                        action: "promoted",
                        reason,
                    })
                }
                None => continue,
            };
            match outcome {
                Ok(d) => {
                    tracing::warn!(plugin = %d.plugin, version = %d.version, action = d.action, "canary: {}", d.reason);
                    decisions.push(d);
                }
                Err(e) => tracing::error!(plugin = %name, %version, "canary decision not applied: {e}"),
            }
        }
        decisions
    }
}

impl Slot {
    pub(super) fn start_running(&self, plugin: Arc<LoadedPlugin>, percent: u8) {
        let stable_base = self.active.load_full().map(|p| p.stats.snapshot()).unwrap_or_default();
        let canary_base = plugin.stats.snapshot();
        self.canary.store(Some(Arc::new(Running { plugin, percent, canary_base, stable_base })));
    }
}
