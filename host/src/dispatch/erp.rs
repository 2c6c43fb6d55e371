//! ERP jobs: each PO's PUR_PurchaseOrder (Save → Submit → Audit, found again
//! by its marker field after a crash, so a retry resumes instead of saving
//! twice) and each shipment's write-back to the sales order (its own lines
//! and quantities, found again by its tracking number). Both run in
//! batches: a busy day cannot afford a request per step per document.

use std::collections::HashMap;

use super::{Dispatcher, Failure};
use crate::domain::OrderId;
use crate::domain::purchase::LineStatus;
use crate::erp::kingdee::KingdeeError;
use crate::erp::kingdee::documents::{
    PoDoc, PoLine, PoLink, PurchaseOrderSettings, ShipmentDoc, ShippedLine, write_back_shipments,
};
use crate::erp::kingdee::purchase_amend::{Amended, Synced, sync_purchase_orders};
use crate::store::{ErpPoDone, Job, StoreError};
use crate::util::now_ms;

impl From<&KingdeeError> for Failure {
    fn from(e: &KingdeeError) -> Failure {
        if e.is_transient() || matches!(e, KingdeeError::SessionLostDuringWrite(_)) {
            Failure::Transient { message: e.to_string(), retry_after: None }
        } else if matches!(e, KingdeeError::Credentials(_)) {
            Failure::Setup(e.to_string())
        } else {
            Failure::Setup(format!("the ERP refused: {e}"))
        }
    }
}

