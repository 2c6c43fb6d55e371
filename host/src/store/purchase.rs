//! Purchase orders as records: created with the routing decision that
//! allocates their lines (one transaction, with their submit job), moved by
//! the supplier's answers and updates, by the ERP's documents and by
//! operators. Every change of a PO is a `po_events` row, every change of
//! its sales order follows from the POs ([`derive_order_state`]) and is
//! recorded hop by hop in the order's history, and every job result commits
//! only under its lease's fence.

use std::collections::{BTreeMap, HashMap, HashSet};

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use sqlx::{AssertSqlSafe, FromRow, Row};

use super::{Val, select_in, values_statement};

use super::jobs::{JobKind, Lease};
use super::orders::{dec, state};
use super::{Store, StoreError, Tx};
use crate::domain::purchase::{
    LineStatus, LineWord, PoLineView, PoState, derive_order_state, derive_po_state, transition_path,
};
use crate::domain::{Actor, OrderId, OrderState, SupplierId};
use crate::routing::LineAllocation;

/// What an ERP purchase-order job did to the PO's PUR_PurchaseOrder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ErpPoDone {
    /// Made (or found) and audited: its bill number.
    Audited(String),
    /// Brought in line with the lines still bought, audited again.
    Amended(String),
    /// Nothing left to buy: the document was deleted.
    Deleted(String),
}

/// When the ERP's PUR_PurchaseOrder is made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErpPoTiming {
    /// Never (the ERP is not told of purchases).
    Off,
    /// As soon as the lines are allocated, before the supplier answers.
    OnRoute,
    /// Once the supplier accepted (or backordered) at least one line.
    OnAccept,
}

/// What routing hands dispatch, and how long work may take.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DispatchSettings {
    /// A submit still failing this long after routing becomes a dead letter.
    pub submit_deadline_ms: i64,
    pub erp_purchase_orders: ErpPoTiming,
    /// ERP jobs (purchase orders, write-backs) give up after this long.
    pub erp_deadline_ms: i64,
    /// Write shipments back to the ERP (orders from `erp_source` only).
    pub write_back: bool,
    /// The order source whose orders live in the ERP.
    pub erp_source: String,
    /// A PO not shipped this long after it was sent is late.
    pub expected_ship_ms: i64,
}

impl Default for DispatchSettings {
    fn default() -> Self {
        DispatchSettings {
            submit_deadline_ms: 24 * 3600 * 1000,
            erp_purchase_orders: ErpPoTiming::OnAccept,
            erp_deadline_ms: 72 * 3600 * 1000,
            write_back: true,
            erp_source: "kingdee".into(),
            // The performance loop's ship target: a PO open longer is late.
            expected_ship_ms: 24 * 3600 * 1000,
        }
    }
}

/// A purchase order with its lines.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PoRecord {
    pub po_number: String,
    pub order: OrderId,
    pub supplier: SupplierId,
    pub attempt: u32,
    pub state: PoState,
    pub state_reason: String,
    pub currency: String,
    pub supplier_ref: Option<String>,
    /// How far its PUR_PurchaseOrder got: none, audited.
    pub erp_step: String,
    pub erp_bill_no: Option<String>,
    pub expected_ship_by: Option<i64>,
    pub dispatched_at: Option<i64>,
    pub acknowledged_at: Option<i64>,
    pub shipped_at: Option<i64>,
    pub created_at: i64,
    pub updated_at: i64,
    pub lines: Vec<PoLineRecord>,
}

/// One line of a purchase order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PoLineRecord {
    /// The sales order's line id.
    pub line_id: String,
    pub sku: String,
    pub supplier_sku: String,
    pub quantity: Decimal,
    pub unit_cost: Decimal,
    pub tax_rate: Decimal,
    pub status: LineStatus,
    pub status_reason: String,
    pub shipped: Decimal,
}

/// One recorded change of a PO.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, FromRow)]
pub struct PoEvent {
    pub from_state: Option<String>,
    pub to_state: String,
    /// routing, submit, poll, callback, erp, operator.
    pub origin: String,
    pub detail: String,
    pub at: i64,
}

