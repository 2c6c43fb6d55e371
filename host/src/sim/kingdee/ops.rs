//! The document operations of the simulated K3Cloud with the real server's
//! rules: Save / BatchSave / Draft (unknown Model keys dropped, required
//! fields and master data checked, approved documents locked, FModifyDate
//! stamped), Submit / Audit / UnAudit / Delete with the status machine
//! (Z draft, A created, B submitted, C approved, D re-review), ExcuteOperation
//! (Cancel, UndoCancel, close and re-open), Push from SAL_SaleOrder to
//! SAL_OUTSTOCK with source links and pushed-quantity control, and View.

use std::collections::BTreeMap;

use rust_decimal::Decimal;
use serde_json::{Map, Value, json};

use super::data::SimSaleOrder;
use super::docs::{get_ci, sub_value};
use super::forms::{FieldPlace, FormMeta, form};
use super::{KingdeeSimConfig, SimState, envelope, failure};

/// A document an operation targets.
#[derive(Debug, Clone, Copy)]
enum Target {
    Sale(usize),
    Doc(&'static str, usize),
}

/// An error for one document of a batch.
fn err(field: Option<&str>, message: String, dindex: usize) -> Value {
    json!({ "FieldName": field, "Message": message, "DIndex": dindex })
}

/// Success and error lists into one ResponseStatus (MsgCode 11 on failure).
fn outcome(done: Vec<Value>, errors: Vec<Value>, code: i64) -> Value {
    let ok = errors.is_empty();
    envelope(ok, if ok { 0 } else { code }, errors, done)
}

fn form_or_fail(form_id: Option<&str>) -> Result<&'static FormMeta, Value> {
    match form_id {
        None | Some("") => Err(failure(5, None, "formid 不能为空")),
        Some(f) => form(f).ok_or_else(|| failure(4, None, &format!("标识为“{f}”的业务对象不存在，或者被删除"))),
    }
}