impl Dispatcher {
    /// A batch of ERP purchase-order jobs: each PO's document made, or —
    /// when it existed already — brought in line with the lines still
    /// bought, in a few batched requests (`sync_purchase_orders` orders the
    /// steps so a line can move between two POs of one batch); the jobs
    /// recorded together.
    pub(crate) async fn erp_purchase_orders(self: std::sync::Arc<Self>, jobs: Vec<Job>) {
        let now = now_ms();
        let Some(erp) = &self.erp else { return };
        let mut fresh: Vec<(Job, PoDoc)> = Vec::new();
        let mut made: Vec<(Job, PoDoc)> = Vec::new();
        let known = match self.erp_known(&jobs).await {
            Ok(k) => k,
            Err(e) => {
                let f = Failure::Transient { message: e.to_string(), retry_after: None };
                for job in &jobs {
                    if let Err(e) = self.fail(job, &f, now).await {
                        tracing::warn!(job = job.id, "recording an ERP job failed: {e}");
                    }
                }
                return;
            }
        };
        for job in jobs {
            match erp_doc(&job, &erp.source, &erp.purchase_orders, &known) {
                Ok(Some((doc, false))) => fresh.push((job, doc)),
                Ok(Some((doc, true))) => made.push((job, doc)),
                Ok(None) => {
                    if let Err(e) = self.store.complete_job(job.lease(), now).await {
                        tracing::warn!(job = job.id, "completing an ERP job failed: {e}");
                    }
                }
                Err(f) => {
                    if let Err(e) = self.fail(&job, &f, now).await {
                        tracing::warn!(job = job.id, "recording an ERP job failed: {e}");
                    }
                }
            }
        }
        if fresh.is_empty() && made.is_empty() {
            return;
        }
        let started = std::time::Instant::now();
        // Pushes and amendments both move the quantities the ERP counts as
        // bought on sales-order lines: a sales order another batch holds
        // waits for the next batch.
        let _claim = if erp.purchase_orders.link == PoLink::Push {
            let bills = fresh.iter().chain(&made).filter_map(|(_, d)| d.sale_bill_no.clone());
            let (claim, busy) = erp.po_push.claim(bills);
            for list in [&mut fresh, &mut made] {
                let (wait, go): (Vec<_>, Vec<_>) = std::mem::take(list)
                    .into_iter()
                    .partition(|(_, d)| d.sale_bill_no.as_ref().is_some_and(|b| busy.contains(b)));
                *list = go;
                for (job, _) in wait {
                    if let Err(e) = self.postpone(&job, now + 200, "another batch holds its sales order", now).await {
                        tracing::warn!(job = job.id, "postponing an ERP job failed: {e}");
                    }
                }
            }
            Some(claim)
        } else {
            None
        };
        let docs: Vec<(PoDoc, bool)> =
            fresh.iter().map(|(_, d)| (d.clone(), false)).chain(made.iter().map(|(_, d)| (d.clone(), true))).collect();
        let results = sync_purchase_orders(&erp.client, &erp.purchase_orders, &docs).await;
        let mut outcomes: Vec<(Job, PoDoc, Result<ErpPoDone, KingdeeError>)> = Vec::new();
        for ((job, doc), result) in fresh.into_iter().chain(made).zip(results) {
            let outcome = match result {
                Ok(Synced::Made(d) | Synced::Amended(Amended::Unchanged(d))) => Ok(ErpPoDone::Audited(d.number)),
                Ok(Synced::Amended(Amended::Amended(d))) => Ok(ErpPoDone::Amended(d.number)),
                Ok(Synced::Amended(Amended::Deleted(d))) => Ok(ErpPoDone::Deleted(d.number)),
                Ok(Synced::Amended(Amended::Missing)) if doc.lines.is_empty() => Ok(ErpPoDone::Deleted(String::new())),
                Ok(Synced::Amended(Amended::Missing)) => Err(KingdeeError::Protocol(format!(
                    "no PUR_PurchaseOrder carries the marker {}; was it deleted in the ERP?",
                    doc.po_number
                ))),
                Err(e) => Err(e),
            };
            outcomes.push((job, doc, outcome));
        }
        let now = now_ms();
        let failed = outcomes.iter().filter(|o| o.2.is_err()).count();
        let n = outcomes.len();
        // The first failure's reason, so a batch failing again and again
        // says why in the log and not only in each job's error history.
        let first_error = outcomes.iter().find_map(|o| o.2.as_ref().err()).map(|e| e.to_string()).unwrap_or_default();
        tracing::info!(
            pos = n,
            failed,
            first_error,
            ms = started.elapsed().as_millis() as u64,
            "ERP purchase-order batch"
        );
        let mut done = Vec::new();
        for (job, doc, outcome) in outcomes {
            match outcome {
                Ok(o) => done.push((job.lease(), doc.po_number, o)),
                Err(e) => {
                    if let Err(e) = self.fail(&job, &Failure::from(&e), now).await {
                        tracing::warn!(job = job.id, po = %doc.po_number, "recording an ERP failure failed: {e}");
                    }
                }
            }
        }
        if done.is_empty() {
            return;
        }
        match self.store.record_erp_pos(&done, now).await {
            Ok(held) => {
                let mut lost = Vec::new();
                for ((lease, po, _), held) in done.iter().zip(held) {
                    if !held {
                        tracing::info!(job = lease.id, po, "lease lost (re-armed or taken over); not recorded here");
                        lost.push(*lease);
                    }
                }
                if let Err(e) = self.store.release_rearmed(&self.owner, &lost, now_ms()).await {
                    tracing::warn!("releasing re-armed ERP jobs failed: {e}");
                }
            }
            // The documents exist; the retry finds them by their marker.
            Err(e) => tracing::warn!(n = done.len(), "recording ERP purchase orders failed: {e}"),
        }
    }

    /// What a batch of ERP jobs needs from the store, read together: a
    /// read per job per table would cost the batch hundreds of queries.
    async fn erp_known(&self, jobs: &[Job]) -> Result<ErpKnown, StoreError> {
        let keys: Vec<String> = jobs.iter().map(|j| j.key.clone()).collect();
        let pos = self.store.purchase_orders_by_number(&keys).await?;
        let mut orders: Vec<OrderId> = pos.values().map(|p| p.order).collect();
        orders.sort_unstable_by_key(|o| o.0);
        orders.dedup();
        // Headers only: the documents cite two header fields, and reading
        // each order's lines here was most of the batch's rows.
        let sales = self
            .store
            .orders_header(&orders)
            .await?
            .into_iter()
            .map(|(id, _, c)| (id, (c.source.to_string(), c.bill_no.to_string())))
            .collect();
        let mut profiles = HashMap::new();
        for p in pos.values() {
            if !profiles.contains_key(&p.supplier) {
                profiles.insert(p.supplier.clone(), self.store.supplier_profile(&p.supplier).await?);
            }
        }
        Ok(ErpKnown { pos, sales, profiles })
    }

