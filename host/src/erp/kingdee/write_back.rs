//! Shipment write-back into Kingdee: each shipment becomes a SAL_OUTSTOCK
//! pushed from its sales order for its own lines and quantities (or a
//! configured field update on the sales order). Idempotent and resumable:
//! a shipment's document is found again by its tracking number, and a push
//! whose follow-up Save was lost is finished rather than pushed twice.
//! [`write_back_shipments`] does a whole batch in about six requests.

use std::collections::{BTreeMap, HashMap};

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::client::{BillQuery, KingdeeClient};
use super::documents::{ErpDoc, batch_item_error, decimal_number, find_where, rows_where_in, tolerate_done};
use super::protocol::KingdeeError;

/// How shipments are written back. In the config every key is optional:
/// `[kingdee.write_back]` alone means the SAL_OUTSTOCK defaults;
/// `mode = "field_update"` needs the two sales-order fields.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "mode", try_from = "WriteBackToml")]
pub enum WriteBack {
    /// Push SAL_SaleOrder → SAL_OUTSTOCK, then set carrier and tracking
    /// number on the outbound document (optionally submit and audit).
    OutStock { carrier_field: String, tracking_field: String, submit: bool, audit: bool },
    /// Update fields on the sales order itself.
    FieldUpdate { carrier_field: String, tracking_field: String },
}

/// `[kingdee.write_back]` as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WriteBackToml {
    mode: Option<String>,
    carrier_field: Option<String>,
    tracking_field: Option<String>,
    submit: Option<bool>,
    audit: Option<bool>,
}

impl TryFrom<WriteBackToml> for WriteBack {
    type Error = String;
    fn try_from(t: WriteBackToml) -> Result<WriteBack, String> {
        match t.mode.as_deref().unwrap_or("out_stock") {
            "out_stock" => {
                let WriteBack::OutStock { carrier_field, tracking_field, submit, audit } = WriteBack::default() else {
                    return Err("the default write-back is SAL_OUTSTOCK".into());
                };
                Ok(WriteBack::OutStock {
                    carrier_field: t.carrier_field.unwrap_or(carrier_field),
                    tracking_field: t.tracking_field.unwrap_or(tracking_field),
                    submit: t.submit.unwrap_or(submit),
                    audit: t.audit.unwrap_or(audit),
                })
            }
            "field_update" => match (t.carrier_field, t.tracking_field, t.submit.or(t.audit)) {
                (_, _, Some(_)) => Err("mode = \"field_update\" takes no submit or audit".into()),
                (Some(carrier_field), Some(tracking_field), None) => {
                    Ok(WriteBack::FieldUpdate { carrier_field, tracking_field })
                }
                _ => Err("mode = \"field_update\" needs carrier_field and tracking_field (sales-order fields)".into()),
            },
            other => Err(format!("write_back mode `{other}`: use \"out_stock\" or \"field_update\"")),
        }
    }
}

impl Default for WriteBack {
    fn default() -> Self {
        WriteBack::OutStock {
            carrier_field: "FCarrierID".into(),
            tracking_field: "FCarriageNO".into(),
            submit: true,
            audit: true,
        }
    }
}

/// One shipped sales-order line: its entry id (`FSaleOrderEntry_FEntryID`)
/// and the quantity in this shipment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShippedLine {
    pub entry_id: i64,
    pub quantity: Decimal,
}

