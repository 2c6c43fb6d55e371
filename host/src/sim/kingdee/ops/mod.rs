//! The document operations of the simulated K3Cloud with the real server's
//! rules: Save / BatchSave / Draft (unknown Model keys dropped, required
//! fields and master data checked, approved documents locked, FModifyDate
//! stamped), Submit / Audit / UnAudit / Delete with the status machine
//! (Z draft, A created, B submitted, C approved, D re-review), ExcuteOperation
//! (Cancel, UndoCancel, close and re-open), Push from SAL_SaleOrder to
//! SAL_OUTSTOCK with source links and pushed-quantity control, and View.

mod push;
mod save;

use rust_decimal::Decimal;
use serde_json::{Value, json};

pub(crate) use push::push;
pub(crate) use save::{batch_save, save};

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
    /// Records where the lines of the sales order at `i` are.
    pub(crate) fn index_sale(&mut self, i: usize) {
        let o = &self.sale_orders[i];
        for l in &o.lines {
            self.entry_fids.insert(l.entry_id, o.fid);
        }
    }

    /// The sales order and line position of entry `entry`: by the index,
    /// else (orders a test put in place directly) by a scan.
    fn sale_line(&self, entry: i64) -> Option<(usize, usize)> {
        let indexed = self
            .entry_fids
            .get(&entry)
            .and_then(|fid| self.sale_pos(*fid))
            .and_then(|i| self.sale_orders[i].lines.iter().position(|l| l.entry_id == entry).map(|j| (i, j)));
        indexed.or_else(|| {
            self.sale_orders
                .iter()
                .enumerate()
                .find_map(|(i, o)| o.lines.iter().position(|l| l.entry_id == entry).map(|j| (i, j)))
        })
    }

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
                table.set_scalar(p, key, json!(value));
                if key == "FDocumentStatus" && value == "C" {
                    table.set_scalar(p, "FApproveDate", json!(stamp));
                }
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
pub(crate) fn operate(
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
    let mut seen = std::collections::HashSet::new();
    for (i, n) in wanted.iter().enumerate() {
        let Some(t) = state.find(meta, n) else {
            errors.push(err(None, format!("单据 {n} 不存在"), i));
            continue;
        };
        // The same document named twice (by number and id, or twice) is
        // one document: operated on once.
        if !seen.insert(position(t)) {
            continue;
        }
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
                "C" if state.header(t, "FCloseStatus") == "B" => refuse(format!("单据 {number} 已关闭，不能反审核")),
                "C" if has_downstream(state, t) => {
                    refuse(format!("单据 {number} 存在下游单据（销售出库单或采购订单），不允许反审核"))
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
        Target::Sale(i) => {
            state.sale_orders[i].lines.iter().any(|l| l.stock_out_qty > Decimal::ZERO || l.pur_qty > Decimal::ZERO)
        }
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
            let doc = state.table_ref(f).docs[p].clone();
            // The source quantity is free again.
            let _ = push::book_links(state, &doc, &Value::Null);
            state.table(f).remove(p);
        }
    }
}

/// View: one document by Number or Id.
pub(crate) fn view(state: &SimState, cfg: &KingdeeSimConfig, form_id: Option<&str>, data: &Value) -> Value {
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
                "ReceiveAddress": super::data::sale_field(o, None, &place("freceiveaddress"), daifa),
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