    /// A batch of write-back jobs: each shipment's SAL_OUTSTOCK made (or
    /// found) in a few batched requests, the results recorded in one
    /// transaction.
    pub(crate) async fn write_backs(self: std::sync::Arc<Self>, jobs: Vec<Job>) {
        let now = now_ms();
        let Some(erp) = &self.erp else {
            for job in &jobs {
                let f = Failure::Setup("no [kingdee] section: nowhere to write back".into());
                if let Err(e) = self.fail(job, &f, now).await {
                    tracing::warn!(job = job.id, "recording a write-back failed: {e}");
                }
            }
            return;
        };
        let mut docs = Vec::new();
        let mut batch = Vec::new();
        let mut nothing_left = Vec::new();
        for job in jobs {
            match self.shipment_doc(&job).await {
                Ok(Some((id, doc, shipped_at))) => {
                    docs.push(doc);
                    batch.push((job, id, shipped_at));
                }
                Ok(None) => nothing_left.push(job),
                Err(f) => {
                    if let Err(e) = self.fail(&job, &f, now).await {
                        tracing::warn!(job = job.id, "recording a write-back failed: {e}");
                    }
                }
            }
        }
        for job in nothing_left {
            if let Err(e) = self.store.complete_job(job.lease(), now).await {
                tracing::warn!(job = job.id, "completing a write-back job failed: {e}");
            }
        }
        if docs.is_empty() {
            return;
        }
        let started = std::time::Instant::now();
        let results = write_back_shipments(&erp.client, &erp.write_back, &docs).await;
        let now = now_ms();
        let failed = results.iter().filter(|r| r.is_err()).count();
        tracing::info!(shipments = docs.len(), failed, ms = started.elapsed().as_millis() as u64, "write-back batch");
        let mut written = Vec::new();
        for ((job, id, shipped_at), result) in batch.iter().zip(results) {
            match result {
                Ok(d) => {
                    if let Some(m) = &self.metrics {
                        m.written_back((now - shipped_at) as f64 / 1000.0);
                    }
                    written.push((job.lease(), *id, d.number))
                }
                Err(e) => {
                    if let Err(e) = self.fail(job, &Failure::from(&e), now).await {
                        tracing::warn!(job = job.id, "recording a failed write-back failed: {e}");
                    }
                }
            }
        }
        if written.is_empty() {
            return;
        }
        match self.store.record_write_backs(&written, now).await {
            Ok(held) => {
                for ((lease, id, _), held) in written.iter().zip(held) {
                    if !held {
                        tracing::warn!(job = lease.id, shipment = id, "lease lost; another worker owns the write-back");
                    }
                }
            }
            // The documents exist; the retry finds them by tracking number.
            Err(e) => tracing::warn!(n = written.len(), "recording write-backs failed: {e}"),
        }
    }

    /// What a write-back job's shipment must say in the ERP, and when it
    /// shipped; `None` when there is nothing (left) to write.
    async fn shipment_doc(&self, job: &Job) -> Result<Option<(i64, ShipmentDoc, i64)>, Failure> {
        let store_err = |e: StoreError| Failure::Transient { message: e.to_string(), retry_after: None };
        let id: i64 = job.key.parse().map_err(|_| Failure::Hopeless(format!("bad shipment id `{}`", job.key)))?;
        let Some(sh) = self.store.shipment(id).await.map_err(store_err)? else { return Ok(None) };
        if sh.written_back_at.is_some() {
            return Ok(None);
        }
        let Ok(sale_fid) = sh.external_id.parse::<i64>() else {
            return Err(Failure::Hopeless(format!(
                "sales order {} has no Kingdee FID ({})",
                sh.bill_no, sh.external_id
            )));
        };
        let mut lines = Vec::new();
        for (line, quantity) in sh.quantities() {
            let Ok(entry_id) = line.parse::<i64>() else {
                return Err(Failure::Hopeless(format!("line `{line}` of {} is not a Kingdee entry id", sh.bill_no)));
            };
            lines.push(ShippedLine { entry_id, quantity });
        }
        let carrier = sh.parcels.first().map(|p| p.carrier.clone()).unwrap_or_default();
        let tracking: Vec<&str> = sh.parcels.iter().map(|p| p.tracking_number.as_str()).collect();
        let tracking = tracking.join(",");
        let doc = ShipmentDoc { sale_fid, sale_bill_no: sh.bill_no.clone(), lines, carrier, tracking };
        // Lag from the supplier's own date where it gave one, else from
        // when we heard (the lag of the write-back alone).
        Ok(Some((id, doc, sh.shipped_at.unwrap_or(sh.recorded_at))))
    }
}

