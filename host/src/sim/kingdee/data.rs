//! The simulator's documents and operations: SAL_SaleOrder rows (header and
//! entry level), generic PUR_PurchaseOrder / SAL_OUTSTOCK documents, query
//! paging and ordering, Save / Submit / Audit / Push / View.

use std::cmp::Ordering;

use serde_json::{Value, json};

use super::filter::Filter;
use super::{SimState, envelope, failure};
use crate::sim::orders::Gen;

/// One sales-order line.
#[derive(Debug, Clone, PartialEq)]
pub struct SimLine {
    pub entry_id: i64,
    pub material: String,
    /// Kingdee quantities are decimals.
    pub qty: String,
    pub tax_price: String,
    pub tax_rate: String,
}

/// One SAL_SaleOrder with the custom drop-ship fields a deployment adds.
#[derive(Debug, Clone, PartialEq)]
pub struct SimSaleOrder {
    pub fid: i64,
    pub bill_no: String,
    pub date: String,
    pub modify_date: String,
    /// Z draft, A created, B in approval, C approved, D re-review.
    pub status: String,
    /// A normal, B cancelled.
    pub cancel_status: String,
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
    /// `F_DAIFA_DropShip`: "1" marks drop-ship orders.
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
            }
        })
        .collect();
    SimSaleOrder {
        fid,
        bill_no: format!("XSDD{fid:08}"),
        date: stamp[..10].to_string() + "T00:00:00",
        modify_date: stamp.to_string(),
        status: "C".into(),
        cancel_status: "A".into(),
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

const ENTRY_KEYS: [&str; 7] =
    ["FSaleOrderEntry_FEntryID", "FMaterialId.FNumber", "FMaterialId", "FQty", "FPrice", "FTaxPrice", "FEntryTaxRate"];

fn is_entry_key(k: &str) -> bool {
    ENTRY_KEYS.iter().any(|e| e.eq_ignore_ascii_case(k)) || k.to_ascii_lowercase().starts_with("fsaleorderentry")
}

/// A SAL_SaleOrder field; `None` = no such field.
fn sale_field(o: &SimSaleOrder, l: Option<&SimLine>, key: &str) -> Option<Value> {
    let k = key.to_ascii_lowercase();
    Some(match k.as_str() {
        "fid" => json!(o.fid),
        "fbillno" => json!(o.bill_no),
        "fdate" => json!(o.date),
        "fmodifydate" => json!(o.modify_date),
        "fcreatedate" => json!(o.date),
        "fdocumentstatus" => json!(o.status),
        "fcancelstatus" => json!(o.cancel_status),
        "fcustid.fnumber" | "fcustid" => json!(o.customer),
        "fsaleorgid.fnumber" | "fsaleorgid" => json!(o.sale_org),
        "fbilltypeid.fnumber" => json!("XSDD01_SYS"),
        "fnetorderbillno" => json!(o.platform_no),
        "freceiveaddress" => json!(o.street),
        "fnote" => json!(o.note),
        "f_daifa_receivername" => json!(o.receiver_name),
        "f_daifa_receiverphone" => json!(o.receiver_phone),
        "f_daifa_province" => json!(o.province),
        "f_daifa_city" => json!(o.city),
        "f_daifa_district" => json!(o.district),
        "f_daifa_postcode" => json!(o.postcode),
        "f_daifa_dropship" => json!(o.dropship),
        "f_daifa_platform" => json!(o.platform),
        _ if o.extra.keys().any(|x| x.eq_ignore_ascii_case(key)) => {
            o.extra.iter().find(|(x, _)| x.eq_ignore_ascii_case(key)).map(|(_, v)| v.clone()).unwrap_or(Value::Null)
        }
        _ => {
            let l = l?;
            match k.as_str() {
                "fsaleorderentry_fentryid" => json!(l.entry_id),
                "fmaterialid.fnumber" | "fmaterialid" => json!(l.material),
                "fqty" => l.qty.parse::<f64>().map(|q| json!(q)).unwrap_or_else(|_| json!(l.qty)),
                "fprice" | "ftaxprice" => l.tax_price.parse::<f64>().map(|q| json!(q)).unwrap_or(Value::Null),
                "fentrytaxrate" => l.tax_rate.parse::<f64>().map(|q| json!(q)).unwrap_or(Value::Null),
                _ => return None,
            }
        }
    })
}

/// A field of a generic document: a path like `FSupplierId.FNumber`.
fn doc_field(d: &Value, key: &str) -> Value {
    let mut cur = d;
    for part in key.split('.') {
        let next = cur.as_object().and_then(|m| m.iter().find(|(k, _)| k.eq_ignore_ascii_case(part)).map(|(_, v)| v));
        match next {
            Some(v) => cur = v,
            None => return Value::Null,
        }
    }
    cur.clone()
}

/// Does document `d` have FID `id` (given as text)?
fn fid_is(d: &Value, id: &str) -> bool {
    doc_field(d, "FID").as_i64().is_some_and(|f| id.trim().parse::<i64>() == Ok(f))
}

fn cmp_values(a: &Value, b: &Value) -> Ordering {
    match (a.as_f64(), b.as_f64()) {
        (Some(x), Some(y)) => x.partial_cmp(&y).unwrap_or(Ordering::Equal),
        _ => a.as_str().unwrap_or_default().cmp(b.as_str().unwrap_or_default()),
    }
}

fn in_array(err: Value) -> Value {
    json!([[err]])
}

pub(super) fn query(state: &mut SimState, data: &Value, as_objects: bool, offset: i64) -> Value {
    let s = |k: &str| data.get(k).and_then(Value::as_str).unwrap_or_default().to_string();
    let n =
        |k: &str| data.get(k).and_then(|v| v.as_i64().or_else(|| v.as_str().and_then(|s| s.parse().ok()))).unwrap_or(0);
    let form = s("FormId");
    let keys: Vec<String> = s("FieldKeys").split(',').map(|k| k.trim().to_string()).filter(|k| !k.is_empty()).collect();
    if keys.is_empty() {
        return in_array(failure(8, None, "data 数据包中的参数 FieldKeys 的值不能为空"));
    }
    let filter = match Filter::parse(&s("FilterString")) {
        Ok(f) => f,
        Err(e) => return in_array(failure(8, None, &format!("FilterString: {e}"))),
    };
    let order: Vec<(String, bool)> = s("OrderString")
        .split(',')
        .filter(|p| !p.trim().is_empty())
        .map(|p| {
            let mut w = p.split_whitespace();
            let f = w.next().unwrap_or_default().to_string();
            (f, w.next().is_some_and(|d| d.eq_ignore_ascii_case("desc")))
        })
        .collect();
    let (top, start, limit) = (n("TopRowCount"), n("StartRow").max(0) as usize, n("Limit"));
    let limit = if limit <= 0 { 10_000 } else { limit.min(10_000) } as usize;

    // Every referenced field must exist.
    let referenced: Vec<String> = keys
        .iter()
        .cloned()
        .chain(filter.fields().into_iter().map(str::to_string))
        .chain(order.iter().map(|(f, _)| f.clone()))
        .collect();

    let mut rows: Vec<Vec<Value>>;
    let mut sort_keys: Vec<Vec<Value>>;
    match form.as_str() {
        "SAL_SaleOrder" => {
            state.sale_order_queries += 1;
            if let Some((after, count)) = state.faults.modify_during_scan
                && state.sale_order_queries == after
            {
                modify_some(state, count, offset);
            }
            let sample = state.sale_orders.first();
            if let Some(o) = sample
                && let Some(bad) = referenced.iter().find(|k| sale_field(o, o.lines.first(), k).is_none())
            {
                return in_array(failure(9, Some(bad), &format!("元数据中标识为 {bad} 的字段不存在")));
            }
            let entry_level = referenced.iter().any(|k| is_entry_key(k));
            rows = Vec::new();
            sort_keys = Vec::new();
            for o in &state.sale_orders {
                let lines: Vec<Option<&SimLine>> =
                    if entry_level { o.lines.iter().map(Some).collect() } else { vec![o.lines.first()] };
                for l in lines {
                    let get = |k: &str| sale_field(o, l, k).unwrap_or(Value::Null);
                    if !filter.eval(&get) {
                        continue;
                    }
                    rows.push(keys.iter().map(|k| get(k)).collect());
                    let mut sk: Vec<Value> = order.iter().map(|(f, _)| get(f)).collect();
                    sk.push(json!(o.fid));
                    sk.push(l.map_or(json!(0), |l| json!(l.entry_id)));
                    sort_keys.push(sk);
                }
            }
        }
        "PUR_PurchaseOrder" | "SAL_OUTSTOCK" => {
            let docs = if form == "PUR_PurchaseOrder" { &state.purchase_orders } else { &state.outstocks };
            rows = Vec::new();
            sort_keys = Vec::new();
            for d in docs {
                let get = |k: &str| doc_field(d, k);
                if !filter.eval(&get) {
                    continue;
                }
                rows.push(keys.iter().map(|k| get(k)).collect());
                let mut sk: Vec<Value> = order.iter().map(|(f, _)| get(f)).collect();
                sk.push(get("FID"));
                sort_keys.push(sk);
            }
        }
        other => return in_array(failure(4, None, &format!("标识为“{other}”的业务对象不存在，或者被删除"))),
    }
    let mut idx: Vec<usize> = (0..rows.len()).collect();
    idx.sort_by(|&a, &b| {
        for (i, (_, desc)) in order.iter().enumerate() {
            let c = cmp_values(&sort_keys[a][i], &sort_keys[b][i]);
            if c != Ordering::Equal {
                return if *desc { c.reverse() } else { c };
            }
        }
        sort_keys[a][order.len()..]
            .iter()
            .zip(&sort_keys[b][order.len()..])
            .map(|(x, y)| cmp_values(x, y))
            .find(|c| *c != Ordering::Equal)
            .unwrap_or(Ordering::Equal)
    });
    // TopRowCount is an absolute end row, not a page size (the quirk).
    let end = if top > 0 { (top as usize).min(rows.len()) } else { rows.len() };
    let page: Vec<Value> = idx
        .into_iter()
        .take(end)
        .skip(start)
        .take(limit)
        .map(|i| {
            if as_objects {
                Value::Object(keys.iter().cloned().zip(rows[i].iter().cloned()).collect())
            } else {
                Value::Array(rows[i].clone())
            }
        })
        .collect();
    Value::Array(page)
}

/// Users editing orders while a scan runs: half change a quantity, half a
/// remark; as many new orders arrive.
fn modify_some(state: &mut SimState, count: usize, offset: i64) {
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

fn docs_mut<'a>(state: &'a mut SimState, form: Option<&str>) -> Result<&'a mut Vec<Value>, Value> {
    match form {
        Some("PUR_PurchaseOrder") => Ok(&mut state.purchase_orders),
        Some("SAL_OUTSTOCK") => Ok(&mut state.outstocks),
        Some(other) => Err(failure(4, None, &format!("标识为“{other}”的业务对象不存在，或者被删除"))),
        None => Err(failure(8, None, "formid 不能为空")),
    }
}

