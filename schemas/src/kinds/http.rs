//! `http`: sends a request (the `http_request` activity, `taskfactory_activities::kinds::http`):
//! 2xx completes, 4xx fails at once, 5xx and timeouts are retried (5 attempts by default). The
//! url, headers and body are templates and may use secrets.

use std::collections::BTreeMap;

use super::{Common, Problems, TaskSpec, required};
use crate::definition::{TaskKind, TaskTemplate};
use crate::template::{Scope, SecretUse, Templates};

/// The fields an http task reads.
pub const FIELDS: &[&str] = &["method", "url", "headers", "body", "timeout", "retry"];

/// The methods a task may send.
const METHODS: [&str; 6] = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"];

/// `url` is required; the url, headers and body compile (secrets allowed: they reach only the
/// request); the method is one we send.
pub(crate) fn validate(t: &TaskTemplate, templates: &Templates, problems: &mut Problems) {
    problems.require(TaskKind::Http, "url", &t.url);
    if let Some(url) = &t.url {
        problems.check("url", templates.check_field(url, SecretUse::Allowed));
    }
    for (name, value) in &t.headers {
        problems.check(format!("headers.{name}"), templates.check_field(value, SecretUse::Allowed));
    }
    if let Some(body) = &t.body {
        problems.check("body", templates.check_value_field(body, SecretUse::Allowed));
    }
    if let Some(method) = &t.method
        && !METHODS.contains(&method.to_ascii_uppercase().as_str())
    {
        problems.push("method", format!("{method:?} is not one of {}", METHODS.join(", ")));
    }
}

/// The spec: url, headers and body rendered.
pub(crate) fn spec(
    t: &TaskTemplate,
    templates: &Templates,
    scope: &Scope,
    common: &Common,
) -> Result<TaskSpec, (String, String)> {
    let field = |name: &str| {
        let name = name.to_owned();
        move |m| (name, m)
    };
    let url = templates.render_text(&required("url", &t.url)?, scope).map_err(field("url"))?;
    let mut headers = BTreeMap::new();
    for (name, value) in &t.headers {
        headers.insert(name.clone(), templates.render_text(value, scope).map_err(field(&format!("headers.{name}")))?);
    }
    let body = t.body.as_ref().map(|b| templates.render_value(b, scope)).transpose().map_err(field("body"))?;
    Ok(TaskSpec::Http {
        method: t.method.as_deref().unwrap_or("GET").to_ascii_uppercase(),
        url,
        headers,
        body,
        timeout_secs: common.timeout_secs,
        retry: Some(Common::retry_or_default(t, 5)?),
    })
}
