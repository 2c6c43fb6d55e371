//! A client for the admin API (the CLI's `daifa plugin ...` and the demo).

use base64::Engine as _;
use serde::de::DeserializeOwned;

use super::plugins::PackageUpload;
use crate::plugins::{PluginConfig, PluginPackage};

/// Why an admin request failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot reach the admin API at {url}: {source}")]
    Unreachable { url: String, source: reqwest::Error },
    #[error("admin API answered {status}: {message}")]
    Refused { status: u16, message: String },
}

/// Talks to one host's admin API.
pub struct AdminClient {
    base: String,
    token: String,
    http: reqwest::Client,
}

impl AdminClient {
    pub fn new(base: impl Into<String>, token: impl Into<String>) -> AdminClient {
        let _ = rustls::crypto::ring::default_provider().install_default();
        AdminClient {
            base: base.into().trim_end_matches('/').to_string(),
            token: token.into(),
            http: reqwest::Client::new(),
        }
    }

    /// Uploads and installs a package (and activates it if asked).
    pub async fn install(
        &self,
        pkg: &PluginPackage,
        config: &PluginConfig,
        activate: bool,
    ) -> Result<serde_json::Value, ClientError> {
        self.send(self.http.post(self.url("/plugins")).json(&upload(pkg, config, activate))).await
    }

    /// Validates a package without installing it.
    pub async fn validate(&self, pkg: &PluginPackage, config: &PluginConfig) -> Result<serde_json::Value, ClientError> {
        self.send(self.http.post(self.url("/plugins/validate")).json(&upload(pkg, config, false))).await
    }

    pub async fn activate(&self, name: &str, version: &str) -> Result<serde_json::Value, ClientError> {
        self.send(self.http.post(self.url(&format!("/plugins/{name}/versions/{version}/activate")))).await
    }

    pub async fn rollback(&self, name: &str) -> Result<serde_json::Value, ClientError> {
        self.send(self.http.post(self.url(&format!("/plugins/{name}/rollback")))).await
    }

    pub async fn disable(&self, name: &str) -> Result<serde_json::Value, ClientError> {
        self.send(self.http.post(self.url(&format!("/plugins/{name}/disable")))).await
    }

    pub async fn remove(&self, name: &str, version: &str) -> Result<serde_json::Value, ClientError> {
        self.send(self.http.delete(self.url(&format!("/plugins/{name}/versions/{version}")))).await
    }

    /// Starts a canary of `version` taking `percent` % of `name`'s calls.
    pub async fn start_canary(&self, name: &str, version: &str, percent: u8) -> Result<serde_json::Value, ClientError> {
        let body = serde_json::json!({ "percent": percent });
        self.send(self.http.post(self.url(&format!("/plugins/{name}/versions/{version}/canary"))).json(&body)).await
    }

    /// Ends `name`'s canary without promoting it.
    pub async fn stop_canary(&self, name: &str) -> Result<serde_json::Value, ClientError> {
        self.send(self.http.delete(self.url(&format!("/plugins/{name}/canary")))).await
    }

    /// `name`'s log lines after `after`.
    pub async fn logs(&self, name: &str, after: u64) -> Result<serde_json::Value, ClientError> {
        self.send(self.http.get(self.url(&format!("/plugins/{name}/logs?after={after}&limit=1000")))).await
    }

    pub async fn list(&self) -> Result<serde_json::Value, ClientError> {
        self.send(self.http.get(self.url("/plugins"))).await
    }

    /// Any admin call: `GET`/`DELETE` without a body, `PUT`/`POST` with
    /// `body` as JSON. `path` is below `/api/v1`.
    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&serde_json::Value>,
    ) -> Result<serde_json::Value, ClientError> {
        let mut req = self.http.request(method, self.url(path));
        if let Some(b) = body {
            req = req.json(b);
        }
        self.send(req).await
    }

    fn url(&self, path: &str) -> String {
        format!("{}/api/v1{path}", self.base)
    }

    async fn send<T: DeserializeOwned>(&self, req: reqwest::RequestBuilder) -> Result<T, ClientError> {
        let resp = req
            .bearer_auth(&self.token)
            .send()
            .await
            .map_err(|source| ClientError::Unreachable { url: self.base.clone(), source })?;
        let status = resp.status().as_u16();
        let body: serde_json::Value = resp.json().await.unwrap_or(serde_json::Value::Null);
        if !(200..300).contains(&status) {
            let message = body.get("error").and_then(|e| e.as_str()).unwrap_or("no error message").to_string();
            return Err(ClientError::Refused { status, message });
        }
        serde_json::from_value(body)
            .map_err(|e| ClientError::Refused { status, message: format!("unexpected answer: {e}") })
    }
}

fn upload(pkg: &PluginPackage, config: &PluginConfig, activate: bool) -> PackageUpload {
    PackageUpload {
        manifest: pkg.manifest.to_toml(),
        component_base64: base64::engine::general_purpose::STANDARD.encode(pkg.component.as_slice()),
        config: config.clone(),
        activate,
    }
}
