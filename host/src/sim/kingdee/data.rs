//! The simulated ERP's sales orders (SAL_SaleOrder): their typed form, the
//! generator of realistic drop-ship orders, and how a FieldKey reads one.
//! Kept typed (not as JSON like the other forms) because tests and the
//! ingestion property test edit them as a user would.

use rust_decimal::Decimal;
use serde_json::{Value, json};

use super::SimState;
use super::forms::FieldPlace;
use crate::sim::orders::Gen;

/// The bill type of drop-ship (直运) sales orders on a stock K3Cloud here.
pub const DROPSHIP_BILL_TYPE: &str = "XSDD10_SYS";
/// The bill type of ordinary sales orders.
pub const STANDARD_BILL_TYPE: &str = "XSDD01_SYS";

/// One sales-order line.
#[derive(Debug, Clone, PartialEq)]
pub struct SimLine {
    pub entry_id: i64,
    pub material: String,
    /// Kingdee quantities are decimals.
    pub qty: String,
    pub tax_price: String,
    pub tax_rate: String,
    /// `FUnitID.FNumber`.
    pub unit: String,
    /// Quantity already pushed to SAL_OUTSTOCK (`FStockOutQty`): Push and
    /// outbound Saves refuse to exceed `qty` (pushed-quantity control).
    pub stock_out_qty: Decimal,
    /// Quantity already pushed to PUR_PurchaseOrder: the same control for
    /// purchase orders (a line is bought at most once).
    pub pur_qty: Decimal,
    /// `FEntryNote`, the line's remark (a buyer's line reference, say).
    pub note: String,
}

/// One SAL_SaleOrder with the custom drop-ship fields a deployment adds.
#[derive(Debug, Clone, PartialEq)]
pub struct SimSaleOrder {
    pub fid: i64,
    pub bill_no: String,
    pub date: String,
    pub modify_date: String,
    /// `FApproveDate`: set by Audit, which leaves FModifyDate alone.
    pub approve_date: Option<String>,
    /// Z draft, A created, B in approval, C approved, D re-review.
    pub status: String,
    /// A normal, B cancelled (作废).
    pub cancel_status: String,
    /// A open, B closed (整单关闭).
    pub close_status: String,
    pub customer: String,
    pub sale_org: String,
    pub platform_no: String,
    /// `F_DAIFA_Platform`: the marketplace the order came from.
    pub platform: String,
    pub receiver_name: String,
    pub receiver_phone: String,
    pub province: String,
    pub city: String,
    pub district: String,
    pub street: String,
    pub postcode: String,
    /// "1" marks drop-ship orders: `F_DAIFA_DropShip` where that custom
    /// field is installed, and the bill type (`XSDD10_SYS`) everywhere.
    pub dropship: String,
    pub note: String,
    pub lines: Vec<SimLine>,
    /// Other header fields written by Save (e.g. a tracking-number field).
    pub extra: serde_json::Map<String, Value>,
}

pub(super) fn generate_order(fid: i64, seed: u64, stamp: &str, entry: &mut i64) -> SimSaleOrder {
    let mut g = Gen::new(seed);
    let a = g.address();
    let n_lines = 1 + g.below(5) as usize;
    let lines = (0..n_lines)
        .map(|_| {
            *entry += 1;
            let cents = 500 + g.below(50_000);
            SimLine {
                entry_id: *entry,
                material: format!("MAT{:05}", g.below(5_000)),
                qty: (1 + g.below(3)).to_string(),
                tax_price: format!("{}.{:02}", cents / 100, cents % 100),
                tax_rate: "13".into(),
                unit: "Pcs".into(),
                stock_out_qty: Decimal::ZERO,
                pur_qty: Decimal::ZERO,
                note: String::new(),
            }
        })
        .collect();
    SimSaleOrder {
        fid,
        bill_no: format!("XSDD{fid:08}"),
        date: stamp[..10].to_string() + "T00:00:00",
        modify_date: stamp.to_string(),
        approve_date: Some(stamp.to_string()),
        status: "C".into(),
        cancel_status: "A".into(),
        close_status: "A".into(),
        customer: format!("CUST{:03}", g.below(50)),
        sale_org: "100".into(),
        platform_no: format!("TB{}", 3_000_000_000u64 + g.below(999_999_999)),
        // From the id, not the generator, so earlier fields stay as they were.
        platform: ["tmall", "jd", "douyin"][fid.rem_euclid(3) as usize].into(),
        receiver_name: a.name,
        receiver_phone: a.phone,
        province: a.province,
        city: a.city,
        district: a.district,
        street: a.street,
        postcode: a.postcode,
        dropship: "1".into(),
        note: String::new(),
        lines,
        extra: serde_json::Map::new(),
    }
}

