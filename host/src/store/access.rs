//! API tokens and the audit trail. A token is `daifa_<id>_<secret>`: the
//! id finds the row, the secret is checked against its stored sha256 in
//! constant time, so a copy of the database cannot call the API.

use serde::Serialize;
use sqlx::FromRow;

use super::{Store, StoreError};
use crate::domain::access::Role;

/// A token as listed (never its secret).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, FromRow)]
pub struct ApiToken {
    pub id: String,
    pub name: String,
    pub role: String,
    pub created_at: i64,
    pub revoked_at: Option<i64>,
    pub last_used_at: Option<i64>,
}

/// One mutating admin call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AuditEntry {
    pub id: i64,
    pub at: i64,
    /// `token:<id> (<name>)`, or `config` for the token in daifa.toml.
    pub actor: String,
    pub role: String,
    pub method: String,
    pub path: String,
    pub status: i64,
    /// What the call changed, where its handler says: the thing's state
    /// before and after (JSON), secrets never included.
    pub before: Option<serde_json::Value>,
    pub after: Option<serde_json::Value>,
}

/// One mutating call to record.
#[derive(Debug, Clone, Copy)]
pub struct AuditRecord<'a> {
    pub actor: &'a str,
    pub role: Role,
    pub method: &'a str,
    pub path: &'a str,
    pub status: u16,
    /// (before, after), where the handler described the change.
    pub change: Option<(&'a serde_json::Value, &'a serde_json::Value)>,
}

#[derive(FromRow)]
struct AuditRow {
    id: i64,
    at: i64,
    actor: String,
    role: String,
    method: String,
    path: String,
    status: i64,
    before_json: Option<String>,
    after_json: Option<String>,
}

impl From<AuditRow> for AuditEntry {
    fn from(r: AuditRow) -> AuditEntry {
        // Written by `audit` from a `Value`: text that does not parse back
        // is shown as the string it is rather than dropped.
        let json = |t: Option<String>| t.map(|t| serde_json::from_str(&t).unwrap_or(serde_json::Value::String(t)));
        AuditEntry {
            id: r.id,
            at: r.at,
            actor: r.actor,
            role: r.role,
            method: r.method,
            path: r.path,
            status: r.status,
            before: json(r.before_json),
            after: json(r.after_json),
        }
    }
}

#[derive(FromRow)]
struct TokenRow {
    id: String,
    name: String,
    role: String,
    secret_sha256: String,
    created_at: i64,
    revoked_at: Option<i64>,
    last_used_at: Option<i64>,
}

const TOKEN_COLUMNS: &str = "id, name, role, secret_sha256, created_at, revoked_at, last_used_at";

fn random_hex(bytes: usize) -> Result<String, StoreError> {
    let mut buf = vec![0u8; bytes];
    getrandom::fill(&mut buf).map_err(|e| StoreError::Invalid(format!("no randomness for a token: {e}")))?;
    Ok(hex::encode(buf))
}

impl Store {
    /// Creates a token; the returned string is the only time its secret
    /// exists outside the caller.
    pub async fn create_token(&self, name: &str, role: Role, now: i64) -> Result<(ApiToken, String), StoreError> {
        let name = name.trim();
        if name.is_empty() || name.len() > 100 {
            return Err(StoreError::Invalid("a token's name must be 1-100 characters".into()));
        }
        let (id, secret) = (random_hex(4)?, random_hex(24)?);
        let _w = self.writer().await;
        let mut tx = self.begin_write().await?;
        sqlx::query(
            "INSERT INTO api_tokens (id, name, role, secret_sha256, created_at, revoked_at, last_used_at) \
             VALUES ($1, $2, $3, $4, $5, NULL, NULL)",
        )
        .bind(&id)
        .bind(name)
        .bind(role.as_str())
        .bind(crate::util::sha256_hex(secret.as_bytes()))
        .bind(now)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        let token = ApiToken {
            id: id.clone(),
            name: name.to_string(),
            role: role.as_str().into(),
            created_at: now,
            revoked_at: None,
            last_used_at: None,
        };
        Ok((token, format!("daifa_{id}_{secret}")))
    }

    /// Every token, newest first.
    pub async fn tokens(&self) -> Result<Vec<ApiToken>, StoreError> {
        let rows: Vec<TokenRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {TOKEN_COLUMNS} FROM api_tokens ORDER BY created_at DESC, id"
        )))
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|r| ApiToken {
                id: r.id,
                name: r.name,
                role: r.role,
                created_at: r.created_at,
                revoked_at: r.revoked_at,
                last_used_at: r.last_used_at,
            })
            .collect())
    }

    /// Revokes a token; false if no live token has that id.
    pub async fn revoke_token(&self, id: &str, now: i64) -> Result<bool, StoreError> {
        let _w = self.writer().await;
        let mut tx = self.begin_write().await?;
        let n = sqlx::query("UPDATE api_tokens SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL")
            .bind(now)
            .bind(id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        tx.commit().await?;
        Ok(n == 1)
    }

    /// The live token `presented` is, with its role. Notes when it was last
    /// used (at most once a minute, so reads do not become writes).
    pub async fn check_token(&self, presented: &str, now: i64) -> Result<Option<(ApiToken, Role)>, StoreError> {
        let Some((id, secret)) = presented.strip_prefix("daifa_").and_then(|r| r.split_once('_')) else {
            return Ok(None);
        };
        let row: Option<TokenRow> =
            sqlx::query_as(sqlx::AssertSqlSafe(format!("SELECT {TOKEN_COLUMNS} FROM api_tokens WHERE id = $1")))
                .bind(id)
                .fetch_optional(&self.pool)
                .await?;
        let Some(r) = row else { return Ok(None) };
        let given = crate::util::sha256_hex(secret.as_bytes());
        if r.revoked_at.is_some() || !crate::util::constant_time_eq(given.as_bytes(), r.secret_sha256.as_bytes()) {
            return Ok(None);
        }
        let Ok(role) = Role::parse(&r.role) else { return Ok(None) };
        if r.last_used_at.is_none_or(|t| now - t > 60_000) {
            let _w = self.writer().await;
            let mut tx = self.begin_write().await?;
            sqlx::query("UPDATE api_tokens SET last_used_at = $1 WHERE id = $2")
                .bind(now)
                .bind(&r.id)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
        }
        let token = ApiToken {
            id: r.id,
            name: r.name,
            role: r.role,
            created_at: r.created_at,
            revoked_at: None,
            last_used_at: Some(now),
        };
        Ok(Some((token, role)))
    }

    /// Records one mutating call.
    pub async fn audit(&self, e: &AuditRecord<'_>, now: i64) -> Result<(), StoreError> {
        let _w = self.writer().await;
        let mut tx = self.begin_write().await?;
        sqlx::query(
            "INSERT INTO audit_log (at, actor, role, method, path, status, before_json, after_json) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(now)
        .bind(e.actor)
        .bind(e.role.as_str())
        .bind(e.method)
        .bind(e.path)
        .bind(i64::from(e.status))
        .bind(e.change.map(|c| c.0.to_string()))
        .bind(e.change.map(|c| c.1.to_string()))
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// The latest audit entries, newest first.
    pub async fn audit_log(&self, limit: i64) -> Result<Vec<AuditEntry>, StoreError> {
        let rows: Vec<AuditRow> = sqlx::query_as(
            "SELECT id, at, actor, role, method, path, status, before_json, after_json \
             FROM audit_log ORDER BY id DESC LIMIT $1",
        )
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(AuditEntry::from).collect())
    }
}
