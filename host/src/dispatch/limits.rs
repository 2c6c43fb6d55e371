//! Per-supplier concurrency and rate limits on this host. Concurrency is a
//! semaphore per supplier (resized when its connection changes); the rate
//! is a spacing between call starts (`1 / rate_per_sec`), so a supplier
//! never sees a burst above its agreed rate from one host.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::domain::SupplierId;

struct SupplierLimit {
    max: u32,
    sem: Arc<Semaphore>,
    next_start: i64,
}

/// Every supplier's limits on this host.
#[derive(Default)]
pub(crate) struct Limits {
    inner: Mutex<HashMap<SupplierId, SupplierLimit>>,
}

impl Limits {
    fn semaphore(&self, supplier: &SupplierId, max: u32) -> Option<Arc<Semaphore>> {
        let mut all = self.inner.lock().ok()?;
        let l = all.entry(supplier.clone()).or_insert_with(|| SupplierLimit {
            max,
            sem: Arc::new(Semaphore::new(max.max(1) as usize)),
            next_start: 0,
        });
        if l.max != max {
            // Calls in flight keep their permits from the old semaphore.
            l.max = max;
            l.sem = Arc::new(Semaphore::new(max.max(1) as usize));
        }
        Some(l.sem.clone())
    }

    /// Waits up to `wait` for one of the supplier's `max` call slots.
    pub(crate) async fn permit(
        &self,
        supplier: &SupplierId,
        max: u32,
        wait: std::time::Duration,
    ) -> Option<OwnedSemaphorePermit> {
        let sem = self.semaphore(supplier, max)?;
        tokio::time::timeout(wait, sem.acquire_owned()).await.ok()?.ok()
    }

    /// Takes a start slot under `rate_per_sec` (0 = unlimited), or says when
    /// the next one is free.
    pub(crate) fn start(&self, supplier: &SupplierId, rate_per_sec: u32, now: i64) -> Result<(), i64> {
        if rate_per_sec == 0 {
            return Ok(());
        }
        let Ok(mut all) = self.inner.lock() else { return Ok(()) };
        let Some(l) = all.get_mut(supplier) else { return Ok(()) };
        if l.next_start > now {
            return Err(l.next_start);
        }
        l.next_start = now + (1000 / i64::from(rate_per_sec)).max(1);
        Ok(())
    }
}
