//! Group commit of submit answers. Each answer needs its own transaction
//! semantics (its lease checked, its PO and order moved together), but one
//! transaction per answer caps a busy dispatcher at the store's commit
//! rate. Workers hand their answers to one committer, which writes
//! whatever has queued up in a single transaction and tells each worker
//! its own result.
//!
//! A worker does not wait for that transaction: its job stays leased until
//! the answer is written, so nobody can claim it again meanwhile, and the
//! worker's slot goes to the next call at once. Waiting held 256 workers on
//! commits of ~50 answers each; without the wait, answers queue up while a
//! commit runs and the next one writes hundreds (measured per-answer cost
//! is mostly per statement, not per row). `pending` counts answers not yet
//! written, so a draining dispatcher can wait for them.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::sync::{mpsc, oneshot};

use crate::store::{Applied, Lease, Store, StoreError, SubmitAnswer};
use crate::util::now_ms;

/// Answers written per transaction at most.
const MAX_BATCH: usize = 256;

struct Item {
    lease: Lease,
    po_number: String,
    answer: SubmitAnswer,
    reply: oneshot::Sender<Result<Applied, StoreError>>,
}

/// The committer: started on first use, stopped when the dispatcher (the
/// last sender) is dropped.
pub(crate) struct SubmitCommits {
    store: Store,
    tx: OnceLock<mpsc::Sender<Item>>,
    /// Answers queued or being followed up and not finished yet.
    pending: AtomicUsize,
}

/// An answer handed to the committer: resolves to what recording it did.
pub(crate) type Queued = oneshot::Receiver<Result<Applied, StoreError>>;

impl SubmitCommits {
    pub(crate) fn new(store: Store) -> SubmitCommits {
        SubmitCommits { store, tx: OnceLock::new(), pending: AtomicUsize::new(0) }
    }

    /// Hands one answer to the committer and returns once it is queued
    /// (waiting only when the queue is full). The caller must call
    /// [`SubmitCommits::finished`] once it is done with the result.
    pub(crate) async fn queue(&self, lease: Lease, po_number: &str, answer: SubmitAnswer) -> Queued {
        self.pending.fetch_add(1, Ordering::SeqCst);
        let tx = self.tx.get_or_init(|| {
            let (tx, rx) = mpsc::channel(MAX_BATCH * 4);
            tokio::spawn(run(self.store.clone(), rx));
            tx
        });
        let (reply, answer_rx) = oneshot::channel();
        let item = Item { lease, po_number: po_number.to_string(), answer, reply };
        if let Err(mpsc::error::SendError(item)) = tx.send(item).await {
            // The committer is gone (shutting down): write it alone.
            let r = self.store.record_submit(item.lease, &item.po_number, &item.answer, now_ms()).await;
            let _ = item.reply.send(r);
        }
        answer_rx
    }

    /// One queued answer fully handled.
    pub(crate) fn finished(&self) {
        self.pending.fetch_sub(1, Ordering::SeqCst);
    }

    /// Waits until every queued answer is written and followed up, or
    /// `limit` passes.
    pub(crate) async fn drain(&self, limit: std::time::Duration) {
        let until = tokio::time::Instant::now() + limit;
        while self.pending.load(Ordering::SeqCst) > 0 && tokio::time::Instant::now() < until {
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    }
}

async fn run(store: Store, mut rx: mpsc::Receiver<Item>) {
    let mut batch: Vec<Item> = Vec::with_capacity(MAX_BATCH);
    while let Some(first) = rx.recv().await {
        batch.push(first);
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(item) => batch.push(item),
                Err(_) => break,
            }
        }
        let items: Vec<(Lease, String, SubmitAnswer)> =
            batch.iter().map(|i| (i.lease, i.po_number.clone(), i.answer.clone())).collect();
        match store.record_submits(&items, now_ms()).await {
            Ok(results) => {
                for (item, r) in batch.drain(..).zip(results) {
                    let _ = item.reply.send(r);
                }
            }
            // One bad answer must not hold up the others: each alone, so
            // the error lands on the one that caused it.
            Err(e) => {
                tracing::warn!(n = batch.len(), "a batch of submit answers failed ({e}); recording one by one");
                for item in batch.drain(..) {
                    let r = store.record_submit(item.lease, &item.po_number, &item.answer, now_ms()).await;
                    let _ = item.reply.send(r);
                }
            }
        }
    }
}
