-- Alerts: one row per (rule, subject) episode, from firing to resolved,
-- with what the notifiers answered. Keep in step with ../postgres/0007_alerts.sql:
-- only the id column type differs.
CREATE TABLE alerts (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    rule TEXT NOT NULL,
    subject TEXT NOT NULL,
    state TEXT NOT NULL,
    message TEXT NOT NULL,
    fired_at BIGINT NOT NULL,
    resolved_at BIGINT,
    notified TEXT NOT NULL
);
CREATE INDEX alerts_state ON alerts (state, rule, subject);