fn dec(v: &Value) -> Option<Decimal> {
    match v {
        Value::Number(n) => n.to_string().parse().ok(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

fn decimal_value(d: Decimal) -> Value {
    d.normalize().to_string().parse::<f64>().map(|f| json!(f)).unwrap_or(Value::Null)
}

impl SimState {
    fn sale_pos(&self, fid: i64) -> Option<usize> {
        self.sale_orders.binary_search_by_key(&fid, |o| o.fid).ok()
    }

    fn sale_pos_by_number(&self, number: &str) -> Option<usize> {
        self.sale_numbers.get(number).and_then(|fid| self.sale_pos(*fid))
    }

    fn table(&mut self, form: &str) -> &mut super::docs::DocTable {
        if form == "PUR_PurchaseOrder" { &mut self.purchase_orders } else { &mut self.outstocks }
    }

    fn table_ref(&self, form: &str) -> &super::docs::DocTable {
        if form == "PUR_PurchaseOrder" { &self.purchase_orders } else { &self.outstocks }
    }

    /// Finds a document by bill number or (`#id`) FID.
    fn find(&self, meta: &FormMeta, key: &str) -> Option<Target> {
        let fid = key.strip_prefix('#').and_then(|id| id.trim().parse::<i64>().ok());
        if meta.id == "SAL_SaleOrder" {
            return match fid {
                Some(id) => self.sale_pos(id),
                None => self.sale_pos_by_number(key),
            }
            .map(Target::Sale);
        }
        let t = self.table_ref(meta.id);
        match fid {
            Some(id) => t.by_fid(id),
            None => t.by_number(key),
        }
        .map(|p| Target::Doc(meta.id, p))
    }

    fn status(&self, t: Target) -> String {
        match t {
            Target::Sale(i) => self.sale_orders[i].status.clone(),
            Target::Doc(f, p) => self.table_ref(f).docs[p]["FDocumentStatus"].as_str().unwrap_or("A").to_string(),
        }
    }

    fn header(&self, t: Target, key: &str) -> String {
        match t {
            Target::Sale(i) => {
                let o = &self.sale_orders[i];
                match key {
                    "FCancelStatus" => o.cancel_status.clone(),
                    "FCloseStatus" => o.close_status.clone(),
                    _ => o.bill_no.clone(),
                }
            }
            Target::Doc(f, p) => self.table_ref(f).docs[p][key].as_str().unwrap_or("A").to_string(),
        }
    }

    fn entity(&self, t: Target, dindex: usize) -> Value {
        match t {
            Target::Sale(i) => {
                json!({ "Id": self.sale_orders[i].fid, "Number": self.sale_orders[i].bill_no, "DIndex": dindex })
            }
            Target::Doc(f, p) => {
                let d = &self.table_ref(f).docs[p];
                json!({ "Id": d["FID"], "Number": d["FBillNo"], "DIndex": dindex })
            }
        }
    }

    /// Sets header values; Audit stamps FApproveDate (not FModifyDate).
    fn set(&mut self, t: Target, key: &str, value: &str, offset: i64) {
        let stamp = self.stamp(offset);
        match t {
            Target::Sale(i) => {
                let o = &mut self.sale_orders[i];
                match key {
                    "FDocumentStatus" => {
                        o.status = value.into();
                        if value == "C" {
                            o.approve_date = Some(stamp);
                        }
                    }
                    "FCancelStatus" => o.cancel_status = value.into(),
                    "FCloseStatus" => o.close_status = value.into(),
                    _ => {}
                }
            }
            Target::Doc(f, p) => {
                let table = self.table(f);
                let d = &mut table.docs[p];
                d[key] = json!(value);
                if key == "FDocumentStatus" && value == "C" {
                    d["FApproveDate"] = json!(stamp);
                }
                table.reindex(p);
            }
        }
    }
}

/// `Numbers` and `Ids` of a Submit/Audit/... request, as lookup keys.
fn targets_of(data: &Value) -> Vec<String> {
    let mut out: Vec<String> = data
        .get("Numbers")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(|n| n.as_str().map(str::to_string)).collect())
        .unwrap_or_default();
    let ids = match data.get("Ids") {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(a)) => {
            a.iter().map(|v| v.to_string().trim_matches('"').to_string()).collect::<Vec<_>>().join(",")
        }
        Some(Value::Number(n)) => n.to_string(),
        _ => String::new(),
    };
    out.extend(ids.split(',').filter(|s| !s.trim().is_empty()).map(|s| format!("#{}", s.trim())));
    out
}

/// Submit, Audit, UnAudit, Delete and the ExcuteOperation codes.
pub(super) fn operate(
    state: &mut SimState,
    cfg: &KingdeeSimConfig,
    form_id: Option<&str>,
    op: &str,
    data: &Value,
) -> Value {
    let meta = match form_or_fail(form_id) {
        Ok(m) => m,
        Err(e) => return e,
    };
    let wanted = targets_of(data);
    if wanted.is_empty() {
        return failure(5, None, "Numbers 和 Ids 不能同时为空");
    }
    let (mut done, mut errors) = (Vec::new(), Vec::new());
    // Deletions last, highest position first, so positions stay valid.
    let mut deletions: Vec<(Target, usize)> = Vec::new();
    for (i, n) in wanted.iter().enumerate() {
        let Some(t) = state.find(meta, n) else {
            errors.push(err(None, format!("单据 {n} 不存在"), i));
            continue;
        };
        let number = state.header(t, "FBillNo");
        let status = state.status(t);
        let cancelled = state.header(t, "FCancelStatus") == "B";
        let refuse = |m: String| Some(m);
        let problem = match op {
            "submit" => match status.as_str() {
                "B" => refuse(format!("单据 {number} 已提交，不能重复提交")),
                "C" => refuse(format!("单据 {number} 已审核，不能提交")),
                "Z" => refuse(format!("单据 {number} 是暂存单据，请先保存")),
                _ if cancelled => refuse(format!("单据 {number} 已作废，不能提交")),
                _ => None,
            },
            "audit" => match status.as_str() {
                "C" => refuse(format!("单据 {number} 已审核，不能重复审核")),
                "B" => None,
                _ => refuse(format!("单据 {number} 未提交，不能审核")),
            },
            "unaudit" => match status.as_str() {
                "C" if has_downstream(state, t) => {
                    refuse(format!("单据 {number} 存在下游单据（销售出库单），不允许反审核"))
                }
                "C" => None,
                _ => refuse(format!("单据 {number} 未审核，不能反审核")),
            },
            "delete" => match status.as_str() {
                "B" | "C" => refuse(format!("单据 {number} 不是创建或暂存状态，不能删除")),
                _ => None,
            },
            "cancel" => match status.as_str() {
                "B" | "C" => refuse(format!("单据 {number} 已提交或审核，不能作废")),
                _ if cancelled => refuse(format!("单据 {number} 已作废")),
                _ => None,
            },
            "undocancel" => (!cancelled).then(|| format!("单据 {number} 未作废，不能反作废")),
            "billclose" | "closebill" => match status.as_str() {
                "C" if state.header(t, "FCloseStatus") == "B" => refuse(format!("单据 {number} 已关闭")),
                "C" => None,
                _ => refuse(format!("单据 {number} 未审核，不能关闭")),
            },
            "billunclose" | "unclosebill" => {
                (state.header(t, "FCloseStatus") != "B").then(|| format!("单据 {number} 未关闭，不能反关闭"))
            }
            other => return failure(4, None, &format!("操作 {other} 不存在或者不支持 WebAPI 调用")),
        };
        if let Some(m) = problem {
            errors.push(err(None, m, i));
            continue;
        }
        let offset = cfg.clock_offset_secs;
        match op {
            "submit" => state.set(t, "FDocumentStatus", "B", offset),
            "audit" => state.set(t, "FDocumentStatus", "C", offset),
            "unaudit" => state.set(t, "FDocumentStatus", "D", offset),
            "cancel" => state.set(t, "FCancelStatus", "B", offset),
            "undocancel" => state.set(t, "FCancelStatus", "A", offset),
            "billclose" | "closebill" => state.set(t, "FCloseStatus", "B", offset),
            "billunclose" | "unclosebill" => state.set(t, "FCloseStatus", "A", offset),
            _ => deletions.push((t, i)),
        }
        done.push(state.entity(t, i));
    }
    deletions.sort_by_key(|(t, _)| std::cmp::Reverse(position(*t)));
    for (t, _) in deletions {
        delete(state, t);
    }
    outcome(done, errors, 11)
}

fn position(t: Target) -> usize {
    match t {
        Target::Sale(i) | Target::Doc(_, i) => i,
    }
}

fn has_downstream(state: &SimState, t: Target) -> bool {
    match t {
        Target::Sale(i) => state.sale_orders[i].lines.iter().any(|l| l.stock_out_qty > Decimal::ZERO),
        Target::Doc(..) => false,
    }
}

fn delete(state: &mut SimState, t: Target) {
    match t {
        Target::Sale(i) => {
            let o = state.sale_orders.remove(i);
            state.sale_numbers.remove(&o.bill_no);
        }
        Target::Doc(f, p) => {
            if f == "SAL_OUTSTOCK" {
                let doc = state.outstocks.docs[p].clone();
                // The source quantity is free again.
                let _ = book_links(state, &doc, &Value::Null);
            }
            state.table(f).remove(p);
        }
    }
}

/// Quantities an outbound document draws from sales-order lines:
/// (sales-order FID, entry id) → quantity.
fn links(doc: &Value) -> BTreeMap<(i64, i64), Decimal> {
    let mut out = BTreeMap::new();
    for e in doc.get("FEntity").and_then(Value::as_array).into_iter().flatten() {
        let qty = e.get("FRealQty").and_then(dec).unwrap_or_default();
        for l in e.get("FEntity_Link").and_then(Value::as_array).into_iter().flatten() {
            let (Some(bill), Some(entry)) = (
                l.get("FEntity_Link_FSBillId").and_then(Value::as_i64),
                l.get("FEntity_Link_FSId").and_then(Value::as_i64),
            ) else {
                continue;
            };
            *out.entry((bill, entry)).or_default() += qty;
        }
    }
    out
}

/// Moves the booked source quantities from `old`'s links to `new`'s;
/// refuses (changing nothing) when a line would ship more than ordered.
fn book_links(state: &mut SimState, old: &Value, new: &Value) -> Result<(), String> {
    let (before, after) = (links(old), links(new));
    let mut changes = Vec::new();
    for key in before.keys().chain(after.keys()) {
        let delta = after.get(key).copied().unwrap_or_default() - before.get(key).copied().unwrap_or_default();
        if delta.is_zero() || changes.iter().any(|(k, _, _)| k == key) {
            continue;
        }
        let Some(i) = state.sale_pos(key.0) else { continue };
        let Some(j) = state.sale_orders[i].lines.iter().position(|l| l.entry_id == key.1) else { continue };
        let line = &state.sale_orders[i].lines[j];
        let ordered: Decimal = line.qty.parse().unwrap_or_default();
        if line.stock_out_qty + delta > ordered {
            return Err(format!(
                "销售订单 {} 第 {} 行的出库数量 {} 超过了可出库数量 {}",
                state.sale_orders[i].bill_no,
                j + 1,
                (line.stock_out_qty + delta).normalize(),
                ordered.normalize()
            ));
        }
        changes.push((*key, (i, j), delta));
    }
    for (_, (i, j), delta) in changes {
        let l = &mut state.sale_orders[i].lines[j];
        l.stock_out_qty = (l.stock_out_qty + delta).max(Decimal::ZERO);
    }
    Ok(())
}

/// Keeps only the keys the form has; the entry array keeps known entry
/// fields. What a real server silently drops, the simulator drops too.
fn known_model(meta: &FormMeta, custom: &[String], model: &Map<String, Value>) -> Map<String, Value> {
    let mut out = Map::new();
    for (k, v) in model {
        if k.eq_ignore_ascii_case(meta.entry) {
            let entries: Vec<Value> = v
                .as_array()
                .into_iter()
                .flatten()
                .map(|e| {
                    let m: Map<String, Value> = e
                        .as_object()
                        .into_iter()
                        .flatten()
                        .filter(|(ek, _)| meta.entry_fields.iter().any(|f| f.eq_ignore_ascii_case(ek)))
                        .map(|(ek, ev)| (canonical(meta.entry_fields, ek), ev.clone()))
                        .collect();
                    Value::Object(m)
                })
                .collect();
            out.insert(meta.entry.to_string(), Value::Array(entries));
        } else if let Some(FieldPlace::Header(name, None)) = meta.resolve(k, custom) {
            out.insert(name, v.clone());
        }
    }
    out
}

fn canonical(fields: &[&str], key: &str) -> String {
    fields.iter().find(|f| f.eq_ignore_ascii_case(key)).map_or(key.to_string(), |f| f.to_string())
}

fn number_of(v: Option<&Value>) -> String {
    sub_value(v, None).as_str().unwrap_or_default().to_string()
}

/// Required fields and master data of a new document (ValidateFlag).
fn validate_new(
    meta: &FormMeta,
    cfg: &KingdeeSimConfig,
    m: &Map<String, Value>,
) -> Result<(), (Option<String>, String)> {
    let required: &[(&str, &str)] = match meta.id {
        "PUR_PurchaseOrder" => &[("FSupplierId", "供应商"), ("FPurchaseOrgId", "采购组织")],
        "SAL_SaleOrder" => &[("FCustId", "客户"), ("FSaleOrgId", "销售组织")],
        _ => &[("FCustomerID", "客户")],
    };
    for (field, label) in required {
        if number_of(get_ci(m, field)).is_empty() {
            return Err((Some(field.to_string()), format!("字段“{label}”是必填项")));
        }
    }
    let (material_key, qty_key) =
        if meta.id == "SAL_OUTSTOCK" { ("FMaterialID", "FRealQty") } else { ("FMaterialId", "FQty") };
    let entries = get_ci(m, meta.entry).and_then(Value::as_array).cloned().unwrap_or_default();
    if entries.is_empty() {
        return Err((Some(meta.entry.to_string()), "单据体“明细信息”至少需要一行".into()));
    }
    for (i, e) in entries.iter().enumerate() {
        let Some(e) = e.as_object() else { continue };
        let material = number_of(get_ci(e, material_key));
        if material.is_empty() {
            return Err((Some(material_key.into()), format!("第{}行字段“物料编码”是必填项", i + 1)));
        }
        if !cfg.materials.is_empty() && !cfg.materials.contains(&material) {
            return Err((
                Some(material_key.into()),
                format!("第{}行字段“物料编码”的值“{material}”在系统中不存在或未审核", i + 1),
            ));
        }
        if get_ci(e, qty_key).and_then(dec).is_none_or(|q| q <= Decimal::ZERO) {
            let label = if qty_key == "FRealQty" { "实发数量" } else { "数量" };
            return Err((Some(qty_key.into()), format!("第{}行“{label}”必须大于0", i + 1)));
        }
    }
    Ok(())
}

fn flag(data: &Value, key: &str, default: bool) -> bool {
    match data.get(key) {
        Some(Value::Bool(b)) => *b,
        Some(Value::String(s)) => s.eq_ignore_ascii_case("true"),
        _ => default,
    }
}

/// Save (or Draft) of one Model; `dindex` numbers it within a BatchSave.
fn save_one(
    state: &mut SimState,
    cfg: &KingdeeSimConfig,
    meta: &'static FormMeta,
    data: &Value,
    model: &Value,
    draft: bool,
    dindex: usize,
) -> Result<Value, Value> {
    let fail = |code: i64, field: Option<String>, m: String| {
        let mut v = failure(code, field.as_deref(), &m);
        v["Result"]["ResponseStatus"]["Errors"][0]["DIndex"] = json!(dindex);
        v
    };
    let Some(raw) = model.as_object() else {
        return Err(fail(8, Some("Model".into()), "data 数据包中的参数 Model 的值不能为空".into()));
    };
    let custom = cfg.custom(meta.id);
    let m = known_model(meta, &custom, raw);
    let fid = get_ci(raw, "FID")
        .and_then(|v| v.as_i64().or_else(|| v.as_str().and_then(|s| s.parse().ok())))
        .filter(|f| *f > 0);
    let offset = cfg.clock_offset_secs;
    let Some(fid) = fid else {
        if !draft && flag(data, "ValidateFlag", true) {
            validate_new(meta, cfg, &m).map_err(|(f, msg)| fail(11, f, msg))?;
        }
        return Ok(create(state, cfg, meta, m, draft, dindex));
    };
    let Some(t) = state.find(meta, &format!("#{fid}")) else {
        return Err(fail(10, Some("FID".into()), format!("单据内码 {fid} 不存在")));
    };
    let update_only: Vec<String> = data
        .get("NeedUpDateFields")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(|v| v.as_str().map(str::to_string)).collect())
        .unwrap_or_default();
    let status = state.status(t);
    if status == "B" || status == "C" {
        let editable = !update_only.is_empty()
            && update_only.iter().all(|f| cfg.editable_after_audit.iter().any(|e| e.eq_ignore_ascii_case(f)));
        if !editable {
            let number = state.header(t, "FBillNo");
            let why = if status == "C" { "已审核" } else { "已提交" };
            return Err(fail(11, None, format!("单据 {number} {why}，不允许修改")));
        }
    }
    let delete_missing = flag(data, "IsDeleteEntry", true);
    let fields: Map<String, Value> = if update_only.is_empty() {
        m
    } else {
        m.into_iter().filter(|(k, _)| update_only.iter().any(|f| f.eq_ignore_ascii_case(k))).collect()
    };
    let stamp = state.stamp(offset);
    match t {
        Target::Sale(i) => update_sale(&mut state.sale_orders[i], meta, fields, &stamp, cfg.daifa_fields())
            .map_err(|m| fail(11, None, m))?,
        Target::Doc(f, p) => {
            let old = state.table_ref(f).docs[p].clone();
            let mut new = old.clone();
            merge_doc(meta, &mut new, fields, delete_missing, &mut state.next_entry);
            new["FModifyDate"] = json!(stamp);
            if f == "SAL_OUTSTOCK" {
                book_links(state, &old, &new).map_err(|m| fail(11, Some("FRealQty".into()), m))?;
            }
            let table = state.table(f);
            table.docs[p] = new;
            table.reindex(p);
        }
    }
    Ok(state.entity(t, dindex))
}

