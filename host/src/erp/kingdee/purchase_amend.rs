//! Purchase orders that changed after their PUR_PurchaseOrder was made: a
//! supplier cancelled or refused lines, or the whole PO. The document must
//! stop buying them — left alone, the ERP would pay for goods nobody ships
//! and (for a pushed PO) would refuse to buy the lines again from the
//! supplier they are re-routed to. Lines are matched by their entry note
//! (`{po} line {line}`), which daifa writes on every line it makes.
//! Idempotent: a document already in line is only finished (submitted and
//! audited), never changed again.

use std::collections::{BTreeMap, HashMap};

use rust_decimal::Decimal;
use serde_json::{Value, json};

use super::client::KingdeeClient;
use super::documents::{
    ErpDoc, PoDoc, PurchaseOrderSettings, batch_item_error, dec_of, decimal_number, ensure_purchase_orders,
    operate_all, rows_where_in,
};
use super::protocol::KingdeeError;

/// What [`amend_purchase_orders`] did to one PO's document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Amended {
    /// Already buys exactly the PO's lines (and is audited).
    Unchanged(ErpDoc),
    /// Changed to buy only the PO's lines, then submitted and audited.
    Amended(ErpDoc),
    /// The PO has nothing left to buy: the document is gone.
    Deleted(ErpDoc),
    /// No document carries the PO's marker.
    Missing,
}

/// A document as the marker query sees it.
#[derive(Debug, Default)]
struct Current {
    fid: i64,
    number: String,
    status: String,
    /// (FPOOrderEntry_FEntryID, FEntryNote, FQty) per line.
    entries: Vec<(i64, String, Decimal)>,
}

enum Plan {
    Done(Amended),
    /// In line, not yet audited.
    Finish(ErpDoc),
    Delete(ErpDoc, String),
    /// Keep these entries at these quantities (the rest go).
    Save(ErpDoc, String, Vec<(i64, Decimal)>),
}

/// Brings each doc's PUR_PurchaseOrder (found by marker) in line with the
/// doc's lines — the lines still bought, possibly none — in a handful of
/// requests: one query; Audit (for documents stuck submitted), UnAudit,
/// Delete, BatchSave, Submit and Audit, each once for all. Results come in
/// input order.
pub async fn amend_purchase_orders(
    client: &KingdeeClient,
    s: &PurchaseOrderSettings,
    docs: &[PoDoc],
) -> Vec<Result<Amended, KingdeeError>> {
    let mut current = match by_marker(client, s, docs).await {
        Ok(c) => c,
        Err(e) => return docs.iter().map(|_| Err(e.clone())).collect(),
    };
    let mut plans: Vec<Result<Plan, KingdeeError>> = Vec::with_capacity(docs.len());
    for d in docs {
        plans.push(plan(current.remove(&d.po_number), d, s));
    }
    // Reopen what must change: a submitted document is audited first (the
    // WebAPI has no plain un-submit), then every audited one un-audited.
    let mut failed: HashMap<String, KingdeeError> = HashMap::new();
    let reopen = |want: &str| -> Vec<String> {
        plans
            .iter()
            .filter_map(|p| match p {
                Ok(Plan::Delete(d, st) | Plan::Save(d, st, _)) if st == want => Some(d.number.clone()),
                _ => None,
            })
            .collect()
    };
    let (submitted, audited) = (reopen("B"), reopen("C"));
    operate_all(client, "Audit", "PUR_PurchaseOrder", &submitted, &mut failed).await;
    let unaudit: Vec<String> = submitted.into_iter().chain(audited).collect();
    operate_all(client, "UnAudit", "PUR_PurchaseOrder", &unaudit, &mut failed).await;
    let deletes: Vec<String> = plans
        .iter()
        .filter_map(|p| match p {
            Ok(Plan::Delete(d, _)) => Some(d.number.clone()),
            _ => None,
        })
        .collect();
    operate_all(client, "Delete", "PUR_PurchaseOrder", &deletes, &mut failed).await;
    save_all(client, &plans, &mut failed).await;
    let finish: Vec<String> = plans
        .iter()
        .filter_map(|p| match p {
            Ok(Plan::Save(d, _, _) | Plan::Finish(d)) => Some(d.number.clone()),
            _ => None,
        })
        .collect();
    for (op, on) in [("Submit", s.submit), ("Audit", s.audit)] {
        if on {
            operate_all(client, op, "PUR_PurchaseOrder", &finish, &mut failed).await;
        }
    }
    plans
        .into_iter()
        .map(|p| {
            let p = p?;
            let (doc, done) = match p {
                Plan::Done(a) => return Ok(a),
                Plan::Finish(d) => (d.clone(), Amended::Unchanged(d)),
                Plan::Delete(d, _) => (d.clone(), Amended::Deleted(d)),
                Plan::Save(d, _, _) => (d.clone(), Amended::Amended(d)),
            };
            match failed.remove(&doc.number) {
                Some(e) => Err(e),
                None => Ok(done),
            }
        })
        .collect()
}