/// Writes one shipment back to the sales order `sale_bill_no` (FID
/// `sale_fid`): only the `lines` it carries, so the parts of a split order
/// each ship their own lines once (an empty list means the whole order).
pub async fn write_back_shipment(
    client: &KingdeeClient,
    how: &WriteBack,
    sale_fid: i64,
    sale_bill_no: &str,
    lines: &[ShippedLine],
    carrier: &str,
    tracking: &str,
) -> Result<ErpDoc, KingdeeError> {
    match how {
        WriteBack::OutStock { carrier_field, tracking_field, submit, audit } => {
            // The tracking number identifies the shipment only together with
            // its sales order: two carriers (or two suppliers' carriers) may
            // issue the same number, and the other order's document is not
            // this shipment's.
            let filter = format!(
                "{tracking_field} = '{}' AND FSoorDerno = '{}'",
                tracking.replace('\'', "''"),
                sale_bill_no.replace('\'', "''")
            );
            if let Some(doc) = find_where(client, "SAL_OUTSTOCK", filter).await? {
                return Ok(doc);
            }
            // A push whose follow-up Save was lost (crash, lost answer) left
            // an outbound document without a tracking number: finish that
            // one, since pushed-quantity control refuses a second push.
            let (id, number) = match unfinished_outstock(client, tracking_field, sale_bill_no, lines).await? {
                Some(found) => found,
                None => {
                    let mut push = json!({ "TargetFormId": "SAL_OUTSTOCK", "IsEnableDefaultRule": "true" });
                    if lines.is_empty() {
                        push["Numbers"] = json!([sale_bill_no]);
                    } else {
                        let ids: Vec<String> = lines.iter().map(|l| l.entry_id.to_string()).collect();
                        push["EntryIds"] = json!(ids.join(","));
                    }
                    let pushed = client.push("SAL_SaleOrder", push).await?;
                    let e = pushed.first().ok_or_else(|| KingdeeError::Protocol("Push returned no document".into()))?;
                    (e.id.as_i64().unwrap_or(0), e.number.clone().unwrap_or_default())
                }
            };
            // The push proposes what is left of each line; ship what shipped.
            let rows = client
                .execute_bill_query(&BillQuery {
                    form_id: "SAL_OUTSTOCK".into(),
                    field_keys: "FEntity_FEntryID,FSrcEntryId,FRealQty".into(),
                    filter_string: format!("FID = {id}"),
                    order_string: "FEntity_FEntryID ASC".into(),
                    ..Default::default()
                })
                .await?;
            let entries: Vec<Value> = rows
                .iter()
                .filter_map(|r| {
                    let src = r.get(1).and_then(Value::as_i64)?;
                    let shipped = lines.iter().find(|l| l.entry_id == src)?;
                    Some(json!({ "FEntryID": r.first()?, "FRealQty": decimal_number(shipped.quantity) }))
                })
                .collect();
            let mut model = json!({ "FID": id, (carrier_field.as_str()): { "FNumber": carrier }, (tracking_field.as_str()): tracking });
            if !entries.is_empty() {
                model["FEntity"] = Value::Array(entries);
            }
            client.save("SAL_OUTSTOCK", json!({ "IsDeleteEntry": "false", "Model": model })).await?;
            if *submit {
                tolerate_done(client.operate("Submit", "SAL_OUTSTOCK", std::slice::from_ref(&number)).await)?;
            }
            if *audit {
                tolerate_done(client.operate("Audit", "SAL_OUTSTOCK", std::slice::from_ref(&number)).await)?;
            }
            Ok(ErpDoc { id, number, created: true })
        }
        WriteBack::FieldUpdate { carrier_field, tracking_field } => {
            let model =
                json!({ "FID": sale_fid, (carrier_field.as_str()): carrier, (tracking_field.as_str()): tracking });
            client
                .save("SAL_SaleOrder", json!({ "NeedUpDateFields": [carrier_field, tracking_field], "IsDeleteEntry": "false", "Model": model }))
                .await?;
            Ok(ErpDoc { id: sale_fid, number: sale_bill_no.to_string(), created: true })
        }
    }
}

/// An outbound document pushed from `sale_bill_no` for exactly `lines`
/// that has no tracking number yet.
async fn unfinished_outstock(
    client: &KingdeeClient,
    tracking_field: &str,
    sale_bill_no: &str,
    lines: &[ShippedLine],
) -> Result<Option<(i64, String)>, KingdeeError> {
    let rows = client
        .execute_bill_query(&BillQuery {
            form_id: "SAL_OUTSTOCK".into(),
            field_keys: "FID,FBillNo,FSrcEntryId".into(),
            filter_string: format!(
                "FSoorDerno = '{}' AND ({tracking_field} IS NULL OR {tracking_field} = '')",
                sale_bill_no.replace('\'', "''")
            ),
            order_string: "FID ASC".into(),
            ..Default::default()
        })
        .await?;
    let mut docs: std::collections::BTreeMap<i64, (String, Vec<i64>)> = Default::default();
    for r in &rows {
        let (Some(fid), Some(no)) = (r.first().and_then(Value::as_i64), r.get(1).and_then(Value::as_str)) else {
            continue;
        };
        let d = docs.entry(fid).or_insert_with(|| (no.to_string(), Vec::new()));
        d.1.extend(r.get(2).and_then(Value::as_i64));
    }
    let mut want: Vec<i64> = lines.iter().map(|l| l.entry_id).collect();
    want.sort_unstable();
    Ok(docs.into_iter().find_map(|(fid, (no, mut src))| {
        src.sort_unstable();
        (lines.is_empty() || src == want).then_some((fid, no))
    }))
}

