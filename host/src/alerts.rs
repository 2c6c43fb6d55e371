//! Alerts: rules over the host's signals (a supplier's error rate, open
//! circuits, dead letters, backlog age, a store that cannot write), checked
//! every `interval_secs`. A condition that starts is one alert episode,
//! `firing` until it ends (`resolved`), kept in the store; notifiers hear
//! of each change once, in one digest per check, never more than
//! `max_messages_per_minute` (DingTalk's own limit is 20: a robot over it
//! is throttled for ten minutes) — changes held back go in the next digest.
//! Notifiers: DingTalk custom robot (signed webhook), WeCom group robot,
//! and a generic JSON webhook; their URLs are configuration, so tests send
//! to a receiver on 127.0.0.1.
//!
//! Owns: rule evaluation, episodes, notification. Calls: the store and the
//! metrics (for error rates).

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::metrics::Metrics;
use crate::store::{CircuitState, Store, StoreError};

/// `[alerts]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AlertsConfig {
    pub interval_secs: u64,
    /// Messages one notifier may get per minute.
    pub max_messages_per_minute: u32,
    pub rules: Vec<Rule>,
    pub notifiers: Vec<Notifier>,
}

impl Default for AlertsConfig {
    fn default() -> Self {
        AlertsConfig { interval_secs: 30, max_messages_per_minute: 20, rules: vec![], notifiers: vec![] }
    }
}

/// One rule: `name` plus what it watches. (Unknown keys are refused by the
/// condition: serde cannot deny them on a struct with a flattened field.)
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Rule {
    pub name: String,
    #[serde(flatten)]
    pub when: Condition,
}

/// What a rule watches.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Condition {
    /// A supplier's submits failed more than `threshold_pct` % over the last
    /// `window_secs` (with at least `min_calls` submits in the window).
    SupplierErrorRate { threshold_pct: f64, window_secs: u64, min_calls: u64 },
    /// A supplier's circuit breaker is open or half-open.
    CircuitOpen,
    /// More than `max` dead letters wait for a person.
    DeadLetters { max: i64 },
    /// The oldest waiting job of `job_kind` is older than `max_secs`.
    BacklogAge { job_kind: String, max_secs: u64 },
    /// The store's last write failed.
    StoreUnwritable,
    /// A supplier has POs sent more than `max_hours` ago and not shipped.
    ShipSla { max_hours: u64 },
    /// The ERP has not been read successfully for `max_secs`.
    IngestStalled { max_secs: u64 },
    /// The ERP refused our credentials in its last answer (login refused,
    /// or the session lost again right after logging in).
    ErpCredentials,
    /// More than `threshold_pct` % of a plugin's calls trapped (a panic, a
    /// limit, a bad instruction) over the last `window_secs`, with at least
    /// `min_calls` calls in the window.
    PluginTraps { threshold_pct: f64, window_secs: u64, min_calls: u64 },
    /// A plugin canary was promoted or rolled back in the last `show_secs`
    /// (one alert per decision; it resolves when that time is over).
    CanaryDecision { show_secs: u64 },
}

/// Where alerts go.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Notifier {
    /// `url` is the robot's webhook with its `access_token`; `secret` the
    /// robot's signing secret (`SEC...`), if it has one.
    Dingtalk { url: String, secret: Option<String> },
    /// `url` is the group robot's webhook with its `key`.
    Wecom { url: String },
    /// Any receiver of `{"alerts": [...]}`.
    Webhook { url: String },
}

impl Notifier {
    fn label(&self) -> &'static str {
        match self {
            Notifier::Dingtalk { .. } => "dingtalk",
            Notifier::Wecom { .. } => "wecom",
            Notifier::Webhook { .. } => "webhook",
        }
    }
}

/// A change to report.
#[derive(Debug, Clone, Serialize)]
pub struct Change {
    pub id: i64,
    pub rule: String,
    pub subject: String,
    /// `firing` or `resolved`.
    pub state: &'static str,
    pub message: String,
    pub at: i64,
}

/// (calls, failed) per supplier (its submits) or plugin (its traps).
type SubmitCounts = HashMap<String, (u64, u64)>;

/// Counts at each check, kept for the windowed rules.
#[derive(Clone, Default)]
struct Sample {
    submits: SubmitCounts,
    plugin_traps: SubmitCounts,
}