/// Sales orders held by ERP purchase-order batches in this process.
#[derive(Debug, Default)]
pub struct BillsInFlight(std::sync::Mutex<std::collections::HashSet<String>>);

/// A batch's hold on its sales orders, released when dropped.
pub(crate) struct BillClaim<'a> {
    set: &'a BillsInFlight,
    bills: Vec<String>,
}

impl BillsInFlight {
    /// Holds every bill not already held; answers the hold and the bills
    /// another batch holds.
    pub(crate) fn claim(
        &self,
        bills: impl Iterator<Item = String>,
    ) -> (BillClaim<'_>, std::collections::HashSet<String>) {
        let mut held = Vec::new();
        let mut busy = std::collections::HashSet::new();
        if let Ok(mut set) = self.0.lock() {
            for b in bills {
                if held.contains(&b) {
                    continue;
                }
                if set.insert(b.clone()) {
                    held.push(b);
                } else {
                    busy.insert(b);
                }
            }
        }
        (BillClaim { set: self, bills: held }, busy)
    }
}

impl Drop for BillClaim<'_> {
    fn drop(&mut self) {
        if let Ok(mut set) = self.set.0.lock() {
            for b in &self.bills {
                set.remove(b);
            }
        }
    }
}

/// What the store says of a batch's POs: the POs, their sales orders'
/// source and bill number, their suppliers' profiles.
struct ErpKnown {
    pos: HashMap<String, crate::store::PoRecord>,
    sales: HashMap<OrderId, (String, String)>,
    profiles: HashMap<crate::domain::SupplierId, Option<crate::routing::catalog::SupplierProfile>>,
}