/// One shipment for [`write_back_shipments`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShipmentDoc {
    /// The sales order's FID and bill number.
    pub sale_fid: i64,
    pub sale_bill_no: String,
    /// The lines it ships (empty: the whole order).
    pub lines: Vec<ShippedLine>,
    pub carrier: String,
    /// Tracking numbers, comma-separated when it went in several parcels.
    pub tracking: String,
}

/// [`write_back_shipment`] for many shipments in a handful of requests:
/// one query for what exists, one Push for the rest, one query for the
/// pushed documents' lines, one BatchSave, one Submit and one Audit. Two
/// shipments of one sales order go in separate rounds, because one Push
/// makes one outbound document per source order. A step refused as a whole
/// falls back to one shipment at a time for what it covered, so a bad
/// shipment costs only itself. Results come in input order.
pub async fn write_back_shipments(
    client: &KingdeeClient,
    how: &WriteBack,
    docs: &[ShipmentDoc],
) -> Vec<Result<ErpDoc, KingdeeError>> {
    let mut out: Vec<Option<Result<ErpDoc, KingdeeError>>> = vec![None; docs.len()];
    for round in rounds(docs) {
        let results = match how {
            WriteBack::OutStock { carrier_field, tracking_field, submit, audit } => {
                let s = OutStockRound { client, how, carrier_field, tracking_field, submit: *submit, audit: *audit };
                s.run(docs, &round).await
            }
            WriteBack::FieldUpdate { carrier_field, tracking_field } => {
                field_updates(client, carrier_field, tracking_field, docs, &round).await
            }
        };
        for (i, r) in round.into_iter().zip(results) {
            out[i] = Some(r);
        }
    }
    out.into_iter()
        .map(|r| r.unwrap_or_else(|| Err(KingdeeError::Protocol("shipment left unwritten".into()))))
        .collect()
}

/// Groups shipment indices so that no round holds two of one sales order.
fn rounds(docs: &[ShipmentDoc]) -> Vec<Vec<usize>> {
    let mut rounds: Vec<Vec<usize>> = Vec::new();
    let mut seen: HashMap<&str, usize> = HashMap::new();
    for (i, d) in docs.iter().enumerate() {
        let n = seen.entry(d.sale_bill_no.as_str()).or_insert(0);
        if rounds.len() <= *n {
            rounds.push(Vec::new());
        }
        rounds[*n].push(i);
        *n += 1;
    }
    rounds
}

/// An outbound document as the batch queries see it.
#[derive(Debug, Default)]
struct OutDoc {
    number: String,
    sale_bill_no: String,
    tracking: String,
    status: String,
    /// (FEntity_FEntryID, FSrcEntryId) per line.
    entries: Vec<(i64, i64)>,
}

struct OutStockRound<'a> {
    client: &'a KingdeeClient,
    /// The whole setting, for the one-at-a-time fallback.
    how: &'a WriteBack,
    carrier_field: &'a str,
    tracking_field: &'a str,
    submit: bool,
    audit: bool,
}

