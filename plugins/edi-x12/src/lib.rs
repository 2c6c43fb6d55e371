//! edi-x12: a daifa supplier adapter for partners that speak EDI X12
//! (004010) through an HTTP drop box: our purchase orders go out as 850s;
//! the partner's 997s, 855s and 856s come back as acknowledgements,
//! line answers and shipments; every interchange received is answered
//! with a 997, a replayed one is recognised and skipped, a corrupted one is
//! rejected (AK5/AK9 `R`) and never applied.
//!
//! The drop box: `POST {base_url}{inbox_path}` takes one interchange (our
//! 850s and 997s); `GET {base_url}{outbox_path}?after=SEQ&limit=N` answers
//! `{"documents": [{"seq", "body"}], "next"}` with the partner's.
//!
//! Control numbers: an 850's ISA13/GS06 come from a counter in kv (below
//! 900,000,000; the manifest's `calls_per_connection = 1` has the host send
//! one submit of a connection at a time, so two never read the same value); a 997's are 900,000,000 + the outbox seq of
//! the first document it answers, so answering the same page again (after
//! a host restart) repeats the same interchange rather than a new one.

mod docs;
mod x12;

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;

use daifa_plugin_sdk::prelude::*;
use daifa_plugin_sdk::{config::Json, config_schema};
use serde::Deserialize;

use docs::Mapping;
use x12::{Delims, Interchange, Writer};

config_schema! {
    /// Every key the adapter reads; `manifest.toml` declares the same (a
    /// unit test checks it).
    struct Config {
        base_url: String { required, description = "The drop box's base URL" },
        api_token: Option<String> { secret },
        inbox_path: String { default = "/inbox" },
        outbox_path: String { default = "/outbox" },
        sender_id: String { default = "DAIFA" },
        sender_qualifier: String { default = "ZZ" },
        receiver_id: String { required },
        receiver_qualifier: String { default = "ZZ" },
        usage: String { default = "P" },
        uom: String { default = "EA" },
        sku_qualifier: String { default = "VP" },
        our_sku_qualifier: String { default = "BP" },
        ack_codes: Json<BTreeMap<String, String>> { default = "{\"IA\":\"accepted\",\"IC\":\"accepted\",\"IS\":\"accepted\",\"IB\":\"backordered\",\"DR\":\"backordered\",\"IR\":\"rejected\",\"R2\":\"rejected\"}" },
        carrier_codes: Json<BTreeMap<String, String>> { default = "{}" },
        tracking_ref: String { default = "CN" },
        page_size: u32 { default = "50" },
    }
}

/// Inbound interchanges remembered for replay detection.
const SEEN_KEEP: usize = 4000;
/// 850 control numbers stay below this; 997s use the range above.
const ACK_BASE: u32 = 900_000_000;

struct Settings {
    cfg: Config,
    base: String,
    mapping: Mapping,
}

impl Settings {
    fn load() -> Result<Settings, AdapterError> {
        let cfg = Config::load()?;
        for (key, v) in [("sender_id", &cfg.sender_id), ("receiver_id", &cfg.receiver_id)] {
            if v.is_empty() || v.len() > 15 {
                return Err(AdapterError::misconfigured(format!("{key} `{v}` must be 1-15 characters (ISA06/ISA08)")));
            }
        }
        if !matches!(cfg.usage.as_str(), "P" | "T") {
            return Err(AdapterError::misconfigured(format!("usage `{}`: P (production) or T (test)", cfg.usage)));
        }
        for (code, word) in cfg.ack_codes.iter() {
            if !matches!(word.as_str(), "accepted" | "backordered" | "rejected") {
                return Err(AdapterError::misconfigured(format!(
                    "ack_codes maps `{code}` to `{word}`; use accepted, backordered or rejected"
                )));
            }
        }
        let mapping = Mapping {
            uom: cfg.uom.clone(),
            sku_qualifier: cfg.sku_qualifier.clone(),
            our_sku_qualifier: cfg.our_sku_qualifier.clone(),
            ack_codes: cfg.ack_codes.0.clone(),
            carriers: cfg.carrier_codes.0.clone(),
            tracking_ref: cfg.tracking_ref.clone(),
        };
        Ok(Settings { base: cfg.base_url.trim_end_matches('/').to_string(), cfg, mapping })
    }

