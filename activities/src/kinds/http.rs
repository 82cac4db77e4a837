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

use reqwest::header::{HeaderMap, HeaderName, HeaderValue};

use crate::egress::{self, Egress, EgressError, Outgoing};
use crate::failure::permanent;
use crate::secrets::{Revealed, SecretStore};

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
    egress: &Egress,
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

/// Request headers from names and (revealed) values; a malformed one is a permanent error.
pub fn header_map<'a>(headers: impl IntoIterator<Item = (&'a String, String)>) -> Result<HeaderMap, String> {
    let mut map = HeaderMap::new();
    for (name, value) in headers {
        let header = HeaderName::from_bytes(name.as_bytes()).map_err(|_| format!("invalid header name {name:?}"))?;
        let value = HeaderValue::from_str(&value)
            .map_err(|_| format!("header {name}: the value is not a valid header value"))?;
        map.append(header, value);
    }
    Ok(map)
}

async fn exchange(
    shared: &reqwest::Client,
    egress: &Egress,
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
    let mut headers = Vec::with_capacity(input.headers.len());
    for (name, value) in &input.headers {
        headers.push((name, revealed.reveal(secrets, value).map_err(Failure::Permanent)?));
    }
    let headers = header_map(headers).map_err(Failure::Permanent)?;
    let body =
        input.body.as_ref().map(|b| revealed.reveal_value(secrets, b)).transpose().map_err(Failure::Permanent)?;
    let request = Outgoing { method, url, headers, body, timeout };
    let response = egress::send(shared, egress, request).await.map_err(|e| match e {
        EgressError::Refused(m) => Failure::Permanent(m),
        EgressError::Transport(m) => Failure::Retryable(m),
    })?;
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