fn create(
    state: &mut SimState,
    cfg: &KingdeeSimConfig,
    meta: &'static FormMeta,
    mut m: Map<String, Value>,
    draft: bool,
    dindex: usize,
) -> Value {
    let stamp = state.stamp(cfg.clock_offset_secs);
    state.next_doc += 1;
    let seq = state.next_doc;
    if meta.id == "SAL_SaleOrder" {
        state.next_fid += 1;
        let fid = state.next_fid;
        let o = new_sale(state, meta, fid, &m, &stamp, draft);
        let number = o.bill_no.clone();
        state.sale_numbers.insert(number.clone(), fid);
        state.sale_orders.push(o);
        return json!({ "Id": fid, "Number": number, "DIndex": dindex });
    }
    let id = if meta.id == "PUR_PurchaseOrder" { 200_000 } else { 300_000 } + seq;
    let number = get_ci(&m, "FBillNo")
        .and_then(Value::as_str)
        .filter(|n| !n.is_empty())
        .map_or_else(|| format!("{}{seq:06}", meta.prefix), str::to_string);
    let entries = m.remove(meta.entry).and_then(|v| v.as_array().cloned()).unwrap_or_default();
    let entries: Vec<Value> = entries
        .into_iter()
        .map(|mut e| {
            state.next_entry += 1;
            e["FEntryID"] = json!(state.next_entry);
            e
        })
        .collect();
    m.insert(meta.entry.to_string(), Value::Array(entries));
    for (k, v) in [
        ("FID", json!(id)),
        ("FBillNo", json!(number)),
        ("FDocumentStatus", json!(if draft { "Z" } else { "A" })),
        ("FCancelStatus", json!("A")),
        ("FCreateDate", json!(stamp)),
        ("FModifyDate", json!(stamp)),
    ] {
        m.insert(k.into(), v);
    }
    state.table(meta.id).insert(Value::Object(m));
    json!({ "Id": id, "Number": number, "DIndex": dindex })
}

