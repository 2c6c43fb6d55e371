//! Incremental ingestion of SAL_SaleOrder by ExecuteBillQuery.
//!
//! Why it is shaped this way (offset paging over a changing ordering loses
//! rows when a user edits an order mid-scan):
//! - Pages are taken by **keyset on FID** (`FID > last`, ordered by FID and
//!   entry id, StartRow 0, Limit N). FID never changes, so edits and new
//!   orders cannot shift rows across a page boundary.
//! - Pages count **line rows**, so an order straddles pages: the last,
//!   possibly partial order of a full page is dropped and re-read whole by
//!   the next page. Every order therefore comes from one response: never torn.
//!   An order larger than a page is read alone with StartRow paging over its
//!   entries and checked for a single FModifyDate.
//! - The **cursor** is a high-water mark on FModifyDate: after a full scan
//!   that started at ERP time T, every edit stamped before `T − max skew` was
//!   visible to it. The next scan starts at `cursor − overlap` (same-second
//!   ties, late commits), and **dedup on (FID, FModifyDate)** makes re-reads
//!   free of side effects.
//! - Each page commits in one transaction; the cursor moves only after the
//!   whole scan, so a crash anywhere just means re-reading.

use std::collections::HashMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{IngestError, KnownSkus, check_skus, decimal_or_problem};
use crate::domain::*;
use crate::erp::kingdee::{BillQuery, KingdeeClient};
use crate::erp::time;
use crate::store::{IngestOutcome, Store};
use crate::util::now_ms;

/// Which Kingdee fields hold what; every deployment differs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SaleOrderMapping {
    pub form_id: String,
    pub fid: String,
    pub bill_no: String,
    pub modify_date: String,
    pub document_status: String,
    /// Only documents in this status are taken (C = approved).
    pub approved_status: String,
    /// A FilterString fragment selecting drop-ship orders (empty = all).
    pub dropship_filter: String,
    pub cancel_status: String,
    pub cancelled_value: String,
    pub customer: String,
    pub platform_order_no: String,
    /// The selling organisation, for routing rules.
    pub sales_org: String,
    /// A field naming the marketplace, for routing rules (empty = not mapped).
    pub platform: String,
    pub remark: String,
    pub ship_name: String,
    pub ship_phone: String,
    pub ship_province: String,
    pub ship_city: String,
    pub ship_district: String,
    pub ship_street: String,
    pub ship_postcode: String,
    pub country: String,
    pub entry_id: String,
    pub material: String,
    pub quantity: String,
    pub unit_price: String,
    pub tax_rate: String,
}

impl Default for SaleOrderMapping {
    fn default() -> Self {
        SaleOrderMapping {
            form_id: "SAL_SaleOrder".into(),
            fid: "FID".into(),
            bill_no: "FBillNo".into(),
            modify_date: "FModifyDate".into(),
            document_status: "FDocumentStatus".into(),
            approved_status: "C".into(),
            dropship_filter: "F_DAIFA_DropShip = '1'".into(),
            cancel_status: "FCancelStatus".into(),
            cancelled_value: "B".into(),
            customer: "FCustId.FNumber".into(),
            platform_order_no: "FNetOrderBillNo".into(),
            sales_org: "FSaleOrgId.FNumber".into(),
            platform: "F_DAIFA_Platform".into(),
            remark: "FNote".into(),
            ship_name: "F_DAIFA_ReceiverName".into(),
            ship_phone: "F_DAIFA_ReceiverPhone".into(),
            ship_province: "F_DAIFA_Province".into(),
            ship_city: "F_DAIFA_City".into(),
            ship_district: "F_DAIFA_District".into(),
            ship_street: "FReceiveAddress".into(),
            ship_postcode: "F_DAIFA_Postcode".into(),
            country: "CN".into(),
            entry_id: "FSaleOrderEntry_FEntryID".into(),
            material: "FMaterialId.FNumber".into(),
            quantity: "FQty".into(),
            unit_price: "FTaxPrice".into(),
            tax_rate: "FEntryTaxRate".into(),
        }
    }
}

impl SaleOrderMapping {
    fn keys(&self) -> Vec<&str> {
        let mut keys: Vec<&str> = [
            &self.fid,
            &self.bill_no,
            &self.modify_date,
            &self.cancel_status,
            &self.customer,
            &self.platform_order_no,
            &self.remark,
            &self.ship_name,
            &self.ship_phone,
            &self.ship_province,
            &self.ship_city,
            &self.ship_district,
            &self.ship_street,
            &self.ship_postcode,
            &self.entry_id,
            &self.material,
            &self.quantity,
            &self.unit_price,
            &self.tax_rate,
            &self.sales_org,
        ]
        .into_iter()
        .map(String::as_str)
        .collect();
        // The marketplace field is a deployment's custom field: optional.
        if !self.platform.is_empty() {
            keys.push(&self.platform);
        }
        keys
    }
}