pub(super) fn save(state: &mut SimState, form: Option<&str>, data: &Value) -> Value {
    let Some(model) = data.get("Model").filter(|m| m.is_object()).cloned() else {
        return failure(8, Some("Model"), "data 数据包中的参数 Model 的值不能为空");
    };
    if form == Some("SAL_SaleOrder") {
        // Field updates on an existing sales order.
        let fid = doc_field(&model, "FID").as_i64();
        let Some(o) = state.sale_orders.iter_mut().find(|o| Some(o.fid) == fid) else {
            return failure(9, Some("FID"), "销售订单不存在");
        };
        for (k, v) in model.as_object().into_iter().flatten().filter(|(k, _)| !k.eq_ignore_ascii_case("FID")) {
            o.extra.insert(k.clone(), v.clone());
        }
        return envelope(true, 0, vec![], vec![json!({ "Id": o.fid, "Number": o.bill_no, "DIndex": 0 })]);
    }
    if form == Some("PUR_PurchaseOrder") {
        if doc_field(&model, "FSupplierId.FNumber").as_str().is_none_or(str::is_empty)
            && doc_field(&model, "FID").is_null()
        {
            return failure(11, Some("FSupplierId"), "字段“供应商”是必填项");
        }
        let entries = doc_field(&model, "FPOOrderEntry");
        if doc_field(&model, "FID").is_null() {
            let Some(lines) = entries.as_array().filter(|l| !l.is_empty()) else {
                return failure(11, Some("FPOOrderEntry"), "单据体“明细信息”至少需要一行");
            };
            for (i, l) in lines.iter().enumerate() {
                if doc_field(l, "FQty").as_f64().is_none_or(|q| q <= 0.0) {
                    return failure(11, Some("FQty"), &format!("第{}行“采购数量”必须大于0", i + 1));
                }
                if doc_field(l, "FMaterialId.FNumber").as_str().is_none_or(str::is_empty) {
                    return failure(9, Some("FMaterialId"), &format!("第{}行“物料编码”不存在", i + 1));
                }
            }
        }
    }
    let fid = doc_field(&model, "FID").as_i64().filter(|id| *id > 0);
    state.next_doc += 1;
    let next = state.next_doc;
    let docs = match docs_mut(state, form) {
        Ok(d) => d,
        Err(e) => return e,
    };
    let entity = match fid {
        Some(id) => {
            let Some(doc) = docs.iter_mut().find(|d| doc_field(d, "FID").as_i64() == Some(id)) else {
                return failure(9, Some("FID"), &format!("单据 {id} 不存在"));
            };
            if doc_field(doc, "FDocumentStatus").as_str() == Some("C") {
                return failure(11, None, "单据已审核，不允许修改");
            }
            if let (Some(d), Some(m)) = (doc.as_object_mut(), model.as_object()) {
                for (k, v) in m {
                    d.insert(k.clone(), v.clone());
                }
            }
            json!({ "Id": id, "Number": doc_field(doc, "FBillNo"), "DIndex": 0 })
        }
        None => {
            let prefix = if form == Some("PUR_PurchaseOrder") { "CGDD" } else { "XSCKD" };
            let id = 200_000 + next;
            let number = format!("{prefix}{next:06}");
            let mut doc = model;
            if let Some(d) = doc.as_object_mut() {
                d.insert("FID".into(), json!(id));
                d.insert("FBillNo".into(), json!(number));
                d.insert("FDocumentStatus".into(), json!("A"));
            }
            docs.push(doc);
            json!({ "Id": id, "Number": number, "DIndex": 0 })
        }
    };
    let mut v = envelope(true, 0, vec![], vec![entity.clone()]);
    v["Result"]["Id"] = entity["Id"].clone();
    v["Result"]["Number"] = entity["Number"].clone();
    v
}

