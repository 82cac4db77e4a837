//! The HTTP client behind the client commands: requests with the API key, answers decoded
//! into the API's own response types, errors rendered from the API's error envelope.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use reqwest::StatusCode;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use taskfactory_api::answers::SaveAnswer;

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

    async fn send<T: DeserializeOwned>(&self, what: &str, request: reqwest::RequestBuilder) -> anyhow::Result<T> {
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
        if status == StatusCode::UNAUTHORIZED && self.key.is_none() {
            bail!("the API needs a key: pass --api-key or set TASKFACTORY_API_KEY (`taskfactory dev` prints one)");
        }
        if !status.is_success() {
            let body =
                if text.is_empty() { Value::Null } else { serde_json::from_str(&text).unwrap_or(Value::String(text)) };
            bail!("{}", describe_error(status, &body));
        }
        // The API's own answer types: a field it renamed fails here, loudly, instead of
        // printing blanks.
        let text = if text.is_empty() { "null" } else { text.as_str() };
        serde_json::from_str(text).with_context(|| format!("the API's answer to {what} is not what this CLI expects"))
    }

    /// `GET path`, decoded as `T`.
    pub async fn get<T: DeserializeOwned>(&self, path: &str) -> anyhow::Result<T> {
        self.send(&format!("GET {path}"), self.http.get(format!("{}{path}", self.base))).await
    }

    /// `POST path` with a JSON body, the answer decoded as `T`.
    pub async fn post<T: DeserializeOwned>(&self, path: &str, body: &impl Serialize) -> anyhow::Result<T> {
        self.send(&format!("POST {path}"), self.http.post(format!("{}{path}", self.base)).json(body)).await
    }

    /// `PUT` of a definition file (JSON or YAML by extension).
    pub async fn put_definition(&self, id: &str, text: String, yaml: bool) -> anyhow::Result<SaveAnswer> {
        let content_type = if yaml { "application/yaml" } else { "application/json" };
        let path = format!("/api/v1/definitions/{id}");
        let request = self.http.put(format!("{}{path}", self.base)).header("content-type", content_type).body(text);
        self.send(&format!("PUT {path}"), request).await
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
