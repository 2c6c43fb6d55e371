//! Native tests against the SDK's mock host, and the parser fuzzed.

use daifa_plugin_sdk::prelude::*;
use daifa_plugin_sdk::testing::{Method, MockHost, Reply, assert_manifest_declares};
use proptest::prelude::*;

use super::*;

const MANIFEST: &str = include_str!("../manifest.toml");
const BASE: &str = "https://edi.partner.example/daifa";

fn host() -> MockHost {
    let host = MockHost::install();
    host.set_config("base_url", BASE).set_config("receiver_id", "PARTNER").apply_manifest_defaults(MANIFEST);
    host
}

fn order(po: &str) -> PurchaseOrder {
    PurchaseOrder {
        po_number: po.into(),
        idempotency_key: format!("daifa:{po}:1"),
        erp_refs: vec![ErpRef { system: "k3cloud".into(), bill_no: "XSDD001".into(), bill_id: "1".into() }],
        lines: vec![
            OrderLine {
                line_id: "1".into(),
                our_sku: "M-1".into(),
                supplier_sku: "S*1".into(),
                quantity: 2,
                unit_cost: "9.50".into(),
            },
            OrderLine {
                line_id: "2".into(),
                our_sku: "M-2".into(),
                supplier_sku: "S-2".into(),
                quantity: 1,
                unit_cost: "3".into(),
            },
        ],
        ship_to: Address {
            name: "Jane~Doe".into(),
            phone: "555".into(),
            province: "IL".into(),
            city: "Springfield".into(),
            district: String::new(),
            street: "1 Main St".into(),
            postcode: "62701".into(),
            country: "US".into(),
        },
        currency: "USD".into(),
        requested_carrier: Some("UPSN".into()),
        requested_service: None,
        remark: None,
    }
}

/// A partner interchange with one set, counts right unless `tamper` edits it.
fn partner(control: u32, code: &str, set: &str, body: &[&str], tamper: impl FnOnce(String) -> String) -> String {
    let w = Writer {
        delims: Delims::default(),
        sender_qualifier: "ZZ",
        sender: "PARTNER",
        receiver_qualifier: "ZZ",
        receiver: "DAIFA",
        usage: "P",
        date: "261130".into(),
        time: "1200".into(),
    };
    let body: Vec<Vec<String>> = body.iter().map(|s| s.split('*').map(str::to_string).collect()).collect();
    tamper(w.interchange(control, code, set, &body))
}

fn outbox(docs: &[(u64, String)]) -> Reply {
    let documents: Vec<_> = docs.iter().map(|(seq, body)| serde_json::json!({ "seq": seq, "body": body })).collect();
    Reply::json(200, &serde_json::json!({ "documents": documents, "next": docs.last().map(|d| d.0) }))
}

#[test]
fn the_manifest_declares_every_key() {
    assert_manifest_declares(MANIFEST, Config::KEYS);
}

#[test]
fn an_850_has_sound_envelopes_and_never_repeats_a_control_number() {
    let host = host();
    for _ in 0..2 {
        host.expect(Method::Post, &format!("{BASE}/inbox"), Reply::status(202));
    }
    let r1 = EdiX12::submit_order(order("PO-1")).unwrap();
    let r2 = EdiX12::submit_order(order("PO-2")).unwrap();
    assert_eq!((r1.supplier_ref.as_str(), r2.supplier_ref.as_str()), ("850:000000001", "850:000000002"));
    let sent = host.requests();
    let text = sent[0].body_text();
    assert_eq!(sent[0].header("idempotency-key"), Some("daifa:PO-1:1"));
    let ic = x12::parse(&text).expect("our own 850 reads back");
    assert!(ic.error.is_none() && ic.groups[0].error.is_none() && ic.groups[0].sets[0].error.is_none(), "{text}");
    assert_eq!(text.lines().next().unwrap().len(), 106, "ISA is 106 characters: {text}");
    assert!(text.contains("BEG*00*DS*PO-1**20261") || text.contains("BEG*00*DS*PO-1**20"), "{text}");
    assert!(text.contains("PO1*1*2*EA*9.50**VP*S 1*BP*M-1~"), "a delimiter in a value is blanked: {text}");
    assert!(text.contains("N1*ST*Jane Doe~"), "{text}");
    assert_eq!(host.kv_get_string("ctl:1").as_deref(), Some("PO-1"));
    assert_eq!(x12::parse(&sent[1].body_text()).unwrap().control, "000000002");
}