fn numbers(data: &Value) -> Vec<String> {
    let mut out: Vec<String> = data
        .get("Numbers")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(|n| n.as_str().map(str::to_string)).collect())
        .unwrap_or_default();
    if let Some(ids) = data.get("Ids").and_then(Value::as_str) {
        out.extend(ids.split(',').filter(|s| !s.trim().is_empty()).map(|s| format!("#{}", s.trim())));
    }
    out
}

pub(super) fn set_status(state: &mut SimState, form: Option<&str>, data: &Value, from: &str, to: &str) -> Value {
    let wanted = numbers(data);
    let docs = match docs_mut(state, form) {
        Ok(d) => d,
        Err(e) => return e,
    };
    let mut done = Vec::new();
    for (i, n) in wanted.iter().enumerate() {
        let doc = docs.iter_mut().find(|d| {
            doc_field(d, "FBillNo").as_str() == Some(n) || n.strip_prefix('#').is_some_and(|id| fid_is(d, id))
        });
        let Some(doc) = doc else { return failure(9, None, &format!("单据 {n} 不存在")) };
        let status = doc_field(doc, "FDocumentStatus").as_str().unwrap_or("A").to_string();
        if status == to || (to == "B" && status == "C") {
            return failure(11, None, &format!("单据 {n} 已{}", if to == "C" { "审核" } else { "提交" }));
        }
        if status != from && !(from == "A" && status == "Z") {
            return failure(11, None, &format!("单据 {n} 状态为 {status}，不能执行此操作"));
        }
        doc["FDocumentStatus"] = json!(to);
        done.push(json!({ "Id": doc_field(doc, "FID"), "Number": doc_field(doc, "FBillNo"), "DIndex": i }));
    }
    envelope(true, 0, vec![], done)
}

