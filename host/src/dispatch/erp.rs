//! ERP jobs: each PO's PUR_PurchaseOrder (Save → Submit → Audit, found again
//! by its marker field after a crash, so a retry resumes instead of saving
//! twice) and each shipment's write-back to the sales order (its own lines
//! and quantities, found again by its tracking number).

use super::{Dispatcher, Failure};
use crate::domain::purchase::LineStatus;
use crate::erp::kingdee::KingdeeError;
use crate::erp::kingdee::documents::{PoDoc, PoLine, ShippedLine, ensure_purchase_orders, write_back_shipment};
use crate::store::{Job, StoreError};
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
    /// A batch of ERP purchase-order jobs: each PO's document made (or
    /// found) in a few batched requests, each job recorded on its own.
    pub(crate) async fn erp_purchase_orders(self: std::sync::Arc<Self>, jobs: Vec<Job>) {
        let now = now_ms();
        let Some(erp) = &self.erp else { return };
        let mut docs = Vec::new();
        let mut batch = Vec::new();
        for job in jobs {
            match self.erp_doc(&job, erp).await {
                Ok(Some(doc)) => {
                    docs.push(doc);
                    batch.push(job);
                }
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
        if docs.is_empty() {
            return;
        }
        let results = ensure_purchase_orders(&erp.client, &erp.purchase_orders, &docs).await;
        let now = now_ms();
        for ((job, doc), result) in batch.iter().zip(&docs).zip(results) {
            let r = match result {
                Ok(d) => self.store.record_erp_po(job.lease(), &doc.po_number, &d.number, now).await,
                Err(e) => self.fail(job, &Failure::from(&e), now).await,
            };
            if let Err(e) = r {
                tracing::warn!(job = job.id, po = %doc.po_number, "recording an ERP purchase order failed: {e}");
            }
        }
    }

    /// What the ERP document of a job's PO must say; `None` when there is
    /// nothing (left) to create.
    async fn erp_doc(&self, job: &Job, erp: &super::ErpTarget) -> Result<Option<PoDoc>, Failure> {
        let store_err = |e: crate::store::StoreError| Failure::Transient { message: e.to_string(), retry_after: None };
        let Some(po) = self.store.purchase_order(&job.key).await.map_err(store_err)? else { return Ok(None) };
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
            })
            .collect();
        if po.erp_bill_no.is_some() || lines.is_empty() {
            return Ok(None);
        }
        let profile = self.store.supplier_profile(&po.supplier).await.map_err(store_err)?;
        let supplier = match &profile {
            Some(p) if !p.erp.number.is_empty() => p.erp.number.clone(),
            _ => po.supplier.to_string(),
        };
        let purchase_org = profile
            .as_ref()
            .and_then(|p| p.erp.purchase_org.clone())
            .unwrap_or_else(|| erp.purchase_orders.purchase_org.clone());
        let currency = erp.purchase_orders.currency_number(&po.currency).ok_or_else(|| {
            Failure::Setup(format!(
                "currency {} of {} has no Kingdee currency number ([kingdee.purchase_orders] currency_numbers)",
                po.currency, po.supplier
            ))
        })?;
        Ok(Some(PoDoc { po_number: po.po_number, supplier, purchase_org, currency, lines }))
    }

    pub(crate) async fn write_back(&self, job: &Job) -> Result<(), StoreError> {
        let now = now_ms();
        let Some(erp) = &self.erp else {
            return self.fail(job, &Failure::Setup("no [kingdee] section: nowhere to write back".into()), now).await;
        };
        let id: i64 = match job.key.parse() {
            Ok(id) => id,
            Err(_) => return self.fail(job, &Failure::Hopeless(format!("bad shipment id `{}`", job.key)), now).await,
        };
        let Some(sh) = self.store.shipment(id).await? else {
            self.store.complete_job(job.lease(), now).await?;
            return Ok(());
        };
        if sh.written_back_at.is_some() {
            self.store.complete_job(job.lease(), now).await?;
            return Ok(());
        }
        let Ok(fid) = sh.external_id.parse::<i64>() else {
            let f = Failure::Hopeless(format!("sales order {} has no Kingdee FID ({})", sh.bill_no, sh.external_id));
            return self.fail(job, &f, now).await;
        };
        let mut lines = Vec::new();
        for (line, quantity) in sh.quantities() {
            let Ok(entry_id) = line.parse::<i64>() else {
                let f = Failure::Hopeless(format!("line `{line}` of {} is not a Kingdee entry id", sh.bill_no));
                return self.fail(job, &f, now).await;
            };
            lines.push(ShippedLine { entry_id, quantity });
        }
        let carrier = sh.parcels.first().map(|p| p.carrier.clone()).unwrap_or_default();
        let tracking: Vec<&str> = sh.parcels.iter().map(|p| p.tracking_number.as_str()).collect();
        let tracking = tracking.join(",");
        match write_back_shipment(&erp.client, &erp.write_back, fid, &sh.bill_no, &lines, &carrier, &tracking).await {
            Ok(doc) => self.store.record_write_back(job.lease(), id, &doc.number, now_ms()).await,
            Err(e) => self.fail(job, &Failure::from(&e), now_ms()).await,
        }
    }
}
