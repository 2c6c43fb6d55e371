//! Alerts end to end against local receivers that speak the robots' real
//! protocols: a DingTalk custom robot that checks the signed webhook
//! (timestamp within an hour, HMAC-SHA256 signature) and answers 310000 to a
//! bad one and 130101 past 20 messages a minute, a WeCom group robot and a
//! plain webhook. A circuit that opens fires one alert, staying open fires
//! nothing more, closing resolves it; a burst of changes stays within the
//! rate and what is held back comes in the next digest; the history is in
//! the store.

mod common;

use std::sync::{Arc, Mutex};

use axum::extract::{Query, State};
use axum::routing::post;
use axum::{Json, Router};
use daifa_host::alerts::{Alerter, AlertsConfig, Condition, Notifier, Rule, dingtalk_sign};
use daifa_host::domain::SupplierId;
use daifa_host::store::{Circuit, CircuitState, Store};
use serde_json::{Value, json};

#[derive(Default)]
struct Received {
    /// (path, body) of every accepted message.
    accepted: Vec<(String, Value)>,
    /// errcodes answered.
    refused: Vec<i64>,
    /// Times (ms) DingTalk accepted a message, for its rate.
    ding_times: Vec<i64>,
}

type Shared = Arc<Mutex<Received>>;
const SECRET: &str = "SECtest-secret-0123456789";