/// A shipment with its parcels, and what write-back needs of its order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ShipmentRecord {
    pub id: i64,
    pub po_number: String,
    pub order: OrderId,
    pub source: String,
    /// The sales order's ERP id and bill number.
    pub external_id: String,
    pub bill_no: String,
    pub parcels: Vec<ParcelRecord>,
    /// When it shipped, as the supplier dated it (if it did).
    pub shipped_at: Option<i64>,
    /// When we learned of it.
    pub recorded_at: i64,
    pub written_back_at: Option<i64>,
    pub erp_doc: Option<String>,
}

/// One parcel of a shipment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ParcelRecord {
    pub carrier: String,
    pub tracking_number: String,
    pub lines: Vec<(String, Decimal)>,
}

impl ShipmentRecord {
    /// Quantities per line over all parcels.
    pub fn quantities(&self) -> BTreeMap<String, Decimal> {
        let mut out: BTreeMap<String, Decimal> = BTreeMap::new();
        for p in &self.parcels {
            for (l, q) in &p.lines {
                *out.entry(l.clone()).or_default() += *q;
            }
        }
        out
    }
}

/// How a job ends with the updates it applies.
#[derive(Debug, Clone, Copy)]
pub struct JobEnd<'a> {
    pub lease: Lease,
    /// A poll's new feed position.
    pub cursor: Option<&'a str>,
    /// Recurring jobs: when to run again (`None` = done).
    pub again_at: Option<i64>,
}

/// What the supplier answered to a submit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SubmitAnswer {
    /// Its reference and its word on each line.
    Receipt { supplier_ref: String, lines: Vec<LineWord> },
    /// It refused the whole order, permanently.
    Refused(String),
}

/// Lines to move to another supplier after a result committed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RerouteRequest {
    pub order: OrderId,
    pub supplier: SupplierId,
    pub lines: Vec<String>,
    pub cause: String,
}

/// What applying a result or updates did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Applied {
    pub updates: usize,
    /// Updates that changed nothing (seen before, or out of order).
    pub duplicates: usize,
    /// Updates refused into operator events (unknown PO or line, over-shipment).
    pub exceptions: usize,
    pub parcels: usize,
    pub reroutes: Vec<RerouteRequest>,
}

#[derive(FromRow)]
struct PoRow {
    po_number: String,
    order_id: i64,
    supplier: String,
    attempt: i64,
    state: String,
    state_reason: String,
    currency: String,
    supplier_ref: Option<String>,
    erp_step: String,
    erp_bill_no: Option<String>,
    expected_ship_by: Option<i64>,
    dispatched_at: Option<i64>,
    acknowledged_at: Option<i64>,
    shipped_at: Option<i64>,
    created_at: i64,
    updated_at: i64,
}

#[derive(FromRow)]
struct ShipmentRow {
    id: i64,
    po_number: String,
    #[sqlx(rename = "order_id")]
    order: i64,
    source: String,
    external_id: String,
    bill_no: String,
    shipped_at: Option<i64>,
    created_at: i64,
    written_back_at: Option<i64>,
    erp_doc: Option<String>,
}

/// A PO line with the PO it belongs to (batch reads).
#[derive(FromRow)]
struct PoLineOfRow {
    po_number: String,
    #[sqlx(flatten)]
    line: PoLineRow,
}

#[derive(FromRow)]
struct PoLineRow {
    line_id: String,
    sku: String,
    supplier_sku: String,
    quantity: String,
    unit_cost: String,
    tax_rate: String,
    status: String,
    status_reason: String,
    shipped_qty: String,
}

const PO_COLUMNS: &str = "po_number, order_id, supplier, attempt, state, state_reason, currency, supplier_ref, \
     erp_step, erp_bill_no, expected_ship_by, dispatched_at, acknowledged_at, shipped_at, created_at, updated_at";

pub(super) fn corrupt(e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(e.to_string())
}

fn line_record(r: PoLineRow) -> Result<PoLineRecord, StoreError> {
    Ok(PoLineRecord {
        quantity: dec(r.quantity)?,
        unit_cost: dec(r.unit_cost)?,
        tax_rate: dec(r.tax_rate)?,
        shipped: dec(r.shipped_qty)?,
        status: r.status.parse().map_err(corrupt)?,
        line_id: r.line_id,
        sku: r.sku,
        supplier_sku: r.supplier_sku,
        status_reason: r.status_reason,
    })
}

