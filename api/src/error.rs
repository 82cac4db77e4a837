//! One error type for every handler.
//!
//! Clients get a stable `code`, a message and, for validation failures, one detail per field.
//! Unexpected errors are logged with their cause and answered with a generic 500, so internals
//! never leak into responses.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use schemars::JsonSchema;
use serde::Serialize;
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
    /// A part of the request is over its size limit (413); the message names the limit.
    #[error("{0}")]
    TooLarge(String),
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

/// The body of every error answer: `{"error": {"code", "message", "details"}}`.
#[derive(Debug, Serialize, JsonSchema)]
#[schemars(rename = "Error")]
pub struct ErrorBody {
    /// What went wrong.
    pub error: ErrorDetail,
}

/// The inside of the error envelope.
#[derive(Debug, Serialize, JsonSchema)]
pub struct ErrorDetail {
    /// Stable, machine-readable: `invalid`, `bad_request`, `unauthorized`, `forbidden`,
    /// `not_found`, `method_not_allowed`, `payload_too_large`, `timeout`, `rate_limited`,
    /// `unavailable`, `internal`, or a conflict's own code (`already_decided`,
    /// `definition_disabled`, `not_cron`).
    pub code: String,
    /// For people.
    pub message: String,
    /// For validation failures (`invalid`): one entry per problem, with the field's path.
    pub details: Vec<FieldError>,
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
            // The boundary checks name the field first; this catches what they do not know.
            StoreError::Unstorable(why) => {
                Self::field("", format!("the request holds a character that cannot be stored (such as U+0000): {why}"))
            }
            other => Self::Internal(anyhow::Error::new(other)),
        }
    }
}

impl ApiError {
    /// Status, code, message and details as answered; internal causes are logged here and
    /// replaced by a generic message, so they never reach a client.
    fn parts(self) -> (StatusCode, &'static str, String, Vec<FieldError>) {
        match self {
            Self::Invalid(errors) => {
                let summary = errors.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ");
                (StatusCode::UNPROCESSABLE_ENTITY, "invalid", summary, errors)
            }
            Self::BadRequest(m) => (StatusCode::BAD_REQUEST, "bad_request", m, vec![]),
            Self::Unauthorized(m) => (StatusCode::UNAUTHORIZED, "unauthorized", m, vec![]),
            Self::Forbidden(m) => (StatusCode::FORBIDDEN, "forbidden", m, vec![]),
            Self::NotFound(what) => (StatusCode::NOT_FOUND, "not_found", format!("{what} not found"), vec![]),
            Self::Conflict { code, message } => (StatusCode::CONFLICT, code, message, vec![]),
            Self::TooLarge(m) => (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large", m, vec![]),
            Self::TooManyRequests { message, .. } => (StatusCode::TOO_MANY_REQUESTS, "rate_limited", message, vec![]),
            Self::Unavailable(m) => {
                tracing::warn!(error = %m, "dependency unavailable");
                (StatusCode::SERVICE_UNAVAILABLE, "unavailable", m, vec![])
            }
            Self::Internal(cause) => {
                tracing::error!(error = ?cause, "internal error");
                (StatusCode::INTERNAL_SERVER_ERROR, "internal", "internal error".to_owned(), vec![])
            }
        }
    }

    /// The message a client would read in the error envelope (for answers that report one
    /// error per item, such as the fleet operations).
    pub fn public_message(self) -> String {
        self.parts().2
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let retry_after = match &self {
            Self::TooManyRequests { retry_after, .. } => Some(*retry_after),
            _ => None,
        };
        let (status, code, message, details) = self.parts();
        let body = error_body(code, message, details);
        match retry_after {
            Some(seconds) => (status, [("retry-after", seconds.to_string())], body).into_response(),
            None => (status, body).into_response(),
        }
    }
}

fn error_body(code: &str, message: String, details: Vec<FieldError>) -> Json<ErrorBody> {
    Json(ErrorBody { error: ErrorDetail { code: code.to_owned(), message, details } })
}
