//! `/api/v1/plugins`: validate, install, activate, roll back, disable,
//! remove, list; a plugin's recent log lines; one operation of an installed
//! version on a scratch binding (`invoke`).
//! Every change is logged with what was done (the audit trail).

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use base64::Engine as _;
use serde::{Deserialize, Serialize};

use super::openapi::ErrorBody;
use super::{ApiError, ApiJson, ApiPath, ApiState, Change};
use crate::plugins::{Manifest, PluginConfig, PluginPackage, PluginSummary, RegistryError, ValidationReport};

pub(super) fn routes(max_body: usize) -> Router<ApiState> {
    Router::new()
        .route("/plugins", get(list).post(install))
        .route("/plugins/validate", post(validate))
        .route("/plugins/{name}/versions/{version}", delete(remove))
        .route("/plugins/{name}/versions/{version}/activate", post(activate))
        .route("/plugins/{name}/rollback", post(rollback))
        .route("/plugins/{name}/disable", post(disable))
        .route("/plugins/{name}/versions/{version}/canary", post(start_canary))
        .route("/plugins/{name}/canary", delete(stop_canary))
        .route("/plugins/{name}/logs", get(logs))
        .route("/plugins/{name}/versions/{version}/invoke/{operation}", post(invoke))
        .layer(super::body_limit(max_body))
}

/// An uploaded package.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PackageUpload {
    /// `manifest.toml` text.
    pub manifest: String,
    /// The component, base64 (standard alphabet).
    pub component_base64: String,
    #[serde(default)]
    pub config: PluginConfig,
    /// Activate right after a successful install.
    #[serde(default)]
    pub activate: bool,
}

impl PackageUpload {
    fn package(&self) -> Result<PluginPackage, ApiError> {
        let bad = |m: String| ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid", m);
        let manifest = Manifest::from_toml(&self.manifest).map_err(|e| bad(e.to_string()))?;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(self.component_base64.trim())
            .map_err(|e| bad(format!("component_base64: {e}")))?;
        Ok(PluginPackage { manifest, component: bytes.into() })
    }
}

/// What the audit trail keeps of a plugin: which version serves, which
/// would come back on a rollback, whether it is off, its canary; and the
/// versions installed (config and secrets are never part of it).
fn audit_view(s: &ApiState, name: &str) -> serde_json::Value {
    match s.registry.list().into_iter().find(|p| p.name == name) {
        Some(p) => serde_json::json!({
            "active": p.active,
            "rollback_to": p.rollback_to,
            "disabled": p.disabled,
            "canary": p.canary,
            "versions": p.versions.iter().map(|v| &v.version).collect::<Vec<_>>(),
        }),
        None => serde_json::Value::Null,
    }
}

type Changed = (axum::Extension<Change>, Json<serde_json::Value>);

fn registry_error(e: RegistryError) -> ApiError {
    let (status, kind) = match &e {
        RegistryError::Invalid(_) => (StatusCode::UNPROCESSABLE_ENTITY, "invalid"),
        RegistryError::UnknownPlugin(_) | RegistryError::UnknownVersion { .. } => (StatusCode::NOT_FOUND, "not-found"),
        RegistryError::Conflict(_) => (StatusCode::CONFLICT, "conflict"),
        RegistryError::Io(_) => (StatusCode::INTERNAL_SERVER_ERROR, "storage"),
    };
    ApiError::new(status, kind, e.to_string())
}

/// Every plugin: active version, rollback target, canary, call slots, versions with their stats.
#[utoipa::path(get, path = "/plugins", tag = "plugins", responses((status = 200, description = "Every plugin: active version, rollback, canary, call slots, versions with stats", body = Value), (status = 401, description = "No, unknown or revoked token", body = ErrorBody)))]
pub(super) async fn list(State(s): State<ApiState>) -> Json<Vec<PluginSummary>> {
    Json(s.registry.list())
}

/// Validates a package (manifest, component, config, dry run) without installing it.
#[utoipa::path(post, path = "/plugins/validate", tag = "plugins", request_body = PackageUpload, responses((status = 200, description = "The validation report; nothing is installed", body = Value), (status = 401, description = "No, unknown or revoked token", body = ErrorBody), (status = 422, description = "Refused, naming every problem", body = ErrorBody), (status = 403, description = "The token's role may not do this", body = ErrorBody)))]
pub(super) async fn validate(
    State(s): State<ApiState>,
    ApiJson(up): ApiJson<PackageUpload>,
) -> Result<Json<ValidationReport>, ApiError> {
    let pkg = up.package()?;
    s.registry.validate(&pkg, &up.config).await.map(Json).map_err(registry_error)
}