fn po_record(r: PoRow, lines: Vec<PoLineRecord>) -> Result<PoRecord, StoreError> {
    Ok(PoRecord {
        state: r.state.parse().map_err(corrupt)?,
        po_number: r.po_number,
        order: OrderId(r.order_id),
        supplier: SupplierId(r.supplier),
        attempt: u32::try_from(r.attempt).unwrap_or(0),
        state_reason: r.state_reason,
        currency: r.currency,
        supplier_ref: r.supplier_ref,
        erp_step: r.erp_step,
        erp_bill_no: r.erp_bill_no,
        expected_ship_by: r.expected_ship_by,
        dispatched_at: r.dispatched_at,
        acknowledged_at: r.acknowledged_at,
        shipped_at: r.shipped_at,
        created_at: r.created_at,
        updated_at: r.updated_at,
        lines,
    })
}

/// Reads a PO with its lines inside a transaction.
pub(super) async fn load_po(conn: &mut sqlx::AnyConnection, po_number: &str) -> Result<Option<PoRecord>, StoreError> {
    let row: Option<PoRow> =
        sqlx::query_as(AssertSqlSafe(format!("SELECT {PO_COLUMNS} FROM purchase_orders WHERE po_number = $1")))
            .bind(po_number)
            .fetch_optional(&mut *conn)
            .await?;
    let Some(row) = row else { return Ok(None) };
    let lines: Vec<PoLineRow> = sqlx::query_as(
        "SELECT line_id, sku, supplier_sku, quantity, unit_cost, tax_rate, status, status_reason, shipped_qty \
         FROM po_lines WHERE po_number = $1 ORDER BY line_id",
    )
    .bind(po_number)
    .fetch_all(&mut *conn)
    .await?;
    Ok(Some(po_record(row, lines.into_iter().map(line_record).collect::<Result<_, _>>()?)?))
}

/// Reads many POs with their lines in two queries (per bind-limit chunk),
/// inside a transaction or not; numbers without a PO are left out.
pub(super) async fn load_pos(
    conn: &mut sqlx::AnyConnection,
    positional: bool,
    numbers: &[String],
) -> Result<HashMap<String, PoRecord>, StoreError> {
    if numbers.is_empty() {
        return Ok(HashMap::new());
    }
    let vals: Vec<Val> = numbers.iter().map(|n| Val::from(n.as_str())).collect();
    let head = format!("SELECT {PO_COLUMNS} FROM purchase_orders WHERE po_number IN");
    let rows = select_in(conn, positional, &head, "", &vals).await?;
    let head = "SELECT po_number, line_id, sku, supplier_sku, quantity, unit_cost, tax_rate, status, status_reason, \
         shipped_qty FROM po_lines WHERE po_number IN";
    let mut lines: HashMap<String, Vec<PoLineRecord>> = HashMap::new();
    for r in select_in(conn, positional, head, "ORDER BY po_number, line_id", &vals).await? {
        let l = PoLineOfRow::from_row(&r)?;
        lines.entry(l.po_number).or_default().push(line_record(l.line)?);
    }
    let mut out = HashMap::with_capacity(rows.len());
    for r in rows {
        let row = PoRow::from_row(&r)?;
        let ls = lines.remove(&row.po_number).unwrap_or_default();
        out.insert(row.po_number.clone(), po_record(row, ls)?);
    }
    Ok(out)
}