impl SimSaleOrder {
    /// The whole address in one line, as a stock K3Cloud keeps it in
    /// `FReceiveAddress` (a municipality is written once).
    pub fn full_address(&self) -> String {
        let city = if self.city == self.province { "" } else { self.city.as_str() };
        format!("{}{}{}{}", self.province, city, self.district, self.street)
    }

    pub fn bill_type(&self) -> &'static str {
        if self.dropship == "1" { DROPSHIP_BILL_TYPE } else { STANDARD_BILL_TYPE }
    }
}

/// Reads a resolved field of a sales order (and one of its lines); the
/// place's name is lower-case (resolved once per query, not per cell).
/// `daifa_fields`: the installation keeps the split address in custom
/// fields and the street alone in FReceiveAddress.
pub(super) fn sale_field(o: &SimSaleOrder, l: Option<&SimLine>, place: &FieldPlace, daifa_fields: bool) -> Value {
    let number = |v: &str| json!(v);
    match place {
        FieldPlace::Header(name, _) => match name.as_str() {
            "fid" => json!(o.fid),
            "fbillno" => json!(o.bill_no),
            "fdate" | "fcreatedate" => json!(o.date),
            "fmodifydate" => json!(o.modify_date),
            "fapprovedate" => o.approve_date.as_ref().map_or(Value::Null, |d| json!(d)),
            "fdocumentstatus" => json!(o.status),
            "fcancelstatus" => json!(o.cancel_status),
            "fclosestatus" => json!(o.close_status),
            "fcustid" | "freceiveid" | "fsettleid" | "fchargeid" => number(&o.customer),
            "fsaleorgid" => number(&o.sale_org),
            "fbilltypeid" => number(o.bill_type()),
            "fbusinesstype" => json!(if o.dropship == "1" { "DRPTRAN" } else { "NORMAL" }),
            "fnetorderbillno" => json!(o.platform_no),
            "freceiveaddress" => json!(if daifa_fields { o.street.clone() } else { o.full_address() }),
            "flinkman" | "freceivecontact" => json!(o.receiver_name),
            "flinkphone" => json!(o.receiver_phone),
            "fnote" => json!(o.note),
            "f_daifa_receivername" => json!(o.receiver_name),
            "f_daifa_receiverphone" => json!(o.receiver_phone),
            "f_daifa_province" => json!(o.province),
            "f_daifa_city" => json!(o.city),
            "f_daifa_district" => json!(o.district),
            "f_daifa_postcode" => json!(o.postcode),
            "f_daifa_dropship" => json!(o.dropship),
            "f_daifa_platform" => json!(o.platform),
            _ => o.extra.iter().find(|(x, _)| x.eq_ignore_ascii_case(name)).map_or(Value::Null, |(_, v)| v.clone()),
        },
        FieldPlace::Entry(name, _) => {
            let Some(l) = l else { return Value::Null };
            match name.as_str() {
                "fentryid" => json!(l.entry_id),
                "fmaterialid" => json!(l.material),
                "funitid" => json!(l.unit),
                "fqty" => decimal_json(&l.qty),
                "fprice" | "ftaxprice" => decimal_json(&l.tax_price),
                "fentrytaxrate" => decimal_json(&l.tax_rate),
                "fstockoutqty" => json!(l.stock_out_qty.normalize().to_string().parse::<f64>().unwrap_or(0.0)),
                "fentrynote" => json!(l.note),
                _ => Value::Null,
            }
        }
    }
}

/// Kingdee answers decimals as JSON numbers; a value a user typed that is
/// not a number (bad data, for the tests) comes back as text.
fn decimal_json(s: &str) -> Value {
    s.parse::<f64>().map(|q| json!(q)).unwrap_or_else(|_| json!(s))
}

/// Users editing orders while a scan runs: half change a quantity, half a
/// remark; as many new orders arrive.
pub(super) fn modify_some(state: &mut SimState, count: usize, offset: i64) {
    let n = state.sale_orders.len();
    for i in 0..count.min(n) {
        let pick = (state.next_rand() as usize) % n;
        let stamp = state.stamp(offset);
        let o = &mut state.sale_orders[pick];
        if i % 2 == 0 {
            if let Some(l) = o.lines.first_mut() {
                l.qty = (l.qty.parse::<u32>().unwrap_or(1) + 1).to_string();
            }
        } else {
            o.note = format!("edited during scan {i}");
        }
        o.modify_date = stamp;
    }
    for _ in 0..count {
        state.new_order(offset);
    }
}
