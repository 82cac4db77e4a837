//! `human`: records a human task and waits for a person to complete or reject it through the
//! API (the `human_decision` signal), or for the timeout. Never retried.

use super::{Common, Problems, TaskSpec, required};
use crate::definition::{TaskKind, TaskTemplate};
use crate::template::{Scope, SecretUse, Templates};

/// The fields a human task reads.
pub const FIELDS: &[&str] = &["title", "assignee", "timeout"];

/// `title` is required and may not use secrets (it is stored and shown).
pub(crate) fn validate(t: &TaskTemplate, templates: &Templates, problems: &mut Problems) {
    problems.require(TaskKind::Human, "title", &t.title);
    if let Some(title) = &t.title {
        problems.check("title", templates.check_field(title, SecretUse::Refused));
    }
}

/// The spec: the title rendered.
pub(crate) fn spec(
    t: &TaskTemplate,
    templates: &Templates,
    scope: &Scope,
    common: &Common,
) -> Result<TaskSpec, (String, String)> {
    Ok(TaskSpec::Human {
        title: templates.render_text(&required("title", &t.title)?, scope).map_err(|m| ("title".to_owned(), m))?,
        assignee: t.assignee.clone(),
        timeout_secs: common.timeout_secs,
    })
}