pub(super) async fn po_event(
    tx: &mut Tx,
    po: &str,
    from: Option<PoState>,
    to: PoState,
    origin: &str,
    detail: &str,
    now: i64,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO po_events (po_number, from_state, to_state, origin, detail, at) VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(po)
    .bind(from.map(|f| f.as_str()))
    .bind(to.as_str())
    .bind(origin)
    .bind(detail)
    .bind(now)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Creates the purchase orders of freshly routed orders: per order, one PO
/// per supplier for the lines no live PO covers yet, each with its lines,
/// first event and submit job (and ERP job when POs go to the ERP on
/// routing). `orders` are (order id, routing attempt, allocations), each
/// order at most once. A fixed handful of statements for the whole batch:
/// written one row per statement, a batch of 500 orders cost ~10,000 round
/// trips to the database thread while holding the write lock, which made
/// storing decisions the routing stage's whole cost.
pub(super) async fn create_pos_many(
    tx: &mut Tx,
    settings: &DispatchSettings,
    orders: &[(i64, u32, &[LineAllocation])],
    now: i64,
) -> Result<Vec<String>, StoreError> {
    if orders.is_empty() {
        return Ok(Vec::new());
    }
    let positional = tx.positional();
    let ids: Vec<Val> = orders.iter().map(|(id, ..)| Val::Int(*id)).collect();
    let mut covered: HashSet<(i64, String)> = HashSet::new();
    let head = "SELECT p.order_id, l.line_id FROM po_lines l JOIN purchase_orders p ON p.po_number = l.po_number \
                WHERE l.status NOT IN ('rejected', 'cancelled') AND p.state NOT IN ('rejected', 'cancelled', 'dead') \
                AND p.order_id IN";
    for r in select_in(tx, positional, head, "", &ids).await? {
        covered.insert((r.try_get::<i64, _>("order_id")?, r.try_get::<String, _>("line_id")?));
    }
    let head = "SELECT order_id, erp_line_id, sku, quantity, tax_rate FROM order_lines WHERE order_id IN";
    let mut lines: HashMap<(i64, String), (String, String, String)> = HashMap::new();
    for r in select_in(tx, positional, head, "", &ids).await? {
        lines.insert(
            (r.try_get("order_id")?, r.try_get("erp_line_id")?),
            (r.try_get("sku")?, r.try_get("quantity")?, r.try_get("tax_rate")?),
        );
    }
    let mut suppliers: Vec<&str> =
        orders.iter().flat_map(|(_, _, allocs)| allocs.iter().map(|a| a.supplier.as_str())).collect();
    suppliers.sort_unstable();
    suppliers.dedup();
    let vals: Vec<Val> = suppliers.iter().map(|s| Val::from(*s)).collect();
    let mut currency: HashMap<String, String> = HashMap::new();
    for r in select_in(tx, positional, "SELECT id, profile FROM suppliers WHERE id IN", "", &vals).await? {
        let profile: Option<String> = r.try_get("profile")?;
        if let Some(p) = profile.and_then(|p| serde_json::from_str::<crate::routing::catalog::SupplierProfile>(&p).ok())
        {
            currency.insert(r.try_get("id")?, p.erp.currency);
        }
    }

    struct NewPo<'a> {
        number: String,
        order: i64,
        attempt: u32,
        supplier: &'a SupplierId,
        allocs: Vec<&'a LineAllocation>,
    }
    let mut planned = Vec::new();
    for (order, attempt, allocations) in orders {
        let mut by_supplier: BTreeMap<&SupplierId, Vec<&LineAllocation>> = BTreeMap::new();
        for a in allocations.iter().filter(|a| !covered.contains(&(*order, a.line_id.clone()))) {
            by_supplier.entry(&a.supplier).or_default().push(a);
        }
        for (supplier, allocs) in by_supplier {
            let number = format!("PO{order}-{supplier}-{attempt}");
            planned.push(NewPo { number, order: *order, attempt: *attempt, supplier, allocs });
        }
    }
    let rows: Vec<Vec<Val>> = planned
        .iter()
        .map(|p| {
            vec![
                p.number.as_str().into(),
                Val::Int(p.order),
                p.supplier.as_str().into(),
                Val::Int(i64::from(p.attempt)),
                "pending".into(),
                "allocated by routing; waiting to be sent".into(),
                currency.get(p.supplier.as_str()).map_or("CNY", String::as_str).into(),
                "none".into(),
                Val::Int(now),
                Val::Int(now),
            ]
        })
        .collect();
    // A PO number that exists already (the same attempt applied again)
    // keeps what it has: only POs inserted here get lines and jobs.
    let inserted = super::insert_returning(
        tx,
        "purchase_orders (po_number, order_id, supplier, attempt, state, state_reason, currency, erp_step, \
         created_at, updated_at)",
        "ON CONFLICT (po_number) DO NOTHING RETURNING po_number",
        10,
        &rows,
    )
    .await?;
    let inserted: HashSet<String> = super::returned(&inserted, "po_number")?;
    let mut line_rows = Vec::new();
    let mut events = Vec::new();
    let mut jobs = Vec::new();
    let mut created = Vec::new();
    for p in planned.iter().filter(|p| inserted.contains(&p.number)) {
        for a in &p.allocs {
            let (sku, qty, tax) = lines
                .get(&(p.order, a.line_id.clone()))
                .ok_or_else(|| StoreError::Corrupt(format!("order {} has no line {}", p.order, a.line_id)))?;
            line_rows.push(vec![
                p.number.as_str().into(),
                a.line_id.as_str().into(),
                sku.as_str().into(),
                a.supplier_sku.as_str().into(),
                qty.as_str().into(),
                a.unit_cost.to_string().into(),
                tax.as_str().into(),
                "pending".into(),
                "".into(),
                "0".into(),
            ]);
        }
        events.push(vec![
            p.number.as_str().into(),
            Val::Null,
            PoState::Pending.as_str().into(),
            "routing".into(),
            format!("routing attempt {}", p.attempt).into(),
            Val::Int(now),
        ]);
        let mut job = |kind: JobKind, deadline: i64| {
            jobs.push(super::jobs::ready_job(kind, &p.number, p.supplier.as_str(), now, now + deadline));
        };
        job(JobKind::Submit, settings.submit_deadline_ms);
        if settings.erp_purchase_orders == ErpPoTiming::OnRoute {
            job(JobKind::ErpPo, settings.erp_deadline_ms);
        }
        created.push(p.number.clone());
    }
    super::insert_rows(
        tx,
        "po_lines (po_number, line_id, sku, supplier_sku, quantity, unit_cost, tax_rate, status, status_reason, \
         shipped_qty)",
        "",
        10,
        &line_rows,
    )
    .await?;
    super::insert_rows(tx, "po_events (po_number, from_state, to_state, origin, detail, at)", "", 6, &events).await?;
    super::jobs::insert_ready_jobs(tx, &jobs).await?;
    Ok(created)
}