/// Merges a Model into a stored document: header keys replace, entries
/// with a known FEntryID update, new ones are added, and (IsDeleteEntry)
/// entries the Model does not mention are removed.
fn merge_doc(meta: &FormMeta, doc: &mut Value, fields: Map<String, Value>, delete_missing: bool, next_entry: &mut i64) {
    let Some(d) = doc.as_object_mut() else { return };
    for (k, v) in fields {
        if k != meta.entry {
            d.insert(k, v);
            continue;
        }
        let old: Vec<Value> = d.get(meta.entry).and_then(Value::as_array).cloned().unwrap_or_default();
        let mut merged: Vec<Value> = if delete_missing { Vec::new() } else { old.clone() };
        for e in v.as_array().cloned().unwrap_or_default() {
            let id = e.get("FEntryID").and_then(Value::as_i64).filter(|i| *i > 0);
            match id.and_then(|id| old.iter().find(|o| o["FEntryID"].as_i64() == Some(id))) {
                Some(existing) => {
                    let mut n = existing.clone();
                    if let (Some(nm), Some(em)) = (n.as_object_mut(), e.as_object()) {
                        nm.extend(em.clone());
                    }
                    merged.retain(|x| x["FEntryID"].as_i64() != id);
                    merged.push(n);
                }
                None => {
                    *next_entry += 1;
                    let mut n = e.clone();
                    n["FEntryID"] = json!(*next_entry);
                    merged.push(n);
                }
            }
        }
        d.insert(meta.entry.to_string(), Value::Array(merged));
    }
}

