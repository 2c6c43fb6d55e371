//! An EDI X12 (004010) trading partner behind an HTTP drop box, as the
//! `edi-x12` adapter expects one: `POST /inbox` takes an interchange,
//! `GET /outbox?after=SEQ&limit=N` lists the partner's. It reads our 850s
//! and 997s with its own strict envelope check (not the adapter's code),
//! answers every group with a 997 (`AK5 R` with the X12 code when counts or
//! control numbers are wrong), acknowledges accepted orders with an 855
//! (unknown SKUs rejected, every Nth line backordered) and ships with 856s.
//! Faults on request: corrupted outbound counts (re-sent corrected when our
//! 997 rejects them), replayed interchanges, 850s refused outright.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;

/// How the partner behaves.
#[derive(Debug, Clone)]
pub struct EdiSimConfig {
    /// Required bearer token; `None` accepts any caller.
    pub token: Option<String>,
    /// Our id (ISA06 of what we receive from daifa) and daifa's.
    pub partner_id: String,
    pub daifa_id: String,
    /// SKUs with this prefix are rejected in the 855 (`ACK*IR`).
    pub unknown_prefix: String,
    /// Every Nth line of all orders is backordered (`ACK*IB`); 0 = never.
    pub backorder_every: usize,
    /// The SCAC in TD503.
    pub scac: String,
    /// Ship each line of a several-line order in its own 856 (partial
    /// shipments, one tracking number each) instead of one 856 per order.
    pub split_shipments: bool,
}

impl Default for EdiSimConfig {
    fn default() -> Self {
        EdiSimConfig {
            token: Some("edi-token".into()),
            partner_id: "PARTNER".into(),
            daifa_id: "DAIFA".into(),
            unknown_prefix: "UNKNOWN-".into(),
            backorder_every: 0,
            scac: "UPSN".into(),
            split_shipments: false,
        }
    }
}

/// One order as the partner holds it.
#[derive(Debug, Clone)]
pub struct EdiOrder {
    pub po: String,
    /// (line, quantity, supplier SKU, ACK01 code).
    pub lines: Vec<(String, u32, String, &'static str)>,
    pub shipped: bool,
    /// One per 856 it was shipped with.
    pub tracking: Vec<String>,
}

#[derive(Default)]
struct Inner {
    orders: Vec<EdiOrder>,
    by_po: HashMap<String, usize>,
    /// Interchanges received: (sender, ISA13) → body.
    received: HashMap<(String, String), String>,
    /// (seq, body), seq = index + 1.
    outbox: Vec<String>,
    /// Our groups: GS06 → (the document as sent uncorrupted, acknowledged?).
    sent_groups: HashMap<String, (String, bool)>,
    control: u32,
    /// 850s for a PO already held: the same lines (a retry) or different.
    duplicate_850s: u64,
    conflicting_850s: u64,
    /// Interchanges refused as unreadable (400).
    unreadable: u64,
    /// Groups of ours daifa's 997s rejected, and accepted.
    rejected_by_daifa: u64,
    accepted_by_daifa: u64,
    /// Faults.
    corrupt_next: u32,
    replay_next: u32,
    refuse_next_850s: u32,
    lines_seen: usize,
}

struct Sim {
    config: EdiSimConfig,
    inner: Mutex<Inner>,
}

/// A running partner; stops when dropped.
pub struct EdiSim {
    addr: SocketAddr,
    state: Arc<Sim>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for EdiSim {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// What the partner counted.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct EdiCounts {
    pub orders: usize,
    pub duplicate_850s: u64,
    pub conflicting_850s: u64,
    pub unreadable: u64,
    pub outbox: usize,
    /// Our groups still waiting for daifa's 997.
    pub unacknowledged: usize,
    pub rejected_by_daifa: u64,
    pub accepted_by_daifa: u64,
}

impl EdiSim {
    /// Starts on `127.0.0.1:port` (0 = any free port).
    pub async fn start(config: EdiSimConfig, port: u16) -> std::io::Result<EdiSim> {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
        let addr = listener.local_addr()?;
        let state = Arc::new(Sim { inner: Mutex::new(Inner::default()), config });
        let app = Router::new()
            .route("/inbox", post(inbox))
            .route("/outbox", get(outbox))
            .layer(axum::extract::DefaultBodyLimit::max(4 << 20))
            .with_state(state.clone());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(EdiSim { addr, state, task })
    }

