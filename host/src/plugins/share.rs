//! Call slots shared fairly between plugins. Every call needs one of the
//! instance pool's slots; a plugin may use idle slots, but never more than
//! its share (`[runtime] max_calls_per_plugin`), and when slots are scarce a
//! freed slot goes to the waiting plugin that holds the fewest. So a plugin
//! whose calls sleep cannot take every slot, and a caller that still waits
//! too long fails naming the plugin that holds the slots, as *its* overload,
//! never as an error of the plugin it was calling.
//!
//! Owns: the slot counts, per plugin name (all versions and connections of a
//! plugin count as one). Calls: nothing.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::oneshot;

/// Counters of one plugin's use of the shared slots.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct ShareSnapshot {
    /// Slots it holds now.
    pub in_use: u32,
    /// Its calls waiting for a slot now.
    pub waiting: u32,
    /// Its calls that failed for want of a slot.
    pub crowded_out: u64,
    /// Other plugins' calls that failed while it held the most slots.
    pub crowded_others: u64,
}

/// A call that got no slot in time, and who held them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Crowded {
    /// The plugin holding the most slots when the wait ended.
    pub holder: String,
    pub holder_slots: u32,
    pub total: u32,
}

struct Waiter {
    id: u64,
    plugin: Arc<str>,
    tx: oneshot::Sender<()>,
}

#[derive(Default)]
struct State {
    free: u32,
    next_id: u64,
    waiters: VecDeque<Waiter>,
    plugins: BTreeMap<Arc<str>, ShareSnapshot>,
}

/// The shared slots. Cheap to clone.
#[derive(Clone)]
pub struct CallShare {
    inner: Arc<Inner>,
}

struct Inner {
    total: u32,
    per_plugin: u32,
    state: Mutex<State>,
}

impl std::fmt::Debug for CallShare {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CallShare").field("limits", &self.limits()).finish()
    }
}

/// One held slot; given back on drop.
pub struct Slot {
    share: CallShare,
    plugin: Arc<str>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.share.release(&self.plugin);
    }
}

/// A call waiting for a slot. If the call is dropped while it waits, the
/// guard takes it out of the queue, or gives back a slot handed to it.
struct Waiting {
    share: CallShare,
    id: u64,
    plugin: Arc<str>,
    rx: oneshot::Receiver<()>,
    done: bool,
}

impl Drop for Waiting {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        let mut st = self.share.state();
        if let Some(e) = st.plugins.get_mut(&self.plugin) {
            e.waiting = e.waiting.saturating_sub(1);
        }
        if let Some(pos) = st.waiters.iter().position(|w| w.id == self.id) {
            st.waiters.remove(pos);
        } else if self.rx.try_recv().is_ok() {
            self.share.release_locked(&mut st, &self.plugin);
        }
    }
}

