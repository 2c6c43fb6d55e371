//! Save, BatchSave and Draft: Model keys the form lacks are dropped,
//! required fields and master data are checked on new documents, approved
//! documents are locked, entries are merged by FEntryID, and every change
//! stamps FModifyDate.

use rust_decimal::Decimal;
use serde_json::{Map, Value, json};

use super::push::book_links;
use super::{Target, dec, form_or_fail, outcome};
use crate::sim::kingdee::data::SimSaleOrder;
use crate::sim::kingdee::docs::{get_ci, sub_value};
use crate::sim::kingdee::forms::{FieldPlace, FormMeta};
use crate::sim::kingdee::{KingdeeSimConfig, SimState, envelope, failure};

/// Keeps only the keys the form has; the entry array keeps known entry
/// fields. What a real server silently drops, the simulator drops too.
/// Fields the server maintains itself: a Model cannot set them (status
/// moves only through Submit/Audit/..., links only through Push).
const READ_ONLY: &[&str] = &[
    "FDocumentStatus",
    "FCancelStatus",
    "FCloseStatus",
    "FCreateDate",
    "FModifyDate",
    "FApproveDate",
    "FCreatorId",
    "FModifierId",
    "FApproverId",
];
const READ_ONLY_ENTRY: &[&str] = &[
    "FEntity_Link",
    "FPOOrderEntry_Link",
    "FSrcEntryId",
    "FSrcBillNo",
    "FSrcBillTypeId",
    "FSaleOrderNo",
    "FSaleOrderEntryId",
    "FSoorDerno",
    "FSrcType",
    "FStockOutQty",
    "FMrpCloseStatus",
];

