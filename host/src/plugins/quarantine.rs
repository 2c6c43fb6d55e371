//! Quarantine of misbehaving plugin versions. A call that hits a sandbox
//! limit (deadline, memory, fuel, stack, output size) or traps puts its
//! version in quarantine for `[runtime] quarantine_ms`: meanwhile that
//! version runs at most `quarantine_calls` calls at once, starting at most
//! one every `quarantine_spacing_ms`; the others wait their turn within
//! their own deadline. The limits already stop each such
//! call; the quarantine stops a version from burning every core with them
//! (four callers spinning to their deadline, or building 4 MB answers the
//! host then refuses, took the CPU the healthy plugins' calls needed on a
//! 2-core host). Well-behaved versions never meet it; a canary is judged
//! per version, so a bad canary is held back without its stable version.
//!
//! Owns: the quarantine state per version id (`name@version`).
//! Calls: nothing.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

struct Entry {
    until: Instant,
    slots: Arc<Semaphore>,
    /// When the next call may start (spacing).
    next_start: Instant,
    reason: String,
    times: u64,
}

/// A version's quarantine as `GET /plugins` shows it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct QuarantineState {
    /// Until it ends, in ms (0 once over).
    pub remaining_ms: u64,
    /// The limit or trap that imposed it last.
    pub reason: String,
    /// How many times one was imposed (renewals included).
    pub times: u64,
    /// Calls it may run at once meanwhile.
    pub calls: u32,
    /// And at most one starts per this many ms.
    pub spacing_ms: u64,
}

/// The quarantine register of one runtime.
pub(crate) struct Quarantine {
    calls: u32,
    period: Duration,
    spacing: Duration,
    entries: Mutex<HashMap<String, Entry>>,
}

impl Quarantine {
    /// `calls` at once, starting at most one every `spacing`, for `period`
    /// after a violation; `calls` or `period` of 0 turns it off.
    pub(crate) fn new(calls: u32, period: Duration, spacing: Duration) -> Quarantine {
        Quarantine { calls, period, spacing, entries: Mutex::new(HashMap::new()) }
    }

    fn entries(&self) -> std::sync::MutexGuard<'_, HashMap<String, Entry>> {
        // Nothing panics while holding this lock; recover the data if it did.
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn enabled(&self) -> bool {
        self.calls > 0 && !self.period.is_zero()
    }

    /// Puts (or keeps) `version` in quarantine after a call ended with `why`.
    pub(crate) fn impose(&self, version: &str, why: &str) {
        if !self.enabled() {
            return;
        }
        let until = Instant::now() + self.period;
        let mut all = self.entries();
        let e = all.entry(version.to_string()).or_insert_with(|| Entry {
            until,
            slots: Arc::new(Semaphore::new(self.calls as usize)),
            next_start: Instant::now(),
            reason: String::new(),
            times: 0,
        });
        if e.times == 0 || e.until <= Instant::now() {
            tracing::warn!(
                plugin = version,
                calls = self.calls,
                secs = self.period.as_secs(),
                "plugin quarantined (at most {} call(s) at once): {why}",
                self.calls
            );
        }
        e.until = until;
        e.reason = why.chars().take(300).collect();
        e.times += 1;
    }

    /// Lets a call of `version` start: at once if it is not quarantined,
    /// else once one of its quarantine slots is free and `spacing` has
    /// passed since the last start, waiting at most `wait`. The permit is
    /// held for the whole call.
    pub(crate) async fn enter(&self, version: &str, wait: Duration) -> Result<Option<OwnedSemaphorePermit>, String> {
        let slots = {
            let all = self.entries();
            match all.get(version) {
                Some(e) if e.until > Instant::now() => e.slots.clone(),
                _ => return Ok(None),
            }
        };
        let deadline = Instant::now() + wait;
        let refused = || {
            format!(
                "`{version}` is quarantined after a limit or trap ({} call(s) at once, one every {:?}) and had no turn within {wait:?}",
                self.calls, self.spacing
            )
        };
        let permit = match tokio::time::timeout_at(deadline.into(), slots.acquire_owned()).await {
            Ok(Ok(permit)) => permit,
            _ => return Err(refused()),
        };
        // Spacing: one start per `spacing`, the slot held meanwhile so the
        // version's other calls queue behind it.
        let start_at = {
            let mut all = self.entries();
            let Some(e) = all.get_mut(version) else { return Ok(Some(permit)) };
            let at = e.next_start.max(Instant::now());
            if at > deadline {
                return Err(refused());
            }
            e.next_start = at + self.spacing;
            at
        };
        tokio::time::sleep_until(start_at.into()).await;
        Ok(Some(permit))
    }

    /// `version`'s quarantine, if one was ever imposed.
    pub(crate) fn state(&self, version: &str) -> Option<QuarantineState> {
        let all = self.entries();
        let e = all.get(version)?;
        Some(QuarantineState {
            remaining_ms: e.until.saturating_duration_since(Instant::now()).as_millis() as u64,
            reason: e.reason.clone(),
            times: e.times,
            calls: self.calls,
            spacing_ms: self.spacing.as_millis() as u64,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_quarantined_version_runs_one_call_at_a_time_until_it_ends() {
        let q = Quarantine::new(1, Duration::from_millis(300), Duration::ZERO);
        assert!(q.enter("p@1.0.0", Duration::from_millis(10)).await.unwrap().is_none(), "free before");
        q.impose("p@1.0.0", "deadline");
        let first = q.enter("p@1.0.0", Duration::from_millis(10)).await.unwrap();
        assert!(first.is_some());
        let second = q.enter("p@1.0.0", Duration::from_millis(20)).await;
        assert!(second.unwrap_err().contains("quarantined"), "the second waits, then gives up");
        assert!(q.enter("p@2.0.0", Duration::from_millis(10)).await.unwrap().is_none(), "other versions are free");
        drop(first);
        assert!(q.enter("p@1.0.0", Duration::from_millis(10)).await.unwrap().is_some(), "its turn");
        tokio::time::sleep(Duration::from_millis(320)).await;
        assert!(q.enter("p@1.0.0", Duration::from_millis(10)).await.unwrap().is_none(), "over");
        let s = q.state("p@1.0.0").unwrap();
        assert_eq!((s.remaining_ms, s.times, s.reason.as_str()), (0, 1, "deadline"));
    }

    #[tokio::test]
    async fn quarantined_calls_start_no_closer_than_the_spacing() {
        let q = Quarantine::new(4, Duration::from_secs(30), Duration::from_millis(100));
        q.impose("p@1.0.0", "output too large");
        let t = Instant::now();
        let a = q.enter("p@1.0.0", Duration::from_secs(1)).await.unwrap();
        let b = q.enter("p@1.0.0", Duration::from_secs(1)).await.unwrap();
        let c = q.enter("p@1.0.0", Duration::from_secs(1)).await.unwrap();
        assert!(a.is_some() && b.is_some() && c.is_some());
        assert!(t.elapsed() >= Duration::from_millis(195), "three starts, 100 ms apart: {:?}", t.elapsed());
        let late = q.enter("p@1.0.0", Duration::from_millis(50)).await;
        assert!(late.is_err(), "no turn within 50 ms: the next start is 100 ms away");
    }

    #[tokio::test]
    async fn zero_turns_it_off() {
        let q = Quarantine::new(0, Duration::from_secs(30), Duration::ZERO);
        q.impose("p@1.0.0", "trap");
        assert!(q.enter("p@1.0.0", Duration::from_millis(10)).await.unwrap().is_none());
        assert!(q.state("p@1.0.0").is_none());
    }
}