    fn writer(&self) -> Writer<'_> {
        let (date, time) = yymmdd_hhmm(clock::now_ms());
        Writer {
            delims: Delims::default(),
            sender_qualifier: &self.cfg.sender_qualifier,
            sender: &self.cfg.sender_id,
            receiver_qualifier: &self.cfg.receiver_qualifier,
            receiver: &self.cfg.receiver_id,
            usage: &self.cfg.usage,
            date,
            time,
        }
    }

    fn request(&self, req: http::Request) -> http::Request {
        match self.cfg.api_token.as_deref().filter(|t| !t.is_empty()) {
            Some(t) => req.bearer(t),
            None => req,
        }
    }

    fn post_interchange(&self, text: String, key: Option<&str>) -> Result<(), AdapterError> {
        let mut req = http::Request::post(format!("{}{}", self.base, self.cfg.inbox_path))
            .header("content-type", "application/edi-x12")
            .body(text.into_bytes());
        if let Some(k) = key {
            req = req.header("idempotency-key", k);
        }
        self.request(req).send()?.error_for_status()?;
        Ok(())
    }
}

/// `YYMMDD` and `HHMM` (UTC) of a Unix time in ms.
fn yymmdd_hhmm(ms: u64) -> (String, String) {
    let secs = ms / 1000;
    let days = (secs / 86_400) as i64;
    let (y, m, d) = civil(days);
    let hm = secs % 86_400;
    (format!("{:02}{m:02}{d:02}", y % 100), format!("{:02}{:02}", hm / 3600, hm % 3600 / 60))
}