#[test]
fn acknowledgements_line_answers_and_shipments_are_read_and_each_interchange_gets_a_997() {
    let host = host();
    host.kv_set("ctl:7", "PO-7").kv_set("ctl:8", "PO-8");
    let ack_ok = partner(501, "FA", "997", &["AK1*PO*7", "AK2*850*0007", "AK5*A", "AK9*A*1*1*1"], |t| t);
    let ack_bad = partner(502, "FA", "997", &["AK1*PO*8", "AK2*850*0008", "AK5*R*5", "AK9*R*1*1*0"], |t| t);
    let po_ack = partner(
        503,
        "PR",
        "855",
        &[
            "BAK*00*AC*PO-7*20261130****SUP-77",
            "PO1*1*2*EA*9.50",
            "ACK*IA*2*EA",
            "PO1*2*1*EA*3",
            "ACK*IB*1*EA*079*20261224",
        ],
        |t| t,
    );
    let asn = partner(
        504,
        "SH",
        "856",
        &[
            "BSN*00*SHP1*20261201*1200",
            "HL*1**S",
            "TD5**2*UPSN",
            "REF*CN*1ZSHIPMENT",
            "HL*2*1*O",
            "PRF*PO-7",
            "HL*3*2*P",
            "MAN*GM*1ZPACK1",
            "HL*4*3*I",
            "LIN*1*VP*S 1",
            "SN1*1*2*EA",
            "HL*5*2*P",
            "MAN*GM*1ZPACK2",
            "HL*6*5*I",
            "LIN*2*VP*S-2",
            "SN1*2*1*EA",
            "CTT*6",
        ],
        |t| t,
    );
    host.expect(
        Method::Get,
        &format!("{BASE}/outbox?after=0&limit=50"),
        outbox(&[(1, ack_ok), (2, ack_bad), (3, po_ack), (4, asn)]),
    );
    host.expect(Method::Post, &format!("{BASE}/inbox"), Reply::status(202));
    let batch = EdiX12::poll_updates(None).unwrap();
    assert_eq!(batch.next_cursor.as_deref(), Some("4"));
    let kinds: Vec<(&str, &UpdateKind)> = batch.updates.iter().map(|u| (u.po_number.as_str(), &u.kind)).collect();
    assert!(
        matches!(kinds[0], ("PO-8", UpdateKind::Cancelled(Some(why))) if why.contains("AK5 R (code 5)")),
        "{kinds:?}"
    );
    match kinds[1] {
        ("PO-7", UpdateKind::Lines(lines)) => {
            assert_eq!(lines[0].status, LineStatus::Accepted);
            assert_eq!(lines[1].status, LineStatus::Backordered(Some("2026-12-24".into())));
        }
        other => panic!("855: {other:?}"),
    }
    assert_eq!(batch.updates[1].supplier_ref.as_deref(), Some("SUP-77"));
    match kinds[2] {
        ("PO-7", UpdateKind::Shipped(parcels)) => {
            let got: Vec<(&str, &str, u32)> = parcels
                .iter()
                .map(|p| (p.tracking_number.as_str(), p.lines[0].line_id.as_str(), p.lines[0].quantity))
                .collect();
            assert_eq!(got, [("1ZPACK1", "1", 2), ("1ZPACK2", "2", 1)]);
            assert_eq!(parcels[0].carrier, "UPSN");
            assert_eq!(parcels[0].shipped_at.as_deref(), Some("2026-12-01"));
        }
        other => panic!("856: {other:?}"),
    }
    assert!(host.kv_get("ctl:7").is_none() && host.kv_get("ctl:8").is_none(), "a 997 ends a control number's entry");
    // One 997 interchange answers the 855 and the 856 (never the 997s).
    let ack = x12::parse(&host.last_request().body_text()).unwrap();
    let acked: Vec<&str> = ack.groups.iter().map(|g| g.sets[0].body[0].el(1)).collect();
    assert_eq!(acked, ["PR", "SH"]);
    assert!(ack.groups.iter().all(|g| g.sets[0].body.iter().any(|s| s.id == "AK9" && s.el(1) == "A")));
    host.assert_http_done();
}

