//! The four documents: the 850 we send, and the 997, 855 and 856 we read
//! (with the 997 we answer). Code lists and qualifiers come from
//! [`Mapping`] (config), so a second partner needs no rebuild.

use std::collections::BTreeMap;

use daifa_plugin_sdk::prelude::*;

use crate::x12::{Delims, Rejection, Segment, TxSet, clean};

/// Partner-specific codes and qualifiers.
pub struct Mapping {
    /// Unit of measure in PO1/SN1 (`EA`).
    pub uom: String,
    /// PO1 qualifier of the supplier's SKU (`VP`) and of ours (`BP`).
    pub sku_qualifier: String,
    pub our_sku_qualifier: String,
    /// ACK01 code → accepted / backordered / rejected.
    pub ack_codes: BTreeMap<String, String>,
    /// SCAC (TD503) → the carrier name we record; unmapped codes pass as they are.
    pub carriers: BTreeMap<String, String>,
    /// REF qualifier carrying a tracking number at the shipment level (`CN`).
    pub tracking_ref: String,
}

/// The 850's body (between ST and SE) for `o`.
pub fn purchase_order(o: &PurchaseOrder, m: &Mapping, d: Delims, date: &str) -> Result<Vec<Vec<String>>, AdapterError> {
    let c = |v: &str| clean(v, d);
    let mut segs: Vec<Vec<String>> = Vec::new();
    let seg = |parts: &[&str]| parts.iter().map(|p| p.to_string()).collect::<Vec<_>>();
    // BEG02 `DS`: drop-ship order.
    segs.push(seg(&["BEG", "00", "DS", &c(&o.po_number), "", &format!("20{date}")]));
    for r in &o.erp_refs {
        segs.push(seg(&["REF", "CO", &c(&r.bill_no)]));
    }
    segs.push(seg(&["CUR", "BY", &c(&o.currency)]));
    if let Some(carrier) = &o.requested_carrier {
        segs.push(seg(&["TD5", "", "2", &c(carrier)]));
    }
    let a = &o.ship_to;
    segs.push(seg(&["N1", "ST", &c(&a.name)]));
    segs.push(seg(&["N2", &c(&a.phone)]));
    let street = if a.district.is_empty() { a.street.clone() } else { format!("{} {}", a.district, a.street) };
    segs.push(seg(&["N3", &c(&street)]));
    segs.push(seg(&["N4", &c(&a.city), &c(&a.province), &c(&a.postcode), &c(&a.country)]));
    for l in &o.lines {
        if l.line_id.is_empty() || l.line_id.len() > 20 {
            return Err(AdapterError::rejected(format!(
                "line id `{}` does not fit PO101 (1-20 characters)",
                l.line_id
            )));
        }
        if l.quantity == 0 {
            return Err(AdapterError::rejected(format!("line {} has quantity 0", l.line_id)));
        }
        segs.push(seg(&[
            "PO1",
            &c(&l.line_id),
            &l.quantity.to_string(),
            &m.uom,
            &c(&l.unit_cost),
            "",
            &m.sku_qualifier,
            &c(&l.supplier_sku),
            &m.our_sku_qualifier,
            &c(&l.our_sku),
        ]));
    }
    segs.push(seg(&["CTT", &o.lines.len().to_string()]));
    Ok(segs)
}

/// What a 997 says about one of our groups.
#[derive(Debug, PartialEq, Eq)]
pub struct FunctionalAck {
    /// AK102: the GS06 of our group.
    pub group: String,
    /// `Some(reason)` when AK5 or AK9 rejected it.
    pub rejected: Option<String>,
}

/// Reads a 997 (AK1, AK2/AK5 per set, AK9).
pub fn functional_ack(set: &TxSet) -> Vec<FunctionalAck> {
    let mut out: Vec<FunctionalAck> = Vec::new();
    for s in &set.body {
        match s.id.as_str() {
            "AK1" => out.push(FunctionalAck { group: s.el(2).to_string(), rejected: None }),
            "AK5" | "AK9" if matches!(s.el(1), "R" | "M" | "W" | "X") => {
                if let Some(last) = out.last_mut() {
                    let code = if s.id == "AK5" { s.el(2) } else { s.el(5) };
                    last.rejected.get_or_insert_with(|| format!("{} {} (code {code})", s.id, s.el(1)));
                }
            }
            _ => {}
        }
    }
    out
}