fn new_sale(
    state: &mut SimState,
    meta: &FormMeta,
    fid: i64,
    m: &Map<String, Value>,
    stamp: &str,
    draft: bool,
) -> SimSaleOrder {
    let text = |k: &str| {
        get_ci(m, k).map(|v| sub_value(Some(v), None)).and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default()
    };
    let lines = get_ci(m, meta.entry)
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_object)
        .map(|e| {
            state.next_entry += 1;
            let num = |k: &str| get_ci(e, k).and_then(dec).map(|d| d.normalize().to_string()).unwrap_or_default();
            super::data::SimLine {
                entry_id: state.next_entry,
                material: number_of(get_ci(e, "FMaterialId")),
                qty: num("FQty"),
                tax_price: num("FTaxPrice"),
                tax_rate: num("FEntryTaxRate"),
                unit: number_of(get_ci(e, "FUnitID")),
                stock_out_qty: Decimal::ZERO,
            }
        })
        .collect();
    let mut extra = Map::new();
    for (k, v) in m {
        if k.starts_with("F_") {
            extra.insert(k.clone(), v.clone());
        }
    }
    let bill_no = Some(text("FBillNo")).filter(|n| !n.is_empty()).unwrap_or_else(|| format!("{}{fid:08}", meta.prefix));
    SimSaleOrder {
        fid,
        bill_no,
        date: stamp[..10].to_string() + "T00:00:00",
        modify_date: stamp.to_string(),
        approve_date: None,
        status: if draft { "Z" } else { "A" }.into(),
        cancel_status: "A".into(),
        close_status: "A".into(),
        customer: text("FCustId"),
        sale_org: text("FSaleOrgId"),
        platform_no: text("FNetOrderBillNo"),
        platform: String::new(),
        receiver_name: text("FLinkMan"),
        receiver_phone: text("FLinkPhone"),
        province: String::new(),
        city: String::new(),
        district: String::new(),
        street: text("FReceiveAddress"),
        postcode: String::new(),
        dropship: if text("FBillTypeID") == super::data::DROPSHIP_BILL_TYPE { "1" } else { "0" }.into(),
        note: text("FNote"),
        lines,
        extra,
    }
}