/// Installs a package version (validated, compiled and dry-run first); activates it on request.
#[utoipa::path(post, path = "/plugins", tag = "plugins", request_body = PackageUpload, responses((status = 201, description = "Installed (validated, compiled, dry-run)", body = Value), (status = 401, description = "No, unknown or revoked token", body = ErrorBody), (status = 409, description = "In conflict with the current state", body = ErrorBody), (status = 422, description = "Refused, naming every problem", body = ErrorBody), (status = 403, description = "The token's role may not do this", body = ErrorBody)))]
pub(super) async fn install(
    State(s): State<ApiState>,
    ApiJson(up): ApiJson<PackageUpload>,
) -> Result<(StatusCode, axum::Extension<Change>, Json<ValidationReport>), ApiError> {
    let pkg = up.package()?;
    let before = audit_view(&s, &pkg.manifest.name);
    let report = s.registry.install(&pkg, &up.config).await.map_err(registry_error)?;
    tracing::info!(target: "daifa::audit", plugin = %report.name, version = %report.version, sha256 = %report.sha256, "admin: install");
    if up.activate {
        s.registry.activate(&pkg.manifest.name, &pkg.manifest.version).await.map_err(registry_error)?;
        tracing::info!(target: "daifa::audit", plugin = %report.name, version = %report.version, "admin: activate");
    }
    let after = audit_view(&s, &pkg.manifest.name);
    Ok((StatusCode::CREATED, Change::new(before, after), Json(report)))
}

/// A version from the path, or a 400 naming it.
fn parse_version(version: &str) -> Result<semver::Version, ApiError> {
    semver::Version::parse(version)
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "invalid", format!("version `{version}`: {e}")))
}

/// Makes an installed version the one that serves.
#[utoipa::path(post, path = "/plugins/{name}/versions/{version}/activate", tag = "plugins", params(("name" = String, Path, description = "Plugin name"), ("version" = String, Path, description = "Semver version")), responses((status = 200, description = "Done", body = Value), (status = 401, description = "No, unknown or revoked token", body = ErrorBody), (status = 404, description = "Not found", body = ErrorBody), (status = 403, description = "The token's role may not do this", body = ErrorBody)))]
pub(super) async fn activate(
    State(s): State<ApiState>,
    ApiPath((name, version)): ApiPath<(String, String)>,
) -> Result<Changed, ApiError> {
    let before = audit_view(&s, &name);
    let v = parse_version(&version)?;
    s.registry.activate(&name, &v).await.map_err(registry_error)?;
    tracing::info!(target: "daifa::audit", plugin = %name, %version, "admin: activate");
    Ok((Change::new(before, audit_view(&s, &name)), Json(serde_json::json!({ "plugin": name, "active": version }))))
}

/// Goes back to the version that served before.
#[utoipa::path(post, path = "/plugins/{name}/rollback", tag = "plugins", params(("name" = String, Path, description = "Plugin name")), responses((status = 200, description = "Done", body = Value), (status = 401, description = "No, unknown or revoked token", body = ErrorBody), (status = 404, description = "Not found", body = ErrorBody), (status = 409, description = "In conflict with the current state", body = ErrorBody), (status = 403, description = "The token's role may not do this", body = ErrorBody)))]
pub(super) async fn rollback(State(s): State<ApiState>, ApiPath(name): ApiPath<String>) -> Result<Changed, ApiError> {
    let before = audit_view(&s, &name);
    let v = s.registry.rollback(&name).await.map_err(registry_error)?;
    tracing::info!(target: "daifa::audit", plugin = %name, version = %v, "admin: rollback");
    Ok((
        Change::new(before, audit_view(&s, &name)),
        Json(serde_json::json!({ "plugin": name, "active": v.to_string() })),
    ))
}

/// Stops the plugin serving any call.
#[utoipa::path(post, path = "/plugins/{name}/disable", tag = "plugins", params(("name" = String, Path, description = "Plugin name")), responses((status = 200, description = "Done", body = Value), (status = 401, description = "No, unknown or revoked token", body = ErrorBody), (status = 404, description = "Not found", body = ErrorBody), (status = 403, description = "The token's role may not do this", body = ErrorBody)))]
pub(super) async fn disable(State(s): State<ApiState>, ApiPath(name): ApiPath<String>) -> Result<Changed, ApiError> {
    let before = audit_view(&s, &name);
    s.registry.disable(&name).await.map_err(registry_error)?;
    tracing::info!(target: "daifa::audit", plugin = %name, "admin: disable");
    Ok((Change::new(before, audit_view(&s, &name)), Json(serde_json::json!({ "plugin": name, "disabled": true }))))
}