/// The 997 body acknowledging `groups` of an interchange we received:
/// `(GS01, GS06, [(ST01, ST02, error)], group error, interchange error)`.
pub fn ack_body(
    code: &str,
    group: &str,
    sets: &[(String, String, Option<Rejection>)],
    group_error: Option<&Rejection>,
    interchange_error: bool,
) -> Vec<Vec<String>> {
    let s = |parts: &[&str]| parts.iter().map(|p| p.to_string()).collect::<Vec<_>>();
    let mut body = vec![s(&["AK1", code, group])];
    let mut accepted = 0;
    for (id, control, err) in sets {
        body.push(s(&["AK2", id, control]));
        match err {
            None if !interchange_error && group_error.is_none() => {
                accepted += 1;
                body.push(s(&["AK5", "A"]));
            }
            None => body.push(s(&["AK5", "R"])),
            Some((code, _)) => body.push(s(&["AK5", "R", code])),
        }
    }
    let n = sets.len().to_string();
    let verdict = if accepted == sets.len() {
        "A"
    } else if accepted == 0 {
        "R"
    } else {
        "P"
    };
    let mut ak9 = s(&["AK9", verdict, &n, &n, &accepted.to_string()]);
    if let Some((code, _)) = group_error {
        ak9.push(code.to_string());
    }
    body.push(ak9);
    body
}

/// Reads an 855: the PO, the supplier's reference and each line's word.
pub fn po_ack(set: &TxSet, m: &Mapping) -> Result<StatusUpdate, String> {
    let bak = set.body.iter().find(|s| s.id == "BAK").ok_or("855 without BAK")?;
    let po = bak.el(3).to_string();
    if po.is_empty() {
        return Err("855 BAK03 (the PO number) is empty".into());
    }
    if bak.el(2) == "RJ" {
        return Ok(update(
            &po,
            bak.el(8),
            UpdateKind::Cancelled(Some("855: the supplier rejected the order (BAK02 RJ)".into())),
        ));
    }
    let mut lines = Vec::new();
    let mut current: Option<String> = None;
    for s in &set.body {
        match s.id.as_str() {
            "PO1" => current = Some(s.el(1).to_string()),
            "ACK" => {
                let Some(line) = current.clone() else { return Err("855 ACK before any PO1".into()) };
                let word = m.ack_codes.get(s.el(1)).map(String::as_str).unwrap_or("");
                let status = match word {
                    "accepted" => LineStatus::Accepted,
                    "backordered" => LineStatus::Backordered(date_of(s)),
                    "rejected" => LineStatus::Rejected(format!("855 ACK01 {}", s.el(1))),
                    _ => return Err(format!("855 ACK01 `{}` is not in ack_codes", s.el(1))),
                };
                lines.push(LineResult { line_id: line, status });
            }
            _ => {}
        }
    }
    Ok(update(&po, bak.el(8), UpdateKind::Lines(lines)))
}

/// ACK04 `068`/`079` + ACK05 `CCYYMMDD` → `YYYY-MM-DD`.
fn date_of(s: &Segment) -> Option<String> {
    let d = s.el(5);
    (d.len() == 8 && d.bytes().all(|b| b.is_ascii_digit())).then(|| format!("{}-{}-{}", &d[..4], &d[4..6], &d[6..]))
}

fn update(po: &str, supplier_ref: &str, kind: UpdateKind) -> StatusUpdate {
    StatusUpdate {
        po_number: po.to_string(),
        supplier_ref: (!supplier_ref.is_empty()).then(|| supplier_ref.to_string()),
        at: None,
        kind,
    }
}

/// One HL level being read.
#[derive(Default)]
struct Pack {
    tracking: Option<String>,
    lines: Vec<ParcelLine>,
}