/// Moves a PO to its derived state (recording the change) and returns the
/// new state.
pub(super) async fn settle_po(
    tx: &mut Tx,
    po: &PoRecord,
    origin: &str,
    detail: &str,
    now: i64,
) -> Result<PoState, StoreError> {
    let open: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM shipments WHERE po_number = $1 AND written_back_at IS NULL")
            .bind(&po.po_number)
            .fetch_one(&mut **tx)
            .await?;
    settle_po_with(tx, po, origin, detail, now, open == 0).await
}

/// [`settle_po`] for a caller that knows whether every shipment of the PO
/// is written back (a PO answered for the first time has none).
pub(super) async fn settle_po_with(
    tx: &mut Tx,
    po: &PoRecord,
    origin: &str,
    detail: &str,
    now: i64,
    all_written_back: bool,
) -> Result<PoState, StoreError> {
    let views: Vec<PoLineView> = po
        .lines
        .iter()
        .map(|l| PoLineView { line_id: l.line_id.clone(), quantity: l.quantity, status: l.status, shipped: l.shipped })
        .collect();
    let to = derive_po_state(po.state, po.dispatched_at.is_some(), &views, all_written_back);
    if to != po.state {
        sqlx::query(
            "UPDATE purchase_orders SET state = $1, state_reason = $2, updated_at = $3, \
             acknowledged_at = CASE WHEN $4 = 1 AND acknowledged_at IS NULL THEN $3 ELSE acknowledged_at END, \
             shipped_at = CASE WHEN $5 = 1 AND shipped_at IS NULL THEN $3 ELSE shipped_at END \
             WHERE po_number = $6",
        )
        .bind(to.as_str())
        .bind(detail)
        .bind(now)
        .bind(i64::from(matches!(to, PoState::Acknowledged | PoState::Backordered | PoState::PartiallyShipped)))
        .bind(i64::from(to == PoState::Shipped))
        .bind(&po.po_number)
        .execute(&mut **tx)
        .await?;
        po_event(tx, &po.po_number, Some(po.state), to, origin, detail, now).await?;
    }
    Ok(to)
}

/// Moves a sales order to the state its POs say, hop by hop through the
/// state machine. Orders a person holds (on hold, cancelled) are left
/// alone, and so is an exception unless `from_exception`. Answers the
/// state the order was in before (`None`: no such order), so a caller
/// need not read it again.
pub(super) async fn derive_order(
    tx: &mut Tx,
    order: i64,
    actor: &Actor,
    from_exception: bool,
    now: i64,
) -> Result<Option<OrderState>, StoreError> {
    Ok(derive_orders(tx, &[order], actor, from_exception, now).await?.get(&order).copied())
}

