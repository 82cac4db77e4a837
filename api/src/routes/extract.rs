//! The pieces of a request that several route modules read, checked in one place: the path
//! segments of the definition and run routes, version numbers, numeric query parameters and
//! the definition selector. Every error names the parameter at fault. (Bodies are parsed by
//! [`super::json_body`].)

use serde::Deserialize;
use taskfactory_activities::store::DefinitionFilter;
use taskfactory_schemas::DefinitionId;
use taskfactory_schemas::validate::tag_errors;
use utoipa::IntoParams;

use crate::error::ApiError;

/// The `{id}` of the definition routes.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct IdPath {
    /// The definition's id, a slug of `[a-z0-9-]`.
    pub id: String,
}

/// Checks the `{id}` of a URL.
pub fn path_id(raw: &str) -> Result<DefinitionId, ApiError> {
    DefinitionId::parse(raw).map_err(|m| ApiError::field("id", format!("{raw:?} is not a valid definition id: {m}")))
}

/// The `{workflow_id}` of the run routes.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct RunPath {
    /// The run's workflow id, e.g. `tf:hello:manual:<uuid>` (URL-encoded).
    pub workflow_id: String,
}

/// Checks a version number (1, 2, ...) given as `field`.
pub fn parse_version(field: &str, raw: &str) -> Result<i32, ApiError> {
    raw.parse::<i32>()
        .ok()
        .filter(|v| *v > 0)
        .ok_or_else(|| ApiError::field(field, format!("{raw:?} is not a version number (1, 2, ...)")))
}

/// The required `from` version of the diff routes.
pub fn from_version(raw: Option<&str>) -> Result<i32, ApiError> {
    parse_version("from", raw.ok_or_else(|| ApiError::field("from", "required"))?)
}

/// Parses an optional numeric query parameter within `range`; errors name the parameter.
pub fn query_number(
    field: &str,
    raw: &Option<String>,
    range: std::ops::RangeInclusive<i64>,
) -> Result<Option<i64>, ApiError> {
    raw.as_deref()
        .map(|v| {
            v.parse::<i64>().ok().filter(|n| range.contains(n)).ok_or_else(|| {
                ApiError::field(field, format!("{v:?} is not a number from {} to {}", range.start(), range.end()))
            })
        })
        .transpose()
}

/// Longest `search` text accepted.
pub const MAX_SEARCH_LEN: usize = 200;

/// Checks a selector of definitions: each tag valid (errors at `{tags_field}[i]`), the search
/// text at most [`MAX_SEARCH_LEN`] characters (blank means none). Shared by the list's query
/// and the fleet operations' bodies.
pub fn definition_filter(
    tags_field: &str,
    tags: Vec<String>,
    search: Option<String>,
) -> Result<DefinitionFilter, ApiError> {
    let mut errors = tag_errors(tags_field, &tags);
    let search = search.map(|s| s.trim().to_owned()).filter(|s| !s.is_empty());
    if search.as_ref().is_some_and(|s| s.chars().count() > MAX_SEARCH_LEN) {
        errors.push(taskfactory_schemas::FieldError {
            path: "search".into(),
            message: format!("at most {MAX_SEARCH_LEN} characters"),
        });
    }
    if errors.is_empty() { Ok(DefinitionFilter { tags, search }) } else { Err(ApiError::Invalid(errors)) }
}
