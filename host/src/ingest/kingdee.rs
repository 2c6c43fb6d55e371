//! Incremental ingestion of SAL_SaleOrder by ExecuteBillQuery.
//!
//! Why it is shaped this way (offset paging over a changing ordering loses
//! rows when a user edits an order mid-scan; real servers cap rows per
//! answer below what we ask; ERP clocks are wrong and in other zones):
//! - Pages are taken by **keyset on FID** (`FID > last`, ordered by FID and
//!   entry id, StartRow 0). FID never changes, so edits and new orders
//!   cannot shift rows across a page boundary.
//! - **Only an empty answer ends a scan.** A short page proves nothing (a
//!   server row cap below `page_size` looks the same), so the last, possibly
//!   cut-off order of every answer is dropped and re-read whole at the start
//!   of the next one; an order that fills an answer alone is read with
//!   StartRow paging until an empty answer and checked for one FModifyDate.
//!   Every stored order was read whole: never torn.
//! - The **cursor** is the newest FModifyDate/FApproveDate of the orders
//!   read, on the ERP's own clock: no host clock is involved, so an ERP
//!   clock that is slow or in another zone cannot make us skip. It never
//!   moves past the ERP's "now" measured from its `Date` header (a stamp
//!   from the future would hide every later order). A poll reads from the
//!   cursor on (same-stamp ties included); every `rescan_secs` one starts
//!   at `cursor − overlap` instead, for late commits (an order stamped
//!   before the cursor whose transaction committed after our read). Re-
//!   reading the overlap on every poll would read a busy burst again and
//!   again: 10,000 orders in two minutes, polled each second, cost the ERP
//!   and us a full re-read per second.
//! - Approval is found by **FApproveDate** as well as FModifyDate: an audit
//!   need not touch FModifyDate.
//! - **Dedup compares content**, not only the stamp: a re-read that differs
//!   from what is stored (a torn order from an older version) repairs it.
//! - The mapping is resolved and checked before anything is read (see
//!   [`super::mapping`]); columns are found by FieldKey and each answer must
//!   have one value per FieldKey; the first page's values must have the
//!   shapes the mapping promises.
//! - Each page commits in one transaction; the cursor moves only after the
//!   whole scan, so a crash anywhere just means re-reading.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::mapping::{Columns, MappingPreset, SaleOrderMapping};
use super::{IngestError, KnownSkus, address, check_skus, decimal_or_problem};
use crate::domain::*;
use crate::erp::kingdee::{BillQuery, KingdeeClient, KingdeeError};
use crate::erp::time;
use crate::store::{IngestOutcome, Store};
use crate::util::now_ms;

/// Retries of one transient read failure within a scan (0.4 s, 0.8 s, 1.6 s).
const READ_RETRIES: u32 = 3;

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
    /// Which fields the mapping starts from (`custom-fields` or `standard`).
    pub preset: MappingPreset,
    /// Per-field overrides of the preset (`ship_name = "F_XX_Receiver"`).
    pub mapping: BTreeMap<String, String>,
    /// Seconds between polls when run as a service.
    pub interval_secs: u64,
    /// How often a poll also re-reads the overlap (late commits); between
    /// such polls only what is new since the cursor is read. 0: every poll.
    pub rescan_secs: u64,
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
            preset: MappingPreset::CustomFields,
            mapping: BTreeMap::new(),
            interval_secs: 30,
            rescan_secs: 60,
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
    /// The ERP host's clock minus ours (seconds), from its `Date` header.
    pub erp_clock_offset_secs: Option<i64>,
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
    metrics: Option<Arc<crate::metrics::Metrics>>,
}

/// The mapping of one scan and where its columns are.
struct Plan {
    m: SaleOrderMapping,
    cols: Columns,
}

impl KingdeeIngester {
    pub fn new(client: Arc<KingdeeClient>, store: Store, cfg: KingdeeIngestConfig) -> KingdeeIngester {
        KingdeeIngester { client, store, cfg, known_skus: None, before_commit: None, metrics: None }
    }