/// [`derive_order`] for many orders in set-based statements: four reads
/// for all of them and one update per hop of the longest path, so a group
/// commit of hundreds of answers costs a handful of statements, not
/// hundreds. Answers each existing order's state before.
pub(super) async fn derive_orders(
    tx: &mut Tx,
    orders: &[i64],
    actor: &Actor,
    from_exception: bool,
    now: i64,
) -> Result<HashMap<i64, OrderState>, StoreError> {
    let positional = tx.positional();
    let mut ids = orders.to_vec();
    ids.sort_unstable();
    ids.dedup();
    let vals: Vec<Val> = ids.iter().map(|i| Val::Int(*i)).collect();
    let mut before = HashMap::with_capacity(ids.len());
    for r in select_in(tx, positional, "SELECT id, state FROM sales_orders WHERE id IN", "", &vals).await? {
        before.insert(r.try_get::<i64, _>("id")?, state(&r.try_get::<String, _>("state")?)?);
    }
    let eligible_ids: Vec<i64> = ids
        .into_iter()
        .filter(|id| {
            before.get(id).is_some_and(|s| {
                !(matches!(s, OrderState::OnHold | OrderState::Cancelled)
                    || (*s == OrderState::Exception && !from_exception))
            })
        })
        .collect();
    let eligible: Vec<Val> = eligible_ids.iter().map(|id| Val::Int(*id)).collect();
    if eligible.is_empty() {
        return Ok(before);
    }
    let mut pos_of: HashMap<i64, Vec<(String, String)>> = HashMap::new();
    let head = "SELECT order_id, po_number, state FROM purchase_orders WHERE order_id IN";
    for r in select_in(tx, positional, head, "ORDER BY order_id, po_number", &eligible).await? {
        pos_of.entry(r.try_get("order_id")?).or_default().push((r.try_get("po_number")?, r.try_get("state")?));
    }
    // Lines no live PO covers, only: reading every line and every live PO
    // line to compare them here moved ~6 rows per order through the driver
    // on each submit answer, where nearly always none is unplaced.
    let mut unplaced_of: HashMap<i64, Vec<String>> = HashMap::new();
    let head = "SELECT o.order_id, o.erp_line_id FROM order_lines o WHERE o.order_id IN";
    let tail = "AND NOT EXISTS (SELECT 1 FROM purchase_orders p JOIN po_lines l ON l.po_number = p.po_number \
         WHERE p.order_id = o.order_id AND l.line_id = o.erp_line_id AND l.status NOT IN ('rejected', 'cancelled') \
         AND p.state NOT IN ('rejected', 'cancelled')) ORDER BY o.order_id, o.line_no";
    for r in select_in(tx, positional, head, tail, &eligible).await? {
        unplaced_of.entry(r.try_get("order_id")?).or_default().push(r.try_get("erp_line_id")?);
    }
    // Each order's hops and the reason recorded with them.
    let mut plans: Vec<(i64, OrderState, Vec<OrderState>, String)> = Vec::new();
    for &order in &eligible_ids {
        let Some(&current) = before.get(&order) else { continue };
        let no_pos = Vec::new();
        let pos = pos_of.get(&order).unwrap_or(&no_pos);
        let unplaced: Vec<&str> =
            unplaced_of.get(&order).map(|ls| ls.iter().map(String::as_str).collect()).unwrap_or_default();
        let mut states = Vec::new();
        let mut summary = Vec::new();
        for (po, st) in pos {
            let st: PoState = st.parse().map_err(corrupt)?;
            if !matches!(st, PoState::Rejected | PoState::Cancelled) {
                states.push(st);
            }
            summary.push(format!("{po} {st}"));
        }
        let Some(target) = derive_order_state(&states, !unplaced.is_empty()) else { continue };
        if target == current {
            continue;
        }
        let Some(path) = transition_path(current, target) else {
            tracing::warn!(order, from = %current, to = %target, "derived order state is not reachable; left as is");
            continue;
        };
        let mut reason = format!("purchase orders: {}", summary.join(", "));
        if !unplaced.is_empty() {
            reason.push_str(&format!("; line(s) {} to be re-routed", unplaced.join(", ")));
        }
        plans.push((order, current, path, reason));
    }
    let hops = plans.iter().map(|p| p.2.len()).max().unwrap_or(0);
    let mut history: Vec<(i64, OrderState, OrderState, &str)> = Vec::new();
    for k in 0..hops {
        let mut rows = Vec::new();
        for (order, current, path, reason) in &plans {
            let Some(&to) = path.get(k) else { continue };
            let from = if k == 0 { *current } else { path[k - 1] };
            rows.push(vec![
                Val::Int(*order),
                to.as_str().into(),
                reason.as_str().into(),
                Val::Int(now),
                from.as_str().into(),
            ]);
            history.push((*order, from, to, reason));
        }
        let done = values_statement(
            tx,
            "UPDATE sales_orders SET state = v.column2, state_reason = v.column3, updated_at = v.column4 FROM",
            "WHERE sales_orders.id = v.column1 AND sales_orders.state = v.column5 RETURNING id",
            5,
            &rows,
        )
        .await?;
        if done.len() != rows.len() {
            let moved: HashSet<i64> = done.iter().filter_map(|r| r.try_get::<i64, _>("id").ok()).collect();
            let lost = rows.iter().find_map(|r| match r[0] {
                Val::Int(id) if !moved.contains(&id) => Some(id),
                _ => None,
            });
            return Err(StoreError::Conflict(lost.map(|i| i.to_string()).unwrap_or_default()));
        }
    }
    super::orders::record_derived_many(tx, &history, &actor.to_string(), now).await?;
    Ok(before)
}