/// The alerting service.
pub struct Alerter {
    store: Store,
    metrics: Option<Arc<Metrics>>,
    /// For the plugin rules.
    registry: Option<Arc<crate::plugins::Registry>>,
    cfg: AlertsConfig,
    http: reqwest::Client,
    /// Per notifier: when its recent messages went (for the rate), and the
    /// changes held back.
    sent: Vec<VecDeque<i64>>,
    held: Vec<Vec<Change>>,
    /// Submit counts per supplier as seen at each check (for windows).
    samples: VecDeque<(i64, Sample)>,
    /// When this alerter started (ms): "no scan yet" counts from here.
    started: i64,
}

impl Alerter {
    pub fn new(store: Store, metrics: Option<Arc<Metrics>>, cfg: AlertsConfig) -> Alerter {
        let n = cfg.notifiers.len();
        // reqwest is built without a bundled crypto provider (see plugins::http).
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::Client::builder().timeout(Duration::from_secs(10)).build().unwrap_or_default();
        Alerter {
            store,
            metrics,
            registry: None,
            cfg,
            http,
            sent: vec![VecDeque::new(); n],
            held: vec![vec![]; n],
            samples: VecDeque::new(),
            started: crate::util::now_ms(),
        }
    }

    /// Watches `registry`'s plugins too (the `plugin_traps` rule).
    pub fn with_registry(mut self, registry: Arc<crate::plugins::Registry>) -> Alerter {
        self.registry = Some(registry);
        self
    }

