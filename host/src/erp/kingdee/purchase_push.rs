//! Purchase orders pushed from their sales order (SAL_SaleOrder →
//! PUR_PurchaseOrder, the drop-ship 直运 flow): the ERP links every PO line
//! to the sales-order line it buys and refuses to buy a line twice. The
//! conversion knows no supplier, so the pushed document is kept as a draft
//! and a follow-up Save sets supplier, quantities, prices and our marker.
//! Resumable: a document with our marker is done; a pushed one without it
//! (the Save was lost) is finished instead of pushed again.
//!
//! Called only by [`super::documents::ensure_purchase_orders`], which
//! falls back to Save with the marker for POs that cannot be pushed.

use std::collections::{BTreeMap, HashMap, HashSet};

use serde_json::{Value, json};

use super::client::KingdeeClient;
use super::documents::{
    ErpDoc, PoDoc, PurchaseOrderSettings, batch_item_error, decimal_number, operate_all, rows_where_in,
};
use super::protocol::KingdeeError;

/// A pushed PUR_PurchaseOrder as the batch queries see it.
#[derive(Debug, Default)]
struct Pushed {
    number: String,
    sale_bill_no: String,
    marker: String,
    /// (FPOOrderEntry_FEntryID, FSaleOrderEntryId) per line.
    entries: Vec<(i64, i64)>,
}

/// The answer for one PO, or `None` when the ERP has no conversion rule
/// for it (the caller saves it instead).
pub(super) type PushResult = Option<Result<ErpDoc, KingdeeError>>;

/// True when Kingdee refused a push because the conversion rule is missing.
fn no_rule(e: &KingdeeError) -> bool {
    matches!(e, KingdeeError::Data { message, .. } if message.contains("转换规则"))
}

/// Makes (or finds) the pushed purchase order of every doc. Every doc must
/// carry its sales order's bill number and every line its entry id.
pub(super) async fn push_purchase_orders(
    client: &KingdeeClient,
    s: &PurchaseOrderSettings,
    docs: &[&PoDoc],
) -> Vec<PushResult> {
    let mut out: Vec<PushResult> = docs.iter().map(|_| None).collect();
    let mut done: Vec<(usize, ErpDoc)> = Vec::new();
    // What earlier tries pushed, for every round at once.
    let mut all: Vec<&str> = docs.iter().filter_map(|d| d.sale_bill_no.as_deref()).collect();
    all.sort_unstable();
    all.dedup();
    let mut existing = match pushed(client, s, &all).await {
        Ok(e) => e,
        Err(e) => return docs.iter().map(|_| Some(Err(e.clone()))).collect(),
    };
    // Two POs of one sales order go in separate rounds: one Push makes one
    // document per source order.
    for round in rounds(docs) {
        let bills: Vec<&str> = round.iter().filter_map(|&i| docs[i].sale_bill_no.as_deref()).collect();
        let mut to_save: Vec<(usize, i64, Pushed)> = Vec::new();
        let mut to_push: Vec<usize> = Vec::new();
        for &i in &round {
            match pick(&mut existing, docs[i]) {
                Some(Pick::Done(fid, p)) => done.push((i, ErpDoc { id: fid, number: p.number, created: false })),
                Some(Pick::Unfinished(fid, p)) => to_save.push((i, fid, p)),
                None => to_push.push(i),
            }
        }
        if !to_push.is_empty() {
            match push(client, s, docs, &to_push).await {
                Ok(()) => match pushed(client, s, &bills).await {
                    Ok(mut made) => {
                        for i in to_push {
                            match pick(&mut made, docs[i]) {
                                Some(Pick::Unfinished(fid, p)) => to_save.push((i, fid, p)),
                                Some(Pick::Done(fid, p)) => {
                                    done.push((i, ErpDoc { id: fid, number: p.number, created: false }))
                                }
                                None => {
                                    let msg = format!(
                                        "Push made no purchase order for {} of {}",
                                        docs[i].po_number,
                                        docs[i].sale_bill_no.as_deref().unwrap_or_default()
                                    );
                                    out[i] = Some(Err(KingdeeError::Protocol(msg)));
                                }
                            }
                        }
                    }
                    Err(e) => {
                        for i in to_push {
                            out[i] = Some(Err(e.clone()));
                        }
                    }
                },
                Err(e) if no_rule(&e) => {
                    tracing::warn!(
                        "Kingdee has no SAL_SaleOrder → PUR_PurchaseOrder conversion rule ({e}); saving unlinked purchase orders"
                    );
                    // `None`: the caller saves these with the marker.
                }
                // Unknown whether the push landed: the next try looks first.
                Err(e) if e.is_transient() || matches!(e, KingdeeError::SessionLostDuringWrite(_)) => {
                    for i in to_push {
                        out[i] = Some(Err(e.clone()));
                    }
                }
                // One bad sales order refuses the whole push: one by one,
                // so each PO gets its own answer.
                Err(_) => {
                    for i in to_push {
                        match push(client, s, docs, &[i]).await {
                            Ok(()) => match pushed(client, s, &[docs[i].sale_bill_no.as_deref().unwrap_or_default()])
                                .await
                                .map(|mut made| pick(&mut made, docs[i]))
                            {
                                Ok(Some(Pick::Unfinished(fid, p))) => to_save.push((i, fid, p)),
                                Ok(Some(Pick::Done(fid, p))) => {
                                    done.push((i, ErpDoc { id: fid, number: p.number, created: false }))
                                }
                                Ok(None) => {
                                    let msg = format!("Push made no purchase order for {}", docs[i].po_number);
                                    out[i] = Some(Err(KingdeeError::Protocol(msg)));
                                }
                                Err(e) => out[i] = Some(Err(e)),
                            },
                            Err(e) if no_rule(&e) => {}
                            Err(e) => out[i] = Some(Err(e)),
                        }
                    }
                }
            }
        }
        save_all(client, s, docs, to_save, &mut out, &mut done).await;
    }
    // Submit and Audit everything done in one request each ("already"
    // counts as success, so a resumed PO ends audited whichever step was
    // interrupted).
    let numbers: Vec<String> = done.iter().map(|(_, d)| d.number.clone()).collect();
    let mut failed: HashMap<String, KingdeeError> = HashMap::new();
    for (op, on) in [("Submit", s.submit), ("Audit", s.audit)] {
        if on {
            operate_all(client, op, "PUR_PurchaseOrder", &numbers, &mut failed).await;
        }
    }
    for (i, doc) in done {
        out[i] = Some(match failed.remove(&doc.number) {
            Some(e) => Err(e),
            None => Ok(doc),
        });
    }
    out
}

