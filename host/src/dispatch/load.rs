//! How busy this host is, and what dispatch defers when it is: purchase
//! orders for the ERP wait while submits to suppliers are backlogged and
//! the host's CPU is saturated.
//!
//! Why: both compete for the same cores (and the one SQLite writer). A
//! supplier's acceptance is what ships the customer's goods; the ERP's
//! paperwork can follow seconds later. Measured on 10,000 orders
//! (BENCHMARKS.md, benchmark 6): with ERP batches beside the submits, each
//! supplier call waited ~45 ms for CPU. But when the host is not saturated
//! (a slow ERP, slow suppliers: calls mostly wait on the network), ERP work
//! costs little CPU and deferring it would only leave the ERP idle, so the
//! rule applies only while this process uses most of the cores it may use.
//!
//! Why CPU and not the runtime's scheduling delay: measured, a 5 ms sleep
//! woke 1.3–7 ms late both in a saturated run and in one waiting on 100 ms
//! suppliers at ~60 % CPU; the process's CPU share told them apart (~87 %
//! against ~60 %).
//!
//! Owns: the CPU gauge and the deferral decision. May call: nothing else.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

/// How often the gauge samples.
const WINDOW: Duration = Duration::from_millis(500);

/// Linux's fixed `USER_HZ`: the unit of `/proc/self/stat`'s CPU times.
const USER_HZ: f64 = 100.0;

/// `[dispatch.defer_erp]`: when ERP purchase orders wait for submits.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DeferErp {
    /// Defer at all (off: ERP batches always run beside submits).
    pub enabled: bool,
    /// ERP work starts waiting when this process uses at least this share
    /// of the cores available to it (percent)...
    pub busy_percent: u32,
    /// ...and stops waiting once it uses less than this.
    pub calm_percent: u32,
    /// The longest ERP work waits in one stretch; then one round of ERP
    /// batches is claimed anyway, so a host saturated for hours still
    /// writes its purchase orders.
    pub max_wait_ms: u64,
}

impl Default for DeferErp {
    fn default() -> Self {
        DeferErp { enabled: true, busy_percent: 75, calm_percent: 55, max_wait_ms: 30_000 }
    }
}

impl DeferErp {
    /// Refuses thresholds that cannot mean anything, naming the key.
    pub fn check(&self) -> Result<(), String> {
        if self.busy_percent == 0 || self.busy_percent > 100 {
            return Err(format!(
                "[dispatch.defer_erp] busy_percent = {} is not a share of the cores (1 to 100)",
                self.busy_percent
            ));
        }
        if self.calm_percent > self.busy_percent {
            return Err(format!(
                "[dispatch.defer_erp] calm_percent = {} is above busy_percent = {}: ERP work would stop \
                 waiting at a higher load than it started",
                self.calm_percent, self.busy_percent
            ));
        }
        Ok(())
    }
}

/// This process's CPU use over the last window, as a share of the cores
/// it may use; kept up to date by a task. Reads 0 where `/proc` is not
/// available (the rule then never defers).
#[derive(Debug, Default)]
pub(crate) struct CpuGauge {
    permille: AtomicU64,
}

impl CpuGauge {
    /// Starts sampling on the current runtime; the task stops when the
    /// last other holder of the gauge drops it.
    pub(crate) fn start() -> Arc<CpuGauge> {
        let gauge = Arc::new(CpuGauge::default());
        let weak = Arc::downgrade(&gauge);
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
        tokio::spawn(async move {
            let mut last = (Instant::now(), cpu_seconds());
            loop {
                tokio::time::sleep(WINDOW).await;
                let now = (Instant::now(), cpu_seconds());
                let Some(g) = weak.upgrade() else { break };
                if let (Some(before), Some(after)) = (last.1, now.1) {
                    let wall = now.0.duration_since(last.0).as_secs_f64();
                    g.set(share(after - before, wall, cores));
                }
                last = now;
            }
        });
        gauge
    }

    fn set(&self, share: f64) {
        self.permille.store((share * 1000.0).round() as u64, Ordering::Relaxed);
    }

    /// The last window's share of the available cores, in percent.
    pub(crate) fn percent(&self) -> u32 {
        u32::try_from(self.permille.load(Ordering::Relaxed) / 10).unwrap_or(u32::MAX)
    }
}

/// CPU seconds over wall seconds, per core (0 for an empty window).
fn share(cpu: f64, wall: f64, cores: f64) -> f64 {
    if wall <= 0.0 || cores <= 0.0 { 0.0 } else { (cpu / wall / cores).max(0.0) }
}

