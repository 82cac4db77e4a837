//! What every request and every error answer goes through, whatever the route.
//!
//! - [`refuse_control_characters`]: a URL whose path or query holds a control character
//!   (`%00`, `%1B`, ...) is refused with 422 before any handler runs, naming the query
//!   parameter. Ids, keys and filters never hold them, and Postgres cannot store U+0000.
//! - [`error_envelope`]: an error answer that is not already the JSON envelope (axum's own
//!   rejections of a malformed query or path, an unknown route, a wrong method, a body over
//!   the limit, a timeout) is rewritten as `{"error": {code, message, details}}`, so clients
//!   parse one shape for every 4xx and 5xx.

use axum::body::Body;
use axum::extract::Request;
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use taskfactory_schemas::FieldError;

use crate::error::ApiError;

/// Percent-decodes `raw` (and `+` as a space in queries), lossily as UTF-8.
fn percent_decode(raw: &str, plus_is_space: bool) -> String {
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push((h * 16 + l) as u8);
                    i += 3;
                    continue;
                }
                _ => out.push(b'%'),
            },
            b'+' if plus_is_space => out.push(b' '),
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn control_char(text: &str) -> Option<char> {
    text.chars().find(|c| c.is_control())
}

/// The problems of a URL: control characters in the path or in a query parameter.
fn url_problems(path: &str, query: Option<&str>) -> Vec<FieldError> {
    let describe =
        |c: char| format!("has the control character U+{:04X}, which no id, key or filter holds", u32::from(c));
    let mut problems = Vec::new();
    if let Some(c) = control_char(&percent_decode(path, false)) {
        problems.push(FieldError { path: "(url path)".into(), message: describe(c) });
    }
    for pair in query.unwrap_or_default().split('&').filter(|p| !p.is_empty()) {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        let name = percent_decode(name, true);
        if let Some(c) = control_char(&name) {
            problems.push(FieldError { path: "(query)".into(), message: format!("a parameter name {}", describe(c)) });
        } else if let Some(c) = control_char(&percent_decode(value, true)) {
            problems.push(FieldError { path: name, message: describe(c) });
        }
    }
    problems
}

/// Refuses a request whose URL holds control characters (422, naming the parameter).
pub async fn refuse_control_characters(request: Request, next: Next) -> Response {
    let problems = url_problems(request.uri().path(), request.uri().query());
    if problems.is_empty() { next.run(request).await } else { ApiError::Invalid(problems).into_response() }
}

/// The envelope's `code` for a status no handler chose.
fn code_for(status: StatusCode) -> &'static str {
    match status {
        StatusCode::BAD_REQUEST => "bad_request",
        StatusCode::UNAUTHORIZED => "unauthorized",
        StatusCode::FORBIDDEN => "forbidden",
        StatusCode::NOT_FOUND => "not_found",
        StatusCode::METHOD_NOT_ALLOWED => "method_not_allowed",
        StatusCode::REQUEST_TIMEOUT => "timeout",
        StatusCode::CONFLICT => "conflict",
        StatusCode::PAYLOAD_TOO_LARGE => "payload_too_large",
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_media_type",
        StatusCode::UNPROCESSABLE_ENTITY => "invalid",
        StatusCode::TOO_MANY_REQUESTS => "rate_limited",
        StatusCode::SERVICE_UNAVAILABLE => "unavailable",
        s if s.is_server_error() => "internal",
        _ => "error",
    }
}

/// Most bytes of a non-envelope error body kept as the message.
const MAX_MESSAGE: usize = 1024;

/// Rewrites an error answer without the JSON envelope into one (headers such as `allow` and
/// `retry-after` are kept).
pub async fn error_envelope(request: Request, next: Next) -> Response {
    let response = next.run(request).await;
    let status = response.status();
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let text = axum::body::to_bytes(body, MAX_MESSAGE * 4)
        .await
        .map(|b| String::from_utf8_lossy(&b).trim().to_owned())
        .unwrap_or_default();
    let message = match text.chars().take(MAX_MESSAGE).collect::<String>() {
        m if m.is_empty() => status.canonical_reason().unwrap_or("error").to_lowercase(),
        m => m,
    };
    if status.is_server_error() {
        tracing::error!(status = status.as_u16(), error = %message, "error answer without the envelope");
    }
    let body = serde_json::json!({"error": {"code": code_for(status), "message": message, "details": []}});
    parts.headers.insert(header::CONTENT_TYPE, header::HeaderValue::from_static("application/json"));
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(parts, Body::from(body.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_in_urls_are_found_and_named() {
        assert!(url_problems("/api/v1/runs/tf:a:manual:x", Some("limit=10&after=3")).is_empty());
        assert!(url_problems("/api/v1/definitions", Some("search=a+b%20c&tag=")).is_empty());
        let problems = url_problems("/api/v1/runs/%00", Some("definition_id=a%1Fb&x"));
        let paths: Vec<&str> = problems.iter().map(|p| p.path.as_str()).collect();
        assert_eq!(paths, ["(url path)", "definition_id"]);
        assert_eq!(percent_decode("%zz%4", false), "%zz%4", "malformed escapes stay as they are");
    }
}