    /// Checks every `interval_secs` until `shutdown`.
    pub async fn run(mut self, mut shutdown: tokio::sync::watch::Receiver<bool>) {
        loop {
            if let Err(e) = self.check(crate::util::now_ms()).await {
                tracing::warn!("alert check failed: {e}");
            }
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_secs(self.cfg.interval_secs.max(1))) => {}
                _ = shutdown.changed() => return,
            }
        }
    }

    /// One check at `now`: evaluates the rules, records episodes that start
    /// or end, and notifies. Returns the changes found.
    pub async fn check(&mut self, now: i64) -> Result<Vec<Change>, StoreError> {
        let active = self.evaluate(now).await?;
        let mut firing: BTreeMap<(String, String), crate::store::AlertRow> = BTreeMap::new();
        for a in self.store.firing_alerts().await? {
            firing.insert((a.rule.clone(), a.subject.clone()), a);
        }
        let mut changes = Vec::new();
        for ((rule, subject), message) in &active {
            if !firing.contains_key(&(rule.clone(), subject.clone())) {
                let id = self.store.fire_alert(rule, subject, message, now).await?;
                changes.push(Change {
                    id,
                    rule: rule.clone(),
                    subject: subject.clone(),
                    state: "firing",
                    message: message.clone(),
                    at: now,
                });
            }
        }
        for ((rule, subject), a) in firing {
            if !active.contains_key(&(rule.clone(), subject.clone())) {
                self.store.resolve_alert(a.id, now).await?;
                changes.push(Change { id: a.id, rule, subject, state: "resolved", message: a.message, at: now });
            }
        }
        for c in &changes {
            tracing::warn!(rule = %c.rule, subject = %c.subject, state = c.state, "alert: {}", c.message);
        }
        self.notify(&changes, now).await?;
        Ok(changes)
    }

    /// The conditions that hold now, by (rule, subject), with a message.
    async fn evaluate(&mut self, now: i64) -> Result<BTreeMap<(String, String), String>, StoreError> {
        let mut out = BTreeMap::new();
        let now_counts = Sample {
            submits: self.metrics.as_ref().map(|m| m.submit_counts()).unwrap_or_default(),
            plugin_traps: self.registry.as_ref().map(|r| plugin_traps(r)).unwrap_or_default(),
        };
        self.samples.push_back((now, now_counts.clone()));
        let longest = self
            .cfg
            .rules
            .iter()
            .filter_map(|r| match r.when {
                Condition::SupplierErrorRate { window_secs, .. } | Condition::PluginTraps { window_secs, .. } => {
                    Some(window_secs as i64 * 1000)
                }
                _ => None,
            })
            .max()
            .unwrap_or(0);
        while self.samples.len() > 2 && self.samples.get(1).is_some_and(|(t, _)| now - t >= longest) {
            self.samples.pop_front();
        }
        for rule in &self.cfg.rules {
            let name = rule.name.clone();
            match &rule.when {
                Condition::SupplierErrorRate { threshold_pct, window_secs, min_calls } => {
                    let from = self.sample_before(now, *window_secs);
                    for (supplier, calls, fails, pct) in
                        over_threshold(&now_counts.submits, &from.submits, *threshold_pct, *min_calls)
                    {
                        out.insert(
                            (name.clone(), supplier.clone()),
                            format!(
                                "supplier {supplier}: {fails} of {calls} submits failed ({pct:.0} %, threshold {threshold_pct} %) in {window_secs} s"
                            ),
                        );
                    }
                }
                Condition::PluginTraps { threshold_pct, window_secs, min_calls } => {
                    let from = self.sample_before(now, *window_secs);
                    for (plugin, calls, traps, pct) in
                        over_threshold(&now_counts.plugin_traps, &from.plugin_traps, *threshold_pct, *min_calls)
                    {
                        out.insert(
                            (name.clone(), plugin.clone()),
                            format!(
                                "plugin {plugin}: {traps} of {calls} calls trapped ({pct:.0} %, threshold {threshold_pct} %) in {window_secs} s"
                            ),
                        );
                    }
                }
                Condition::ErpCredentials => {
                    if let Some((since, why)) = self.metrics.as_ref().and_then(|m| m.erp_credentials_refused()) {
                        let secs = (now - since).max(0) / 1000;
                        out.insert(
                            (name.clone(), "erp".into()),
                            format!("the ERP refused our credentials ({secs} s ago): {why}"),
                        );
                    }
                }
                Condition::CanaryDecision { show_secs } => {
                    for e in self.store.operator_events(500).await? {
                        if e.kind == "canary" && now - e.at <= *show_secs as i64 * 1000 {
                            out.insert((name.clone(), e.subject.clone()), e.message.clone());
                        }
                    }
                }
                Condition::CircuitOpen => {
                    for c in self.store.circuits().await? {
                        if c.state != CircuitState::Closed {
                            let s = c.supplier.to_string();
                            out.insert(
                                (name.clone(), s.clone()),
                                format!("supplier {s}: circuit {}", c.state.as_str()),
                            );
                        }
                    }
                }
                Condition::DeadLetters { max } => {
                    let n: i64 = self
                        .store
                        .job_counts()
                        .await?
                        .iter()
                        .filter(|(_, state, _)| state == "dead")
                        .map(|c| c.2)
                        .sum();
                    if n > *max {
                        out.insert(
                            (name.clone(), "dead_letters".into()),
                            format!("{n} dead letters wait for a person (more than {max})"),
                        );
                    }
                }
                Condition::BacklogAge { job_kind, max_secs } => {
                    for (kind, n, oldest) in self.store.job_backlog().await? {
                        let age = (now - oldest).max(0) / 1000;
                        if &kind == job_kind && age as u64 > *max_secs {
                            out.insert(
                                (name.clone(), kind.clone()),
                                format!("{n} {kind} jobs waiting, the oldest for {age} s (more than {max_secs} s)"),
                            );
                        }
                    }
                }
                Condition::ShipSla { max_hours } => {
                    let before = now - *max_hours as i64 * 3_600_000;
                    for (supplier, n, oldest) in self.store.unshipped_since(before).await? {
                        let hours = (now - oldest) / 3_600_000;
                        out.insert(
                            (name.clone(), supplier.clone()),
                            format!(
                                "supplier {supplier}: {n} POs sent more than {max_hours} h ago are not shipped (oldest {hours} h)"
                            ),
                        );
                    }
                }
                Condition::IngestStalled { max_secs } => {
                    let last = self.metrics.as_ref().and_then(|m| m.last_scan_ok()).unwrap_or(self.started);
                    let quiet = (now - last).max(0) / 1000;
                    if quiet as u64 > *max_secs {
                        out.insert(
                            (name.clone(), "ingest".into()),
                            format!("no successful ERP scan for {quiet} s (more than {max_secs} s)"),
                        );
                    }
                }
                Condition::StoreUnwritable => {
                    let h = self.store.health();
                    if !h.writable {
                        let why = h.last_error.unwrap_or_default();
                        out.insert((name.clone(), "store".into()), format!("the store cannot write: {why}"));
                    }
                }
            }
        }
        Ok(out)
    }

    /// Sends `changes` (and what was held back) to every notifier whose
    /// rate allows a message now; holds them for the next check otherwise.
    async fn notify(&mut self, changes: &[Change], now: i64) -> Result<(), StoreError> {
        let mut answers: BTreeMap<i64, Vec<String>> = BTreeMap::new();
        for (i, notifier) in self.cfg.notifiers.clone().iter().enumerate() {
            self.held[i].extend(changes.iter().cloned());
            if self.held[i].is_empty() {
                continue;
            }
            let sent = &mut self.sent[i];
            while sent.front().is_some_and(|t| now - t >= 60_000) {
                sent.pop_front();
            }
            if sent.len() as u32 >= self.cfg.max_messages_per_minute {
                tracing::info!(notifier = notifier.label(), held = self.held[i].len(), "alert digest held: rate limit");
                continue;
            }
            sent.push_back(now);
            let digest = std::mem::take(&mut self.held[i]);
            let answer = match send(&self.http, notifier, &digest, now).await {
                Ok(()) => format!("{}: ok", notifier.label()),
                Err(e) => {
                    tracing::error!(notifier = notifier.label(), "alert not delivered: {e}");
                    format!("{}: {e}", notifier.label())
                }
            };
            for c in &digest {
                answers.entry(c.id).or_default().push(answer.clone());
            }
        }
        // One write per distinct answer, not per alert.
        let mut by_answer: BTreeMap<String, Vec<i64>> = BTreeMap::new();
        for (id, a) in answers {
            by_answer.entry(a.join("; ")).or_default().push(id);
        }
        for (answer, ids) in by_answer {
            self.store.note_alerts_notified(&ids, &answer).await?;
        }
        Ok(())
    }
}