impl OutStockRound<'_> {
    async fn run(&self, docs: &[ShipmentDoc], round: &[usize]) -> Vec<Result<ErpDoc, KingdeeError>> {
        let mut out: HashMap<usize, Result<ErpDoc, KingdeeError>> = HashMap::new();
        // A whole-order shipment has no lines to match documents by.
        let (batch, alone): (Vec<usize>, Vec<usize>) = round.iter().partition(|&&i| !docs[i].lines.is_empty());
        for i in alone {
            out.insert(i, self.one(&docs[i]).await);
        }
        let bills: Vec<&str> = batch.iter().map(|&i| docs[i].sale_bill_no.as_str()).collect();
        let mut existing = match self.outstocks(&bills).await {
            Ok(e) => e,
            // Nothing known: every shipment not already answered fails alike.
            Err(e) => return round.iter().map(|i| out.remove(i).unwrap_or_else(|| Err(e.clone()))).collect(),
        };
        let mut to_finish: Vec<(usize, i64, String)> = Vec::new();
        let mut to_save: Vec<(usize, i64, OutDoc)> = Vec::new();
        let mut to_push: Vec<usize> = Vec::new();
        for &i in &batch {
            let d = &docs[i];
            match pick(&mut existing, d) {
                Some(Pick::Done(fid, doc)) => {
                    if doc.status == "C" {
                        out.insert(i, Ok(ErpDoc { id: fid, number: doc.number, created: false }));
                    } else {
                        to_finish.push((i, fid, doc.number));
                    }
                }
                Some(Pick::Unfinished(fid, doc)) => to_save.push((i, fid, doc)),
                None => to_push.push(i),
            }
        }
        if !to_push.is_empty() {
            let ids: Vec<String> =
                to_push.iter().flat_map(|&i| docs[i].lines.iter().map(|l| l.entry_id.to_string())).collect();
            let push =
                json!({ "TargetFormId": "SAL_OUTSTOCK", "IsEnableDefaultRule": "true", "EntryIds": ids.join(",") });
            let pushed = match self.client.push("SAL_SaleOrder", push).await {
                Ok(_) => {
                    let bills: Vec<&str> = to_push.iter().map(|&i| docs[i].sale_bill_no.as_str()).collect();
                    self.outstocks(&bills).await
                }
                Err(e) => Err(e),
            };
            match pushed {
                Ok(mut made) => {
                    for i in to_push {
                        match pick(&mut made, &docs[i]) {
                            Some(Pick::Unfinished(fid, doc)) => to_save.push((i, fid, doc)),
                            Some(Pick::Done(fid, doc)) => {
                                out.insert(i, Ok(ErpDoc { id: fid, number: doc.number, created: false }));
                            }
                            None => {
                                let msg = format!("Push made no outbound document for {}", docs[i].sale_bill_no);
                                out.insert(i, Err(KingdeeError::Protocol(msg)));
                            }
                        }
                    }
                }
                // Unknown whether the push landed: the next try looks first.
                Err(e) if e.is_transient() || matches!(e, KingdeeError::SessionLostDuringWrite(_)) => {
                    for i in to_push {
                        out.insert(i, Err(e.clone()));
                    }
                }
                // One bad sales order refuses the whole push: one by one.
                Err(_) => {
                    for i in to_push {
                        out.insert(i, self.one(&docs[i]).await);
                    }
                }
            }
        }
        let saved = self.save_all(docs, to_save, &mut out).await;
        let mut numbers: Vec<(usize, i64, String)> = saved;
        numbers.extend(to_finish);
        let list: Vec<String> = numbers.iter().map(|(_, _, n)| n.clone()).collect();
        let mut failed = HashMap::new();
        for (op, on) in [("Submit", self.submit), ("Audit", self.audit)] {
            if on {
                super::documents::operate_all(self.client, op, "SAL_OUTSTOCK", &list, &mut failed).await;
            }
        }
        for (i, fid, number) in numbers {
            let r = match failed.remove(&number) {
                Some(e) => Err(e),
                None => Ok(ErpDoc { id: fid, number, created: true }),
            };
            out.insert(i, r);
        }
        round
            .iter()
            .map(|i| out.remove(i).unwrap_or_else(|| Err(KingdeeError::Protocol("shipment left unwritten".into()))))
            .collect()
    }

    async fn one(&self, d: &ShipmentDoc) -> Result<ErpDoc, KingdeeError> {
        write_back_shipment(self.client, self.how, d.sale_fid, &d.sale_bill_no, &d.lines, &d.carrier, &d.tracking).await
    }

    /// The outbound documents pushed from these sales orders, by FID.
    async fn outstocks(&self, bills: &[&str]) -> Result<BTreeMap<i64, OutDoc>, KingdeeError> {
        let mut docs: BTreeMap<i64, OutDoc> = BTreeMap::new();
        let keys =
            format!("FID,FBillNo,FSoorDerno,{},FDocumentStatus,FEntity_FEntryID,FSrcEntryId", self.tracking_field);
        for r in rows_where_in(self.client, "SAL_OUTSTOCK", &keys, "FSoorDerno", bills).await? {
            let text = |k: usize| r.get(k).and_then(Value::as_str).unwrap_or_default().to_string();
            let Some(fid) = r.first().and_then(Value::as_i64) else { continue };
            let doc = docs.entry(fid).or_insert_with(|| OutDoc {
                number: text(1),
                sale_bill_no: text(2),
                tracking: text(3),
                status: text(4),
                entries: Vec::new(),
            });
            if let (Some(entry), Some(src)) = (r.get(5).and_then(Value::as_i64), r.get(6).and_then(Value::as_i64)) {
                doc.entries.push((entry, src));
            }
        }
        Ok(docs)
    }

    /// Sets carrier, tracking number and shipped quantities on each
    /// document in one BatchSave; answers those saved.
    async fn save_all(
        &self,
        docs: &[ShipmentDoc],
        to_save: Vec<(usize, i64, OutDoc)>,
        out: &mut HashMap<usize, Result<ErpDoc, KingdeeError>>,
    ) -> Vec<(usize, i64, String)> {
        if to_save.is_empty() {
            return Vec::new();
        }
        let models: Vec<Value> = to_save
            .iter()
            .map(|(i, fid, doc)| {
                let d = &docs[*i];
                let entries: Vec<Value> = doc
                    .entries
                    .iter()
                    .filter_map(|(entry, src)| {
                        let shipped = d.lines.iter().find(|l| l.entry_id == *src)?;
                        Some(json!({ "FEntryID": entry, "FRealQty": decimal_number(shipped.quantity) }))
                    })
                    .collect();
                json!({
                    "FID": fid,
                    (self.carrier_field): { "FNumber": d.carrier },
                    (self.tracking_field): d.tracking,
                    "FEntity": entries,
                })
            })
            .collect();
        let data = json!({ "IsDeleteEntry": "false", "Model": models });
        match self.client.batch_save("SAL_OUTSTOCK", data).await {
            Ok((saved, errors)) => {
                let ok: std::collections::HashSet<usize> =
                    saved.iter().filter_map(|e| e.d_index.and_then(|i| usize::try_from(i).ok())).collect();
                let mut done = Vec::new();
                for (k, (i, fid, doc)) in to_save.into_iter().enumerate() {
                    if ok.contains(&k) {
                        done.push((i, fid, doc.number));
                        continue;
                    }
                    out.insert(i, Err(batch_item_error(&errors, k)));
                }
                done
            }
            Err(e) => {
                // Nothing known saved; the document stays without a tracking
                // number, so the next try finds and finishes it.
                for (i, _, _) in to_save {
                    out.insert(i, Err(e.clone()));
                }
                Vec::new()
            }
        }
    }
}