/// A shipment with its order's ERP ids; callers add the WHERE.
const SHIPMENT_SELECT: &str = "SELECT s.id, s.po_number, o.id AS order_id, o.source, o.external_id, o.bill_no, \
     s.shipped_at, s.created_at, s.written_back_at, s.erp_doc FROM shipments s JOIN purchase_orders p ON p.po_number = s.po_number \
     JOIN sales_orders o ON o.id = p.order_id";

impl Store {
    /// One purchase order.
    pub async fn purchase_order(&self, po_number: &str) -> Result<Option<PoRecord>, StoreError> {
        let mut conn = self.pool.acquire().await?;
        load_po(&mut conn, po_number).await
    }

    /// Purchase orders, newest first, optionally of one order, state or supplier.
    pub async fn purchase_orders(
        &self,
        order: Option<OrderId>,
        st: Option<PoState>,
        supplier: Option<&SupplierId>,
        limit: i64,
    ) -> Result<Vec<PoRecord>, StoreError> {
        let numbers: Vec<String> = sqlx::query_scalar(
            "SELECT po_number FROM purchase_orders WHERE ($1 < 0 OR order_id = $1) AND ($2 = '' OR state = $2) \
             AND ($3 = '' OR supplier = $3) ORDER BY created_at DESC, po_number LIMIT $4",
        )
        .bind(order.map_or(-1, |o| o.0))
        .bind(st.map_or("", |s| s.as_str()))
        .bind(supplier.map_or("", |s| s.as_str()))
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        let mut found = self.purchase_orders_by_number(&numbers).await?;
        Ok(numbers.iter().filter_map(|n| found.remove(n)).collect())
    }

    /// Many purchase orders by number, read together (two queries per
    /// few hundred); numbers without a PO are left out.
    pub async fn purchase_orders_by_number(&self, numbers: &[String]) -> Result<HashMap<String, PoRecord>, StoreError> {
        let mut conn = self.pool.acquire().await?;
        load_pos(&mut conn, self.positional(), numbers).await
    }

    /// POs per state.
    pub async fn po_counts(&self) -> Result<BTreeMap<String, i64>, StoreError> {
        let rows: Vec<(String, i64)> =
            sqlx::query_as("SELECT state, COUNT(*) FROM purchase_orders GROUP BY state").fetch_all(&self.pool).await?;
        Ok(rows.into_iter().collect())
    }

    /// A PO's recorded changes, oldest first.
    pub async fn po_events(&self, po_number: &str) -> Result<Vec<PoEvent>, StoreError> {
        Ok(sqlx::query_as(
            "SELECT from_state, to_state, origin, detail, at FROM po_events WHERE po_number = $1 ORDER BY id",
        )
        .bind(po_number)
        .fetch_all(&self.pool)
        .await?)
    }

    /// One shipment with its parcels and its order's ERP ids.
    pub async fn shipment(&self, id: i64) -> Result<Option<ShipmentRecord>, StoreError> {
        let rows = sqlx::query_as(AssertSqlSafe(format!("{SHIPMENT_SELECT} WHERE s.id = $1")))
            .bind(id)
            .fetch_all(&self.pool)
            .await?;
        Ok(self.with_parcels(rows).await?.pop())
    }