    /// `http://127.0.0.1:PORT`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn with<T>(&self, f: impl FnOnce(&mut Inner) -> T) -> T {
        let mut g = self.state.inner.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut g)
    }

    /// The orders taken (one per PO).
    pub fn orders(&self) -> Vec<EdiOrder> {
        self.with(|i| i.orders.clone())
    }

    pub fn counts(&self) -> EdiCounts {
        self.with(|i| EdiCounts {
            orders: i.orders.len(),
            duplicate_850s: i.duplicate_850s,
            conflicting_850s: i.conflicting_850s,
            unreadable: i.unreadable,
            outbox: i.outbox.len(),
            unacknowledged: i.sent_groups.values().filter(|(_, acked)| !acked).count(),
            rejected_by_daifa: i.rejected_by_daifa,
            accepted_by_daifa: i.accepted_by_daifa,
        })
    }

    /// The next `n` documents put in the outbox carry a wrong SE01.
    pub fn corrupt_next(&self, n: u32) {
        self.with(|i| i.corrupt_next = n);
    }

    /// The next `n` documents are put in the outbox twice (same ISA13).
    pub fn replay_next(&self, n: u32) {
        self.with(|i| i.replay_next = n);
    }

    /// The next `n` 850s are refused by the 997 (`AK5*R*5`).
    pub fn refuse_next_850s(&self, n: u32) {
        self.with(|i| i.refuse_next_850s = n);
    }

    /// Ships every order with lines to ship, one 856 each (or one per line
    /// with `split_shipments`): a shipment of one line carries its tracking
    /// number at the shipment (`REF*CN`), others in a pack (`MAN*GM`).
    /// Returns how many orders shipped.
    pub fn ship_all(&self) -> usize {
        let cfg = self.state.config.clone();
        self.with(|i| {
            let mut n = 0;
            for k in 0..i.orders.len() {
                let o = &i.orders[k];
                let lines: Vec<(String, u32)> =
                    o.lines.iter().filter(|l| l.3 != "IR").map(|l| (l.0.clone(), l.1)).collect();
                if o.shipped || lines.is_empty() {
                    continue;
                }
                let po = o.po.clone();
                let parts: Vec<Vec<(String, u32)>> =
                    if cfg.split_shipments { lines.into_iter().map(|l| vec![l]).collect() } else { vec![lines] };
                for part in parts {
                    let tracking = format!("1ZEDI{:08}", TRACKING.fetch_add(1, std::sync::atomic::Ordering::Relaxed));
                    let body = ship_notice(&cfg, k, &po, &part, &tracking);
                    i.orders[k].tracking.push(tracking);
                    put(i, &cfg, "SH", "856", body);
                }
                i.orders[k].shipped = true;
                n += 1;
            }
            n
        })
    }

    /// An 856 for a PO this partner never received (a partner's mistake):
    /// the adapter reports it and the host must make it an exception.
    pub fn ship_unknown(&self, po: &str) -> String {
        let cfg = self.state.config.clone();
        let tracking = format!("1ZBOGUS{:06}", TRACKING.fetch_add(1, std::sync::atomic::Ordering::Relaxed));
        let body = vec![
            "BSN*00*BOGUS*20261201*1200".to_string(),
            "HL*1**S".into(),
            format!("TD5**2*{}", cfg.scac),
            format!("REF*CN*{tracking}"),
            "HL*2*1*O".into(),
            format!("PRF*{po}"),
            "HL*3*2*I".into(),
            "SN1*1*1*EA".into(),
        ];
        self.with(|i| put_clean(i, &cfg, "SH", "856", body));
        tracking
    }

    /// (PO, tracking number) of every shipment.
    pub fn tracking_numbers(&self) -> Vec<(String, String)> {
        self.with(|i| i.orders.iter().flat_map(|o| o.tracking.iter().map(|t| (o.po.clone(), t.clone()))).collect())
    }
}

