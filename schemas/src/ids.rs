//! Identifiers and the workflow-id scheme (ADR-002).
//!
//! Workflow ids are the idempotency keys of the whole system, so they are built in exactly one
//! place: here.

use std::fmt;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Longest definition id we accept; keeps workflow ids well under Temporal's limits.
pub const MAX_DEFINITION_ID_LEN: usize = 63;

/// A definition's id: a slug of `[a-z0-9-]`, starting with a letter or digit.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema)]
#[serde(try_from = "String", into = "String")]
pub struct DefinitionId(String);

impl DefinitionId {
    /// Parses a slug, explaining what is wrong with it when it is not one.
    pub fn parse(raw: &str) -> Result<Self, String> {
        check_slug(raw, MAX_DEFINITION_ID_LEN, false).map(|()| Self(raw.to_owned()))
    }

    /// The slug as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for DefinitionId {
    type Error = String;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        check_slug(&value, MAX_DEFINITION_ID_LEN, false).map(|()| Self(value))
    }
}

impl From<DefinitionId> for String {
    fn from(value: DefinitionId) -> Self {
        value.0
    }
}

impl fmt::Display for DefinitionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Checks a slug: lowercase letters, digits, `-` (and `_` when `allow_underscore`).
pub fn check_slug(raw: &str, max_len: usize, allow_underscore: bool) -> Result<(), String> {
    if raw.is_empty() {
        return Err("must not be empty".into());
    }
    if raw.len() > max_len {
        return Err(format!("must be at most {max_len} characters, got {}", raw.len()));
    }
    let ok_char = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || (allow_underscore && c == '_');
    if let Some(bad) = raw.chars().find(|c| !ok_char(*c)) {
        let allowed = if allow_underscore { "[a-z0-9_-]" } else { "[a-z0-9-]" };
        return Err(format!("invalid character {bad:?}: use {allowed}"));
    }
    if !raw.starts_with(|c: char| c.is_ascii_alphanumeric()) {
        return Err("must start with a letter or a digit".into());
    }
    Ok(())
}

/// Longest workflow id taskfactory creates: Temporal's limit (`limit.maxIDLength`) on clusters
/// with SQL visibility, as `temporal-config/` sets it. Longer ids are refused up front, with
/// the field that made them long, instead of failing at start on a real cluster.
pub const MAX_WORKFLOW_ID_LEN: usize = 255;

/// Checks a workflow id against [`MAX_WORKFLOW_ID_LEN`].
pub fn check_workflow_id_len(workflow_id: &str) -> Result<(), String> {
    if workflow_id.len() > MAX_WORKFLOW_ID_LEN {
        return Err(format!(
            "makes the workflow id {} characters long ({MAX_WORKFLOW_ID_LEN} at most): use a shorter key",
            workflow_id.len()
        ));
    }
    Ok(())
}

/// Workflow id of a scheduled run's action; Temporal appends the scheduled time.
pub fn schedule_workflow_id(definition: &DefinitionId) -> String {
    format!("tf:{definition}:schedule")
}

/// Id of the Temporal Schedule that fires a cron definition.
pub fn schedule_id(definition: &DefinitionId) -> String {
    format!("tf:{definition}")
}

/// Workflow id of an event-triggered run: the dedupe key makes it idempotent.
pub fn event_workflow_id(definition: &DefinitionId, dedupe_key: &str) -> String {
    format!("tf:{definition}:event:{}", escape_key(dedupe_key))
}

/// Workflow id of a manual run; `key` is the caller's idempotency key or a fresh uuid.
pub fn manual_workflow_id(definition: &DefinitionId, key: &str) -> String {
    format!("tf:{definition}:manual:{}", escape_key(key))
}

/// Workflow id of one task: `{run_workflow_id}/{template_id}/{item_key}`.
///
/// Deterministic in the run's id and the plan, so replays and resets never duplicate a task.
pub fn task_workflow_id(run_workflow_id: &str, template_id: &str, item_key: &str) -> String {
    format!("{run_workflow_id}/{template_id}/{}", escape_key(item_key))
}

/// Escapes `%` and `/` in a caller-chosen key so it stays one segment of a workflow id.
pub fn escape_key(key: &str) -> String {
    key.replace('%', "%25").replace('/', "%2F")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs() {
        assert!(DefinitionId::parse("overdue-invoices").is_ok());
        assert!(DefinitionId::parse("9am").is_ok());
        assert_eq!(DefinitionId::parse("").unwrap_err(), "must not be empty");
        assert!(DefinitionId::parse("Bad").unwrap_err().contains("'B'"));
        assert!(DefinitionId::parse("-x").unwrap_err().contains("start"));
        assert!(DefinitionId::parse(&"a".repeat(64)).is_err());
    }

    #[test]
    fn task_ids_are_one_segment_per_key() {
        let run = manual_workflow_id(&DefinitionId::parse("d").unwrap(), "k");
        assert_eq!(run, "tf:d:manual:k");
        assert_eq!(task_workflow_id(&run, "t", "src/a%b.rs"), "tf:d:manual:k/t/src%2Fa%25b.rs");
    }
}
