//! `/api/v1/plugins`: validate, install, activate, roll back, disable,
//! remove, list.
//! Every change is logged with what was done (the audit trail).

use axum::extract::{DefaultBodyLimit, State};
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
        .layer(DefaultBodyLimit::max(max_body))
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
