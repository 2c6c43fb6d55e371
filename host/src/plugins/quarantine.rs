//! Quarantine of misbehaving plugin versions. A call that hits a sandbox
//! limit (deadline, memory, fuel, stack, output size) or traps puts its
//! version in quarantine for `[runtime] quarantine_ms`: meanwhile that
//! version runs at most `quarantine_calls` calls at once, the others wait
//! their turn within their own deadline. The limits already stop each such
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
}

/// The quarantine register of one runtime.
pub(crate) struct Quarantine {
    calls: u32,
    period: Duration,
    entries: Mutex<HashMap<String, Entry>>,
}

impl Quarantine {
    /// `calls` at once for `period` after a violation; either 0 turns it off.
    pub(crate) fn new(calls: u32, period: Duration) -> Quarantine {
        Quarantine { calls, period, entries: Mutex::new(HashMap::new()) }
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
    /// else once one of its quarantine slots is free, waiting at most
    /// `wait`. The permit is held for the whole call.
    pub(crate) async fn enter(&self, version: &str, wait: Duration) -> Result<Option<OwnedSemaphorePermit>, String> {
        let slots = {
            let all = self.entries();
            match all.get(version) {
                Some(e) if e.until > Instant::now() => e.slots.clone(),
                _ => return Ok(None),
            }
        };
        match tokio::time::timeout(wait, slots.acquire_owned()).await {
            Ok(Ok(permit)) => Ok(Some(permit)),
            _ => Err(format!(
                "`{version}` is quarantined after a limit or trap and ran its {} call(s) for longer than {wait:?}",
                self.calls
            )),
        }
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
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_quarantined_version_runs_one_call_at_a_time_until_it_ends() {
        let q = Quarantine::new(1, Duration::from_millis(300));
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
    async fn zero_turns_it_off() {
        let q = Quarantine::new(0, Duration::from_secs(30));
        q.impose("p@1.0.0", "trap");
        assert!(q.enter("p@1.0.0", Duration::from_millis(10)).await.unwrap().is_none());
        assert!(q.state("p@1.0.0").is_none());
    }
}