/// What must happen to `d`'s document.
fn plan(current: Option<Current>, d: &PoDoc, s: &PurchaseOrderSettings) -> Result<Plan, KingdeeError> {
    let Some(c) = current else { return Ok(Plan::Done(Amended::Missing)) };
    let doc = ErpDoc { id: c.fid, number: c.number.clone(), created: false };
    let mut keep = Vec::new();
    for l in &d.lines {
        let Some((entry, _, qty)) = c.entries.iter().find(|(_, note, _)| *note == l.note) else {
            return Err(KingdeeError::Protocol(format!(
                "PUR_PurchaseOrder {} has no line `{}`: a document's lines can be taken away, not added",
                c.number, l.note
            )));
        };
        keep.push((*entry, *qty, l.quantity));
    }
    if keep.len() == c.entries.len() && keep.iter().all(|(_, now, want)| now == want) {
        return Ok(if c.status == "C" || !s.audit { Plan::Done(Amended::Unchanged(doc)) } else { Plan::Finish(doc) });
    }
    if keep.is_empty() {
        return Ok(Plan::Delete(doc, c.status));
    }
    Ok(Plan::Save(doc, c.status, keep.into_iter().map(|(e, _, want)| (e, want)).collect()))
}

/// The documents carrying these POs' markers, by PO number.
async fn by_marker(
    client: &KingdeeClient,
    s: &PurchaseOrderSettings,
    docs: &[PoDoc],
) -> Result<BTreeMap<String, Current>, KingdeeError> {
    let mut out: BTreeMap<String, Current> = BTreeMap::new();
    let numbers: Vec<&str> = docs.iter().map(|d| d.po_number.as_str()).collect();
    let keys = format!("FID,FBillNo,FDocumentStatus,{},FPOOrderEntry_FEntryID,FEntryNote,FQty", s.marker_field);
    for r in rows_where_in(client, "PUR_PurchaseOrder", &keys, &s.marker_field, &numbers).await? {
        let text = |k: usize| r.get(k).and_then(Value::as_str).unwrap_or_default().to_string();
        let Some(fid) = r.first().and_then(Value::as_i64) else { continue };
        let c = out.entry(text(3)).or_insert_with(|| Current {
            fid,
            number: text(1),
            status: text(2),
            entries: Vec::new(),
        });
        if c.fid != fid {
            continue;
        }
        if let (Some(entry), Some(qty)) = (r.get(4).and_then(Value::as_i64), r.get(6).and_then(dec_of)) {
            c.entries.push((entry, text(5), qty));
        }
    }
    Ok(out)
}

/// One BatchSave keeping only the planned entries at their quantities.
async fn save_all(
    client: &KingdeeClient,
    plans: &[Result<Plan, KingdeeError>],
    failed: &mut HashMap<String, KingdeeError>,
) {
    let saves: Vec<(&ErpDoc, &Vec<(i64, Decimal)>)> = plans
        .iter()
        .filter_map(|p| match p {
            Ok(Plan::Save(d, _, keep)) if !failed.contains_key(&d.number) => Some((d, keep)),
            _ => None,
        })
        .collect();
    if saves.is_empty() {
        return;
    }
    let models: Vec<Value> = saves
        .iter()
        .map(|(d, keep)| {
            let entries: Vec<Value> =
                keep.iter().map(|(e, q)| json!({ "FEntryID": e, "FQty": decimal_number(*q) })).collect();
            json!({ "FID": d.id, "FPOOrderEntry": entries })
        })
        .collect();
    // IsDeleteEntry: the entries left out are the lines no longer bought.
    match client.batch_save("PUR_PurchaseOrder", json!({ "IsDeleteEntry": "true", "Model": models })).await {
        Ok((saved, errors)) => {
            for (k, (d, _)) in saves.iter().enumerate() {
                if saved.iter().any(|e| e.d_index == Some(k as i64)) {
                    continue;
                }
                failed.insert(d.number.clone(), batch_item_error(&errors, k));
            }
        }
        Err(e) => {
            for (d, _) in saves {
                failed.insert(d.number.clone(), e.clone());
            }
        }
    }
}

