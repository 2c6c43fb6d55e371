//! Push from SAL_SaleOrder to SAL_OUTSTOCK (ship) or PUR_PurchaseOrder
//! (buy, the drop-ship 直运 flow) and the links it leaves: every target line
//! names its source line, and the quantity it draws is booked on that line,
//! so nothing ships twice and nothing is bought twice (pushed-quantity
//! control, one account per target form).

use std::collections::BTreeMap;

use rust_decimal::Decimal;
use serde_json::{Value, json};

use super::save::{create, flag, validate_new};
use super::{Target, dec, decimal_value, form_or_fail, targets_of};
use crate::sim::kingdee::forms::form;
use crate::sim::kingdee::{KingdeeSimConfig, SimState, envelope, failure};

/// What a target form books on its source lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Drawn {
    /// SAL_OUTSTOCK: `FStockOutQty`.
    Shipped,
    /// PUR_PurchaseOrder: the purchased quantity.
    Bought,
}

/// Quantities a pushed document draws from sales-order lines:
/// (account, sales-order FID, entry id) → quantity.
fn links(doc: &Value) -> BTreeMap<(Drawn, i64, i64), Decimal> {
    let mut out = BTreeMap::new();
    for (drawn, entity, qty_key, link) in [
        (Drawn::Shipped, "FEntity", "FRealQty", "FEntity_Link"),
        (Drawn::Bought, "FPOOrderEntry", "FQty", "FPOOrderEntry_Link"),
    ] {
        for e in doc.get(entity).and_then(Value::as_array).into_iter().flatten() {
            let qty = e.get(qty_key).and_then(dec).unwrap_or_default();
            for l in e.get(link).and_then(Value::as_array).into_iter().flatten() {
                let (Some(bill), Some(entry)) = (
                    l.get(format!("{link}_FSBillId")).and_then(Value::as_i64),
                    l.get(format!("{link}_FSId")).and_then(Value::as_i64),
                ) else {
                    continue;
                };
                *out.entry((drawn, bill, entry)).or_default() += qty;
            }
        }
    }
    out
}

/// Moves the booked source quantities from `old`'s links to `new`'s;
/// refuses (changing nothing) when a line would ship or be bought more
/// than ordered.
pub(super) fn book_links(state: &mut SimState, old: &Value, new: &Value) -> Result<(), String> {
    let (before, after) = (links(old), links(new));
    let mut changes = Vec::new();
    for key in before.keys().chain(after.keys()) {
        let delta = after.get(key).copied().unwrap_or_default() - before.get(key).copied().unwrap_or_default();
        if delta.is_zero() || changes.iter().any(|(k, _, _)| k == key) {
            continue;
        }
        let (drawn, bill, entry) = *key;
        let Some(i) = state.sale_pos(bill) else { continue };
        let Some(j) = state.sale_orders[i].lines.iter().position(|l| l.entry_id == entry) else { continue };
        let line = &state.sale_orders[i].lines[j];
        let ordered: Decimal = line.qty.parse().unwrap_or_default();
        let (booked, what) = match drawn {
            Drawn::Shipped => (line.stock_out_qty, "出库"),
            Drawn::Bought => (line.pur_qty, "采购"),
        };
        if booked + delta > ordered {
            return Err(format!(
                "销售订单 {} 第 {} 行的{what}数量 {} 超过了可{what}数量 {}",
                state.sale_orders[i].bill_no,
                j + 1,
                (booked + delta).normalize(),
                ordered.normalize()
            ));
        }
        changes.push((*key, (i, j), delta));
    }
    for ((drawn, _, _), (i, j), delta) in changes {
        let l = &mut state.sale_orders[i].lines[j];
        let booked = match drawn {
            Drawn::Shipped => &mut l.stock_out_qty,
            Drawn::Bought => &mut l.pur_qty,
        };
        *booked = (*booked + delta).max(Decimal::ZERO);
    }
    Ok(())
}

/// The conversion rules the installation has: id, source, target. The
/// first rule per target is its default rule.
const RULES: &[(&str, &str, &str)] = &[
    ("SaleOrder-OutStock", "SAL_SaleOrder", "SAL_OUTSTOCK"),
    ("SaleOrder-PurOrder", "SAL_SaleOrder", "PUR_PurchaseOrder"),
];