/// Days since 1970-01-01 → (year, month, day), proleptic Gregorian.
fn civil(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// The next 850 control number (1 … 899,999,999, then round again).
fn next_control() -> Result<u32, AdapterError> {
    let last: u32 = kv::get_string("control").and_then(|v| v.parse().ok()).unwrap_or(0);
    let next = if last + 1 >= ACK_BASE { 1 } else { last + 1 };
    kv::set("control", next.to_string())?;
    Ok(next)
}

#[derive(Deserialize)]
struct Outbox {
    documents: Vec<Document>,
    #[serde(default)]
    next: Option<u64>,
}

#[derive(Deserialize)]
struct Document {
    seq: u64,
    body: String,
}

struct EdiX12;

impl SupplierAdapter for EdiX12 {
    fn describe() -> AdapterInfo {
        adapter_info!(Capabilities::SUBMIT | Capabilities::POLL)
    }

    fn submit_order(order: PurchaseOrder) -> Result<SubmitReceipt, AdapterError> {
        let s = Settings::load()?;
        if order.lines.is_empty() {
            return Err(AdapterError::rejected(format!("purchase order {} has no lines", order.po_number)));
        }
        let w = s.writer();
        let body = docs::purchase_order(&order, &s.mapping, w.delims, &w.date)?;
        let control = next_control()?;
        // The 997 names our group by its control number: remember whose it is.
        kv::set(&format!("ctl:{control}"), &order.po_number)?;
        s.post_interchange(w.interchange(control, "PO", "850", &body), Some(&order.idempotency_key))?;
        info!("sent 850 for {} as interchange {control:09}", order.po_number);
        // Delivered to the drop box; the 997 and 855 say what the partner made of it.
        Ok(SubmitReceipt { supplier_ref: format!("850:{control:09}"), lines: vec![] })
    }

    fn poll_updates(cursor: Option<String>) -> Result<PollBatch, AdapterError> {
        let s = Settings::load()?;
        let after: u64 = cursor.as_deref().unwrap_or("0").parse().unwrap_or(0);
        let req = http::Request::get(format!("{}{}", s.base, s.cfg.outbox_path))
            .query(&[("after", &after.to_string()), ("limit", &s.cfg.page_size.to_string())]);
        let page: Outbox = s.request(req).send()?.error_for_status()?.json()?;
        let mut seen: BTreeMap<String, u64> = kv::get_json("seen").unwrap_or_default();
        // Polls are frequent and mostly empty: the set is written back only
        // when it changed (it can be a few hundred KiB).
        let mut changed = false;
        let mut updates = Vec::new();
        let mut acks: Vec<(String, u32, Vec<Vec<String>>)> = Vec::new();
        let mut last = after;
        for doc in &page.documents {
            last = last.max(doc.seq);
            let ic = match x12::parse(&doc.body) {
                Ok(ic) => ic,
                Err(e) => {
                    // Not even an envelope to answer: nothing is applied.
                    error!("outbox document {} is not a readable interchange: {e}", doc.seq);
                    continue;
                }
            };
            // Addressed to someone else, or a test interchange on a
            // production link (or the other way round): never applied.
            if ic.receiver != s.cfg.sender_id || ic.usage != s.cfg.usage {
                error!(
                    "interchange {} from {} (outbox {}) is for `{}` in usage `{}`, not `{}` in `{}`: skipped",
                    ic.control, ic.sender, doc.seq, ic.receiver, ic.usage, s.cfg.sender_id, s.cfg.usage
                );
                continue;
            }
            let key = format!("{}:{}", ic.sender, ic.control);
            match seen.get(&key) {
                Some(first) if *first != doc.seq => {
                    warn!(
                        "interchange {} from {} replayed (first at {first}, again at {}): skipped",
                        ic.control, ic.sender, doc.seq
                    );
                    continue;
                }
                _ => {}
            }
            changed |= seen.insert(key, doc.seq) != Some(doc.seq);
            read_interchange(&s, &ic, doc.seq, &mut updates, &mut acks);
        }
        if let Some((_, control, _)) = acks.first() {
            let w = s.writer();
            let groups: Vec<(&str, u32, &str, Vec<Vec<String>>)> =
                acks.iter().map(|(_, group, body)| ("FA", *group, "997", body.clone())).collect();
            s.post_interchange(w.interchange_of(*control, &groups), None)?;
        }
        if changed && seen.len() > SEEN_KEEP {
            let mut by_seq: Vec<(String, u64)> = seen.into_iter().collect();
            by_seq.sort_by_key(|(_, q)| std::cmp::Reverse(*q));
            by_seq.truncate(SEEN_KEEP);
            seen = by_seq.into_iter().collect();
        }
        if changed {
            kv::set_json("seen", &seen)?;
        }
        let next = page.next.unwrap_or(last).max(last);
        Ok(PollBatch { updates, next_cursor: Some(next.to_string()) })
    }
}

/// The updates of one interchange, and the 997 groups answering it.
fn read_interchange(
    s: &Settings,
    ic: &Interchange,
    seq: u64,
    updates: &mut Vec<StatusUpdate>,
    acks: &mut Vec<(String, u32, Vec<Vec<String>>)>,
) {
    if let Some(e) = &ic.error {
        error!("interchange {} from {} (outbox {seq}) refused: {e}", ic.control, ic.sender);
    }
    for (gi, g) in ic.groups.iter().enumerate() {
        // Each set's verdict: its envelope's, else whether its content reads.
        let mut verdicts: Vec<(String, String, Option<x12::Rejection>)> = Vec::new();
        for t in &g.sets {
            let mut verdict = t.error.clone();
            if verdict.is_none() && ic.error.is_none() && g.error.is_none() {
                let read: Result<Vec<StatusUpdate>, x12::Rejection> = match t.id.as_str() {
                    "997" => Ok(functional_acks(t)),
                    "855" => docs::po_ack(t, &s.mapping).map(|u| vec![u]).map_err(|w| ("5", w)),
                    "856" => docs::ship_notice(t, &s.mapping).map_err(|w| ("5", w)),
                    // AK5 code 1: transaction set not supported.
                    other => Err(("1", format!("transaction set {other} is not one this adapter reads"))),
                };
                match read {
                    Ok(u) => updates.extend(u),
                    // Not applied, and the 997 says so (AK5 R 5: segments in
                    // error), so the partner corrects and sends it again
                    // instead of believing it was taken.
                    Err(e) => verdict = Some(e),
                }
            }
            if let Some((_, why)) = &verdict {
                error!("{} {} of interchange {} from {} not applied: {why}", t.id, t.control, ic.control, ic.sender);
            }
            verdicts.push((t.id.clone(), t.control.clone(), verdict));
        }
        if let Some((_, why)) = &g.error {
            error!("group {} of interchange {} refused: {why}", g.control, ic.control);
        }
        // A 997 is never itself acknowledged.
        if g.code != "FA" {
            // Our group's control number follows from where the document
            // sits in the outbox: the same page answered twice repeats it.
            let group = ACK_BASE + (seq % u64::from(ACK_BASE / 9)) as u32 + gi as u32;
            acks.push((
                g.code.clone(),
                group,
                docs::ack_body(&g.code, &g.control, &verdicts, g.error.as_ref(), ic.error.is_some()),
            ));
        }
    }
}

/// A 997 answering our 850s: a rejection cancels the PO at this supplier
/// (the host routes its lines again); either way the control number's
/// entry is done with.
fn functional_acks(t: &x12::TxSet) -> Vec<StatusUpdate> {
    let mut out = Vec::new();
    for a in docs::functional_ack(t) {
        let key = format!("ctl:{}", a.group);
        let po = kv::get_string(&key);
        let _ = kv::delete(&key);
        match (po, a.rejected) {
            (Some(po), Some(why)) => out.push(StatusUpdate {
                po_number: po,
                supplier_ref: None,
                at: None,
                kind: UpdateKind::Cancelled(Some(format!("the partner's 997 rejected our 850 ({why})"))),
            }),
            (None, Some(why)) => warn!("997 rejects group {} ({why}), which is not an 850 we remember", a.group),
            _ => {}
        }
    }
    out
}

export_adapter!(EdiX12);