/// An 856 body: shipment → order → (pack →) items.
fn ship_notice(cfg: &EdiSimConfig, k: usize, po: &str, lines: &[(String, u32)], tracking: &str) -> Vec<String> {
    let mut body =
        vec![format!("BSN*00*SHP{k}-{tracking}*20261201*1200"), "HL*1**S".into(), format!("TD5**2*{}", cfg.scac)];
    if lines.len() == 1 {
        body.push(format!("REF*CN*{tracking}"));
    }
    body.push("HL*2*1*O".into());
    body.push(format!("PRF*{po}"));
    let mut hl = 2;
    let parent = if lines.len() > 1 {
        hl += 1;
        body.push(format!("HL*{hl}*2*P"));
        body.push(format!("MAN*GM*{tracking}"));
        hl
    } else {
        2
    };
    for (line, qty) in lines {
        hl += 1;
        body.push(format!("HL*{hl}*{parent}*I"));
        body.push(format!("LIN*{line}"));
        body.push(format!("SN1*{line}*{qty}*EA"));
    }
    body.push(format!("CTT*{hl}"));
    body
}

static TRACKING: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

fn authorized(sim: &Sim, headers: &HeaderMap) -> bool {
    match &sim.config.token {
        None => true,
        Some(t) => headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .is_some_and(|given| given == t),
    }
}

/// A segment's elements, `[0]` the id.
type Seg = Vec<String>;

fn el(s: &Seg, n: usize) -> &str {
    s.get(n).map(|v| v.trim()).unwrap_or("")
}

/// The partner's own reading: delimiters from the ISA, then segments.
fn split(text: &str) -> Result<Vec<Seg>, String> {
    let text = text.trim_start();
    if !text.starts_with("ISA") || text.len() < 106 {
        return Err("not an X12 interchange (no 106-character ISA)".into());
    }
    let bytes = text.as_bytes();
    let e = bytes[3] as char;
    let term = bytes[105] as char;
    if bytes[103] as char != e {
        return Err("ISA is not 106 characters wide (ISA16 misplaced)".into());
    }
    Ok(text
        .split(term)
        .map(|s| s.trim())
        .filter(|s| !s.is_empty())
        .map(|s| s.split(e).map(str::to_string).collect())
        .collect())
}