fn known_model(meta: &FormMeta, custom: &[String], model: &Map<String, Value>) -> Map<String, Value> {
    let mut out = Map::new();
    for (k, v) in model {
        if READ_ONLY.iter().any(|r| r.eq_ignore_ascii_case(k)) {
            continue;
        }
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
                        .filter(|(ek, _)| !READ_ONLY_ENTRY.iter().any(|r| r.eq_ignore_ascii_case(ek)))
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

/// Every line of a stored document has a positive quantity.
fn validate_lines(meta: &FormMeta, m: &Map<String, Value>) -> Result<(), (Option<String>, String)> {
    let qty_key = if meta.id == "SAL_OUTSTOCK" { "FRealQty" } else { "FQty" };
    for (i, e) in get_ci(m, meta.entry).and_then(Value::as_array).into_iter().flatten().enumerate() {
        let Some(e) = e.as_object() else { continue };
        if get_ci(e, qty_key).and_then(dec).is_none_or(|q| q <= Decimal::ZERO) {
            return Err((Some(qty_key.into()), format!("第{}行的数量必须大于0", i + 1)));
        }
    }
    Ok(())
}

/// Required fields and master data of a new document (ValidateFlag).
pub(super) fn validate_new(
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

pub(super) fn flag(data: &Value, key: &str, default: bool) -> bool {
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
    let fid = match get_ci(raw, "FID") {
        None | Some(Value::Null) => 0,
        Some(v) => match v.as_i64().or_else(|| v.as_str().and_then(|s| s.trim().parse().ok())) {
            Some(id) if id >= 0 => id,
            _ => return Err(fail(8, Some("FID".into()), format!("FID 的值 {v} 不是有效的单据内码"))),
        },
    };
    let offset = cfg.clock_offset_secs;
    if fid == 0 {
        if !draft && flag(data, "ValidateFlag", true) {
            validate_new(meta, cfg, &m).map_err(|(f, msg)| fail(11, f, msg))?;
        }
        if let Some(no) = get_ci(&m, "FBillNo").and_then(Value::as_str).filter(|n| !n.is_empty())
            && state.find(meta, no).is_some()
        {
            return Err(fail(11, Some("FBillNo".into()), format!("单据编号 {no} 重复")));
        }
        return Ok(create(state, cfg, meta, m, draft, dindex));
    }
    let Some(t) = state.find(meta, &format!("#{fid}")) else {
        return Err(fail(10, Some("FID".into()), format!("单据内码 {fid} 不存在")));
    };
    let update_only: Vec<String> = data
        .get("NeedUpDateFields")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(|v| v.as_str().map(str::to_string)).collect())
        .unwrap_or_default();
    let status = state.status(t);
    if state.header(t, "FCancelStatus") == "B" {
        let number = state.header(t, "FBillNo");
        return Err(fail(11, None, format!("单据 {number} 已作废，不允许修改")));
    }
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
    let mut m = m;
    // The number is the document's identity once it exists.
    m.retain(|k, _| k != "FBillNo" && k != "FID");
    let fields: Map<String, Value> = if update_only.is_empty() {
        m
    } else {
        m.into_iter().filter(|(k, _)| update_only.iter().any(|f| f.eq_ignore_ascii_case(k))).collect()
    };
    let stamp = state.stamp(offset);
    match t {
        Target::Sale(i) => {
            // Work on a copy: a refused Save changes nothing.
            let mut o = state.sale_orders[i].clone();
            update_sale(&mut o, meta, fields, &stamp, cfg.daifa_fields(), delete_missing, &mut state.next_entry)
                .map_err(|m| fail(11, None, m))?;
            state.sale_orders[i] = o;
            state.index_sale(i);
            let o = &mut state.sale_orders[i];
            // Saving a draft makes it a created document.
            if o.status == "Z" && !draft {
                o.status = "A".into();
            }
        }
        Target::Doc(f, p) => {
            let old = state.table_ref(f).docs[p].clone();
            let mut new = old.clone();
            merge_doc(meta, &mut new, fields, delete_missing, &mut state.next_entry);
            new["FModifyDate"] = json!(stamp);
            let saving_draft = status == "Z" && !draft;
            if saving_draft || status != "Z" {
                // Every stored line keeps a positive quantity, and a draft
                // becomes a document only when it is complete.
                let m = new.as_object().cloned().unwrap_or_default();
                let check = if saving_draft { validate_new(meta, cfg, &m) } else { validate_lines(meta, &m) };
                check.map_err(|(f, msg)| fail(11, f, msg))?;
            }
            if saving_draft {
                new["FDocumentStatus"] = json!("A");
            }
            // Quantities linked to sales-order lines move with the save.
            let qty_key = if f == "SAL_OUTSTOCK" { "FRealQty" } else { "FQty" };
            book_links(state, &old, &new).map_err(|m| fail(11, Some(qty_key.into()), m))?;
            let table = state.table(f);
            table.docs[p] = new;
            table.reindex(p);
        }
    }
    Ok(state.entity(t, dindex))
}

pub(super) fn create(
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
        state.index_sale(state.sale_orders.len() - 1);
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
            crate::sim::kingdee::data::SimLine {
                entry_id: state.next_entry,
                material: number_of(get_ci(e, "FMaterialId")),
                qty: num("FQty"),
                tax_price: num("FTaxPrice"),
                tax_rate: num("FEntryTaxRate"),
                unit: number_of(get_ci(e, "FUnitID")),
                stock_out_qty: Decimal::ZERO,
                pur_qty: Decimal::ZERO,
                note: get_ci(e, "FEntryNote").and_then(Value::as_str).unwrap_or_default().to_string(),
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
        dropship: if text("FBillTypeID") == crate::sim::kingdee::data::DROPSHIP_BILL_TYPE { "1" } else { "0" }.into(),
        note: text("FNote"),
        lines,
        extra,
    }
}

/// Applies a Model to a sales order a user could edit; stamps FModifyDate.
/// Applies a Model to a sales order: header fields it keeps typed, lines
/// updated by FEntryID, new lines added, and (IsDeleteEntry) lines the
/// Model leaves out removed; a field it cannot represent is refused rather
/// than dropped with a success answer.
fn update_sale(
    o: &mut SimSaleOrder,
    meta: &FormMeta,
    m: Map<String, Value>,
    stamp: &str,
    daifa_fields: bool,
    delete_missing: bool,
    next_entry: &mut i64,
) -> Result<(), String> {
    for (k, v) in m {
        let s = sub_value(Some(&v), None).as_str().unwrap_or_default().to_string();
        match k.as_str() {
            "FNote" => o.note = s,
            "FCustId" => o.customer = s,
            "FSaleOrgId" => o.sale_org = s,
            "FDate" => o.date = s,
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
                let mut kept = Vec::new();
                for e in v.as_array().into_iter().flatten().filter_map(Value::as_object) {
                    let id = get_ci(e, "FEntryID").and_then(Value::as_i64).filter(|id| *id > 0);
                    let pos = match id.and_then(|id| o.lines.iter().position(|l| l.entry_id == id)) {
                        Some(p) => p,
                        None if id.is_some() => return Err(format!("分录内码 {} 不存在", id.unwrap_or_default())),
                        None => {
                            *next_entry += 1;
                            o.lines.push(crate::sim::kingdee::data::SimLine {
                                entry_id: *next_entry,
                                material: String::new(),
                                qty: "0".into(),
                                tax_price: "0".into(),
                                tax_rate: "0".into(),
                                unit: number_of(get_ci(e, "FUnitID")),
                                stock_out_qty: Decimal::ZERO,
                                pur_qty: Decimal::ZERO,
                                note: String::new(),
                            });
                            o.lines.len() - 1
                        }
                    };
                    kept.push(o.lines[pos].entry_id);
                    let l = &mut o.lines[pos];
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
                    if let Some(note) = get_ci(e, "FEntryNote").and_then(Value::as_str) {
                        l.note = note.to_string();
                    }
                    if l.material.is_empty() || l.qty.parse::<Decimal>().map_or(true, |q| q <= Decimal::ZERO) {
                        return Err(format!("分录 {} 的物料和大于0的数量必填", l.entry_id));
                    }
                    if l.stock_out_qty > l.qty.parse::<Decimal>().unwrap_or_default() {
                        return Err(format!(
                            "分录 {} 的数量不能小于已出库数量 {}",
                            l.entry_id,
                            l.stock_out_qty.normalize()
                        ));
                    }
                    if l.pur_qty > l.qty.parse::<Decimal>().unwrap_or_default() {
                        return Err(format!("分录 {} 的数量不能小于已采购数量 {}", l.entry_id, l.pur_qty.normalize()));
                    }
                }
                if delete_missing {
                    if o.lines.iter().any(|l| !kept.contains(&l.entry_id) && l.stock_out_qty > Decimal::ZERO) {
                        return Err("已出库的分录不能删除".into());
                    }
                    if o.lines.iter().any(|l| !kept.contains(&l.entry_id) && l.pur_qty > Decimal::ZERO) {
                        return Err("已下推采购订单的分录不能删除".into());
                    }
                    o.lines.retain(|l| kept.contains(&l.entry_id));
                }
            }
            key if key.starts_with("F_") => {
                o.extra.insert(key.to_string(), v);
            }
            other => return Err(format!("模拟器不支持修改销售订单的字段 {other}")),
        }
    }
    o.modify_date = stamp.to_string();
    Ok(())
}

/// Save, Draft: one Model.
pub(crate) fn save(
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
pub(crate) fn batch_save(state: &mut SimState, cfg: &KingdeeSimConfig, form_id: Option<&str>, data: &Value) -> Value {
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
