//! Push SAL_SaleOrder → SAL_OUTSTOCK and the links it leaves: every
//! outbound line names its source line, and the quantity it draws is booked
//! on that line, so nothing ships twice (pushed-quantity control).

use std::collections::BTreeMap;

use rust_decimal::Decimal;
use serde_json::{Value, json};

use super::save::{create, flag};
use super::{Target, dec, decimal_value, form_or_fail, targets_of};
use crate::sim::kingdee::forms::form;
use crate::sim::kingdee::{KingdeeSimConfig, SimState, envelope, failure};

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
pub(super) fn book_links(state: &mut SimState, old: &Value, new: &Value) -> Result<(), String> {
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

/// The conversion rules the installation has (SAL_SaleOrder → SAL_OUTSTOCK).
const RULES: &[&str] = &["SaleOrder-OutStock"];

/// Push SAL_SaleOrder → SAL_OUTSTOCK: one outbound document per source
/// order holding what is left to ship of the chosen lines, linked back to
/// them; nothing left to ship is an error, never a second full copy.
pub(crate) fn push(state: &mut SimState, cfg: &KingdeeSimConfig, form_id: Option<&str>, data: &Value) -> Value {
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
    if !rule.is_empty() && !RULES.iter().any(|r| r.eq_ignore_ascii_case(rule)) {
        return failure(11, Some("RuleId"), &format!("转换规则 {rule} 不存在"));
    }
    let target = if target.is_empty() { "SAL_OUTSTOCK" } else { target };
    if meta.id != "SAL_SaleOrder" || !target.eq_ignore_ascii_case("SAL_OUTSTOCK") {
        return failure(11, Some("TargetFormId"), &format!("不存在从 {} 到 {target} 的转换规则", meta.id));
    }
    // Which lines: EntryIds (across orders), else every line of Numbers/Ids.
    let entry_ids: Vec<i64> = match data.get("EntryIds") {
        Some(Value::String(s)) => s.split(',').filter_map(|x| x.trim().parse().ok()).collect(),
        Some(Value::Array(a)) => {
            a.iter().filter_map(|v| v.as_i64().or_else(|| v.as_str().and_then(|s| s.trim().parse().ok()))).collect()
        }
        Some(Value::Number(n)) => n.as_i64().into_iter().collect(),
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
    for lines in chosen.values_mut() {
        lines.sort_unstable();
        lines.dedup();
    }
    // Every source is checked before anything is created: a push is all
    // or nothing, so a failure answer never hides a created document.
    let mut models = Vec::new();
    for (i, lines) in chosen {
        let o = &state.sale_orders[i];
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
        models.push(json!({
            "FBillTypeID": { "FNUMBER": "XSCKD01_SYS" }, "FDate": o.date,
            "FCustomerID": { "FNumber": o.customer }, "FSaleOrgId": { "FNumber": o.sale_org }, "FStockOrgId": { "FNumber": o.sale_org },
            "FLinkMan": o.receiver_name, "FLinkPhone": o.receiver_phone, "FReceiveAddress": o.full_address(),
            "FEntity": entries,
        }));
    }
    let Some(out_meta) = form("SAL_OUTSTOCK") else { return failure(4, None, "SAL_OUTSTOCK 不存在") };
    let mut created = Vec::new();
    for (n, model) in models.into_iter().enumerate() {
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