/// Applies a Model to a sales order a user could edit; stamps FModifyDate.
fn update_sale(
    o: &mut SimSaleOrder,
    meta: &FormMeta,
    m: Map<String, Value>,
    stamp: &str,
    daifa_fields: bool,
) -> Result<(), String> {
    for (k, v) in m {
        let s = sub_value(Some(&v), None).as_str().unwrap_or_default().to_string();
        match k.as_str() {
            "FNote" => o.note = s,
            "FLinkMan" | "FReceiveContact" => o.receiver_name = s,
            "FLinkPhone" => o.receiver_phone = s,
            "FNetOrderBillNo" => o.platform_no = s,
            "FReceiveAddress" if daifa_fields => o.street = s,
            "FReceiveAddress" => {
                let prefix = o.full_address().trim_end_matches(o.street.as_str()).to_string();
                match s.strip_prefix(prefix.as_str()) {
                    Some(street) => o.street = street.to_string(),
                    None => return Err("模拟器只支持修改同一省市区内的收货地址".into()),
                }
            }
            key if key == meta.entry => {
                for e in v.as_array().into_iter().flatten().filter_map(Value::as_object) {
                    let id = get_ci(e, "FEntryID").and_then(Value::as_i64);
                    let Some(l) = o.lines.iter_mut().find(|l| Some(l.entry_id) == id) else { continue };
                    if let Some(q) = get_ci(e, "FQty").and_then(dec) {
                        l.qty = q.normalize().to_string();
                    }
                    if let Some(p) = get_ci(e, "FTaxPrice").and_then(dec) {
                        l.tax_price = p.normalize().to_string();
                    }
                    let material = number_of(get_ci(e, "FMaterialId"));
                    if !material.is_empty() {
                        l.material = material;
                    }
                }
            }
            key if key.starts_with("F_") => {
                o.extra.insert(key.to_string(), v);
            }
            _ => {}
        }
    }
    o.modify_date = stamp.to_string();
    Ok(())
}

