//! ExecuteBillQuery and BillQuery: every FieldKey, filter field and order
//! field is checked against the form's metadata (MsgCode 9 for a field the
//! installation does not have), the filter is applied in either of its
//! forms, rows are header-level or one per entry, ordered, and paged with
//! the TopRowCount quirk and the server's row cap (fewer rows than `Limit`
//! do not mean the end). Equality on a header field uses the index.

use std::cmp::Ordering;

use serde_json::{Value, json};

use super::data::{modify_some, sale_field};
use super::docs::doc_value;
use super::filter::Filter;
use super::forms::{FieldPlace, form};
use super::{KingdeeSimConfig, SimState, failure};

/// A row that passed the filter: (sales order, line) or (document, entry).
#[derive(Clone, Copy)]
enum RowRef {
    Sale(usize, Option<usize>),
    Doc(usize, Option<usize>),
}

fn in_array(err: Value) -> Value {
    json!([[err]])
}

/// A total order for sorting (the sort needs one): NULL first, then
/// numbers by value, then text without regard to case.
fn cmp_values(a: &Value, b: &Value) -> Ordering {
    fn rank(v: &Value) -> u8 {
        match v {
            Value::Null => 0,
            Value::Number(_) => 1,
            _ => 2,
        }
    }
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64().unwrap_or(0.0).total_cmp(&y.as_f64().unwrap_or(0.0)),
        (Value::Null, Value::Null) => Ordering::Equal,
        _ if rank(a) != rank(b) => rank(a).cmp(&rank(b)),
        _ => {
            let t = |v: &Value| v.as_str().map(str::to_lowercase).unwrap_or_else(|| v.to_string());
            t(a).cmp(&t(b))
        }
    }
}

fn int(data: &Value, key: &str) -> Result<i64, Value> {
    match data.get(key) {
        None | Some(Value::Null) => Ok(0),
        Some(v) => v
            .as_i64()
            .or_else(|| v.as_str().and_then(|s| s.trim().parse().ok()))
            .ok_or_else(|| in_array(failure(8, Some(key), &format!("data 数据包中的参数 {key} 的值 {v} 不是整数")))),
    }
}