/// User plus system CPU time of this whole process, from `/proc/self/stat`.
fn cpu_seconds() -> Option<f64> {
    parse_stat(&std::fs::read_to_string("/proc/self/stat").ok()?)
}

/// Fields 14 and 15 (utime, stime) of a `stat` line. The command name (2)
/// may hold spaces and parentheses: count from the last `)`.
fn parse_stat(stat: &str) -> Option<f64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut f = rest.split_whitespace().skip(11);
    let utime: u64 = f.next()?.parse().ok()?;
    let stime: u64 = f.next()?.parse().ok()?;
    Some((utime + stime) as f64 / USER_HZ)
}

/// Whether ERP purchase-order batches wait this round, and since when
/// they have been waiting.
#[derive(Debug, Default)]
pub(crate) struct ErpDeferral {
    since: Option<Instant>,
}

impl ErpDeferral {
    /// `backlogged`: the last claim of supplier jobs (submits, polls,
    /// cancels) filled every free worker (more are ready). Returns `true` when ERP batches should wait.
    pub(crate) fn defer(&mut self, cfg: &DeferErp, backlogged: bool, cpu_percent: u32, now: Instant) -> bool {
        let threshold = if self.since.is_some() { cfg.calm_percent } else { cfg.busy_percent };
        if !cfg.enabled || !backlogged || cpu_percent < threshold {
            self.since = None;
            return false;
        }
        let since = *self.since.get_or_insert(now);
        if now.duration_since(since) >= Duration::from_millis(cfg.max_wait_ms) {
            // Waited long enough: this round goes ahead, the next waits again.
            self.since = None;
            return false;
        }
        true
    }

    /// Whether ERP work is waiting right now (to log when it starts and stops).
    pub(crate) fn waiting(&self) -> bool {
        self.since.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn erp_waits_only_while_submits_are_backlogged_and_the_host_is_saturated() {
        let cfg = DeferErp::default();
        let t = Instant::now();
        let mut d = ErpDeferral::default();
        assert!(!d.defer(&cfg, false, 100, t), "no backlog: nothing to make room for");
        assert!(!d.defer(&cfg, true, 60, t), "CPU to spare: deferring would only idle the ERP");
        assert!(d.defer(&cfg, true, 80, t));
        assert!(d.waiting());
        assert!(d.defer(&cfg, true, 60, t), "hysteresis: waiting goes on above calm_percent");
        assert!(!d.defer(&cfg, true, 50, t + Duration::from_millis(10)), "load gone: ERP goes ahead");
        assert!(!d.waiting());
        assert!(!d.defer(&cfg, true, 60, t), "and does not wait again below busy_percent");
        assert!(!d.defer(&DeferErp { enabled: false, ..cfg }, true, 100, t), "switched off");
    }

    #[test]
    fn erp_work_never_waits_longer_than_max_wait() {
        let cfg = DeferErp { max_wait_ms: 1_000, ..DeferErp::default() };
        let t = Instant::now();
        let mut d = ErpDeferral::default();
        assert!(d.defer(&cfg, true, 90, t));
        assert!(d.defer(&cfg, true, 90, t + Duration::from_millis(999)));
        assert!(!d.defer(&cfg, true, 90, t + Duration::from_millis(1_000)), "a round goes ahead");
        assert!(d.defer(&cfg, true, 90, t + Duration::from_millis(1_001)), "then it waits again");
    }

    #[test]
    fn thresholds_that_mean_nothing_are_refused_by_name() {
        assert!(DeferErp::default().check().is_ok());
        let e = DeferErp { busy_percent: 120, ..DeferErp::default() }.check().unwrap_err();
        assert!(e.contains("busy_percent = 120"), "{e}");
        let e = DeferErp { calm_percent: 90, ..DeferErp::default() }.check().unwrap_err();
        assert!(e.contains("calm_percent = 90 is above busy_percent = 75"), "{e}");
    }

    #[test]
    fn stat_lines_parse_from_the_last_parenthesis() {
        let line = "4242 (tokio (rt) x) S 1 4242 4242 0 -1 4194560 1000 0 0 0 250 75 0 0 20 0 9 0 100 0 0";
        assert_eq!(parse_stat(line), Some(3.25));
        assert_eq!(parse_stat("garbage"), None);
        assert_eq!(parse_stat("1 (x) S 1 2"), None, "too few fields");
        assert!((share(1.5, 1.0, 2.0) - 0.75).abs() < 1e-9);
        assert_eq!(share(1.0, 0.0, 2.0), 0.0);
    }

    #[test]
    fn this_process_has_a_cpu_time_on_linux() {
        if cfg!(target_os = "linux") {
            assert!(cpu_seconds().is_some_and(|s| s >= 0.0));
        }
    }
}