/// Save, Draft: one Model.
pub(super) fn save(
    state: &mut SimState,
    cfg: &KingdeeSimConfig,
    form_id: Option<&str>,
    data: &Value,
    draft: bool,
) -> Value {
    let meta = match form_or_fail(form_id) {
        Ok(m) => m,
        Err(e) => return e,
    };
    let Some(model) = data.get("Model").filter(|m| m.is_object()) else {
        return failure(8, Some("Model"), "data 数据包中的参数 Model 的值不能为空");
    };
    match save_one(state, cfg, meta, data, model, draft, 0) {
        Ok(entity) => {
            let mut v = envelope(true, 0, vec![], vec![entity.clone()]);
            v["Result"]["Id"] = entity["Id"].clone();
            v["Result"]["Number"] = entity["Number"].clone();
            v
        }
        Err(e) => e,
    }
}

/// BatchSave: each Model on its own; results by DIndex.
pub(super) fn batch_save(state: &mut SimState, cfg: &KingdeeSimConfig, form_id: Option<&str>, data: &Value) -> Value {
    let meta = match form_or_fail(form_id) {
        Ok(m) => m,
        Err(e) => return e,
    };
    let Some(models) = data.get("Model").and_then(Value::as_array).filter(|a| !a.is_empty()) else {
        return failure(8, Some("Model"), "data 数据包中的参数 Model 必须是非空数组");
    };
    let (mut done, mut errors) = (Vec::new(), Vec::new());
    for (i, model) in models.iter().enumerate() {
        match save_one(state, cfg, meta, data, model, false, i) {
            Ok(e) => done.push(e),
            Err(e) => errors.extend(e["Result"]["ResponseStatus"]["Errors"].as_array().cloned().unwrap_or_default()),
        }
    }
    outcome(done, errors, 11)
}

