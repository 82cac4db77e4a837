//! Between the plan's types and the SDK's: retry policies and result payloads.

use serde_json::Value;
use taskfactory_schemas::plan::Retry;
use temporalio_common::RetryPolicy;
use temporalio_common::protos::temporal::api::common::v1::Payload;

/// A task's retry policy as Temporal's.
pub(crate) fn retry_policy(retry: &Retry) -> RetryPolicy {
    RetryPolicy::builder()
        .initial_interval(std::time::Duration::from_millis(retry.initial_interval_ms))
        .backoff_coefficient(retry.backoff)
        .maximum_interval(std::time::Duration::from_millis(retry.max_interval_ms))
        .maximum_attempts(retry.max_attempts)
        .build()
}

/// The JSON value of a workflow or activity result; non-JSON payloads are described, never
/// decoded blindly.
pub(crate) fn json_of(payloads: &[Payload]) -> Value {
    let Some(payload) = payloads.first() else { return Value::Null };
    let encoding =
        payload.metadata.get("encoding").map(|e| String::from_utf8_lossy(e).into_owned()).unwrap_or_default();
    match encoding.as_str() {
        "json/plain" => serde_json::from_slice(&payload.data).unwrap_or(Value::Null),
        "binary/null" | "" if payload.data.is_empty() => Value::Null,
        other => serde_json::json!({"encoding": other, "bytes": payload.data.len()}),
    }
}