/// Poller settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct KingdeeIngestConfig {
    pub source: String,
    /// Line rows per page.
    pub page_size: i64,
    /// Re-read this much before the cursor (same-second ties, late commits).
    pub overlap_secs: i64,
    /// How far the ERP clock may be from ours.
    pub max_clock_skew_secs: i64,
    /// The ERP's time zone, seconds east of UTC.
    pub erp_utc_offset_secs: i64,
    /// Where the first scan starts.
    pub initial_cursor: String,
    pub mapping: SaleOrderMapping,
    /// Seconds between polls when run as a service.
    pub interval_secs: u64,
}

impl Default for KingdeeIngestConfig {
    fn default() -> Self {
        KingdeeIngestConfig {
            source: "kingdee".into(),
            page_size: 2000,
            overlap_secs: 120,
            max_clock_skew_secs: 120,
            erp_utc_offset_secs: 8 * 3600,
            initial_cursor: "2000-01-01 00:00:00".into(),
            mapping: SaleOrderMapping::default(),
            interval_secs: 30,
        }
    }
}

/// What one scan did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ScanReport {
    pub pages: usize,
    pub rows: usize,
    pub orders: usize,
    pub outcome: IngestOutcome,
    pub cursor_before: String,
    pub cursor_after: String,
}

/// A hook run after each page is fetched and before it is committed: tests
/// use it to crash the ingester at exactly that point.
pub type BeforeCommit = Arc<dyn Fn(usize) + Send + Sync>;

/// The SAL_SaleOrder poller.
pub struct KingdeeIngester {
    client: Arc<KingdeeClient>,
    store: Store,
    cfg: KingdeeIngestConfig,
    known_skus: Option<KnownSkus>,
    before_commit: Option<BeforeCommit>,
}

impl KingdeeIngester {
    pub fn new(client: Arc<KingdeeClient>, store: Store, cfg: KingdeeIngestConfig) -> KingdeeIngester {
        KingdeeIngester { client, store, cfg, known_skus: None, before_commit: None }
    }

    /// Orders with SKUs outside `known` go to exception.
    pub fn with_known_skus(mut self, known: KnownSkus) -> Self {
        self.known_skus = Some(known);
        self
    }

    #[doc(hidden)]
    pub fn with_before_commit(mut self, hook: BeforeCommit) -> Self {
        self.before_commit = Some(hook);
        self
    }

    fn base_filter(&self, since: &str) -> String {
        let m = &self.cfg.mapping;
        let mut f = format!("{} = '{}' AND {} >= '{since}'", m.document_status, m.approved_status, m.modify_date);
        if !m.dropship_filter.trim().is_empty() {
            f.push_str(&format!(" AND ({})", m.dropship_filter));
        }
        f
    }

    fn query(&self, filter: String, start_row: i64) -> BillQuery {
        let m = &self.cfg.mapping;
        BillQuery {
            form_id: m.form_id.clone(),
            field_keys: m.keys().join(","),
            filter_string: filter,
            order_string: format!("{} ASC, {} ASC", m.fid, m.entry_id),
            top_row_count: 0,
            start_row,
            limit: self.cfg.page_size,
            sub_system_id: String::new(),
        }
    }

    /// One full scan from the cursor; commits page by page, then moves the cursor.
    pub async fn scan(&self) -> Result<ScanReport, IngestError> {
        let source = self.cfg.source.as_str();
        let cursor = self.store.cursor(source).await?.unwrap_or_else(|| self.cfg.initial_cursor.clone());
        let hw = time::parse(&cursor)
            .ok_or_else(|| IngestError::Input(format!("stored cursor `{cursor}` is not a time")))?;
        let scan_started = time::now(self.cfg.erp_utc_offset_secs);
        let since = time::format(hw - self.cfg.overlap_secs);
        let base = self.base_filter(&since);
        let mut report = ScanReport { cursor_before: cursor.clone(), ..Default::default() };
        let mut last_fid: i64 = 0;
        loop {
            let rows = self
                .client
                .execute_bill_query(&self.query(format!("{base} AND {} > {last_fid}", self.cfg.mapping.fid), 0))
                .await?;
            report.pages += 1;
            report.rows += rows.len();
            if rows.is_empty() {
                break;
            }
            let full = rows.len() as i64 >= self.cfg.page_size;
            let mut groups = group_by_fid(rows);
            if full && groups.len() == 1 {
                // One order larger than a page: read it alone.
                let fid = groups[0].0;
                groups = vec![(fid, self.whole_order(&base, fid).await?)];
            } else if full {
                // The last order may continue on the next page: read it there, whole.
                groups.pop();
            }
            let Some(&(next_fid, _)) = groups.last() else { break };
            let contents: Vec<OrderContent> = groups.iter().map(|(_, rows)| self.content(rows)).collect();
            report.orders += contents.len();
            if let Some(hook) = &self.before_commit {
                hook(report.pages);
            }
            let out = self.store.ingest_batch(contents, &Actor::Ingest(source.to_string()), now_ms()).await?;
            add(&mut report.outcome, &out);
            last_fid = next_fid;
            if !full {
                break;
            }
        }
        let new_hw = hw.max(scan_started - self.cfg.max_clock_skew_secs);
        report.cursor_after = time::format(new_hw);
        self.store.set_cursor(source, &report.cursor_after, now_ms()).await?;
        Ok(report)
    }