/// A group as received: GS, its sets (ST, body, SE code error) and GE error.
struct RxGroup {
    gs: Seg,
    sets: Vec<(Seg, Vec<Seg>, Option<&'static str>)>,
    error: Option<&'static str>,
}

/// The envelope check: IEA/ISA, GE/GS, SE/ST counts and control numbers.
fn envelope(segs: Vec<Seg>) -> Result<(Seg, Vec<RxGroup>), String> {
    let mut it = segs.into_iter();
    let isa = it.next().ok_or("empty")?;
    if isa.len() != 17 {
        return Err(format!("ISA has {} elements, not 16", isa.len() - 1));
    }
    let mut groups: Vec<RxGroup> = Vec::new();
    let mut set: Option<(Seg, Vec<Seg>)> = None;
    let mut iea = None;
    for s in it.by_ref() {
        match el(&s, 0) {
            "GS" => groups.push(RxGroup { gs: s, sets: Vec::new(), error: None }),
            "ST" => set = Some((s, Vec::new())),
            "SE" => {
                let (st, body) = set.take().ok_or("SE without ST")?;
                let g = groups.last_mut().ok_or("ST outside a group")?;
                let err = if el(&s, 2) != el(&st, 2) {
                    Some("3")
                } else if el(&s, 1) != (body.len() + 2).to_string() {
                    Some("4")
                } else {
                    None
                };
                g.sets.push((st, body, err));
            }
            "GE" => {
                let g = groups.last_mut().ok_or("GE without GS")?;
                if el(&s, 2) != el(&g.gs, 6) || el(&s, 1) != g.sets.len().to_string() {
                    g.error = Some("4");
                }
            }
            "IEA" => {
                iea = Some(s);
                break;
            }
            _ => match set.as_mut() {
                Some((_, body)) => body.push(s),
                None => return Err(format!("segment {} outside a transaction set", el(&s, 0))),
            },
        }
    }
    let iea = iea.ok_or("no IEA")?;
    if el(&iea, 2) != el(&isa, 13) || el(&iea, 1) != groups.len().to_string() {
        return Err(format!(
            "IEA {}*{} does not match ISA13 {} and {} group(s)",
            el(&iea, 1),
            el(&iea, 2),
            el(&isa, 13),
            groups.len()
        ));
    }
    Ok((isa, groups))
}

async fn inbox(State(sim): State<Arc<Sim>>, headers: HeaderMap, body: String) -> Response {
    if !authorized(&sim, &headers) {
        return (StatusCode::UNAUTHORIZED, "bad or missing bearer token").into_response();
    }
    let cfg = sim.config.clone();
    let mut guard = sim.inner.lock().unwrap_or_else(|p| p.into_inner());
    let i = &mut *guard;
    let parsed = split(&body).and_then(envelope);
    let (isa, groups) = match parsed {
        Ok(p) => p,
        Err(e) => {
            i.unreadable += 1;
            return (StatusCode::BAD_REQUEST, format!("interchange refused: {e}")).into_response();
        }
    };
    if el(&isa, 6) != cfg.daifa_id || el(&isa, 8) != cfg.partner_id {
        i.unreadable += 1;
        return (
            StatusCode::UNPROCESSABLE_ENTITY,
            format!(
                "interchange from `{}` to `{}`: this box takes {} → {}",
                el(&isa, 6),
                el(&isa, 8),
                cfg.daifa_id,
                cfg.partner_id
            ),
        )
            .into_response();
    }
    let key = (el(&isa, 6).to_string(), el(&isa, 13).to_string());
    if let Some(earlier) = i.received.get(&key) {
        if *earlier == body {
            // The same interchange again: already taken.
            return (StatusCode::ACCEPTED, Json(json!({ "received": key.1, "duplicate": true }))).into_response();
        }
        // A control number reused for other content is refused outright.
        return (
            StatusCode::CONFLICT,
            format!("interchange control number {} already used for another interchange", key.1),
        )
            .into_response();
    }
    i.received.insert(key.clone(), body);
    for g in groups {
        match el(&g.gs, 1) {
            "PO" => take_orders(i, &cfg, g),
            "FA" => take_acks(i, &cfg, g),
            other => {
                let sets: Vec<_> =
                    g.sets.iter().map(|(st, _, _)| (el(st, 1).to_string(), el(st, 2).to_string(), Some("1"))).collect();
                let body = ack(other, el(&g.gs, 6), &sets, g.error);
                put(i, &cfg, "FA", "997", body);
            }
        }
    }
    (StatusCode::ACCEPTED, Json(json!({ "received": key.1 }))).into_response()
}

fn take_orders(i: &mut Inner, cfg: &EdiSimConfig, g: RxGroup) {
    let mut results: Vec<(String, String, Option<&'static str>)> = Vec::new();
    let mut accepted = Vec::new();
    for (st, body, err) in &g.sets {
        let id = (el(st, 1).to_string(), el(st, 2).to_string());
        let verdict = if g.error.is_some() {
            Some("5")
        } else if err.is_some() {
            *err
        } else if el(st, 1) != "850" {
            Some("1")
        } else if i.refuse_next_850s > 0 {
            i.refuse_next_850s -= 1;
            Some("5")
        } else {
            match read_850(body) {
                Err(_) => Some("5"),
                Ok(order) => match i.by_po.get(&order.po) {
                    Some(&k) if same_lines(&i.orders[k], &order) => {
                        i.duplicate_850s += 1;
                        None
                    }
                    Some(_) => {
                        i.conflicting_850s += 1;
                        Some("5")
                    }
                    None => {
                        accepted.push(order);
                        None
                    }
                },
            }
        };
        results.push((id.0, id.1, verdict));
    }
    let ack_body = ack("PO", el(&g.gs, 6), &results, g.error);
    put(i, cfg, "FA", "997", ack_body);
    for mut order in accepted {
        for l in &mut order.lines {
            i.lines_seen += 1;
            l.3 = if l.2.starts_with(&cfg.unknown_prefix) {
                "IR"
            } else if cfg.backorder_every > 0 && i.lines_seen.is_multiple_of(cfg.backorder_every) {
                "IB"
            } else {
                "IA"
            };
        }
        let mut body = vec![format!("BAK*00*AC*{}*20261130****SO{}", order.po, i.orders.len() + 1)];
        for l in &order.lines {
            body.push(format!("PO1*{}*{}*EA", l.0, l.1));
            if l.3 == "IB" {
                body.push(format!("ACK*IB*{}*EA*079*20261224", l.1));
            } else {
                body.push(format!("ACK*{}*{}*EA", l.3, l.1));
            }
        }
        i.by_po.insert(order.po.clone(), i.orders.len());
        i.orders.push(order);
        put(i, cfg, "PR", "855", body);
    }
}

fn same_lines(a: &EdiOrder, b: &EdiOrder) -> bool {
    a.lines.len() == b.lines.len() && a.lines.iter().zip(&b.lines).all(|(x, y)| x.0 == y.0 && x.1 == y.1 && x.2 == y.2)
}

/// BEG, N1*ST and PO1s (PO107 is our SKU when PO106 is VP), CTT01 checked.
fn read_850(body: &[Seg]) -> Result<EdiOrder, String> {
    let beg = body.iter().find(|s| el(s, 0) == "BEG").ok_or("no BEG")?;
    if el(beg, 1) != "00" || !matches!(el(beg, 2), "DS" | "SA") || el(beg, 3).is_empty() {
        return Err("BEG must be 00, DS/SA and carry the PO number".into());
    }
    if !body.iter().any(|s| el(s, 0) == "N1" && el(s, 1) == "ST") {
        return Err("no ship-to (N1*ST)".into());
    }
    let mut lines = Vec::new();
    for s in body.iter().filter(|s| el(s, 0) == "PO1") {
        let qty: u32 = el(s, 2).parse().map_err(|_| format!("PO102 `{}` is not a quantity", el(s, 2)))?;
        if el(s, 6) != "VP" || el(s, 7).is_empty() || el(s, 1).is_empty() {
            return Err("PO1 needs its line number and a VP product id".into());
        }
        lines.push((el(s, 1).to_string(), qty, el(s, 7).to_string(), "IA"));
    }
    let ctt = body.iter().find(|s| el(s, 0) == "CTT").ok_or("no CTT")?;
    if lines.is_empty() || el(ctt, 1) != lines.len().to_string() {
        return Err("CTT01 does not count the PO1 lines".into());
    }
    Ok(EdiOrder { po: el(beg, 3).to_string(), lines, shipped: false, tracking: Vec::new() })
}

/// daifa's 997s for our groups; a rejected one is sent again, corrected.
fn take_acks(i: &mut Inner, cfg: &EdiSimConfig, g: RxGroup) {
    for (_, body, err) in &g.sets {
        if err.is_some() {
            continue;
        }
        let mut current: Option<String> = None;
        for s in body {
            match el(s, 0) {
                "AK1" => current = Some(el(s, 2).to_string()),
                "AK9" => {
                    let Some(group) = current.take() else { continue };
                    let Some((doc, acked)) = i.sent_groups.get_mut(&group) else { continue };
                    *acked = true;
                    if el(s, 1) == "A" {
                        i.accepted_by_daifa += 1;
                    } else {
                        i.rejected_by_daifa += 1;
                        let doc = doc.clone();
                        // Fixed and sent again under a new control number.
                        let (code, set, body) = doc_parts(&doc);
                        put_clean(i, cfg, &code, &set, body);
                    }
                }
                _ => {}
            }
        }
    }
}

/// (GS01, ST01, body) of a document we wrote.
fn doc_parts(doc: &str) -> (String, String, Vec<String>) {
    let segs: Vec<&str> = doc.split('~').map(str::trim).filter(|s| !s.is_empty()).collect();
    let code = segs.iter().find(|s| s.starts_with("GS*")).and_then(|s| s.split('*').nth(1)).unwrap_or("").to_string();
    let set = segs.iter().find(|s| s.starts_with("ST*")).and_then(|s| s.split('*').nth(1)).unwrap_or("").to_string();
    let body = segs
        .iter()
        .skip_while(|s| !s.starts_with("ST*"))
        .skip(1)
        .take_while(|s| !s.starts_with("SE*"))
        .map(|s| s.to_string())
        .collect();
    (code, set, body)
}

/// A 997 body for one group.
fn ack(
    code: &str,
    group: &str,
    sets: &[(String, String, Option<&'static str>)],
    group_error: Option<&'static str>,
) -> Vec<String> {
    let mut body = vec![format!("AK1*{code}*{group}")];
    let mut ok = 0;
    for (id, ctl, err) in sets {
        body.push(format!("AK2*{id}*{ctl}"));
        match err {
            None => {
                ok += 1;
                body.push("AK5*A".into());
            }
            Some(c) => body.push(format!("AK5*R*{c}")),
        }
    }
    let n = sets.len();
    let verdict = if ok == n && group_error.is_none() {
        "A"
    } else if ok == 0 {
        "R"
    } else {
        "P"
    };
    body.push(format!("AK9*{verdict}*{n}*{n}*{ok}"));
    body
}

/// Puts one document in the outbox (faults applied).
fn put(i: &mut Inner, cfg: &EdiSimConfig, code: &str, set: &str, body: Vec<String>) {
    let corrupt = i.corrupt_next > 0 && code != "FA";
    if corrupt {
        i.corrupt_next -= 1;
    }
    let doc = write(i, cfg, code, set, &body, corrupt);
    let replay = i.replay_next > 0 && code != "FA";
    if replay {
        i.replay_next -= 1;
    }
    i.outbox.push(doc.clone());
    if replay {
        i.outbox.push(doc);
    }
}

fn put_clean(i: &mut Inner, cfg: &EdiSimConfig, code: &str, set: &str, body: Vec<String>) {
    let doc = write(i, cfg, code, set, &body, false);
    i.outbox.push(doc);
}

/// One interchange of one group of one set; remembers the group (its
/// uncorrupted text) until daifa's 997 answers it (997s are never answered).
fn write(i: &mut Inner, cfg: &EdiSimConfig, code: &str, set: &str, body: &[String], corrupt: bool) -> String {
    i.control += 1;
    let ctl = i.control;
    let isa = format!(
        "ISA*00*{:10}*00*{:10}*ZZ*{:15}*ZZ*{:15}*261130*1200*U*00401*{ctl:09}*0*P*>~",
        "", "", cfg.partner_id, cfg.daifa_id
    );
    let st = format!("{:04}", ctl % 10_000);
    let mut doc =
        format!("{isa}\nGS*{code}*{}*{}*20261130*1200*{ctl}*X*004010~\nST*{set}*{st}~\n", cfg.partner_id, cfg.daifa_id);
    for s in body {
        doc.push_str(s);
        doc.push_str("~\n");
    }
    let count = body.len() + 2;
    let clean = format!("{doc}SE*{count}*{st}~\nGE*1*{ctl}~\nIEA*1*{ctl:09}~\n");
    if code != "FA" {
        i.sent_groups.insert(ctl.to_string(), (clean.clone(), false));
    }
    if corrupt { format!("{doc}SE*{}*{st}~\nGE*1*{ctl}~\nIEA*1*{ctl:09}~\n", count + 1) } else { clean }
}

#[derive(Deserialize)]
struct After {
    #[serde(default)]
    after: u64,
    #[serde(default)]
    limit: Option<usize>,
}

async fn outbox(State(sim): State<Arc<Sim>>, headers: HeaderMap, Query(q): Query<After>) -> Response {
    if !authorized(&sim, &headers) {
        return (StatusCode::UNAUTHORIZED, "bad or missing bearer token").into_response();
    }
    let limit = q.limit.unwrap_or(50).clamp(1, 500);
    let i = sim.inner.lock().unwrap_or_else(|p| p.into_inner());
    let docs: Vec<_> = i
        .outbox
        .iter()
        .enumerate()
        .map(|(k, b)| (k as u64 + 1, b))
        .filter(|(seq, _)| *seq > q.after)
        .take(limit)
        .map(|(seq, b)| json!({ "seq": seq, "body": b }))
        .collect();
    let next = docs.last().and_then(|d| d["seq"].as_u64()).unwrap_or(q.after);
    Json(json!({ "documents": docs, "next": next })).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_partner_refuses_wrong_counts_with_the_x12_codes() {
        let cfg = EdiSimConfig::default();
        let mut i = Inner::default();
        let good = write(&mut i, &cfg, "SH", "856", &["BSN*00*X*20261201".into()], false);
        let (_, groups) = envelope(split(&good).unwrap()).unwrap();
        assert!(groups[0].sets[0].2.is_none() && groups[0].error.is_none());
        let bad = write(&mut i, &cfg, "SH", "856", &["BSN*00*X*20261201".into()], true);
        let (_, groups) = envelope(split(&bad).unwrap()).unwrap();
        assert_eq!(groups[0].sets[0].2, Some("4"));
        assert!(envelope(split(&good.replace("IEA*1*", "IEA*2*")).unwrap()).is_err());
        assert!(split("hello").is_err());
    }
}