/// Groups doc indices so that no round holds two POs of one sales order.
fn rounds(docs: &[&PoDoc]) -> Vec<Vec<usize>> {
    let mut rounds: Vec<Vec<usize>> = Vec::new();
    let mut seen: HashMap<&str, usize> = HashMap::new();
    for (i, d) in docs.iter().enumerate() {
        let n = seen.entry(d.sale_bill_no.as_deref().unwrap_or_default()).or_insert(0);
        if rounds.len() <= *n {
            rounds.push(Vec::new());
        }
        rounds[*n].push(i);
        *n += 1;
    }
    rounds
}

/// One Push for the lines of `which` (each PO's own sales-order lines).
async fn push(
    client: &KingdeeClient,
    s: &PurchaseOrderSettings,
    docs: &[&PoDoc],
    which: &[usize],
) -> Result<(), KingdeeError> {
    let ids: Vec<String> =
        which.iter().flat_map(|&i| docs[i].lines.iter().filter_map(|l| l.sale_entry).map(|e| e.to_string())).collect();
    // The rule knows no supplier: without IsDraftWhenSaveFail the ERP
    // refuses to save what it made.
    let mut data = json!({ "EntryIds": ids.join(","), "IsDraftWhenSaveFail": "true" });
    if s.push_rule.is_empty() {
        data["TargetFormId"] = json!("PUR_PurchaseOrder");
        data["IsEnableDefaultRule"] = json!("true");
    } else {
        data["RuleId"] = json!(s.push_rule);
    }
    client.push("SAL_SaleOrder", data).await.map(|_| ())
}