impl CallShare {
    /// `total` slots; one plugin holds at most `per_plugin` of them.
    pub fn new(total: u32, per_plugin: u32) -> CallShare {
        let total = total.max(1);
        CallShare {
            inner: Arc::new(Inner {
                total,
                per_plugin: per_plugin.clamp(1, total),
                state: Mutex::new(State { free: total, ..State::default() }),
            }),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        // Nothing panics while holding this lock; recover the data if it did.
        self.inner.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A slot for a call of `plugin`, waiting at most `wait`.
    pub async fn acquire(&self, plugin: &str, wait: Duration) -> Result<Slot, Crowded> {
        let mut waiting = {
            let mut st = self.state();
            let key: Arc<str> = match st.plugins.get_key_value(plugin) {
                Some((k, _)) => k.clone(),
                None => Arc::from(plugin),
            };
            let in_use = st.plugins.get(&key).map_or(0, |s| s.in_use);
            // While slots are free no waiter could take one (a freed slot goes
            // straight to an eligible waiter), so taking it skips no one.
            if in_use < self.inner.per_plugin && st.free > 0 {
                st.free -= 1;
                st.plugins.entry(key.clone()).or_default().in_use += 1;
                return Ok(Slot { share: self.clone(), plugin: key });
            }
            st.plugins.entry(key.clone()).or_default().waiting += 1;
            let (tx, rx) = oneshot::channel();
            let id = st.next_id;
            st.next_id += 1;
            st.waiters.push_back(Waiter { id, plugin: key.clone(), tx });
            Waiting { share: self.clone(), id, plugin: key, rx, done: false }
        };
        let timed_out = tokio::time::timeout(wait, &mut waiting.rx).await.is_err();
        let mut st = self.state();
        waiting.done = true;
        let plugin = waiting.plugin.clone();
        if let Some(e) = st.plugins.get_mut(&plugin) {
            e.waiting = e.waiting.saturating_sub(1);
        }
        let queued = st.waiters.iter().position(|w| w.id == waiting.id);
        // Out of the queue means handed a slot (already counted as ours),
        // even if the hand-over and the timeout came together.
        let Some(pos) = queued.filter(|_| timed_out) else {
            return Ok(Slot { share: self.clone(), plugin });
        };
        st.waiters.remove(pos);
        // Usually another plugin; itself when it is at its own share.
        let (holder, holder_slots) = st
            .plugins
            .iter()
            .max_by_key(|(k, s)| (s.in_use, **k != plugin))
            .map(|(k, s)| (k.to_string(), s.in_use))
            .unwrap_or_else(|| (plugin.to_string(), 0));
        if let Some(e) = st.plugins.get_mut(&plugin) {
            e.crowded_out += 1;
        }
        if let Some(e) = st.plugins.get_mut(holder.as_str()) {
            e.crowded_others += 1;
        }
        Err(Crowded { holder, holder_slots, total: self.inner.total })
    }

    fn release(&self, plugin: &Arc<str>) {
        let mut st = self.state();
        self.release_locked(&mut st, plugin);
    }

    fn release_locked(&self, st: &mut State, plugin: &Arc<str>) {
        if let Some(e) = st.plugins.get_mut(plugin) {
            e.in_use = e.in_use.saturating_sub(1);
        }
        loop {
            // The eligible waiter of the plugin holding the fewest slots;
            // the oldest such waiter on a tie.
            let per_plugin = self.inner.per_plugin;
            let pick = st
                .waiters
                .iter()
                .enumerate()
                .filter_map(|(i, w)| {
                    let used = st.plugins.get(&w.plugin).map_or(0, |s| s.in_use);
                    (used < per_plugin).then_some((used, i))
                })
                .min();
            let Some(w) = pick.and_then(|(_, i)| st.waiters.remove(i)) else {
                st.free += 1;
                return;
            };
            st.plugins.entry(w.plugin.clone()).or_default().in_use += 1;
            if w.tx.send(()).is_ok() {
                return;
            }
            // That waiter's call was dropped: undo and try the next.
            if let Some(e) = st.plugins.get_mut(&w.plugin) {
                e.in_use = e.in_use.saturating_sub(1);
            }
        }
    }

    /// One plugin's counters.
    pub fn snapshot(&self, plugin: &str) -> ShareSnapshot {
        self.state().plugins.get(plugin).cloned().unwrap_or_default()
    }

    /// Every plugin's counters.
    pub fn snapshot_all(&self) -> Vec<(String, ShareSnapshot)> {
        self.state().plugins.iter().map(|(k, v)| (k.to_string(), v.clone())).collect()
    }

    /// Slots in all, and the most one plugin may hold.
    pub fn limits(&self) -> (u32, u32) {
        (self.inner.total, self.inner.per_plugin)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LONG: Duration = Duration::from_secs(5);

    #[tokio::test]
    async fn idle_slots_are_used_up_to_the_share() {
        let share = CallShare::new(4, 3);
        let held: Vec<Slot> = futures::future::try_join_all((0..3).map(|_| share.acquire("hog", LONG))).await.unwrap();
        assert_eq!(share.snapshot("hog").in_use, 3);
        // A fourth call of the same plugin waits although a slot is free...
        let e = share.acquire("hog", Duration::from_millis(20)).await.err().unwrap();
        assert_eq!(e.holder, "hog");
        // ...and another plugin takes it at once.
        let other = share.acquire("good", Duration::from_millis(1)).await.unwrap();
        drop(other);
        drop(held);
        assert_eq!(share.snapshot("hog").in_use, 0);
    }

    #[tokio::test]
    async fn a_freed_slot_goes_to_the_plugin_holding_fewest() {
        let share = CallShare::new(2, 2);
        let a1 = share.acquire("a", LONG).await.unwrap();
        let b1 = share.acquire("b", LONG).await.unwrap();
        // `a` asks first, but holds as many as `b`; then `c`, holding none.
        let sh = share.clone();
        let a2 = tokio::spawn(async move { sh.acquire("a", LONG).await.map(|_| "a") });
        tokio::time::sleep(Duration::from_millis(20)).await;
        let sh = share.clone();
        let c = tokio::spawn(async move {
            let s = sh.acquire("c", LONG).await;
            tokio::time::sleep(Duration::from_millis(50)).await;
            s.map(|_| "c")
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        drop(b1);
        assert_eq!(c.await.unwrap().unwrap(), "c");
        drop(a1);
        assert_eq!(a2.await.unwrap().unwrap(), "a");
    }

    #[tokio::test]
    async fn the_caller_that_waits_too_long_names_the_holder() {
        let share = CallShare::new(3, 2);
        let _h: Vec<Slot> = vec![
            share.acquire("hog", LONG).await.unwrap(),
            share.acquire("hog", LONG).await.unwrap(),
            share.acquire("mid", LONG).await.unwrap(),
        ];
        let e = share.acquire("victim", Duration::from_millis(20)).await.err().unwrap();
        assert_eq!(e, Crowded { holder: "hog".into(), holder_slots: 2, total: 3 });
        assert_eq!(share.snapshot("victim").crowded_out, 1);
        assert_eq!(share.snapshot("hog").crowded_others, 1);
        assert_eq!(share.snapshot("victim").waiting, 0);
    }

    #[tokio::test]
    async fn a_slot_handed_to_a_caller_that_gave_up_is_not_lost() {
        let share = CallShare::new(1, 1);
        for _ in 0..200 {
            let held = share.acquire("a", LONG).await.unwrap();
            let sh = share.clone();
            let waiter = tokio::spawn(async move { sh.acquire("b", Duration::from_micros(50)).await.is_ok() });
            tokio::task::yield_now().await;
            drop(held);
            let _ = waiter.await;
            // Whatever happened, the one slot is free again.
            drop(share.acquire("c", Duration::from_millis(100)).await.unwrap());
            // The same for a waiting call that is dropped (its task aborted).
            let held = share.acquire("a", LONG).await.unwrap();
            let sh = share.clone();
            let waiter = tokio::spawn(async move { sh.acquire("b", LONG).await.map(|_| ()) });
            tokio::task::yield_now().await;
            drop(held);
            waiter.abort();
            let _ = waiter.await;
            drop(share.acquire("c", Duration::from_millis(100)).await.unwrap());
            assert_eq!(share.snapshot("b").waiting, 0);
        }
        assert_eq!(share.snapshot("c").in_use, 0);
    }
}
