//! The HTTP client behind `apply`, `trigger` and `runs`.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use reqwest::StatusCode;
use serde_json::Value;

/// A client of a running taskfactory API.
#[derive(Clone, Debug)]
pub struct ApiClient {
    base: String,
    http: reqwest::Client,
    key: Option<String>,
}

/// An answer that was not 2xx, rendered from the API's error envelope.
fn describe_error(status: StatusCode, body: &Value) -> String {
    let error = &body["error"];
    let mut text = format!("{status}: {}", error["message"].as_str().unwrap_or("request failed"));
    if let Some(details) = error["details"].as_array().filter(|d| d.len() > 1) {
        for d in details {
            text.push_str(&format!(
                "\n  {}: {}",
                d["path"].as_str().unwrap_or(""),
                d["message"].as_str().unwrap_or("")
            ));
        }
    }
    text
}

impl ApiClient {
    /// A client of the API at `base` (e.g. `http://127.0.0.1:8080`) using `key`.
    pub fn new(base: &str, key: Option<&str>) -> Self {
        Self { base: base.trim_end_matches('/').to_owned(), http: reqwest::Client::new(), key: key.map(str::to_owned) }
    }

    /// A client from the `--api-url` / `--api-key` flags.
    pub fn from_args(args: &crate::config::ClientArgs) -> Self {
        Self::new(&args.api_url, args.api_key.as_deref())
    }

    async fn send(&self, request: reqwest::RequestBuilder) -> anyhow::Result<(StatusCode, Value)> {
        let request = match &self.key {
            Some(key) => request.bearer_auth(key),
            None => request,
        };
        let response = request.send().await.with_context(|| {
            format!(
                "cannot reach the taskfactory API at {}: is `taskfactory dev` running? (or pass --api-url)",
                self.base
            )
        })?;
        let status = response.status();
        let text = response.text().await?;
        let body =
            if text.is_empty() { Value::Null } else { serde_json::from_str(&text).unwrap_or(Value::String(text)) };
        if status == StatusCode::UNAUTHORIZED && self.key.is_none() {
            bail!("the API needs a key: pass --api-key or set TASKFACTORY_API_KEY (`taskfactory dev` prints one)");
        }
        if !status.is_success() {
            bail!("{}", describe_error(status, &body));
        }
        Ok((status, body))
    }

    /// `GET path`.
    pub async fn get(&self, path: &str) -> anyhow::Result<Value> {
        Ok(self.send(self.http.get(format!("{}{path}", self.base))).await?.1)
    }

    /// `PUT` of a definition file (JSON or YAML by extension).
    pub async fn put_definition(&self, id: &str, text: String, yaml: bool) -> anyhow::Result<Value> {
        let content_type = if yaml { "application/yaml" } else { "application/json" };
        let request = self
            .http
            .put(format!("{}/api/v1/definitions/{id}", self.base))
            .header("content-type", content_type)
            .body(text);
        Ok(self.send(request).await?.1)
    }

    /// `POST /api/v1/definitions/{id}/runs`.
    pub async fn trigger(&self, id: &str, body: &Value) -> anyhow::Result<Value> {
        Ok(self.send(self.http.post(format!("{}/api/v1/definitions/{id}/runs", self.base)).json(body)).await?.1)
    }
}

impl ApiClient {
    /// `POST path` with a JSON body.
    pub async fn post(&self, path: &str, body: &Value) -> anyhow::Result<Value> {
        Ok(self.send(self.http.post(format!("{}{path}", self.base)).json(body)).await?.1)
    }

    /// `POST /api/v1/events`.
    pub async fn send_events(&self, body: &Value) -> anyhow::Result<Value> {
        Ok(self.send(self.http.post(format!("{}/api/v1/events", self.base)).json(body)).await?.1)
    }
}

/// The definition files at `path`: the file itself, or a directory's `*.yaml|*.yml|*.json`, sorted.
pub fn definition_files(path: &Path) -> anyhow::Result<Vec<PathBuf>> {
    if path.is_file() {
        return Ok(vec![path.to_owned()]);
    }
    let mut files: Vec<PathBuf> = std::fs::read_dir(path)
        .with_context(|| format!("reading {}", path.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| matches!(p.extension().and_then(|e| e.to_str()), Some("yaml" | "yml" | "json")))
        .collect();
    files.sort();
    if files.is_empty() {
        bail!("no definition files (*.yaml, *.yml, *.json) in {}", path.display());
    }
    Ok(files)
}

/// Whether a definition file is YAML (by extension).
pub fn is_yaml(path: &Path) -> bool {
    matches!(path.extension().and_then(|e| e.to_str()), Some("yaml" | "yml"))
}

/// Reads `@file` or literal JSON.
pub fn json_arg(raw: &str) -> anyhow::Result<Value> {
    let text = match raw.strip_prefix('@') {
        Some(file) => std::fs::read_to_string(file).with_context(|| format!("reading {file}"))?,
        None => raw.to_owned(),
    };
    serde_json::from_str(&text).with_context(|| format!("invalid JSON in {raw:?}"))
}