#[test]
fn a_replayed_interchange_is_skipped_and_a_corrupted_one_rejected_and_not_applied() {
    let host = host();
    let asn = |po: &str, track: &str| {
        vec![
            "BSN*00*SHP*20261201".to_string(),
            "HL*1**S".into(),
            format!("REF*CN*{track}"),
            "HL*2*1*O".into(),
            format!("PRF*{po}"),
            "HL*3*2*I".into(),
            "SN1*1*1*EA".into(),
        ]
    };
    let a = asn("PO-1", "T1");
    let first = partner(600, "SH", "856", &a.iter().map(String::as_str).collect::<Vec<_>>(), |t| t);
    let b = asn("PO-2", "T2");
    // SE01 one short: AK5 R code 4.
    let corrupted =
        partner(601, "SH", "856", &b.iter().map(String::as_str).collect::<Vec<_>>(), |t| t.replace("SE*9*", "SE*8*"));
    host.expect(
        Method::Get,
        &format!("{BASE}/outbox?after=0&limit=50"),
        outbox(&[(1, first.clone()), (2, first.clone()), (3, corrupted)]),
    );
    host.expect(Method::Post, &format!("{BASE}/inbox"), Reply::status(202));
    let batch = EdiX12::poll_updates(None).unwrap();
    assert_eq!(batch.updates.len(), 1, "the replay and the corrupted one are not applied: {:?}", batch.updates);
    assert_eq!(batch.updates[0].po_number, "PO-1");
    let ack = x12::parse(&host.last_request().body_text()).unwrap();
    assert_eq!(ack.groups.len(), 2, "the replay is not acknowledged again");
    let rejected = &ack.groups[1].sets[0].body;
    assert!(rejected.iter().any(|s| s.id == "AK5" && s.el(1) == "R" && s.el(2) == "4"), "{rejected:?}");
    assert!(rejected.iter().any(|s| s.id == "AK9" && s.el(1) == "R"), "{rejected:?}");

    // The same page read again (the host restarted before keeping the
    // cursor): applied again, as the host applies updates idempotently.
    host.expect(Method::Get, &format!("{BASE}/outbox?after=0&limit=50"), outbox(&[(1, first)]));
    host.expect(Method::Post, &format!("{BASE}/inbox"), Reply::status(202));
    assert_eq!(EdiX12::poll_updates(Some("0".into())).unwrap().updates.len(), 1);
}

/// A set whose envelope is sound but whose content cannot be read is
/// rejected in the 997 (AK5 R 5), so the partner sends it again, and is
/// not applied; a set type the adapter does not read is AK5 R 1.
#[test]
fn unreadable_content_is_rejected_in_the_997_not_silently_dropped() {
    let host = host();
    let bad_qty = partner(
        800,
        "SH",
        "856",
        &["BSN*00*X*20261201", "HL*1**S", "REF*CN*T", "HL*2*1*O", "PRF*PO-1", "HL*3*2*I", "SN1*1*two*EA"],
        |t| t,
    );
    let invoice = partner(801, "IN", "810", &["BIG*20261201*INV1"], |t| t);
    host.expect(Method::Get, &format!("{BASE}/outbox?after=0&limit=50"), outbox(&[(1, bad_qty), (2, invoice)]));
    host.expect(Method::Post, &format!("{BASE}/inbox"), Reply::status(202));
    let batch = EdiX12::poll_updates(None).unwrap();
    assert!(batch.updates.is_empty(), "{:?}", batch.updates);
    let ack = x12::parse(&host.last_request().body_text()).unwrap();
    let ak5 = |g: usize| {
        ack.groups[g].sets[0].body.iter().find(|s| s.id == "AK5").map(|s| (s.el(1).to_string(), s.el(2).to_string()))
    };
    assert_eq!(ak5(0), Some(("R".into(), "5".into())));
    assert_eq!(ak5(1), Some(("R".into(), "1".into())));
    host.assert_logged(daifa_plugin_sdk::log::Level::Error, "SN102 `two`");
}

