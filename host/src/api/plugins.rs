//! `/api/v1/plugins`: validate, install, activate, roll back, disable,
//! remove, list.
//! Every change is logged with what was done (the audit trail).

use axum::extract::{DefaultBodyLimit, State};
use axum::http::StatusCode;
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use base64::Engine as _;
use serde::{Deserialize, Serialize};

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
#[derive(Debug, Serialize, Deserialize)]
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

async fn list(State(s): State<ApiState>) -> Json<Vec<PluginSummary>> {
    Json(s.registry.list())
}

async fn validate(
    State(s): State<ApiState>,
    ApiJson(up): ApiJson<PackageUpload>,
) -> Result<Json<ValidationReport>, ApiError> {
    let pkg = up.package()?;
    s.registry.validate(&pkg, &up.config).await.map(Json).map_err(registry_error)
}

async fn install(
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

async fn activate(
    State(s): State<ApiState>,
    ApiPath((name, version)): ApiPath<(String, String)>,
) -> Result<Changed, ApiError> {
    let before = audit_view(&s, &name);
    let v = parse_version(&version)?;
    s.registry.activate(&name, &v).await.map_err(registry_error)?;
    tracing::info!(target: "daifa::audit", plugin = %name, %version, "admin: activate");
    Ok((Change::new(before, audit_view(&s, &name)), Json(serde_json::json!({ "plugin": name, "active": version }))))
}

async fn rollback(State(s): State<ApiState>, ApiPath(name): ApiPath<String>) -> Result<Changed, ApiError> {
    let before = audit_view(&s, &name);
    let v = s.registry.rollback(&name).await.map_err(registry_error)?;
    tracing::info!(target: "daifa::audit", plugin = %name, version = %v, "admin: rollback");
    Ok((
        Change::new(before, audit_view(&s, &name)),
        Json(serde_json::json!({ "plugin": name, "active": v.to_string() })),
    ))
}

async fn disable(State(s): State<ApiState>, ApiPath(name): ApiPath<String>) -> Result<Changed, ApiError> {
    let before = audit_view(&s, &name);
    s.registry.disable(&name).await.map_err(registry_error)?;
    tracing::info!(target: "daifa::audit", plugin = %name, "admin: disable");
    Ok((Change::new(before, audit_view(&s, &name)), Json(serde_json::json!({ "plugin": name, "disabled": true }))))
}

async fn remove(
    State(s): State<ApiState>,
    ApiPath((name, version)): ApiPath<(String, String)>,
) -> Result<Changed, ApiError> {
    let before = audit_view(&s, &name);
    let v = parse_version(&version)?;
    s.registry.remove(&name, &v).await.map_err(registry_error)?;
    tracing::info!(target: "daifa::audit", plugin = %name, %version, "admin: remove");
    Ok((Change::new(before, audit_view(&s, &name)), Json(serde_json::json!({ "plugin": name, "removed": version }))))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CanaryRequest {
    /// Share of the plugin's calls, 1-99.
    percent: u8,
}

async fn start_canary(
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

async fn stop_canary(State(s): State<ApiState>, ApiPath(name): ApiPath<String>) -> Result<Changed, ApiError> {
    let before = audit_view(&s, &name);
    let v = s.registry.stop_canary(&name).await.map_err(registry_error)?;
    Ok((
        Change::new(before, audit_view(&s, &name)),
        Json(serde_json::json!({ "plugin": name, "stopped": v.to_string() })),
    ))
}