/// SAL_SaleOrder → SAL_OUTSTOCK with the default rule.
pub(super) fn push(state: &mut SimState, form: Option<&str>, data: &Value) -> Value {
    if form != Some("SAL_SaleOrder") || data.get("TargetFormId").and_then(Value::as_str) != Some("SAL_OUTSTOCK") {
        return failure(8, Some("TargetFormId"), "模拟器只支持 SAL_SaleOrder → SAL_OUTSTOCK 下推");
    }
    let wanted = numbers(data);
    let mut created = Vec::new();
    for (i, n) in wanted.iter().enumerate() {
        let Some(o) = state
            .sale_orders
            .iter()
            .find(|o| &o.bill_no == n || n.strip_prefix('#') == Some(&o.fid.to_string()))
            .cloned()
        else {
            return failure(9, None, &format!("源单 {n} 不存在"));
        };
        if o.status != "C" {
            return failure(11, None, &format!("源单 {n} 未审核，不能下推"));
        }
        state.next_doc += 1;
        let id = 300_000 + state.next_doc;
        let number = format!("XSCKD{:06}", state.next_doc);
        state.outstocks.push(json!({
            "FID": id, "FBillNo": number, "FDocumentStatus": "A", "FSrcBillNo": o.bill_no,
            "FCustomerID": { "FNumber": o.customer }, "FLinkMan": o.receiver_name, "FLinkPhone": o.receiver_phone,
            "FReceiveAddress": o.street,
            "FEntity": o.lines.iter().map(|l| json!({ "FMaterialID": { "FNumber": l.material }, "FRealQty": l.qty, "FSrcEntryId": l.entry_id })).collect::<Vec<_>>(),
        }));
        created.push(json!({ "Id": id, "Number": number, "DIndex": i }));
    }
    envelope(true, 0, vec![], created)
}