#[test]
fn a_856_for_a_po_never_sent_still_reads_and_the_host_decides() {
    // The adapter cannot know which POs the host sent; it reports the
    // shipment and the host turns an unknown PO into an exception.
    let host = host();
    let body = partner(
        700,
        "SH",
        "856",
        &["BSN*00*X*20261201", "HL*1**S", "REF*CN*TX", "HL*2*1*O", "PRF*PO-NEVER", "HL*3*2*I", "SN1*1*1*EA"],
        |t| t,
    );
    host.expect(Method::Get, &format!("{BASE}/outbox?after=5&limit=50"), outbox(&[(6, body)]));
    host.expect(Method::Post, &format!("{BASE}/inbox"), Reply::status(202));
    let batch = EdiX12::poll_updates(Some("5".into())).unwrap();
    assert_eq!(batch.updates[0].po_number, "PO-NEVER");
}

#[test]
fn bad_config_names_the_key() {
    let host = host();
    host.set_config("receiver_id", "A-PARTNER-ID-LONGER-THAN-15");
    match EdiX12::submit_order(order("PO-1")) {
        Err(AdapterError::Misconfigured(m)) => assert!(m.contains("receiver_id"), "{m}"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn dates_are_civil() {
    assert_eq!(yymmdd_hhmm(0), ("700101".into(), "0000".into()));
    // 2026-11-30 12:34 UTC
    assert_eq!(yymmdd_hhmm(1_796_042_040_000), ("261130".into(), "1234".into()));
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, .. ProptestConfig::default() })]

    /// Any text: the parser answers, never panics.
    #[test]
    fn the_parser_never_panics_on_any_text(text in "\\PC{0,400}") {
        let _ = x12::parse(&text);
    }

    /// A sound interchange with bytes changed, cut or duplicated: still an
    /// answer, never a panic; the readers never panic on what it gives.
    #[test]
    fn the_parser_and_readers_never_panic_on_damaged_interchanges(
        cut in 0usize..700, at in 0usize..700, with in "[*~>A-Z0-9 \\n]{0,6}"
    ) {
        let good = partner(42, "SH", "856", &["BSN*00*S*20261201", "HL*1**S", "TD5**2*UPSN", "REF*CN*T", "HL*2*1*O", "PRF*PO-1", "HL*3*2*P", "MAN*GM*M", "HL*4*3*I", "SN1*1*2*EA"], |t| t);
        let mut chars: Vec<char> = good.chars().collect();
        let at = at.min(chars.len());
        chars.splice(at..at, with.chars());
        let cut = cut.min(chars.len());
        let damaged: String = chars[..cut].iter().collect::<String>() + &good[good.len().min(cut)..];
        if let Ok(ic) = x12::parse(&damaged) {
            let m = Mapping {
                uom: "EA".into(), sku_qualifier: "VP".into(), our_sku_qualifier: "BP".into(),
                ack_codes: Default::default(), carriers: Default::default(), tracking_ref: "CN".into(),
            };
            for g in &ic.groups {
                for t in &g.sets {
                    let _ = docs::ship_notice(t, &m);
                    let _ = docs::po_ack(t, &m);
                    let _ = docs::functional_ack(t);
                }
            }
        }
    }
}