/// Reads an 856: shipment (S) → order (O) → pack (P, optional) → item (I)
/// into one `shipped` update per order. Tracking numbers come from the
/// pack's MAN or the shipment's REF (`tracking_ref`), as partners differ.
pub fn ship_notice(set: &TxSet, m: &Mapping) -> Result<Vec<StatusUpdate>, String> {
    let mut carrier = String::new();
    let mut shipment_tracking: Option<String> = None;
    let mut shipped_at: Option<String> = None;
    // po → packs (a pack with no tracking of its own uses the shipment's).
    let mut orders: Vec<(String, Vec<Pack>)> = Vec::new();
    let mut level = "";
    for s in &set.body {
        match s.id.as_str() {
            "BSN" => {
                let d = s.el(3);
                if d.len() == 8 && d.bytes().all(|b| b.is_ascii_digit()) {
                    shipped_at = Some(format!("{}-{}-{}", &d[..4], &d[4..6], &d[6..]));
                }
            }
            "HL" => {
                level = match s.el(3) {
                    "S" => "S",
                    "O" => "O",
                    "P" => "P",
                    "I" => "I",
                    other => return Err(format!("856 HL03 `{other}` is not S, O, P or I")),
                };
                match level {
                    "O" => orders.push((String::new(), vec![Pack::default()])),
                    "P" => {
                        let (_, packs) = orders.last_mut().ok_or("856 pack (HL P) before any order (HL O)")?;
                        // The order's implicit pack stays only if items sat in it.
                        if packs.len() == 1 && packs[0].lines.is_empty() && packs[0].tracking.is_none() {
                            packs.clear();
                        }
                        packs.push(Pack::default());
                    }
                    "I" if orders.is_empty() => return Err("856 item (HL I) before any order (HL O)".into()),
                    _ => {}
                }
            }
            "TD5" if level == "S" => {
                let scac = s.el(3);
                carrier = m.carriers.get(scac).cloned().unwrap_or_else(|| scac.to_string());
            }
            "REF" if level == "S" && s.el(1) == m.tracking_ref => shipment_tracking = Some(s.el(2).to_string()),
            "PRF" if level == "O" => {
                if let Some(o) = orders.last_mut() {
                    o.0 = s.el(1).to_string();
                }
            }
            "MAN" if level == "P" => {
                if let Some(p) = orders.last_mut().and_then(|o| o.1.last_mut()) {
                    p.tracking = Some(s.el(2).to_string());
                }
            }
            "SN1" if level == "I" => {
                let qty: u32 =
                    s.el(2).parse().map_err(|_| format!("856 SN102 `{}` is not a whole quantity", s.el(2)))?;
                let line = s.el(1).to_string();
                if line.is_empty() {
                    return Err("856 SN101 (the PO line) is empty".into());
                }
                if let Some(p) = orders.last_mut().and_then(|o| o.1.last_mut()) {
                    p.lines.push(ParcelLine { line_id: line, quantity: qty });
                }
            }
            _ => {}
        }
    }
    let mut out = Vec::new();
    for (po, packs) in orders {
        if po.is_empty() {
            return Err("856 order level without PRF (the PO number)".into());
        }
        let parcels = packs
            .into_iter()
            .filter(|p| !p.lines.is_empty())
            .map(|p| {
                let tracking = p.tracking.or_else(|| shipment_tracking.clone()).ok_or_else(|| {
                    format!(
                        "856 for {po}: a pack has no tracking number (MAN, or REF*{} on the shipment)",
                        m.tracking_ref
                    )
                })?;
                Ok(Parcel {
                    carrier: carrier.clone(),
                    tracking_number: tracking,
                    lines: p.lines,
                    shipped_at: shipped_at.clone(),
                })
            })
            .collect::<Result<Vec<_>, String>>()?;
        if parcels.is_empty() {
            return Err(format!("856 for {po} ships no items"));
        }
        out.push(update(&po, "", UpdateKind::Shipped(parcels)));
    }
    Ok(out)
}