    /// All line rows of one order, by StartRow paging over its entries,
    /// retried until they agree on one FModifyDate.
    async fn whole_order(&self, base: &str, fid: i64) -> Result<Vec<Vec<Value>>, IngestError> {
        for _attempt in 0..5 {
            let mut rows = Vec::new();
            let mut start = 0;
            loop {
                let page = self
                    .client
                    .execute_bill_query(&self.query(format!("{base} AND {} = {fid}", self.cfg.mapping.fid), start))
                    .await?;
                let n = page.len() as i64;
                rows.extend(page);
                if n < self.cfg.page_size {
                    break;
                }
                start += n;
            }
            let stamps: std::collections::HashSet<String> = rows.iter().map(|r| cell(r, 2)).collect();
            if stamps.len() <= 1 {
                return Ok(rows);
            }
            tracing::info!(fid, "order changed while being read; reading it again");
        }
        Err(IngestError::Input(format!("order FID {fid} kept changing while being read")))
    }

    /// One order's rows → content (problems recorded, never dropped).
    fn content(&self, rows: &[Vec<Value>]) -> OrderContent {
        let h = &rows[0];
        let m = &self.cfg.mapping;
        let mut problems = Vec::new();
        let lines = rows
            .iter()
            .map(|r| {
                let id = cell(r, 14);
                OrderLine {
                    quantity: decimal_or_problem(&cell(r, 16), &format!("line {id} {}", m.quantity), &mut problems),
                    unit_price: decimal_or_problem(&cell(r, 17), &format!("line {id} {}", m.unit_price), &mut problems),
                    tax_rate: decimal_or_problem(
                        &or_zero(cell(r, 18)),
                        &format!("line {id} {}", m.tax_rate),
                        &mut problems,
                    ),
                    erp_line_id: ErpLineId(id),
                    sku: Sku(cell(r, 15)),
                }
            })
            .collect();
        let mut c = OrderContent {
            source: Source(self.cfg.source.clone()),
            external_id: ExternalId(cell(h, 0)),
            bill_no: BillNo(cell(h, 1)),
            source_modified: cell(h, 2),
            cancelled: cell(h, 3) == m.cancelled_value,
            customer: cell(h, 4),
            sales_org: cell(h, 19),
            platform: if m.platform.is_empty() { String::new() } else { cell(h, 20) },
            platform_order_no: Some(cell(h, 5)).filter(|s| !s.is_empty()),
            remark: cell(h, 6),
            ship_to: ShipTo {
                name: cell(h, 7),
                phone: cell(h, 8),
                province: cell(h, 9),
                city: cell(h, 10),
                district: cell(h, 11),
                street: cell(h, 12),
                postcode: cell(h, 13),
                country: m.country.clone(),
            },
            lines,
            intake_problems: problems,
        };
        check_skus(&mut c, self.known_skus.as_ref());
        c
    }

    /// Polls forever (with backoff on errors) until `shutdown` fires.
    pub async fn run(self, mut shutdown: tokio::sync::watch::Receiver<bool>) {
        let mut backoff = 1u64;
        loop {
            let wait = match self.scan().await {
                Ok(r) => {
                    backoff = 1;
                    tracing::info!(orders = r.orders, received = r.outcome.received, cursor = %r.cursor_after, "kingdee scan done");
                    self.cfg.interval_secs
                }
                Err(e) => {
                    backoff = (backoff * 2).min(300);
                    tracing::warn!("kingdee scan failed (retrying in {backoff}s): {e}");
                    backoff
                }
            };
            tokio::select! {
                _ = tokio::time::sleep(std::time::Duration::from_secs(wait)) => {}
                _ = shutdown.changed() => return,
            }
        }
    }
}

fn group_by_fid(rows: Vec<Vec<Value>>) -> Vec<(i64, Vec<Vec<Value>>)> {
    let mut out: Vec<(i64, Vec<Vec<Value>>)> = Vec::new();
    let mut index: HashMap<i64, usize> = HashMap::new();
    for r in rows {
        let fid = r.first().and_then(|v| v.as_i64().or_else(|| v.as_str().and_then(|s| s.parse().ok()))).unwrap_or(0);
        match index.get(&fid) {
            Some(&i) => out[i].1.push(r),
            None => {
                index.insert(fid, out.len());
                out.push((fid, vec![r]));
            }
        }
    }
    out
}

fn cell(r: &[Value], i: usize) -> String {
    match r.get(i) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Null) | None => String::new(),
        Some(v) => v.to_string(),
    }
}

fn or_zero(s: String) -> String {
    if s.trim().is_empty() { "0".into() } else { s }
}

fn add(total: &mut IngestOutcome, o: &IngestOutcome) {
    total.received += o.received;
    total.exceptions += o.exceptions;
    total.updated += o.updated;
    total.unchanged += o.unchanged;
    total.raised += o.raised;
}