/// What [`sync_purchase_orders`] did to one PO's document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Synced {
    /// Made now (pushed or saved), submitted and audited.
    Made(ErpDoc),
    /// It existed: brought in line with the PO (see [`Amended`]).
    Amended(Amended),
}

/// Makes or amends each PO's document — `docs` pairs a PO with whether
/// its document is known to be made — in the one order that lets a line
/// move between POs of the same sales order within a batch: documents
/// known made are amended first, releasing what their taken-back lines
/// drew on the sales order; then the others are made; then documents found
/// instead of made (an earlier run made them, its answer lost) are
/// amended, and pushes that failed are tried once more if that released
/// anything. Pushing first, the ERP would refuse a line re-routed from PO
/// A to PO B in the same batch (A's document still draws its quantity),
/// and the two jobs could keep meeting on every retry. Results come in
/// input order.
pub async fn sync_purchase_orders(
    client: &KingdeeClient,
    s: &PurchaseOrderSettings,
    docs: &[(PoDoc, bool)],
) -> Vec<Result<Synced, KingdeeError>> {
    let mut out: Vec<Option<Result<Synced, KingdeeError>>> = vec![None; docs.len()];
    let (made, fresh): (Vec<usize>, Vec<usize>) = (0..docs.len()).partition(|&i| docs[i].1);
    let released = amend_into(client, s, docs, &made, &mut out).await;
    let (found, refused) = make_into(client, s, docs, &fresh, &mut out).await;
    let released = amend_into(client, s, docs, &found, &mut out).await || released;
    if released && !refused.is_empty() {
        // Found this time (the refused push had landed after all): its
        // lines are checked like any other found document's.
        let (found, _) = make_into(client, s, docs, &refused, &mut out).await;
        amend_into(client, s, docs, &found, &mut out).await;
    }
    out.into_iter()
        .map(|r| r.unwrap_or_else(|| Err(KingdeeError::Protocol("purchase order left unsynced".into()))))
        .collect()
}

/// Makes the documents of `docs[ix]` into `out`; returns those found
/// instead of made (left for amending) and those refused (their errors in
/// `out`).
async fn make_into(
    client: &KingdeeClient,
    s: &PurchaseOrderSettings,
    docs: &[(PoDoc, bool)],
    ix: &[usize],
    out: &mut [Option<Result<Synced, KingdeeError>>],
) -> (Vec<usize>, Vec<usize>) {
    let (mut found, mut refused) = (Vec::new(), Vec::new());
    if ix.is_empty() {
        return (found, refused);
    }
    let batch: Vec<PoDoc> = ix.iter().map(|&i| docs[i].0.clone()).collect();
    for (&i, r) in ix.iter().zip(ensure_purchase_orders(client, s, &batch).await) {
        match r {
            Ok(d) if !d.created => found.push(i),
            Ok(d) => out[i] = Some(Ok(Synced::Made(d))),
            Err(e) => {
                refused.push(i);
                out[i] = Some(Err(e));
            }
        }
    }
    (found, refused)
}

/// Amends the documents of `docs[ix]` into `out`; true if any document
/// was changed or deleted (and so may have released sales-order quantity).
async fn amend_into(
    client: &KingdeeClient,
    s: &PurchaseOrderSettings,
    docs: &[(PoDoc, bool)],
    ix: &[usize],
    out: &mut [Option<Result<Synced, KingdeeError>>],
) -> bool {
    if ix.is_empty() {
        return false;
    }
    let batch: Vec<PoDoc> = ix.iter().map(|&i| docs[i].0.clone()).collect();
    let mut released = false;
    for (&i, r) in ix.iter().zip(amend_purchase_orders(client, s, &batch).await) {
        released |= matches!(r, Ok(Amended::Amended(_) | Amended::Deleted(_)));
        out[i] = Some(r.map(Synced::Amended));
    }
    released
}