/// Push SAL_SaleOrder → SAL_OUTSTOCK: one outbound document per source
/// order holding what is left to ship of the chosen lines, linked back to
/// them; nothing left to ship is an error, never a second full copy.
pub(super) fn push(state: &mut SimState, cfg: &KingdeeSimConfig, form_id: Option<&str>, data: &Value) -> Value {
    let meta = match form_or_fail(form_id) {
        Ok(m) => m,
        Err(e) => return e,
    };
    let target = data.get("TargetFormId").and_then(Value::as_str).unwrap_or_default();
    let rule = data.get("RuleId").and_then(Value::as_str).unwrap_or_default();
    let default_rule = flag(data, "IsEnableDefaultRule", false) && !target.is_empty();
    if rule.is_empty() && !default_rule {
        return failure(8, Some("RuleId"), "未启用默认转换规则时，RuleId 不能为空");
    }
    let target = if target.is_empty() { "SAL_OUTSTOCK" } else { target };
    if meta.id != "SAL_SaleOrder" || !target.eq_ignore_ascii_case("SAL_OUTSTOCK") {
        return failure(11, Some("TargetFormId"), &format!("不存在从 {} 到 {target} 的转换规则", meta.id));
    }
    // Which lines: EntryIds (across orders), else every line of Numbers/Ids.
    let entry_ids: Vec<i64> = match data.get("EntryIds") {
        Some(Value::String(s)) => s.split(',').filter_map(|x| x.trim().parse().ok()).collect(),
        _ => Vec::new(),
    };
    let mut chosen: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
    if entry_ids.is_empty() {
        let wanted = targets_of(data);
        if wanted.is_empty() {
            return failure(5, None, "Numbers、Ids 和 EntryIds 不能同时为空");
        }
        for n in wanted {
            let Some(Target::Sale(i)) = state.find(meta, &n) else {
                return failure(10, None, &format!("源单 {n} 不存在"));
            };
            chosen.insert(i, (0..state.sale_orders[i].lines.len()).collect());
        }
    } else {
        for id in entry_ids {
            let hit = state
                .sale_orders
                .iter()
                .enumerate()
                .find_map(|(i, o)| o.lines.iter().position(|l| l.entry_id == id).map(|j| (i, j)));
            let Some((i, j)) = hit else { return failure(10, None, &format!("源单分录 {id} 不存在")) };
            chosen.entry(i).or_default().push(j);
        }
    }
    let mut created = Vec::new();
    for (n, (i, lines)) in chosen.into_iter().enumerate() {
        let o = state.sale_orders[i].clone();
        if o.status != "C" {
            return failure(11, None, &format!("源单 {} 未审核，不能下推", o.bill_no));
        }
        if o.cancel_status == "B" || o.close_status == "B" {
            return failure(11, None, &format!("源单 {} 已作废或已关闭，不能下推", o.bill_no));
        }
        let entries: Vec<Value> = lines
            .iter()
            .filter_map(|&j| {
                let l = &o.lines[j];
                let left = l.qty.parse::<Decimal>().unwrap_or_default() - l.stock_out_qty;
                (left > Decimal::ZERO).then(|| {
                    json!({
                        "FMaterialID": { "FNumber": l.material }, "FUnitID": { "FNumber": l.unit },
                        "FRealQty": decimal_value(left), "FMustQty": decimal_value(left),
                        "FSrcType": "SAL_SaleOrder", "FSrcBillNo": o.bill_no, "FSoorDerno": o.bill_no, "FSrcEntryId": l.entry_id,
                        "FEntity_Link": [{
                            "FEntity_Link_FRuleId": "SaleOrder-OutStock", "FEntity_Link_FSTableName": "T_SAL_ORDERENTRY",
                            "FEntity_Link_FSBillId": o.fid, "FEntity_Link_FSId": l.entry_id, "FEntity_Link_FBaseUnitQty": decimal_value(left),
                        }],
                    })
                })
            })
            .collect();
        if entries.is_empty() {
            return failure(11, None, &format!("源单 {} 的分录已全部出库，没有可下推的数量", o.bill_no));
        }
        let model = json!({
            "FBillTypeID": { "FNUMBER": "XSCKD01_SYS" }, "FDate": o.date,
            "FCustomerID": { "FNumber": o.customer }, "FSaleOrgId": { "FNumber": o.sale_org }, "FStockOrgId": { "FNumber": o.sale_org },
            "FLinkMan": o.receiver_name, "FLinkPhone": o.receiver_phone, "FReceiveAddress": o.full_address(),
            "FEntity": entries,
        });
        let out_meta = form("SAL_OUTSTOCK").expect("SAL_OUTSTOCK is a served form");
        let m = model.as_object().cloned().unwrap_or_default();
        let entity = create(state, cfg, out_meta, m, false, n);
        let pos = state.outstocks.by_fid(entity["Id"].as_i64().unwrap_or(0));
        if let Some(p) = pos {
            let doc = state.outstocks.docs[p].clone();
            if let Err(e) = book_links(state, &Value::Null, &doc) {
                state.outstocks.remove(p);
                return failure(11, None, &e);
            }
        }
        created.push(entity);
    }
    envelope(true, 0, vec![], created)
}

/// View: one document by Number or Id.
pub(super) fn view(state: &SimState, cfg: &KingdeeSimConfig, form_id: Option<&str>, data: &Value) -> Value {
    let meta = match form_or_fail(form_id) {
        Ok(m) => m,
        Err(e) => return e,
    };
    let number = data.get("Number").and_then(Value::as_str).unwrap_or_default();
    let id =
        data.get("Id").map(|v| v.as_str().map(str::to_string).unwrap_or_else(|| v.to_string())).unwrap_or_default();
    let key = if number.is_empty() { format!("#{id}") } else { number.to_string() };
    let found = state.find(meta, &key).map(|t| match t {
        Target::Sale(i) => {
            let o = &state.sale_orders[i];
            let daifa = cfg.daifa_fields();
            let place = |k: &str| FieldPlace::Header(k.into(), None);
            json!({ "Id": o.fid, "BillNo": o.bill_no, "DocumentStatus": o.status, "CancelStatus": o.cancel_status,
                "CloseStatus": o.close_status, "ModifyDate": o.modify_date, "ApproveDate": o.approve_date,
                "ReceiveAddress": super::data::sale_field(o, None, &place("FReceiveAddress"), daifa),
                "SaleOrderEntry": o.lines.iter().map(|l| json!({ "Id": l.entry_id, "MaterialId": { "Number": l.material },
                    "Qty": l.qty, "StockOutQty": l.stock_out_qty.normalize().to_string() })).collect::<Vec<_>>() })
        }
        Target::Doc(f, p) => state.table_ref(f).docs[p].clone(),
    });
    match found {
        Some(doc) => {
            let mut v = envelope(true, 0, vec![], vec![]);
            v["Result"]["Result"] = doc;
            v
        }
        None => failure(10, None, &format!("单据 {key} 不存在")),
    }
}