    /// Every shipment of a PO, oldest first.
    pub async fn shipments_of(&self, po_number: &str) -> Result<Vec<ShipmentRecord>, StoreError> {
        let rows = sqlx::query_as(AssertSqlSafe(format!("{SHIPMENT_SELECT} WHERE s.po_number = $1 ORDER BY s.id")))
            .bind(po_number)
            .fetch_all(&self.pool)
            .await?;
        self.with_parcels(rows).await
    }

    async fn with_parcels(&self, rows: Vec<ShipmentRow>) -> Result<Vec<ShipmentRecord>, StoreError> {
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            let ShipmentRow {
                id,
                po_number,
                order,
                source,
                external_id,
                bill_no,
                shipped_at,
                created_at,
                written_back_at,
                erp_doc,
            } = row;
            let parcels: Vec<(String, String, String)> = sqlx::query_as(
                "SELECT carrier, tracking_number, lines FROM parcels WHERE shipment_id = $1 ORDER BY tracking_number",
            )
            .bind(id)
            .fetch_all(&self.pool)
            .await?;
            let parcels = parcels
                .into_iter()
                .map(|(carrier, tracking_number, lines)| {
                    let lines: Vec<(String, String)> = serde_json::from_str(&lines).map_err(corrupt)?;
                    let lines = lines.into_iter().map(|(l, q)| Ok((l, dec(q)?))).collect::<Result<_, StoreError>>()?;
                    Ok(ParcelRecord { carrier, tracking_number, lines })
                })
                .collect::<Result<_, StoreError>>()?;
            out.push(ShipmentRecord {
                id,
                po_number,
                order: OrderId(order),
                source,
                external_id,
                bill_no,
                parcels,
                shipped_at,
                recorded_at: created_at,
                written_back_at,
                erp_doc,
            });
        }
        Ok(out)
    }

    /// Open POs sent before `before` and not shipped yet (late, if
    /// `before` is their expected time).
    pub async fn late_purchase_orders(&self, now: i64) -> Result<Vec<(SupplierId, String, i64)>, StoreError> {
        let rows: Vec<(String, String, i64)> = sqlx::query_as(
            "SELECT supplier, po_number, dispatched_at FROM purchase_orders WHERE expected_ship_by < $1 \
             AND state IN ('submitted', 'acknowledged', 'backordered', 'partially_shipped') ORDER BY supplier",
        )
        .bind(now)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(|(s, p, d)| (SupplierId(s), p, d)).collect())
    }
}

/// A PO whose job died: it is dead, its order goes to exception.
pub(super) async fn mark_dead(tx: &mut Tx, po_number: &str, why: &str, now: i64) -> Result<(), StoreError> {
    let Some(po) = load_po(tx, po_number).await? else { return Ok(()) };
    if po.state.is_final() {
        return Ok(());
    }
    sqlx::query("UPDATE purchase_orders SET state = 'dead', state_reason = $1, updated_at = $2 WHERE po_number = $3")
        .bind(why)
        .bind(now)
        .bind(po_number)
        .execute(&mut **tx)
        .await?;
    po_event(tx, po_number, Some(po.state), PoState::Dead, "dispatch", why, now).await?;
    derive_order(tx, po.order.0, &Actor::Dispatcher, false, now).await.map(|_| ())
}

/// A dead PO given another chance by an operator: back to its derived state.
pub(super) async fn revive(tx: &mut Tx, po_number: &str, now: i64) -> Result<(), StoreError> {
    let Some(mut po) = load_po(tx, po_number).await? else { return Ok(()) };
    if po.state != PoState::Dead {
        return Ok(());
    }
    let views: Vec<PoLineView> = po
        .lines
        .iter()
        .map(|l| PoLineView { line_id: l.line_id.clone(), quantity: l.quantity, status: l.status, shipped: l.shipped })
        .collect();
    let to = derive_po_state(PoState::Pending, po.dispatched_at.is_some(), &views, false);
    sqlx::query("UPDATE purchase_orders SET state = $1, state_reason = $2, updated_at = $3 WHERE po_number = $4")
        .bind(to.as_str())
        .bind("retried by an operator")
        .bind(now)
        .bind(po_number)
        .execute(&mut **tx)
        .await?;
    po_event(tx, po_number, Some(PoState::Dead), to, "operator", "dead letter retried", now).await?;
    po.state = to;
    derive_order(tx, po.order.0, &Actor::Dispatcher, true, now).await.map(|_| ())
}
