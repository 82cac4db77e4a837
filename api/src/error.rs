//! One error type for every handler.
//!
//! Clients get a stable `code`, a message and, for validation failures, one detail per field.
//! Unexpected errors are logged with their cause and answered with a generic 500, so internals
//! never leak into responses.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;
use taskfactory_activities::StoreError;
use taskfactory_schemas::{FieldError, ValidationErrors};

/// An error answer.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The request is malformed or fails validation (422).
    #[error("validation failed")]
    Invalid(Vec<FieldError>),
    /// The body cannot be parsed at all (400).
    #[error("{0}")]
    BadRequest(String),
    /// No valid API key (401).
    #[error("{0}")]
    Unauthorized(String),
    /// The key's role does not allow the call (403).
    #[error("{0}")]
    Forbidden(String),
    /// The thing named does not exist (404).
    #[error("{0} not found")]
    NotFound(String),
    /// The request conflicts with the current state (409).
    #[error("{message}")]
    Conflict {
        /// Stable machine-readable code.
        code: &'static str,
        /// Explanation.
        message: String,
    },
    /// Too many requests for this key (429); retry after the given seconds.
    #[error("{message}")]
    TooManyRequests {
        /// Explanation.
        message: String,
        /// Seconds to wait.
        retry_after: u64,
    },
    /// A dependency (Temporal, Postgres) is unavailable (503).
    #[error("{0}")]
    Unavailable(String),
    /// Anything unexpected (500); the cause is logged, not returned.
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl ApiError {
    /// A single-field validation error.
    pub fn field(path: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Invalid(vec![FieldError { path: path.into(), message: message.into() }])
    }
}

impl From<ValidationErrors> for ApiError {
    fn from(e: ValidationErrors) -> Self {
        Self::Invalid(e.errors)
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound(what) => Self::NotFound(what),
            other => Self::Internal(anyhow::Error::new(other)),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if let Self::TooManyRequests { message, retry_after } = &self {
            let body = Json(json!({"error": {"code": "rate_limited", "message": message, "details": []}}));
            return (StatusCode::TOO_MANY_REQUESTS, [("retry-after", retry_after.to_string())], body).into_response();
        }
        let (status, code, message, details) = match &self {
            Self::Invalid(errors) => {
                let summary = errors.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ");
                (StatusCode::UNPROCESSABLE_ENTITY, "invalid", summary, serde_json::to_value(errors).unwrap_or_default())
            }
            Self::BadRequest(m) => (StatusCode::BAD_REQUEST, "bad_request", m.clone(), json!([])),
            Self::Unauthorized(m) => (StatusCode::UNAUTHORIZED, "unauthorized", m.clone(), json!([])),
            Self::Forbidden(m) => (StatusCode::FORBIDDEN, "forbidden", m.clone(), json!([])),
            Self::NotFound(_) => (StatusCode::NOT_FOUND, "not_found", self.to_string(), json!([])),
            Self::Conflict { code, message } => (StatusCode::CONFLICT, *code, message.clone(), json!([])),
            Self::Unavailable(m) => {
                tracing::warn!(error = %m, "dependency unavailable");
                (StatusCode::SERVICE_UNAVAILABLE, "unavailable", m.clone(), json!([]))
            }
            Self::TooManyRequests { .. } => unreachable!("answered above"),
            Self::Internal(cause) => {
                tracing::error!(error = ?cause, "internal error");
                (StatusCode::INTERNAL_SERVER_ERROR, "internal", "internal error".to_owned(), json!([]))
            }
        };
        (status, Json(json!({"error": {"code": code, "message": message, "details": details}}))).into_response()
    }
}
