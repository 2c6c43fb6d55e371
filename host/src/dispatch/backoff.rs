//! Exponential backoff with full jitter (AWS architecture blog, "Exponential
//! Backoff And Jitter"): the n-th retry waits a uniformly random time in
//! `[0, min(cap, base · 2ⁿ))`, which spreads a crowd of retries instead of
//! sending them back in waves; a supplier's `retry-after` is a floor.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Retry timing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Backoff {
    pub base_ms: i64,
    pub cap_ms: i64,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff { base_ms: 1_000, cap_ms: 300_000 }
    }
}

impl Backoff {
    /// How long to wait before attempt `attempts + 1`.
    pub fn delay_ms(&self, attempts: u32, retry_after: Option<Duration>) -> i64 {
        let ceiling = self.base_ms.max(1).saturating_mul(1i64 << attempts.min(30)).min(self.cap_ms.max(1));
        let jittered = fastrand::i64(0..ceiling.max(1));
        let floor = retry_after.map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
        jittered.max(floor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_within_the_cap_and_honours_retry_after() {
        let b = Backoff { base_ms: 100, cap_ms: 1_000 };
        for attempt in 0..40 {
            let d = b.delay_ms(attempt, None);
            let ceiling = (100i64 << attempt.min(30)).min(1_000);
            assert!((0..ceiling).contains(&d), "attempt {attempt}: {d}");
        }
        assert!(b.delay_ms(0, Some(Duration::from_secs(5))) >= 5_000);
        // Jitter: not every draw is the same.
        let draws: std::collections::HashSet<i64> = (0..50).map(|_| b.delay_ms(5, None)).collect();
        assert!(draws.len() > 10);
    }
}
