-- API tokens with roles, and the audit trail of every mutating admin call.
-- Keep in step with ../postgres/0006_access.sql: only the id column type differs.

-- A token is `daifa_<id>_<secret>`; only the secret's sha256 is kept, so
-- the table alone cannot be used to call the API. Revoked tokens stay, for
-- the audit trail to name them.
CREATE TABLE api_tokens (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    role TEXT NOT NULL,
    secret_sha256 TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    revoked_at BIGINT,
    last_used_at BIGINT
);

-- Who changed what, when, and how it ended: one row per mutating call
-- (request bodies are not kept; they may carry secrets).
CREATE TABLE audit_log (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at BIGINT NOT NULL,
    actor TEXT NOT NULL,
    role TEXT NOT NULL,
    method TEXT NOT NULL,
    path TEXT NOT NULL,
    status BIGINT NOT NULL
);
CREATE INDEX audit_log_at ON audit_log (at);