pub(super) fn view(state: &SimState, form: Option<&str>, data: &Value) -> Value {
    let number = data.get("Number").and_then(Value::as_str).unwrap_or_default();
    let id =
        data.get("Id").map(|v| v.as_str().map(str::to_string).unwrap_or_else(|| v.to_string())).unwrap_or_default();
    let found = match form {
        Some("SAL_SaleOrder") => state
            .sale_orders
            .iter()
            .find(|o| o.bill_no == number || o.fid.to_string() == id)
            .map(|o| json!({ "Id": o.fid, "BillNo": o.bill_no, "DocumentStatus": o.status, "ModifyDate": o.modify_date,
                "SaleOrderEntry": o.lines.iter().map(|l| json!({ "Id": l.entry_id, "MaterialId": { "Number": l.material }, "Qty": l.qty })).collect::<Vec<_>>() })),
        Some("PUR_PurchaseOrder") | Some("SAL_OUTSTOCK") => {
            let docs = if form == Some("PUR_PurchaseOrder") { &state.purchase_orders } else { &state.outstocks };
            docs.iter().find(|d| doc_field(d, "FBillNo").as_str() == Some(number) || fid_is(d, &id)).cloned()
        }
        _ => None,
    };
    match found {
        Some(doc) => {
            let mut v = envelope(true, 0, vec![], vec![]);
            v["Result"]["Result"] = doc;
            v
        }
        None => failure(10, None, &format!("单据 {number}{id} 不存在")),
    }
}