/// Removes an installed version that does not serve.
#[utoipa::path(delete, path = "/plugins/{name}/versions/{version}", tag = "plugins", params(("name" = String, Path, description = "Plugin name"), ("version" = String, Path, description = "Semver version")), responses((status = 200, description = "Done", body = Value), (status = 401, description = "No, unknown or revoked token", body = ErrorBody), (status = 404, description = "Not found", body = ErrorBody), (status = 409, description = "In conflict with the current state", body = ErrorBody), (status = 403, description = "The token's role may not do this", body = ErrorBody)))]
pub(super) async fn remove(
    State(s): State<ApiState>,
    ApiPath((name, version)): ApiPath<(String, String)>,
) -> Result<Changed, ApiError> {
    let before = audit_view(&s, &name);
    let v = parse_version(&version)?;
    s.registry.remove(&name, &v).await.map_err(registry_error)?;
    tracing::info!(target: "daifa::audit", plugin = %name, %version, "admin: remove");
    Ok((Change::new(before, audit_view(&s, &name)), Json(serde_json::json!({ "plugin": name, "removed": version }))))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct CanaryRequest {
    /// Share of the plugin's calls, 1-99.
    percent: u8,
}

/// Sends a share of the plugin's calls to a version, judged against the active one.
#[utoipa::path(post, path = "/plugins/{name}/versions/{version}/canary", tag = "plugins", params(("name" = String, Path, description = "Plugin name"), ("version" = String, Path, description = "Semver version")), request_body = CanaryRequest, responses((status = 200, description = "Done", body = Value), (status = 401, description = "No, unknown or revoked token", body = ErrorBody), (status = 404, description = "Not found", body = ErrorBody), (status = 409, description = "In conflict with the current state", body = ErrorBody), (status = 422, description = "Refused, naming every problem", body = ErrorBody), (status = 403, description = "The token's role may not do this", body = ErrorBody)))]
pub(super) async fn start_canary(
    State(s): State<ApiState>,
    ApiPath((name, version)): ApiPath<(String, String)>,
    ApiJson(req): ApiJson<CanaryRequest>,
) -> Result<Changed, ApiError> {
    let before = audit_view(&s, &name);
    let v = parse_version(&version)?;
    s.registry.start_canary(&name, &v, req.percent).await.map_err(registry_error)?;
    Ok((
        Change::new(before, audit_view(&s, &name)),
        Json(serde_json::json!({ "plugin": name, "canary": version, "percent": req.percent })),
    ))
}

/// Ends a canary: every call goes to the active version again.
#[utoipa::path(delete, path = "/plugins/{name}/canary", tag = "plugins", params(("name" = String, Path, description = "Plugin name")), responses((status = 200, description = "Done", body = Value), (status = 401, description = "No, unknown or revoked token", body = ErrorBody), (status = 404, description = "Not found", body = ErrorBody), (status = 409, description = "In conflict with the current state", body = ErrorBody), (status = 403, description = "The token's role may not do this", body = ErrorBody)))]
pub(super) async fn stop_canary(
    State(s): State<ApiState>,
    ApiPath(name): ApiPath<String>,
) -> Result<Changed, ApiError> {
    let before = audit_view(&s, &name);
    let v = s.registry.stop_canary(&name).await.map_err(registry_error)?;
    Ok((
        Change::new(before, audit_view(&s, &name)),
        Json(serde_json::json!({ "plugin": name, "stopped": v.to_string() })),
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct LogsQuery {
    /// Only lines with a greater `seq` (for following).
    #[serde(default)]
    after: u64,
    /// At most this many lines (default 200, at most 1,000).
    #[serde(default)]
    limit: Option<usize>,
}

/// A plugin's recent log lines and failed calls (every version; in memory,
/// the last 1,000), oldest first; `next` is the `after` of the next page.
#[utoipa::path(get, path = "/plugins/{name}/logs", tag = "plugins", params(("name" = String, Path, description = "Plugin name"), ("after" = Option<u64>, Query, description = "Only lines with a greater seq"), ("limit" = Option<u64>, Query, description = "At most this many, default 200, at most 1000")), responses((status = 200, description = "`{plugin, lines: [{seq, at_ms, version, level, operation, message}], next}`", body = Value), (status = 401, description = "No, unknown or revoked token", body = ErrorBody), (status = 404, description = "Not found", body = ErrorBody)))]
pub(super) async fn logs(
    State(s): State<ApiState>,
    ApiPath(name): ApiPath<String>,
    super::ApiQuery(q): super::ApiQuery<LogsQuery>,
) -> Result<Json<serde_json::Value>, ApiError> {
    if !s.registry.list().iter().any(|p| p.name == name) {
        return Err(registry_error(RegistryError::UnknownPlugin(name)));
    }
    let lines = s.registry.journal().lines(&name, q.after, q.limit.unwrap_or(200).min(1000));
    let next = lines.last().map_or(q.after, |l| l.seq);
    Ok(Json(serde_json::json!({ "plugin": name, "lines": lines, "next": next })))
}

/// `POST /plugins/{name}/versions/{v}/invoke/{operation}`.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct InvokeRequest {
    /// The config of this call alone. A supplier connection's config and
    /// secrets are never used: the call cannot reach a supplier the caller
    /// did not name.
    #[serde(default)]
    config: PluginConfig,
    /// The operation's input: a purchase order for `submit-order`,
    /// `{cursor}`, `{po_number, supplier_ref, reason}`, `{skus}`, or
    /// `{method, path, query, headers, body}` for `handle-callback`.
    #[serde(default)]
    #[schema(value_type = Object)]
    input: serde_json::Value,
    /// Answer the plugin's HTTP from this recording (`daifa plugin invoke
    /// --record` makes one) instead of the network.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    replay: Option<crate::plugins::tape::Recording>,
    /// `submit-order` and `cancel-order` change the supplier's state: without
    /// a `replay` they run only with this set.
    #[serde(default)]
    confirm_side_effects: bool,
}

/// Runs one operation of an installed version (active or not) on a scratch
/// binding — the request's config only, an empty kv, not counted in the
/// version's metrics — and reports the answer, the plugin's logs and what
/// the call used against each limit. Nothing it answers is applied to any
/// order. `submit-order` and `cancel-order` need a `replay` recording or
/// `confirm_side_effects: true`.
#[utoipa::path(post, path = "/plugins/{name}/versions/{version}/invoke/{operation}", tag = "plugins", params(("name" = String, Path, description = "Plugin name"), ("version" = String, Path, description = "Semver version"), ("operation" = String, Path, description = "describe, submit-order, poll-updates, cancel-order, query-stock or handle-callback")), request_body = InvokeRequest, responses((status = 200, description = "The report (`ok` false when the call failed)", body = Value), (status = 401, description = "No, unknown or revoked token", body = ErrorBody), (status = 404, description = "Not found", body = ErrorBody), (status = 409, description = "A side effect not confirmed", body = ErrorBody), (status = 422, description = "Refused, naming every problem", body = ErrorBody), (status = 403, description = "The token's role may not do this", body = ErrorBody)))]
pub(super) async fn invoke(
    State(s): State<ApiState>,
    ApiPath((name, version, operation)): ApiPath<(String, String, String)>,
    ApiJson(req): ApiJson<InvokeRequest>,
) -> Result<Json<crate::plugins::invoke::InvokeReport>, ApiError> {
    use crate::plugins::invoke::{InvokeError, Operation, invoke_installed};
    let bad = |m: String| ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid", m);
    let v = parse_version(&version)?;
    let op = Operation::from_json(&operation, req.input).map_err(bad)?;
    if op.has_side_effects() && req.replay.is_none() && !req.confirm_side_effects {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "conflict",
            format!(
                "{operation} changes the supplier's state: send a `replay` recording to answer it offline, or \
                 `confirm_side_effects: true` to call the supplier named in `config` for real"
            ),
        ));
    }
    let tape = req.replay.map(crate::plugins::tape::Tape::replay);
    tracing::info!(target: "daifa::audit", plugin = %name, %version, %operation, replay = tape.is_some(), "admin: invoke");
    invoke_installed(&s.registry, &name, &v, &req.config, op, tape).await.map(Json).map_err(|e| match e {
        InvokeError::Refused(r) => registry_error(r),
        InvokeError::Config(c) => bad(c.to_string()),
        InvokeError::Unavailable(c) => ApiError::new(StatusCode::CONFLICT, "conflict", c.to_string()),
    })
}