/// The purchase orders pushed from these sales orders, by FID.
async fn pushed(
    client: &KingdeeClient,
    s: &PurchaseOrderSettings,
    bills: &[&str],
) -> Result<BTreeMap<i64, Pushed>, KingdeeError> {
    let mut docs: BTreeMap<i64, Pushed> = BTreeMap::new();
    let keys = format!("FID,FBillNo,FSaleOrderNo,{},FPOOrderEntry_FEntryID,FSaleOrderEntryId", s.marker_field);
    for r in rows_where_in(client, "PUR_PurchaseOrder", &keys, "FSaleOrderNo", bills).await? {
        let text = |k: usize| r.get(k).and_then(Value::as_str).unwrap_or_default().to_string();
        let Some(fid) = r.first().and_then(Value::as_i64) else { continue };
        let doc = docs.entry(fid).or_insert_with(|| Pushed {
            number: text(1),
            sale_bill_no: text(2),
            marker: text(3),
            entries: Vec::new(),
        });
        if let (Some(entry), Some(src)) = (r.get(4).and_then(Value::as_i64), r.get(5).and_then(Value::as_i64)) {
            doc.entries.push((entry, src));
        }
    }
    Ok(docs)
}

enum Pick {
    /// Already carries this PO's marker.
    Done(i64, Pushed),
    /// Pushed for exactly this PO's lines, never finished.
    Unfinished(i64, Pushed),
}

/// This PO's document among `docs`, taken out so that no other PO claims it.
fn pick(docs: &mut BTreeMap<i64, Pushed>, d: &PoDoc) -> Option<Pick> {
    let done = docs.iter().find(|(_, p)| p.marker == d.po_number).map(|(f, _)| *f);
    if let Some(fid) = done {
        return docs.remove(&fid).map(|p| Pick::Done(fid, p));
    }
    let mut want: Vec<i64> = d.lines.iter().filter_map(|l| l.sale_entry).collect();
    want.sort_unstable();
    let bill = d.sale_bill_no.as_deref().unwrap_or_default();
    let unfinished = docs
        .iter()
        .find(|(_, p)| {
            let mut src: Vec<i64> = p.entries.iter().map(|e| e.1).collect();
            src.sort_unstable();
            p.sale_bill_no == bill && p.marker.is_empty() && src == want
        })
        .map(|(f, _)| *f);
    unfinished.and_then(|fid| docs.remove(&fid).map(|p| Pick::Unfinished(fid, p)))
}

/// Sets supplier, organisation, currency, marker and each line's own
/// quantity and price on every pushed document in one BatchSave.
async fn save_all(
    client: &KingdeeClient,
    s: &PurchaseOrderSettings,
    docs: &[&PoDoc],
    to_save: Vec<(usize, i64, Pushed)>,
    out: &mut [PushResult],
    done: &mut Vec<(usize, ErpDoc)>,
) {
    if to_save.is_empty() {
        return;
    }
    let models: Vec<Value> = to_save
        .iter()
        .map(|(i, fid, p)| {
            let d = docs[*i];
            let entries: Vec<Value> = p
                .entries
                .iter()
                .filter_map(|(entry, src)| {
                    let l = d.lines.iter().find(|l| l.sale_entry == Some(*src))?;
                    Some(json!({
                        "FEntryID": entry,
                        "FQty": decimal_number(l.quantity),
                        "FTaxPrice": decimal_number(l.unit_price),
                        "FEntryTaxRate": decimal_number(l.tax_rate),
                        "FEntryNote": l.note,
                    }))
                })
                .collect();
            json!({
                "FID": fid,
                "FSupplierId": { "FNumber": d.supplier },
                "FPurchaseOrgId": { "FNumber": d.purchase_org },
                (s.marker_field.as_str()): d.po_number,
                "FPOOrderFinance": { "FSettleCurrId": { "FNumber": d.currency }, "FIsIncludedTax": true },
                "FPOOrderEntry": entries,
            })
        })
        .collect();
    let data = json!({ "IsDeleteEntry": "false", "Model": models });
    match client.batch_save("PUR_PurchaseOrder", data).await {
        Ok((saved, errors)) => {
            let ok: HashSet<usize> =
                saved.iter().filter_map(|e| e.d_index.and_then(|i| usize::try_from(i).ok())).collect();
            for (k, (i, fid, p)) in to_save.into_iter().enumerate() {
                if ok.contains(&k) {
                    done.push((i, ErpDoc { id: fid, number: p.number, created: true }));
                    continue;
                }
                out[i] = Some(Err(batch_item_error(&errors, k)));
            }
        }
        // Nothing known saved: the document stays unmarked, so the next
        // try finds and finishes it.
        Err(e) => {
            for (i, _, _) in to_save {
                out[i] = Some(Err(e.clone()));
            }
        }
    }
}
