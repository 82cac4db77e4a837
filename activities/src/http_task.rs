//! The request of an `http` task.
//!
//! 2xx: the output is `{status, body}` (the body parsed as JSON when it is JSON, else text,
//! capped at [`MAX_BODY`] bytes). 4xx: a non-retryable failure (the request is wrong; sending
//! it again cannot help). 5xx, timeouts and connection errors: a retryable failure, so the
//! template's retry policy applies.

use std::time::Duration;

use serde_json::{Value, json};
use taskfactory_schemas::run::HttpRequestInput;
use temporalio_sdk::activities::ActivityError;

use crate::egress::Egress;
use crate::worker_activities::permanent;

/// Largest response body kept as the task's output.
pub const MAX_BODY: usize = 64 * 1024;

fn capped_body(bytes: &[u8]) -> Value {
    if bytes.len() <= MAX_BODY
        && let Ok(json) = serde_json::from_slice::<Value>(bytes) {
            return json;
        }
    let text = String::from_utf8_lossy(&bytes[..bytes.len().min(MAX_BODY)]).into_owned();
    if bytes.len() > MAX_BODY { json!({"truncated": true, "bytes": bytes.len(), "text": text}) } else { Value::String(text) }
}

/// Sends the request and classifies the answer.
pub async fn send(shared: &reqwest::Client, egress: Egress, input: &HttpRequestInput) -> Result<Value, ActivityError> {
    let method = reqwest::Method::from_bytes(input.method.as_bytes()).map_err(|_| permanent(format!("invalid method {:?}", input.method)))?;
    let url = reqwest::Url::parse(&input.url).map_err(|e| permanent(format!("invalid url {:?}: {e}", input.url)))?;
    let client = crate::egress::client_for(shared, &url, egress, Duration::from_secs(input.timeout_secs.max(1))).await.map_err(permanent)?;
    let mut request = client.request(method, url).timeout(Duration::from_secs(input.timeout_secs.max(1)));
    for (name, value) in &input.headers {
        request = request.header(name, value);
    }
    if let Some(body) = &input.body {
        request = request.json(body);
    }
    let response = match request.send().await {
        Ok(response) => response,
        Err(e) => return Err(anyhow::anyhow!("request to {} failed: {e}", input.url).into()),
    };
    let status = response.status();
    let bytes = response.bytes().await.map_err(|e| anyhow::anyhow!("reading the response of {} failed: {e}", input.url))?;
    let body = capped_body(&bytes);
    if status.is_success() {
        return Ok(json!({"status": status.as_u16(), "body": body}));
    }
    let excerpt: String = String::from_utf8_lossy(&bytes).chars().take(200).collect();
    let message = format!("HTTP {status} from {}: {excerpt}", input.url);
    if status.is_client_error() { Err(permanent(message)) } else { Err(anyhow::anyhow!(message).into()) }
}