/// The digest as text (markdown for the robots).
impl Alerter {
    /// The newest sample at least `window_secs` old, else the oldest kept.
    fn sample_before(&self, now: i64, window_secs: u64) -> Sample {
        self.samples
            .iter()
            .rev()
            .find(|(t, _)| now - t >= window_secs as i64 * 1000)
            .or(self.samples.front())
            .map(|(_, c)| c.clone())
            .unwrap_or_default()
    }
}

/// (subject, calls, failures, %) of every subject whose failures between
/// the two samples are above `threshold_pct` % of at least `min_calls`.
fn over_threshold(
    now: &SubmitCounts,
    then: &SubmitCounts,
    threshold_pct: f64,
    min_calls: u64,
) -> Vec<(String, u64, u64, f64)> {
    let mut out = Vec::new();
    for (subject, (total, failed)) in now {
        let (t0, f0) = then.get(subject).copied().unwrap_or((0, 0));
        let (calls, fails) = (total.saturating_sub(t0), failed.saturating_sub(f0));
        if calls >= min_calls && calls > 0 {
            let pct = fails as f64 * 100.0 / calls as f64;
            if pct > threshold_pct {
                out.push((subject.clone(), calls, fails, pct));
            }
        }
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

/// (calls, traps) per plugin, over all its versions.
fn plugin_traps(registry: &crate::plugins::Registry) -> SubmitCounts {
    registry
        .list()
        .into_iter()
        .map(|p| {
            let (calls, traps) = p.versions.iter().fold((0, 0), |(c, t), v| (c + v.stats.calls, t + v.stats.traps));
            (p.name, (calls, traps))
        })
        .collect()
}

fn digest_text(changes: &[Change]) -> String {
    let mut s = format!("### daifa: {} alert change(s)\n", changes.len());
    for c in changes {
        let mark = if c.state == "firing" { "🔴 FIRING" } else { "✅ RESOLVED" };
        s.push_str(&format!("- **{mark}** `{}` {}: {}\n", c.rule, c.subject, c.message));
    }
    s
}

/// DingTalk's signature: base64(HmacSHA256(secret, "{ts}\n{secret}")),
/// URL-encoded.
pub fn dingtalk_sign(secret: &str, ts: i64) -> String {
    use base64::Engine;
    use hmac::Mac;
    let mut mac = match hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()) {
        Ok(m) => m,
        Err(_) => return String::new(),
    };
    mac.update(format!("{ts}\n{secret}").as_bytes());
    let b64 = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
    url::form_urlencoded::byte_serialize(b64.as_bytes()).collect()
}

async fn send(http: &reqwest::Client, n: &Notifier, changes: &[Change], now: i64) -> Result<(), String> {
    let text = digest_text(changes);
    let (url, body) = match n {
        Notifier::Dingtalk { url, secret } => {
            let url = match secret {
                Some(secret) => {
                    let sep = if url.contains('?') { '&' } else { '?' };
                    format!("{url}{sep}timestamp={now}&sign={}", dingtalk_sign(secret, now))
                }
                None => url.clone(),
            };
            (url, serde_json::json!({"msgtype": "markdown", "markdown": {"title": "daifa alerts", "text": text}}))
        }
        Notifier::Wecom { url } => {
            // WeCom takes at most 4096 bytes of markdown.
            let mut content = text;
            if content.len() > 4000 {
                let mut cut = 4000;
                while !content.is_char_boundary(cut) {
                    cut -= 1;
                }
                content.truncate(cut);
                content.push_str("\n…");
            }
            (url.clone(), serde_json::json!({"msgtype": "markdown", "markdown": {"content": content}}))
        }
        Notifier::Webhook { url } => (url.clone(), serde_json::json!({ "alerts": changes })),
    };
    let resp = http.post(&url).json(&body).send().await.map_err(|e| format!("transport: {e}"))?;
    let status = resp.status();
    let answer: serde_json::Value = resp.json().await.unwrap_or(serde_json::Value::Null);
    if !status.is_success() {
        return Err(format!("HTTP {status}"));
    }
    // The robots answer 200 with their own error code.
    match answer.get("errcode").and_then(|c| c.as_i64()) {
        None | Some(0) => Ok(()),
        Some(code) => Err(format!("errcode {code}: {}", answer["errmsg"].as_str().unwrap_or(""))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The shape README documents.
    #[test]
    fn the_documented_config_parses() {
        let text = r#"
interval_secs = 30
[[rules]]
name = "supplier-errors"
kind = "supplier_error_rate"
threshold_pct = 20.0
window_secs = 600
min_calls = 20
[[rules]]
name = "circuits"
kind = "circuit_open"
[[rules]]
name = "dead-letters"
kind = "dead_letters"
max = 0
[[rules]]
name = "submit-backlog"
kind = "backlog_age"
job_kind = "submit"
max_secs = 900
[[rules]]
name = "store"
kind = "store_unwritable"
[[rules]]
name = "ship-sla"
kind = "ship_sla"
max_hours = 48
[[rules]]
name = "ingest"
kind = "ingest_stalled"
max_secs = 600
[[rules]]
name = "erp-login"
kind = "erp_credentials"
[[rules]]
name = "plugin-traps"
kind = "plugin_traps"
threshold_pct = 5.0
window_secs = 300
min_calls = 20
[[rules]]
name = "canary"
kind = "canary_decision"
show_secs = 3600
[[notifiers]]
kind = "dingtalk"
url = "https://oapi.dingtalk.com/robot/send?access_token=T"
secret = "SEC..."
[[notifiers]]
kind = "wecom"
url = "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=K"
[[notifiers]]
kind = "webhook"
url = "https://alerts.example/daifa"
"#;
        let cfg: AlertsConfig = toml::from_str(text).unwrap();
        assert_eq!((cfg.rules.len(), cfg.notifiers.len(), cfg.max_messages_per_minute), (10, 3, 20));
        let bad = toml::from_str::<AlertsConfig>("[[rules]]\nname = \"x\"\nkind = \"cpu_hot\"\n").unwrap_err();
        assert!(bad.to_string().contains("cpu_hot"), "{bad}");
        let typo = "[[rules]]\nname = \"x\"\nkind = \"dead_letters\"\nmaxx = 1\n";
        assert!(toml::from_str::<AlertsConfig>(typo).is_err(), "a misspelt key is refused");
    }

    #[test]
    fn the_dingtalk_signature_matches_its_definition() {
        // base64(HmacSHA256("SECx", "1700000000000\nSECx")), URL-encoded.
        use base64::Engine;
        use hmac::Mac;
        let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(b"SECx").unwrap();
        mac.update(b"1700000000000\nSECx");
        let b64 = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
        let encoded = dingtalk_sign("SECx", 1_700_000_000_000);
        assert_eq!(url::form_urlencoded::parse(format!("s={encoded}").as_bytes()).next().unwrap().1, b64);
        assert!(!encoded.contains('+') && !encoded.contains('/') && !encoded.contains('='), "{encoded}");
    }
}