pub(super) fn query(state: &mut SimState, cfg: &KingdeeSimConfig, data: &Value, as_objects: bool) -> Value {
    if !data.is_object() {
        return in_array(failure(8, None, "data 数据包格式不正确"));
    }
    let s = |k: &str| data.get(k).and_then(Value::as_str).unwrap_or_default().to_string();
    let form_id = s("FormId");
    if form_id.is_empty() {
        return in_array(failure(5, Some("FormId"), "data 数据包中的参数 FormId 的值不能为空"));
    }
    let Some(meta) = form(&form_id) else {
        return in_array(failure(4, None, &format!("标识为“{form_id}”的业务对象不存在，或者被删除")));
    };
    let keys: Vec<String> = s("FieldKeys").split(',').map(|k| k.trim().to_string()).filter(|k| !k.is_empty()).collect();
    if keys.is_empty() {
        return in_array(failure(8, None, "data 数据包中的参数 FieldKeys 的值不能为空"));
    }
    let filter = match Filter::from_value(data.get("FilterString")) {
        Ok(f) => f,
        Err(e) => return in_array(failure(8, Some("FilterString"), &format!("过滤条件 FilterString 不正确：{e}"))),
    };
    let mut order: Vec<(String, bool)> = Vec::new();
    for part in s("OrderString").split(',').filter(|p| !p.trim().is_empty()) {
        let w: Vec<&str> = part.split_whitespace().collect();
        let desc = match w.get(1).map(|d| d.to_ascii_lowercase()) {
            None => false,
            Some(d) if d == "asc" && w.len() == 2 => false,
            Some(d) if d == "desc" && w.len() == 2 => true,
            _ => {
                return in_array(failure(
                    8,
                    Some("OrderString"),
                    &format!("排序字段 OrderString 不正确：`{}`", part.trim()),
                ));
            }
        };
        order.push((w[0].to_string(), desc));
    }
    let (top, start, limit) = match (int(data, "TopRowCount"), int(data, "StartRow"), int(data, "Limit")) {
        (Ok(t), Ok(s), Ok(l)) => (t, s.max(0) as usize, l),
        (Err(e), ..) | (_, Err(e), _) | (.., Err(e)) => return e,
    };
    let cap = state.row_cap.max(1);
    let limit = if limit <= 0 { cap } else { (limit as usize).min(cap) };

    // Every referenced field must exist on this installation.
    let custom = cfg.custom(meta.id);
    let mut places = std::collections::HashMap::new();
    for k in keys.iter().map(String::as_str).chain(filter.fields()).chain(order.iter().map(|(f, _)| f.as_str())) {
        match meta.resolve(k, &custom) {
            Some(p) => {
                places.insert(k.to_string(), p);
            }
            None => return in_array(failure(9, Some(k), &format!("元数据中标识为 {k} 的字段不存在"))),
        }
    }
    let entry_level = places.values().any(|p| matches!(p, FieldPlace::Entry(..)));
    if meta.id == "SAL_SaleOrder" {
        // `sale_field` matches lower-case names: lower them once here.
        for p in places.values_mut() {
            let (FieldPlace::Header(n, _) | FieldPlace::Entry(n, _)) = p;
            *n = n.to_ascii_lowercase();
        }
    }
    let unknown = FieldPlace::Header(String::new(), None);
    let place = |k: &str| places.get(k).unwrap_or(&unknown);

    // Filter and sort references to rows; only the page's rows are built.
    let mut hits: Vec<(Vec<Value>, RowRef)> = Vec::new();
    if meta.id == "SAL_SaleOrder" {
        state.sale_order_queries += 1;
        if let Some((after, count)) = state.faults.modify_during_scan
            && state.sale_order_queries == after
        {
            modify_some(state, count, cfg.clock_offset_secs);
        }
        let daifa = cfg.daifa_fields();
        // Sales orders are kept in FID order: a lower bound on FID (the
        // ingester's paging) seeks past the rows before it, as the ERP's
        // primary key index does, instead of filtering every order.
        let first = filter
            .required_lower_bounds()
            .into_iter()
            .filter(|(f, ..)| matches!(place(f), FieldPlace::Header(n, None) if n == "fid"))
            .filter_map(|(_, inclusive, v)| v.trim().parse::<i64>().ok().map(|v| (inclusive, v)))
            .map(|(inclusive, v)| state.sale_orders.partition_point(|o| if inclusive { o.fid < v } else { o.fid <= v }))
            .max()
            .unwrap_or(0);
        state.rows_examined += (state.sale_orders.len() - first) as u64;
        // A filter on header fields only is decided once per order, not
        // once per line (the ingester's poll for changes reads every
        // order's lines; a real ERP filters the header table first).
        let header_only = filter.fields().iter().all(|f| matches!(place(f), FieldPlace::Header(..)));
        for (i, o) in state.sale_orders.iter().enumerate().skip(first) {
            if header_only && !filter.eval(&|k: &str| sale_field(o, None, place(k), daifa)) {
                continue;
            }
            let lines: Vec<Option<usize>> = if entry_level {
                (0..o.lines.len()).map(Some).collect()
            } else {
                vec![(!o.lines.is_empty()).then_some(0)]
            };
            for j in lines {
                let l = j.map(|j| &o.lines[j]);
                let get = |k: &str| sale_field(o, l, place(k), daifa);
                if !header_only && !filter.eval(&get) {
                    continue;
                }
                let mut sk: Vec<Value> = order.iter().map(|(f, _)| get(f)).collect();
                sk.push(json!(o.fid));
                sk.push(l.map_or(json!(0), |l| json!(l.entry_id)));
                hits.push((sk, RowRef::Sale(i, j)));
            }
        }
    } else {
        let table = if meta.id == "PUR_PurchaseOrder" { &state.purchase_orders } else { &state.outstocks };
        // An equality or an IN list on an indexed field narrows the scan,
        // as a real database's index would.
        let candidates = filter
            .required_lookups()
            .into_iter()
            .find_map(|(f, vals)| {
                let mut all = Vec::new();
                for v in vals {
                    all.extend(table.candidates(place(f), v)?);
                }
                all.sort_unstable();
                all.dedup();
                Some(all)
            })
            .unwrap_or_else(|| (0..table.len()).collect());
        let examined = candidates.len() as u64;
        for pos in candidates {
            let d = &table.docs[pos];
            let n = match d.get(meta.entry).and_then(Value::as_array) {
                Some(es) if entry_level && !es.is_empty() => es.len(),
                _ => 0,
            };
            let entries: Vec<Option<usize>> = if n == 0 { vec![None] } else { (0..n).map(Some).collect() };
            for j in entries {
                let e = j.map(|j| &d[meta.entry][j]);
                let get = |k: &str| doc_value(d, e, place(k));
                if !filter.eval(&get) {
                    continue;
                }
                let mut sk: Vec<Value> = order.iter().map(|(f, _)| get(f)).collect();
                sk.push(d["FID"].clone());
                sk.push(e.map_or(json!(0), |e| e["FEntryID"].clone()));
                hits.push((sk, RowRef::Doc(pos, j)));
            }
        }
        state.rows_examined += examined;
    }
    hits.sort_by(|(a, _), (b, _)| {
        for (i, (_, desc)) in order.iter().enumerate() {
            let c = cmp_values(&a[i], &b[i]);
            if c != Ordering::Equal {
                return if *desc { c.reverse() } else { c };
            }
        }
        a[order.len()..]
            .iter()
            .zip(&b[order.len()..])
            .map(|(x, y)| cmp_values(x, y))
            .find(|c| *c != Ordering::Equal)
            .unwrap_or(Ordering::Equal)
    });
    // TopRowCount is an absolute end row, not a page size (the quirk).
    let end = if top > 0 { (top as usize).min(hits.len()) } else { hits.len() };
    let daifa = cfg.daifa_fields();
    let table = if meta.id == "PUR_PurchaseOrder" { &state.purchase_orders } else { &state.outstocks };
    let page: Vec<Value> = hits
        .into_iter()
        .take(end)
        .skip(start)
        .take(limit)
        .map(|(_, r)| {
            let row: Vec<Value> = keys
                .iter()
                .map(|k| match r {
                    RowRef::Sale(i, j) => {
                        let o = &state.sale_orders[i];
                        sale_field(o, j.map(|j| &o.lines[j]), place(k), daifa)
                    }
                    RowRef::Doc(pos, j) => {
                        let d = &table.docs[pos];
                        doc_value(d, j.map(|j| &d[meta.entry][j]), place(k))
                    }
                })
                .collect();
            if as_objects { Value::Object(keys.iter().cloned().zip(row).collect()) } else { Value::Array(row) }
        })
        .collect();
    Value::Array(page)
}