/// Push from SAL_SaleOrder: one target document per source order holding
/// what is left (to ship, or to buy) of the chosen lines, linked back to
/// them; nothing left is an error, never a second full copy. A target that
/// fails its own required-field checks (a purchase order has no supplier
/// until someone chooses one) is refused, or kept as a draft when
/// `IsDraftWhenSaveFail` says so.
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
    let found = if rule.is_empty() {
        RULES.iter().find(|(_, src, dst)| src.eq_ignore_ascii_case(meta.id) && dst.eq_ignore_ascii_case(target))
    } else {
        let Some(r) = RULES.iter().find(|(id, _, _)| id.eq_ignore_ascii_case(rule)) else {
            return failure(11, Some("RuleId"), &format!("转换规则 {rule} 不存在"));
        };
        Some(r).filter(|(_, src, dst)| {
            src.eq_ignore_ascii_case(meta.id) && (target.is_empty() || dst.eq_ignore_ascii_case(target))
        })
    };
    let Some(&(rule_id, _, target)) = found else {
        let target = if target.is_empty() { "?" } else { target };
        return failure(11, Some("TargetFormId"), &format!("不存在从 {} 到 {target} 的转换规则", meta.id));
    };
    let buying = target == "PUR_PurchaseOrder";
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
        // By the entry index, as a database looks them up (a scan of every
        // order per push was most of the simulator's time in a busy run).
        for id in entry_ids {
            let Some((i, j)) = state.sale_line(id) else {
                return failure(10, None, &format!("源单分录 {id} 不存在"));
            };
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
                let drawn = if buying { l.pur_qty } else { l.stock_out_qty };
                let left = l.qty.parse::<Decimal>().unwrap_or_default() - drawn;
                (left > Decimal::ZERO).then(|| {
                    if buying {
                        json!({
                            "FMaterialId": { "FNumber": l.material }, "FUnitId": { "FNumber": l.unit },
                            "FQty": decimal_value(left),
                            "FSrcBillTypeId": "SAL_SaleOrder", "FSrcBillNo": o.bill_no,
                            "FSaleOrderNo": o.bill_no, "FSaleOrderEntryId": l.entry_id,
                            "FPOOrderEntry_Link": [{
                                "FPOOrderEntry_Link_FRuleId": rule_id, "FPOOrderEntry_Link_FSTableName": "T_SAL_ORDERENTRY",
                                "FPOOrderEntry_Link_FSBillId": o.fid, "FPOOrderEntry_Link_FSId": l.entry_id,
                                "FPOOrderEntry_Link_FBaseUnitQty": decimal_value(left),
                            }],
                        })
                    } else {
                        json!({
                            "FMaterialID": { "FNumber": l.material }, "FUnitID": { "FNumber": l.unit },
                            "FRealQty": decimal_value(left), "FMustQty": decimal_value(left),
                            "FSrcType": "SAL_SaleOrder", "FSrcBillNo": o.bill_no, "FSoorDerno": o.bill_no, "FSrcEntryId": l.entry_id,
                            "FEntity_Link": [{
                                "FEntity_Link_FRuleId": rule_id, "FEntity_Link_FSTableName": "T_SAL_ORDERENTRY",
                                "FEntity_Link_FSBillId": o.fid, "FEntity_Link_FSId": l.entry_id, "FEntity_Link_FBaseUnitQty": decimal_value(left),
                            }],
                        })
                    }
                })
            })
            .collect();
        if entries.is_empty() {
            let why = if buying {
                "已全部下推采购订单，没有可下推的数量"
            } else {
                "已全部出库，没有可下推的数量"
            };
            return failure(11, None, &format!("源单 {} 的分录{why}", o.bill_no));
        }
        models.push(if buying {
            // The rule carries no supplier: the buyer chooses one.
            json!({
                "FBillTypeID": { "FNUMBER": "CGDD01_SYS" }, "FDate": o.date,
                "FPurchaseOrgId": { "FNumber": o.sale_org },
                "FPOOrderEntry": entries,
            })
        } else {
            json!({
                "FBillTypeID": { "FNUMBER": "XSCKD01_SYS" }, "FDate": o.date,
                "FCustomerID": { "FNumber": o.customer }, "FSaleOrgId": { "FNumber": o.sale_org }, "FStockOrgId": { "FNumber": o.sale_org },
                "FLinkMan": o.receiver_name, "FLinkPhone": o.receiver_phone, "FReceiveAddress": o.full_address(),
                "FEntity": entries,
            })
        });
    }
    let Some(out_meta) = form(target) else { return failure(4, None, &format!("{target} 不存在")) };
    // The conversion saves what it made; what cannot be saved is refused
    // whole, or kept as drafts.
    let as_draft = flag(data, "IsDraftWhenSaveFail", false);
    let mut drafts = Vec::with_capacity(models.len());
    for model in &models {
        let m = model.as_object().cloned().unwrap_or_default();
        match validate_new(out_meta, cfg, &m) {
            Ok(()) => drafts.push(false),
            Err(_) if as_draft => drafts.push(true),
            Err((field, msg)) => return failure(11, field.as_deref(), &msg),
        }
    }
    let mut created = Vec::new();
    for (n, (model, draft)) in models.into_iter().zip(drafts).enumerate() {
        let m = model.as_object().cloned().unwrap_or_default();
        let entity = create(state, cfg, out_meta, m, draft, n);
        let id = entity["Id"].as_i64().unwrap_or(0);
        let table = if buying { &state.purchase_orders } else { &state.outstocks };
        if let Some(p) = table.by_fid(id) {
            let doc = table.docs[p].clone();
            if let Err(e) = book_links(state, &Value::Null, &doc) {
                let table = if buying { &mut state.purchase_orders } else { &mut state.outstocks };
                table.remove(p);
                return failure(11, None, &e);
            }
        }
        created.push(entity);
    }
    envelope(true, 0, vec![], created)
}
