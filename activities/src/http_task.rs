//! The request of an `http` task.
//!
//! 2xx: the output is `{status, body}` (the body parsed as JSON when it is JSON, else text,
//! capped at [`MAX_BODY`] bytes). 4xx: a non-retryable failure (the request is wrong; sending
//! it again cannot help). 5xx, timeouts and connection errors: a retryable failure, so the
//! template's retry policy applies.
//!
//! Secrets (`⟦secret:NAME⟧` placeholders in the planned request) are revealed for the request
//! only; the output and the error messages come back with the values redacted.

use std::time::Duration;

use serde_json::{Value, json};
use taskfactory_schemas::run::HttpRequestInput;
use temporalio_sdk::activities::ActivityError;

use crate::egress::Egress;
use crate::secrets::{Revealed, SecretStore};
use crate::worker_activities::permanent;

/// Largest response body kept as the task's output.
pub const MAX_BODY: usize = 64 * 1024;

fn capped_body(bytes: &[u8]) -> Value {
    if bytes.len() <= MAX_BODY
        && let Ok(json) = serde_json::from_slice::<Value>(bytes)
    {
        return json;
    }
    let text = String::from_utf8_lossy(&bytes[..bytes.len().min(MAX_BODY)]).into_owned();
    if bytes.len() > MAX_BODY {
        json!({"truncated": true, "bytes": bytes.len(), "text": text})
    } else {
        Value::String(text)
    }
}

/// Why a request did not succeed.
enum Failure {
    /// Sending it again cannot help.
    Permanent(String),
    /// Retried under the template's policy.
    Retryable(String),
}

/// Sends the request and classifies the answer. Secret placeholders in the url, headers and
/// body are revealed for the request only; the output and errors come back redacted.
pub async fn send(
    shared: &reqwest::Client,
    egress: Egress,
    secrets: &SecretStore,
    input: &HttpRequestInput,
) -> Result<Value, ActivityError> {
    let mut revealed = Revealed::default();
    match exchange(shared, egress, secrets, &mut revealed, input).await {
        Ok(output) => Ok(revealed.redact_value(output)),
        Err(Failure::Permanent(message)) => Err(permanent(revealed.redact(&message))),
        Err(Failure::Retryable(message)) => Err(anyhow::anyhow!(revealed.redact(&message)).into()),
    }
}

async fn exchange(
    shared: &reqwest::Client,
    egress: Egress,
    secrets: &SecretStore,
    revealed: &mut Revealed,
    input: &HttpRequestInput,
) -> Result<Value, Failure> {
    let method = reqwest::Method::from_bytes(input.method.as_bytes())
        .map_err(|_| Failure::Permanent(format!("invalid method {:?}", input.method)))?;
    let raw_url = revealed.reveal(secrets, &input.url).map_err(Failure::Permanent)?;
    let url =
        reqwest::Url::parse(&raw_url).map_err(|e| Failure::Permanent(format!("invalid url {:?}: {e}", input.url)))?;
    let timeout = Duration::from_secs(input.timeout_secs.max(1));
    let client = crate::egress::client_for(shared, &url, egress, timeout).await.map_err(Failure::Permanent)?;
    let mut request = client.request(method, url).timeout(timeout);
    for (name, value) in &input.headers {
        request = request.header(name, revealed.reveal(secrets, value).map_err(Failure::Permanent)?);
    }
    if let Some(body) = &input.body {
        request = request.json(&revealed.reveal_value(secrets, body).map_err(Failure::Permanent)?);
    }
    let response =
        request.send().await.map_err(|e| Failure::Retryable(format!("request to {} failed: {e}", input.url)))?;
    let status = response.status();
    let bytes = response
        .bytes()
        .await
        .map_err(|e| Failure::Retryable(format!("reading the response of {} failed: {e}", input.url)))?;
    let body = capped_body(&bytes);
    if status.is_success() {
        return Ok(json!({"status": status.as_u16(), "body": body}));
    }
    let excerpt: String = String::from_utf8_lossy(&bytes).chars().take(200).collect();
    let message = format!("HTTP {status} from {}: {excerpt}", input.url);
    Err(if status.is_client_error() { Failure::Permanent(message) } else { Failure::Retryable(message) })
}