enum Pick {
    /// Already carries this shipment's tracking number.
    Done(i64, OutDoc),
    /// Pushed for exactly these lines, never finished.
    Unfinished(i64, OutDoc),
}

/// This shipment's outbound document among `docs`, taken out so that no
/// other shipment claims it.
fn pick(docs: &mut BTreeMap<i64, OutDoc>, d: &ShipmentDoc) -> Option<Pick> {
    let done = docs.iter().find(|(_, o)| o.sale_bill_no == d.sale_bill_no && o.tracking == d.tracking).map(|(f, _)| *f);
    if let Some(fid) = done {
        return docs.remove(&fid).map(|o| Pick::Done(fid, o));
    }
    let mut want: Vec<i64> = d.lines.iter().map(|l| l.entry_id).collect();
    want.sort_unstable();
    let unfinished = docs
        .iter()
        .find(|(_, o)| {
            let mut src: Vec<i64> = o.entries.iter().map(|e| e.1).collect();
            src.sort_unstable();
            o.sale_bill_no == d.sale_bill_no && o.tracking.is_empty() && src == want
        })
        .map(|(f, _)| *f);
    unfinished.and_then(|fid| docs.remove(&fid).map(|o| Pick::Unfinished(fid, o)))
}

/// Field-update write-back: one BatchSave of sales-order fields.
async fn field_updates(
    client: &KingdeeClient,
    carrier_field: &str,
    tracking_field: &str,
    docs: &[ShipmentDoc],
    round: &[usize],
) -> Vec<Result<ErpDoc, KingdeeError>> {
    let models: Vec<Value> = round
        .iter()
        .map(|&i| json!({ "FID": docs[i].sale_fid, (carrier_field): docs[i].carrier, (tracking_field): docs[i].tracking }))
        .collect();
    let data =
        json!({ "NeedUpDateFields": [carrier_field, tracking_field], "IsDeleteEntry": "false", "Model": models });
    match client.batch_save("SAL_SaleOrder", data).await {
        Ok((saved, errors)) => round
            .iter()
            .enumerate()
            .map(|(k, &i)| {
                if saved.iter().any(|e| e.d_index == Some(k as i64)) {
                    return Ok(ErpDoc { id: docs[i].sale_fid, number: docs[i].sale_bill_no.clone(), created: true });
                }
                Err(batch_item_error(&errors, k))
            })
            .collect(),
        Err(e) => round.iter().map(|_| Err(e.clone())).collect(),
    }
}