    /// Counts scans and what they stored in `metrics`.
    pub fn with_metrics(mut self, metrics: Arc<crate::metrics::Metrics>) -> KingdeeIngester {
        self.metrics = Some(metrics);
        self
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

    /// The resolved, checked mapping (see [`SaleOrderMapping::resolve`]).
    pub fn mapping(&self) -> Result<SaleOrderMapping, IngestError> {
        SaleOrderMapping::resolve(self.cfg.preset, &self.cfg.mapping).map_err(IngestError::Mapping)
    }

    fn base_filter(m: &SaleOrderMapping, since: &str) -> String {
        // An order audited without a new FModifyDate still has a new
        // FApproveDate: take either.
        let changed = if m.approve_date.is_empty() {
            format!("{} >= '{since}'", m.modify_date)
        } else {
            format!("({} >= '{since}' OR {} >= '{since}')", m.modify_date, m.approve_date)
        };
        let mut f = format!("{} = '{}' AND {changed}", m.document_status, m.approved_status);
        if !m.dropship_filter.trim().is_empty() {
            f.push_str(&format!(" AND ({})", m.dropship_filter));
        }
        f
    }

    /// One query (transient failures retried); an unknown field is a mapping error naming our field, and
    /// rows must have exactly one value per FieldKey.
    async fn fetch(&self, p: &Plan, filter: String, start_row: i64) -> Result<Vec<Vec<Value>>, IngestError> {
        let q = BillQuery {
            form_id: p.m.form_id.clone(),
            field_keys: p.cols.keys.join(","),
            filter_string: filter,
            order_string: format!("{} ASC, {} ASC", p.m.fid, p.m.entry_id),
            top_row_count: 0,
            start_row,
            limit: self.cfg.page_size,
            sub_system_id: String::new(),
        };
        // A read is safe to repeat: a transient failure (503, timeout,
        // MsgCode 13/14) is retried a few times within the scan before the
        // scan gives up (and the poller tries again later).
        let mut attempt = 0;
        let answer = loop {
            match self.client.execute_bill_query(&q).await {
                Err(e) if e.is_transient() && attempt < READ_RETRIES => {
                    attempt += 1;
                    tracing::warn!(attempt, error = %e, "Kingdee read failed; retrying");
                    tokio::time::sleep(std::time::Duration::from_millis(200 << attempt)).await;
                }
                other => break other,
            }
        };
        let rows = match answer {
            Ok(rows) => rows,
            Err(KingdeeError::Data { code: 9, field, message }) => {
                let named = p.cols.keys.iter().find(|k| message.contains(k.as_str()) || field.as_deref() == Some(k));
                let what = match named.and_then(|k| p.cols.field_of(k).map(|f| (f, k))) {
                    Some((f, k)) => format!("mapping.{f}: the ERP has no field `{k}`"),
                    None => "mapping or dropship_filter names a field the ERP does not have".to_string(),
                };
                return Err(IngestError::Mapping(format!("{what} (MsgCode 9: {message})")));
            }
            Err(e) => return Err(e.into()),
        };
        if let Some(bad) = rows.iter().find(|r| r.len() != p.cols.keys.len()) {
            return Err(IngestError::Mapping(format!(
                "the ERP answered {} values for {} FieldKeys ({}); refusing to guess which is which",
                bad.len(),
                p.cols.keys.len(),
                p.cols.keys.join(",")
            )));
        }
        Ok(rows)
    }

    /// One full scan from `cursor − overlap`; commits order by order page,
    /// then moves the cursor to the newest stamp of the orders it read whole.
    pub async fn scan(&self) -> Result<ScanReport, IngestError> {
        self.scan_back(self.cfg.overlap_secs).await
    }

    /// A scan of what is new since the cursor (stamps equal to it included),
    /// without the overlap: the cheap poll between full scans.
    pub async fn scan_new(&self) -> Result<ScanReport, IngestError> {
        self.scan_back(0).await
    }

    async fn scan_back(&self, overlap_secs: i64) -> Result<ScanReport, IngestError> {
        let m = self.mapping()?;
        let p = Plan { cols: m.columns(), m };
        let source = self.cfg.source.as_str();
        let cursor = self.store.cursor(source).await?.unwrap_or_else(|| self.cfg.initial_cursor.clone());
        let hw = time::parse(&cursor)
            .ok_or_else(|| IngestError::Input(format!("stored cursor `{cursor}` is not a time")))?;
        let since = time::format(hw - overlap_secs);
        let base = Self::base_filter(&p.m, &since);
        let fid_key = p.m.fid.clone();
        let mut report = ScanReport { cursor_before: cursor.clone(), ..Default::default() };
        let mut last_fid: i64 = 0;
        let mut newest = hw;
        // The next page is fetched while this one commits: its filter needs
        // only the last FID of this page, so the ERP's latency and our
        // writes overlap instead of adding up.
        let mut prefetched: Option<Vec<Vec<Value>>> = None;
        loop {
            let rows = match prefetched.take() {
                Some(rows) => rows,
                None => self.fetch(&p, format!("{base} AND {fid_key} > {last_fid}"), 0).await?,
            };
            report.pages += 1;
            report.rows += rows.len();
            // Only an empty answer ends a scan: a short page may just be a
            // server's row cap below our page size.
            if rows.is_empty() {
                break;
            }
            if report.pages == 1 {
                check_shapes(&p, &rows)?;
            }
            let mut groups = group_by_fid(rows, p.cols.get("fid").unwrap_or(0))?;
            let Some(last) = groups.pop() else { break };
            if groups.is_empty() {
                // One order fills the whole answer: read the rest of it.
                groups.push((last.0, self.whole_order(&p, &base, last.0, last.1).await?));
            }
            // Otherwise the last order may have been cut off by the page or
            // a row cap: the next query starts with it and reads it whole.
            let Some(&(next_fid, _)) = groups.last() else { break };
            let contents: Vec<OrderContent> = groups.iter().map(|(_, rows)| self.content(&p, rows)).collect();
            for (_, rows) in &groups {
                newest = newest.max(self.stamp_of(&p, &rows[0]));
            }
            report.orders += contents.len();
            if let Some(hook) = &self.before_commit {
                hook(report.pages);
            }
            let actor = Actor::Ingest(source.to_string());
            let (out, next) = tokio::join!(
                self.store.ingest_batch(contents, &actor, now_ms()),
                self.fetch(&p, format!("{base} AND {fid_key} > {next_fid}"), 0)
            );
            report.outcome.add(&out?);
            prefetched = Some(next?);
            last_fid = next_fid;
        }
        report.erp_clock_offset_secs = self.client.erp_clock_offset();
        let new_hw = hw.max(self.clamp_to_erp_clock(newest));
        report.cursor_after = time::format(new_hw);
        self.store.set_cursor(source, &report.cursor_after, now_ms()).await?;
        Ok(report)
    }

    /// The newest of an order's modify and approve stamps (ERP local time).
    fn stamp_of(&self, p: &Plan, r: &[Value]) -> time::NaiveSecs {
        let at = |f: &str| p.cols.get(f).and_then(|i| time::parse(&cell(r, i))).unwrap_or(i64::MIN);
        at("modify_date").max(at("approve_date"))
    }

    /// The cursor never moves past the ERP's own "now" (as measured from its
    /// `Date` header, in its time zone): a stamp from the future (a wrong
    /// app-server clock, a wrong `erp_utc_offset_secs`) would otherwise make
    /// every later order look old.
    fn clamp_to_erp_clock(&self, newest: time::NaiveSecs) -> time::NaiveSecs {
        let Some(offset) = self.client.erp_clock_offset() else { return newest };
        let erp_now = time::now(self.cfg.erp_utc_offset_secs + offset);
        if newest > erp_now + self.cfg.max_clock_skew_secs {
            tracing::warn!(
                newest = %time::format(newest),
                erp_now = %time::format(erp_now),
                "orders are stamped after the ERP's own clock; check erp_utc_offset_secs. Re-reading from the ERP's now"
            );
            return erp_now;
        }
        newest
    }

    /// All line rows of one order: `first` and then StartRow paging until an
    /// empty answer, retried until they agree on one stamp.
    async fn whole_order(
        &self,
        p: &Plan,
        base: &str,
        fid: i64,
        first: Vec<Vec<Value>>,
    ) -> Result<Vec<Vec<Value>>, IngestError> {
        let filter = format!("{base} AND {} = {fid}", p.m.fid);
        let mut rows = first;
        for _attempt in 0..5 {
            loop {
                let page = self.fetch(p, filter.clone(), rows.len() as i64).await?;
                if page.is_empty() {
                    break;
                }
                rows.extend(page);
            }
            let col = p.cols.get("modify_date").unwrap_or(0);
            let stamps: std::collections::HashSet<String> = rows.iter().map(|r| cell(r, col)).collect();
            if stamps.len() <= 1 {
                return Ok(rows);
            }
            tracing::info!(fid, "order changed while being read; reading it again");
            rows = Vec::new();
        }
        Err(IngestError::Input(format!("order FID {fid} kept changing while being read")))
    }

    /// One order's rows → content (problems recorded, never dropped).
    fn content(&self, p: &Plan, rows: &[Vec<Value>]) -> OrderContent {
        let h = &rows[0];
        let m = &p.m;
        let get = |r: &[Value], f: &str| p.cols.get(f).map(|i| cell(r, i)).unwrap_or_default();
        let mut problems = Vec::new();
        let lines = rows
            .iter()
            .map(|r| {
                let id = get(r, "entry_id");
                OrderLine {
                    quantity: decimal_or_problem(
                        &get(r, "quantity"),
                        &format!("line {id} {}", m.quantity),
                        &mut problems,
                    ),
                    unit_price: decimal_or_problem(
                        &get(r, "unit_price"),
                        &format!("line {id} {}", m.unit_price),
                        &mut problems,
                    ),
                    tax_rate: decimal_or_problem(
                        &or_zero(get(r, "tax_rate")),
                        &format!("line {id} {}", m.tax_rate),
                        &mut problems,
                    ),
                    erp_line_id: ErpLineId(id),
                    sku: Sku(get(r, "material")),
                    unit: get(r, "unit"),
                }
            })
            .collect();
        let ship_to = if m.ship_address.is_empty() {
            ShipTo {
                name: get(h, "ship_name"),
                phone: get(h, "ship_phone"),
                province: get(h, "ship_province"),
                city: get(h, "ship_city"),
                district: get(h, "ship_district"),
                street: get(h, "ship_street"),
                postcode: get(h, "ship_postcode"),
                country: m.country.clone(),
            }
        } else {
            let a = address::split(&get(h, "ship_address"));
            ShipTo {
                name: get(h, "ship_name"),
                phone: get(h, "ship_phone"),
                province: a.province,
                city: a.city,
                district: a.district,
                street: a.street,
                postcode: get(h, "ship_postcode"),
                country: m.country.clone(),
            }
        };
        let mut c = OrderContent {
            source: Source(self.cfg.source.clone()),
            external_id: ExternalId(get(h, "fid")),
            bill_no: BillNo(get(h, "bill_no")),
            source_modified: get(h, "modify_date"),
            cancelled: !m.cancel_status.is_empty() && get(h, "cancel_status") == m.cancelled_value,
            customer: get(h, "customer"),
            sales_org: get(h, "sales_org"),
            platform: get(h, "platform"),
            platform_order_no: Some(get(h, "platform_order_no")).filter(|s| !s.is_empty()),
            remark: get(h, "remark"),
            ship_to,
            lines,
            intake_problems: problems,
        };
        check_skus(&mut c, self.known_skus.as_ref());
        c
    }

    /// Polls forever (with backoff on errors) until `shutdown` fires.
    pub async fn run(self, mut shutdown: tokio::sync::watch::Receiver<bool>) {
        let mut backoff = 1u64;
        let mut last_full: Option<std::time::Instant> = None;
        loop {
            let full = last_full.is_none_or(|t| t.elapsed().as_secs() >= self.cfg.rescan_secs);
            let started = std::time::Instant::now();
            let scanned = if full { self.scan().await } else { self.scan_new().await };
            if let Some(m) = &self.metrics {
                match &scanned {
                    Ok(r) => m.ingest_scan(&r.outcome, started.elapsed().as_secs_f64()),
                    Err(_) => m.ingest_scan_failed(),
                }
            }
            let wait = match scanned {
                Ok(r) => {
                    if full {
                        last_full = Some(std::time::Instant::now());
                    }
                    backoff = 1;
                    if r.outcome.received > 0 || r.outcome.unchanged < r.orders {
                        tracing::info!(orders = r.orders, received = r.outcome.received, cursor = %r.cursor_after, "kingdee scan done");
                    } else {
                        tracing::debug!(orders = r.orders, cursor = %r.cursor_after, "kingdee scan: nothing new");
                    }
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

/// Rows grouped by order, in answer order. A FID that is not an integer
/// cannot be paged past: that is a mapping error, not a bad order.
/// One query row.
type Row = Vec<Value>;

fn group_by_fid(rows: Vec<Row>, col: usize) -> Result<Vec<(i64, Vec<Row>)>, IngestError> {
    let mut out: Vec<(i64, Vec<Row>)> = Vec::new();
    let mut index: HashMap<i64, usize> = HashMap::new();
    for r in rows {
        let v = r.get(col).cloned().unwrap_or(Value::Null);
        let fid = v
            .as_i64()
            .or_else(|| v.as_str().and_then(|s| s.trim().parse().ok()))
            .ok_or_else(|| IngestError::Mapping(format!("mapping.fid: `{v}` is not a document id (an integer)")))?;
        match index.get(&fid) {
            Some(&i) => out[i].1.push(r),
            None => {
                index.insert(fid, out.len());
                out.push((fid, vec![r]));
            }
        }
    }
    Ok(out)
}

/// The first page's values must have the shapes the mapping promises; when
/// *every* row (of at least three) fails one field, the mapping points at
/// the wrong field: stop before storing anything rather than fill the store
/// with exceptions. One bad order alone still becomes an exception.
fn check_shapes(p: &Plan, rows: &[Vec<Value>]) -> Result<(), IngestError> {
    type Check = (&'static str, fn(&str) -> bool, &'static str);
    let checks: [Check; 6] = [
        ("modify_date", |s| time::parse(s).is_some(), "a date-time"),
        ("entry_id", |s| s.trim().parse::<i64>().is_ok(), "an entry id (an integer)"),
        ("quantity", is_decimal, "a number"),
        ("unit_price", is_decimal, "a number"),
        ("tax_rate", |s| s.trim().is_empty() || is_decimal(s), "a number"),
        ("document_status", |s| s.trim().chars().count() == 1, "a one-letter status"),
    ];
    for (field, ok, what) in checks {
        let Some(col) = p.cols.get(field) else { continue };
        let bad: Vec<String> = rows.iter().map(|r| cell(r, col)).filter(|v| !ok(v)).collect();
        let all_bad = bad.len() == rows.len() && (rows.len() >= 3 || field == "modify_date");
        if all_bad && let Some(example) = bad.first() {
            return Err(IngestError::Mapping(format!(
                "mapping.{field} (`{}`): none of {} rows holds {what}, e.g. `{example}`",
                p.cols.keys[col],
                rows.len()
            )));
        }
    }
    Ok(())
}

fn is_decimal(s: &str) -> bool {
    let t = s.trim();
    rust_decimal::Decimal::from_str_exact(t).is_ok() || rust_decimal::Decimal::from_scientific(t).is_ok()
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
