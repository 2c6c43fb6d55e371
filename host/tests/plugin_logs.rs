//! A plugin's log text stays inside its own record: a plugin that writes
//! newlines, another target's line or colour codes cannot forge a line of
//! the host's own log (e.g. a `daifa::audit` record), nor the host's
//! `plugin=` field. Its own test binary: it installs the global subscriber.

mod common;

use std::io::Write;
use std::sync::{Arc, Mutex};

use common::*;
use daifa_host::plugins::Registry;

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Captured {
    type Writer = Captured;
    fn make_writer(&'a self) -> Captured {
        self.clone()
    }
}

#[tokio::test]
async fn a_plugin_cannot_write_a_line_that_reads_as_another_target() {
    let out = Captured::default();
    tracing_subscriber::fmt().with_writer(out.clone()).with_ansi(false).with_max_level(tracing::Level::INFO).init();
    let reg = Registry::open(runtime(), None).await.unwrap();
    let pkg = hostile_named("forger", |_| {});
    let version = pkg.manifest.version.clone();
    reg.install(&pkg, &config(&[("mode", "log-forge")])).await.unwrap();
    reg.activate("forger", &version).await.unwrap();
    let r = reg.get("forger").unwrap().submit_order(&order("F-1", 1)).await.unwrap();
    assert_eq!(r.supplier_ref, "logged");

    let text = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
    let mine: Vec<&str> = text.lines().filter(|l| l.contains("daifa::plugin")).collect();
    assert_eq!(mine.len(), 1, "the plugin's record is one line:\n{text}");
    for line in text.lines() {
        assert!(
            !line.contains("daifa::audit") || line.contains("daifa::plugin"),
            "a line outside the plugin's record names daifa::audit: {line:?}\n{text}"
        );
        assert!(!line.starts_with("2026-11-29T00:00:00"), "a forged line: {line:?}");
    }
    assert!(!text.contains('\u{1b}'), "colour codes reached the log: {text:?}");
    assert!(!text.contains("plugin=rest-json"), "the plugin posed as another: {text}");
    assert!(mine[0].contains("plugin=forger"), "{}", mine[0]);

    // An adapter error is logged with plugin, version, operation and the
    // supplier's answer, with the connection's secrets taken out.
    let pkg = hostile_named("echoer", |_| {});
    reg.install(&pkg, &config(&[("mode", "echo-secret"), ("token", "tok-s3cret-42")])).await.unwrap();
    reg.activate("echoer", &pkg.manifest.version).await.unwrap();
    let err = reg.get("echoer").unwrap().submit_order(&order("E-9", 1)).await.unwrap_err();
    assert!(err.to_string().contains("invalid token"), "{err}");
    let text = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
    let line = text.lines().find(|l| l.contains("adapter error")).unwrap_or_else(|| panic!("not logged:\n{text}"));
    assert!(line.contains("plugin=echoer") && line.contains("version=0.1.0"), "{line}");
    assert!(line.contains("operation=\"submit-order\""), "{line}");
    assert!(line.contains("401 invalid token [redacted] for E-9"), "{line}");
    assert!(!text.contains("tok-s3cret-42"), "a secret reached the log: {text}");
    let logged = text.lines().find(|l| l.contains("calling with token")).unwrap_or_else(|| panic!("{text}"));
    assert!(logged.contains("calling with token [redacted]") && logged.contains("Bearer [redacted]"), "{logged}");
}