/// What the ERP document of a job's PO must say, and whether it was
/// made already (so it may need amending); `None` when there is nothing
/// to make or change.
fn erp_doc(
    job: &Job,
    source: &str,
    settings: &PurchaseOrderSettings,
    known: &ErpKnown,
) -> Result<Option<(PoDoc, bool)>, Failure> {
    let Some(po) = known.pos.get(&job.key).cloned() else { return Ok(None) };
    // A Kingdee order's PO is pushed from it, linked line by line.
    let sale_bill_no = match known.sales.get(&po.order) {
        Some((from, bill_no)) if from == source => Some(bill_no.clone()),
        _ => None,
    };
    let lines: Vec<PoLine> = po
        .lines
        .iter()
        .filter(|l| l.status != LineStatus::Rejected && l.status != LineStatus::Cancelled)
        .map(|l| PoLine {
            material: l.sku.clone(),
            quantity: l.quantity,
            unit_price: l.unit_cost,
            tax_rate: l.tax_rate,
            note: format!("{} line {}", po.po_number, l.line_id),
            sale_entry: sale_bill_no.as_ref().and_then(|_| l.line_id.parse().ok()),
        })
        .collect();
    let mut made = po.erp_bill_no.is_some();
    if !made && lines.is_empty() {
        // Nothing left to buy, and no document on record. But a claim
        // before this one (`fence` counts claims) may have made one and
        // lost its lease before recording it — its batch ran while the
        // supplier took the lines back, or its process died. Such a
        // document would go on drawing the sales order's quantity, and the
        // push of the lines' next PO would be refused for ever; only the
        // ERP can say, so it is looked up by marker and deleted if found.
        if job.fence <= 1 {
            return Ok(None);
        }
        made = true;
    }
    let profile = known.profiles.get(&po.supplier).cloned().flatten();
    let supplier = match &profile {
        Some(p) if !p.erp.number.is_empty() => p.erp.number.clone(),
        _ => po.supplier.to_string(),
    };
    let purchase_org =
        profile.as_ref().and_then(|p| p.erp.purchase_org.clone()).unwrap_or_else(|| settings.purchase_org.clone());
    let currency = settings.currency_number(&po.currency).ok_or_else(|| {
        Failure::Setup(format!(
            "currency {} of {} has no Kingdee currency number ([kingdee.purchase_orders] currency_numbers)",
            po.currency, po.supplier
        ))
    })?;
    Ok(Some((PoDoc { po_number: po.po_number, sale_bill_no, supplier, purchase_org, currency, lines }, made)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::SupplierId;
    use crate::domain::purchase::PoState;
    use crate::store::{JobKind, PoLineRecord, PoRecord};
    use rust_decimal::Decimal;

    fn known(statuses: &[LineStatus], bill_no: Option<&str>) -> ErpKnown {
        let po = PoRecord {
            po_number: "PO7-HZ-1".into(),
            order: OrderId(7),
            supplier: SupplierId::from("HZ".to_string()),
            attempt: 1,
            state: PoState::Rejected,
            state_reason: String::new(),
            currency: "CNY".into(),
            supplier_ref: None,
            erp_step: "none".into(),
            erp_bill_no: bill_no.map(str::to_string),
            expected_ship_by: None,
            dispatched_at: None,
            acknowledged_at: None,
            shipped_at: None,
            created_at: 0,
            updated_at: 0,
            lines: statuses
                .iter()
                .enumerate()
                .map(|(i, st)| PoLineRecord {
                    line_id: format!("{}", 10 * (i + 1)),
                    sku: "SKU".into(),
                    supplier_sku: "S".into(),
                    quantity: Decimal::ONE,
                    unit_cost: Decimal::TEN,
                    tax_rate: Decimal::ZERO,
                    status: *st,
                    status_reason: String::new(),
                    shipped: Decimal::ZERO,
                })
                .collect(),
        };
        ErpKnown {
            sales: [(OrderId(7), ("kingdee".to_string(), "XSDD007".to_string()))].into(),
            pos: [(po.po_number.clone(), po)].into(),
            profiles: HashMap::new(),
        }
    }

    fn job(fence: i64) -> Job {
        Job {
            id: 1,
            kind: JobKind::ErpPo,
            key: "PO7-HZ-1".into(),
            supplier: SupplierId::from("HZ".to_string()),
            attempts: 0,
            deadline_at: i64::MAX,
            fence,
            errors: Vec::new(),
        }
    }

    fn doc(fence: i64, k: &ErpKnown) -> Option<(PoDoc, bool)> {
        erp_doc(&job(fence), "kingdee", &PurchaseOrderSettings::default(), k).unwrap_or_else(|f| panic!("{f:?}"))
    }

    #[test]
    fn a_po_with_lines_is_made_or_amended_by_what_the_store_knows() {
        let (d, made) = doc(1, &known(&[LineStatus::Accepted, LineStatus::Rejected], None)).unwrap();
        assert!(!made);
        assert_eq!(d.lines.len(), 1, "the rejected line is not bought");
        assert_eq!(d.sale_bill_no.as_deref(), Some("XSDD007"));
        let (_, made) = doc(1, &known(&[LineStatus::Accepted], Some("CGDD1"))).unwrap();
        assert!(made);
    }

    #[test]
    fn nothing_to_buy_on_a_first_claim_is_nothing_to_do() {
        assert!(doc(1, &known(&[LineStatus::Rejected, LineStatus::Cancelled], None)).is_none());
    }

    /// The race CI found: a batch pushed the document, the supplier took
    /// every line back meanwhile (re-arming the job, so the batch lost its
    /// lease and recorded nothing). The next claim must look in the ERP,
    /// not trust the store's "no document".
    #[test]
    fn nothing_to_buy_after_an_earlier_claim_is_looked_up_in_the_erp() {
        let (d, made) = doc(2, &known(&[LineStatus::Rejected, LineStatus::Cancelled], None)).unwrap();
        assert!(made, "amended: found by marker and deleted, or found missing");
        assert!(d.lines.is_empty());
    }
}