async fn dingtalk(
    State(r): State<Shared>,
    Query(q): Query<Vec<(String, String)>>,
    Json(body): Json<Value>,
) -> Json<Value> {
    let get = |k: &str| q.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    let (Some(ts), Some(sign), Some(_token)) = (get("timestamp"), get("sign"), get("access_token")) else {
        r.lock().unwrap().refused.push(310000);
        return Json(json!({"errcode": 310000, "errmsg": "sign not match"}));
    };
    let ts: i64 = ts.parse().unwrap_or(0);
    let now = daifa_host::util::now_ms();
    // Query decoding undid the URL encoding: compare with the raw base64.
    let want: String = url::form_urlencoded::parse(format!("s={}", dingtalk_sign(SECRET, ts)).as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default();
    let mut r = r.lock().unwrap();
    if (now - ts).abs() > 3_600_000 || sign != want {
        r.refused.push(310000);
        return Json(json!({"errcode": 310000, "errmsg": "sign not match"}));
    }
    // The rate by the sender's clock (the tests move it forward).
    if r.ding_times.iter().filter(|t| ts - **t < 60_000).count() >= 20 {
        r.refused.push(130101);
        return Json(json!({"errcode": 130101, "errmsg": "send too fast"}));
    }
    assert_eq!(body["msgtype"], "markdown");
    r.ding_times.push(ts);
    r.accepted.push(("dingtalk".into(), body));
    Json(json!({"errcode": 0, "errmsg": "ok"}))
}

async fn wecom(State(r): State<Shared>, Json(body): Json<Value>) -> Json<Value> {
    assert!(body["markdown"]["content"].as_str().unwrap().len() <= 4096);
    r.lock().unwrap().accepted.push(("wecom".into(), body));
    Json(json!({"errcode": 0, "errmsg": "ok"}))
}

async fn hook(State(r): State<Shared>, Json(body): Json<Value>) -> Json<Value> {
    r.lock().unwrap().accepted.push(("webhook".into(), body));
    Json(json!({}))
}

async fn receiver() -> (String, Shared) {
    let shared: Shared = Default::default();
    let app = Router::new()
        .route("/robot/send", post(dingtalk))
        .route("/cgi-bin/webhook/send", post(wecom))
        .route("/hook", post(hook))
        .with_state(shared.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, shared)
}

fn config(base: &str, secret: &str) -> AlertsConfig {
    AlertsConfig {
        interval_secs: 1,
        max_messages_per_minute: 20,
        rules: vec![Rule { name: "circuit".into(), when: Condition::CircuitOpen }],
        notifiers: vec![
            Notifier::Dingtalk { url: format!("{base}/robot/send?access_token=T1"), secret: Some(secret.into()) },
            Notifier::Wecom { url: format!("{base}/cgi-bin/webhook/send?key=K1") },
            Notifier::Webhook { url: format!("{base}/hook") },
        ],
    }
}

async fn set_circuit(store: &Store, supplier: &str, state: CircuitState, now: i64) {
    let id = SupplierId(supplier.into());
    let current = store.circuit(&id).await.unwrap();
    let next = Circuit { state, supplier: id, failures: 0, opened_at: Some(now), retry_at: None, updated_at: now };
    assert!(store.update_circuit(&current, &next, "test", now).await.unwrap());
}

#[tokio::test]
async fn a_circuit_fires_once_resolves_once_and_bursts_keep_to_the_rate() {
    let db = common::db::sqlite().await;
    let store = db.store.clone();
    let (base, got) = receiver().await;
    let mut alerter = Alerter::new(store.clone(), None, config(&base, SECRET));
    let t0 = daifa_host::util::now_ms();

    assert!(alerter.check(t0).await.unwrap().is_empty(), "nothing wrong yet");
    set_circuit(&store, "QG", CircuitState::Open, t0).await;
    let fired = alerter.check(t0 + 1_000).await.unwrap();
    assert_eq!(fired.len(), 1);
    assert_eq!((fired[0].state, fired[0].subject.as_str()), ("firing", "QG"));
    assert!(alerter.check(t0 + 2_000).await.unwrap().is_empty(), "still open: no second alert");
    {
        let r = got.lock().unwrap();
        assert_eq!(r.refused, Vec::<i64>::new(), "the signature was accepted");
        let kinds: Vec<&str> = r.accepted.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(kinds, ["dingtalk", "wecom", "webhook"], "one message each");
        let text = r.accepted[0].1["markdown"]["text"].as_str().unwrap();
        assert!(text.contains("FIRING") && text.contains("QG") && text.contains("circuit open"), "{text}");
        assert_eq!(r.accepted[2].1["alerts"][0]["state"], "firing");
    }
    set_circuit(&store, "QG", CircuitState::Closed, t0 + 3_000).await;
    let resolved = alerter.check(t0 + 3_000).await.unwrap();
    assert_eq!(resolved.len(), 1);
    assert_eq!(resolved[0].state, "resolved");
    let history = store.alerts(10).await.unwrap();
    assert_eq!(history.len(), 1, "one episode");
    assert_eq!(history[0].state, "resolved");
    assert!(history[0].notified.contains("dingtalk: ok") && history[0].notified.contains("wecom: ok"), "{history:?}");

    // A flapping supplier: 30 changes within the minute. DingTalk hears at
    // most 20 messages (never "send too fast"); the rest come together in
    // the next digest once the minute has passed.
    let before = got.lock().unwrap().accepted.iter().filter(|(k, _)| k == "dingtalk").count();
    for i in 0..30 {
        let now = t0 + 4_000 + i * 100;
        let state = if i % 2 == 0 { CircuitState::Open } else { CircuitState::Closed };
        set_circuit(&store, "QG", state, now).await;
        alerter.check(now).await.unwrap();
    }
    let in_minute = got.lock().unwrap().accepted.iter().filter(|(k, _)| k == "dingtalk").count() - before;
    // Two messages (firing, resolved) already went this minute.
    assert!(in_minute <= 18, "{in_minute} more DingTalk messages in the same minute");
    assert!(!got.lock().unwrap().refused.contains(&130101), "the robot never throttled us");
    alerter.check(t0 + 70_000).await.unwrap();
    let r = got.lock().unwrap();
    assert!(!r.refused.contains(&130101), "the robot never throttled us");
    let last = &r.accepted.iter().rev().find(|(k, _)| k == "dingtalk").unwrap().1;
    let text = last["markdown"]["text"].as_str().unwrap();
    let held = 30 - (in_minute as i64);
    assert!(text.contains(&format!("{held} alert change")), "the held changes come in one digest: {text}");
}

#[tokio::test]
async fn a_bad_signature_is_recorded_not_hidden() {
    let db = common::db::sqlite().await;
    let (base, got) = receiver().await;
    let mut alerter = Alerter::new(db.store.clone(), None, config(&base, "SECwrong"));
    let t0 = daifa_host::util::now_ms();
    set_circuit(&db.store, "BJ", CircuitState::Open, t0).await;
    alerter.check(t0).await.unwrap();
    assert_eq!(got.lock().unwrap().refused, vec![310000]);
    let history = db.store.alerts(10).await.unwrap();
    assert!(history[0].notified.contains("dingtalk: errcode 310000"), "{history:?}");
    assert!(history[0].notified.contains("wecom: ok"), "the others still got it: {history:?}");
}

/// No successful ERP scan for longer than `max_secs` fires; a scan
/// resolves it.
#[tokio::test]
async fn a_stalled_ingester_is_noticed() {
    let db = common::db::sqlite().await;
    let metrics = daifa_host::metrics::Metrics::new(&common::runtime());
    let cfg = AlertsConfig {
        rules: vec![Rule { name: "ingest".into(), when: Condition::IngestStalled { max_secs: 600 } }],
        ..AlertsConfig::default()
    };
    let mut alerter = Alerter::new(db.store.clone(), Some(metrics.clone()), cfg);
    let t0 = daifa_host::util::now_ms();
    assert!(alerter.check(t0 + 60_000).await.unwrap().is_empty(), "a minute without a scan is fine");
    let fired = alerter.check(t0 + 700_000).await.unwrap();
    assert_eq!(fired.len(), 1);
    assert!(fired[0].message.contains("no successful ERP scan for 70"), "{fired:?}");
    metrics.ingest_scan(&Default::default(), 0.01);
    let resolved = alerter.check(daifa_host::util::now_ms()).await.unwrap();
    assert_eq!(resolved[0].state, "resolved");
}

/// The ERP refuses our credentials: `/readyz` says so (503) and the
/// `erp_credentials` rule fires; once a client with good credentials gets
/// an answer, both clear and the alert resolves.
#[tokio::test]
async fn refused_erp_credentials_fire_an_alert_and_make_the_host_unready() {
    use daifa_host::erp::kingdee::{AuthMode, BillQuery, KingdeeClient, KingdeeConfig, KingdeeError};
    use daifa_host::sim::kingdee::{KingdeeSim, KingdeeSimConfig};

    let db = common::db::sqlite().await;
    let metrics = daifa_host::metrics::Metrics::new(&common::runtime());
    let sim = KingdeeSim::start(KingdeeSimConfig::default(), 0).await.unwrap();
    let client = |secret: Option<&str>| {
        let mut credentials = sim.credentials();
        if let Some(s) = secret {
            credentials.app_secret = s.into();
        }
        KingdeeClient::new(KingdeeConfig {
            server_url: sim.server_url(),
            credentials,
            auth: AuthMode::AppSecret,
            timeout_ms: 10_000,
        })
        .unwrap()
        .with_metrics(metrics.clone())
    };
    let api = daifa_host::api::ApiState::new(Arc::new(common::registry().await), "alerts-test-admin-token")
        .unwrap()
        .with_store(db.store.clone())
        .with_metrics(metrics.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/readyz", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, daifa_host::api::router(api)).await });
    assert_eq!(reqwest::get(&url).await.unwrap().status(), 200, "ready before anything was refused");

    let cfg = AlertsConfig {
        rules: vec![Rule { name: "erp-login".into(), when: Condition::ErpCredentials }],
        ..AlertsConfig::default()
    };
    let mut alerter = Alerter::new(db.store.clone(), Some(metrics.clone()), cfg);
    let q = BillQuery { form_id: "SAL_SaleOrder".into(), field_keys: "FID".into(), limit: 1, ..Default::default() };
    let err = client(Some("rotated-by-someone-else")).execute_bill_query(&q).await.unwrap_err();
    assert!(matches!(err, KingdeeError::Credentials(_)), "{err:?}");
    let fired = alerter.check(daifa_host::util::now_ms()).await.unwrap();
    assert_eq!(fired.len(), 1, "{fired:?}");
    assert_eq!((fired[0].rule.as_str(), fired[0].subject.as_str(), fired[0].state), ("erp-login", "erp", "firing"));
    assert!(fired[0].message.contains("refused our credentials"), "{}", fired[0].message);
    let r = reqwest::get(&url).await.unwrap();
    assert_eq!(r.status(), 503);
    let body: Value = r.json().await.unwrap();
    assert!(body["waiting_for"].to_string().contains("erp: credentials refused"), "{body}");
    assert!(alerter.check(daifa_host::util::now_ms()).await.unwrap().is_empty(), "still firing: not again");
    let text = metrics.render(None).await;
    assert!(
        text.lines().any(|l| l.starts_with("daifa_erp_errors_total{") && l.contains("class=\"credentials\"")),
        "the refusal is counted by class:\n{text}"
    );

    client(None).execute_bill_query(&q).await.expect("good credentials");
    let resolved = alerter.check(daifa_host::util::now_ms()).await.unwrap();
    assert_eq!(resolved.iter().map(|c| c.state).collect::<Vec<_>>(), ["resolved"]);
    assert_eq!(reqwest::get(&url).await.unwrap().status(), 200);
}

/// A plugin whose calls trap past the threshold fires `plugin_traps` for
/// that plugin only; a canary decision recorded by the host fires
/// `canary_decision` once and resolves when its time is over.
#[tokio::test]
async fn trapping_plugins_and_canary_decisions_fire_their_rules() {
    let db = common::db::sqlite().await;
    let reg = Arc::new(common::registry().await);
    let pkg = common::hostile_named("h-panic", |_| {});
    reg.install(&pkg, &common::config(&[("mode", "panic")])).await.unwrap();
    reg.activate("h-panic", &pkg.manifest.version).await.unwrap();
    let cfg = AlertsConfig {
        rules: vec![
            Rule {
                name: "traps".into(),
                when: Condition::PluginTraps { threshold_pct: 50.0, window_secs: 300, min_calls: 3 },
            },
            Rule { name: "canary".into(), when: Condition::CanaryDecision { show_secs: 60 } },
        ],
        ..AlertsConfig::default()
    };
    let mut alerter = Alerter::new(db.store.clone(), None, cfg).with_registry(reg.clone());
    let t0 = daifa_host::util::now_ms();
    assert!(alerter.check(t0).await.unwrap().is_empty(), "the dry run's one good call traps nothing");
    let plugin = reg.get("h-panic").unwrap();
    for i in 0..2 {
        assert!(plugin.submit_order(&common::order(&format!("T-{i}"), 1)).await.is_err());
    }
    assert!(alerter.check(t0 + 1_000).await.unwrap().is_empty(), "2 calls: under min_calls");
    for i in 2..5 {
        assert!(plugin.submit_order(&common::order(&format!("T-{i}"), 1)).await.is_err());
    }
    let fired = alerter.check(t0 + 2_000).await.unwrap();
    assert_eq!(fired.len(), 1, "{fired:?}");
    assert_eq!((fired[0].rule.as_str(), fired[0].subject.as_str()), ("traps", "h-panic"));
    assert!(fired[0].message.contains("5 of 5 calls trapped"), "{}", fired[0].message);

    db.store
        .operator_event("canary", "", "rest-json@1.2.0", "canary rolled_back: error rate 40 % against 1 %", t0 + 3_000)
        .await
        .unwrap();
    let fired = alerter.check(t0 + 3_000).await.unwrap();
    assert_eq!(fired.len(), 1, "{fired:?}");
    assert_eq!((fired[0].rule.as_str(), fired[0].subject.as_str()), ("canary", "rest-json@1.2.0"));
    assert!(fired[0].message.contains("rolled_back"));
    // A window later the traps are old news and the decision was shown.
    let later = alerter.check(t0 + 400_000).await.unwrap();
    let mut resolved: Vec<_> = later.iter().map(|c| (c.rule.as_str(), c.state)).collect();
    resolved.sort();
    assert_eq!(resolved, [("canary", "resolved"), ("traps", "resolved")]);
}
