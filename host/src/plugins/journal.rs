//! What plugins said and what went wrong in their calls, kept in memory for
//! `daifa plugin logs` and the last errors in `daifa plugin list`: a bounded
//! ring per plugin name (every version), so a chatty plugin can only push
//! out its own lines. The tracing log stays the durable record; this is the
//! author's and operator's quick look.
//!
//! Owns: the rings and their sequence numbers.
//! Calls: nothing.

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// Lines kept per plugin name.
pub const LINES_PER_PLUGIN: usize = 1000;
/// Errors kept per plugin version for `plugin list`.
pub const ERRORS_PER_VERSION: usize = 5;
/// Longest message kept (a line beyond it is cut, and says so).
const MAX_MESSAGE: usize = 2000;

/// One line of a plugin's journal.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct JournalEntry {
    /// Increases across all plugins of the host; `after=` pages on it.
    pub seq: u64,
    pub at_ms: i64,
    pub version: String,
    /// `trace`…`error` for the plugin's own log lines; `call-error` for a
    /// failed call, written by the host.
    pub level: String,
    /// The operation of a failed call (`submit-order`, ...); empty for log lines.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub operation: String,
    /// With the binding's secret config values replaced by `[redacted]`.
    pub message: String,
}

#[derive(Default)]
struct Rings {
    lines: BTreeMap<String, VecDeque<JournalEntry>>,
    errors: BTreeMap<String, VecDeque<JournalEntry>>,
}

/// The journals of every plugin of one runtime (cheap to clone).
#[derive(Clone, Default)]
pub struct Journal {
    seq: Arc<AtomicU64>,
    rings: Arc<Mutex<Rings>>,
}

impl Journal {
    /// Appends a plugin's own log line.
    pub fn log(&self, plugin: &str, version: &str, level: &str, message: String) {
        let entry = self.entry(version, level, "", message);
        let Ok(mut r) = self.rings.lock() else { return };
        push(r.lines.entry(plugin.to_string()).or_default(), entry, LINES_PER_PLUGIN);
    }

    /// Records a failed call: in the plugin's lines and in its version's
    /// last errors.
    pub fn call_error(&self, plugin: &str, version: &str, operation: &str, message: String) {
        let entry = self.entry(version, "call-error", operation, message);
        let Ok(mut r) = self.rings.lock() else { return };
        push(r.errors.entry(format!("{plugin}@{version}")).or_default(), entry.clone(), ERRORS_PER_VERSION);
        push(r.lines.entry(plugin.to_string()).or_default(), entry, LINES_PER_PLUGIN);
    }

    /// The plugin's lines after `after` (oldest first), at most `limit`.
    pub fn lines(&self, plugin: &str, after: u64, limit: usize) -> Vec<JournalEntry> {
        let Ok(r) = self.rings.lock() else { return Vec::new() };
        r.lines
            .get(plugin)
            .map(|ring| ring.iter().filter(|e| e.seq > after).take(limit).cloned().collect())
            .unwrap_or_default()
    }

    /// The last errors of `plugin@version`, newest last.
    pub fn last_errors(&self, id: &str) -> Vec<JournalEntry> {
        let Ok(r) = self.rings.lock() else { return Vec::new() };
        r.errors.get(id).map(|ring| ring.iter().cloned().collect()).unwrap_or_default()
    }

    /// The sequence number of the newest entry of any plugin.
    pub fn latest_seq(&self) -> u64 {
        self.seq.load(Ordering::Relaxed)
    }

    fn entry(&self, version: &str, level: &str, operation: &str, mut message: String) -> JournalEntry {
        if message.len() > MAX_MESSAGE {
            let mut cut = MAX_MESSAGE;
            while !message.is_char_boundary(cut) {
                cut -= 1;
            }
            message.truncate(cut);
            message.push_str(" …[cut]");
        }
        JournalEntry {
            seq: self.seq.fetch_add(1, Ordering::Relaxed) + 1,
            at_ms: crate::util::now_ms(),
            version: version.to_string(),
            level: level.to_string(),
            operation: operation.to_string(),
            message,
        }
    }
}

fn push(ring: &mut VecDeque<JournalEntry>, e: JournalEntry, cap: usize) {
    if ring.len() == cap {
        ring.pop_front();
    }
    ring.push_back(e);
}

/// `text` with each of `secrets` replaced by `[redacted]`.
pub fn redact(text: &str, secrets: &[String]) -> String {
    let mut out = text.to_string();
    for s in secrets {
        out = out.replace(s.as_str(), "[redacted]");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rings_are_per_plugin_and_bounded() {
        let j = Journal::default();
        for i in 0..(LINES_PER_PLUGIN + 10) {
            j.log("chatty", "1.0.0", "info", format!("line {i}"));
        }
        j.log("quiet", "0.1.0", "warn", "one".into());
        for i in 0..7 {
            j.call_error("quiet", "0.1.0", "submit-order", format!("err {i}"));
        }
        let chatty = j.lines("chatty", 0, usize::MAX);
        assert_eq!(chatty.len(), LINES_PER_PLUGIN);
        assert_eq!(chatty[0].message, "line 10");
        let quiet = j.lines("quiet", 0, usize::MAX);
        assert_eq!(quiet.len(), 8, "a chatty plugin cannot push out another's lines");
        let errs = j.last_errors("quiet@0.1.0");
        assert_eq!(
            errs.iter().map(|e| e.message.as_str()).collect::<Vec<_>>(),
            ["err 2", "err 3", "err 4", "err 5", "err 6"]
        );
        let after = quiet[5].seq;
        assert_eq!(j.lines("quiet", after, 10).len(), 2);
        assert_eq!(j.latest_seq(), quiet.last().unwrap().seq);
    }

    #[test]
    fn long_messages_are_cut_on_a_char_boundary() {
        let j = Journal::default();
        j.log("p", "1", "info", "中".repeat(1000));
        let m = &j.lines("p", 0, 1)[0].message;
        assert!(m.ends_with("…[cut]") && m.len() < MAX_MESSAGE + 20);
    }

    #[test]
    fn redaction() {
        assert_eq!(redact("token abc123 here", &["abc123".into()]), "token [redacted] here");
    }
}
