//! Notifications: a definition's `notify` entries (webhooks told when a run fails, recovers,
//! has failed tasks, or a cron slot passes without a run), their validation, and the wire types
//! of the activities that deliver them.
//!
//! ```yaml
//! notify:
//!   - on: [run_failed, run_recovered, task_failed, schedule_silent]
//!     webhook: {url: "https://...", headers: {Authorization: "Bearer {{ secret.HOOK_TOKEN }}"}, format: json}
//! ```
//!
//! `on` holds strings, not an enum, so an unknown kind is reported with its index and the list
//! of kinds (`notify[0].on[1]: unknown kind "x"; one of ...`) rather than serde's wording.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::definition::TriggerKind;
use crate::template::{SECRET_OPEN, SecretUse, Templates};

/// What a notification is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum NotifyKind {
    /// The run ended failed.
    RunFailed,
    /// The run completed and the previous ended run of the definition (by start time) failed.
    RunRecovered,
    /// The run had at least one failed task (one notification per run, listing them).
    TaskFailed,
    /// A cron slot passed without a run (cron definitions only).
    ScheduleSilent,
}

impl NotifyKind {
    /// Every kind, in the order documents list them.
    pub const ALL: [Self; 4] = [Self::RunFailed, Self::RunRecovered, Self::TaskFailed, Self::ScheduleSilent];

    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::RunFailed => "run_failed",
            Self::RunRecovered => "run_recovered",
            Self::TaskFailed => "task_failed",
            Self::ScheduleSilent => "schedule_silent",
        }
    }

    /// The kind with this wire name.
    pub fn parse(raw: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == raw)
    }
}

/// The body a webhook receives.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum WebhookFormat {
    /// The notification as a JSON object (see [`NotificationEvent`]).
    #[default]
    Json,
    /// A Slack incoming-webhook message (`{"text", "blocks"}`) linking to the run.
    Slack,
}

impl WebhookFormat {
    /// Whether this is the default (`json`), which documents leave out.
    pub fn is_default(&self) -> bool {
        *self == Self::Json
    }
}

/// Where a notification is POSTed.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Webhook {
    /// An `http` or `https` URL; may be (or contain) `{{ secret.NAME }}` (a Slack webhook URL
    /// is itself a secret).
    pub url: String,
    /// Request headers; values may use `{{ secret.NAME }}`, revealed only for the request.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
    /// `json` (default) or `slack`.
    #[serde(default, skip_serializing_if = "WebhookFormat::is_default")]
    pub format: WebhookFormat,
}

/// One `notify` entry: which kinds, and the webhook told about them.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NotifyEntry {
    /// `run_failed`, `run_recovered`, `task_failed`, `schedule_silent` (cron triggers only).
    pub on: Vec<String>,
    /// Where to send them.
    pub webhook: Webhook,
}

impl NotifyEntry {
    /// Whether this entry subscribes to `kind`.
    pub fn wants(&self, kind: NotifyKind) -> bool {
        self.on.iter().any(|k| k == kind.as_str())
    }
}

/// The problems of a definition's `notify` list, as `(path, message)`.
pub fn validate(entries: &[NotifyEntry], trigger: TriggerKind, templates: &Templates) -> Vec<(String, String)> {
    let mut errs = Vec::new();
    let kinds = NotifyKind::ALL.map(NotifyKind::as_str).join(", ");
    for (i, entry) in entries.iter().enumerate() {
        let path = format!("notify[{i}]");
        if entry.on.is_empty() {
            errs.push((format!("{path}.on"), format!("at least one kind is required: {kinds}")));
        }
        for (j, raw) in entry.on.iter().enumerate() {
            match NotifyKind::parse(raw) {
                None => errs.push((format!("{path}.on[{j}]"), format!("unknown kind {raw:?}; one of {kinds}"))),
                Some(NotifyKind::ScheduleSilent) if trigger != TriggerKind::Cron => errs.push((
                    format!("{path}.on[{j}]"),
                    format!("schedule_silent needs a cron trigger (this one is {:?})", trigger.as_str()),
                )),
                Some(_) if entry.on[..j].contains(raw) => {
                    errs.push((format!("{path}.on[{j}]"), format!("{raw:?} is listed twice")))
                }
                Some(_) => {}
            }
        }
        if let Err(message) = check_url(&entry.webhook.url, templates) {
            errs.push((format!("{path}.webhook.url"), message));
        }
        for (name, value) in &entry.webhook.headers {
            if let Err(message) = only_secrets(value, templates) {
                errs.push((format!("{path}.webhook.headers.{name}"), message));
            }
        }
    }
    errs
}

/// A webhook field rendered as it is sent before secrets are revealed: text with
/// `⟦secret:NAME⟧` placeholders. Only `{{ secret.NAME }}` may be used (there is no run scope
/// a schedule's notification could render other variables from).
pub fn render_field(source: &str, templates: &Templates) -> Result<String, String> {
    templates.check_field(source, SecretUse::Allowed)?;
    templates
        .render_text(source, &json!({}))
        .map_err(|e| format!("{e} (only {{{{ secret.NAME }}}} may be used in a webhook)"))
}

fn only_secrets(source: &str, templates: &Templates) -> Result<(), String> {
    render_field(source, templates).map(|_| ())
}

/// The url renders (secrets only) to an `http`/`https` URL with a host; a url that starts
/// with a secret is checked when it is sent.
fn check_url(source: &str, templates: &Templates) -> Result<(), String> {
    let rendered = render_field(source, templates)?;
    if rendered.starts_with(SECRET_OPEN) {
        return Ok(());
    }
    let lower = rendered.to_ascii_lowercase();
    let rest = lower
        .strip_prefix("https://")
        .or_else(|| lower.strip_prefix("http://"))
        .ok_or_else(|| format!("{source:?} is not an http or https URL"))?;
    let host = rest.split(['/', '?', '#']).next().unwrap_or_default();
    if host.is_empty() || host.contains(char::is_whitespace) {
        return Err(format!("{source:?} has no host"));
    }
    Ok(())
}

/// Attempts of one delivery, the first included (`tf.notify`'s retry policy).
pub const MAX_ATTEMPTS: u32 = 5;

/// Most failed task ids one notification lists (`failed_task_count` has them all).
pub const MAX_FAILED_TASKS_LISTED: usize = 100;

/// What a notification says; the `json` format sends it as it is (plus `run_url`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct NotificationEvent {
    /// What happened.
    pub kind: NotifyKind,
    /// The definition.
    pub definition_id: String,
    /// Its name.
    pub definition_name: String,
    /// The run (`null` for `schedule_silent`).
    pub run_workflow_id: Option<String>,
    /// The run's status (`failed`, `completed`; `null` for `schedule_silent`).
    pub status: Option<String>,
    /// The run's error, or why the slot had no run.
    pub error: Option<String>,
    /// Ids of the run's failed tasks (at most [`MAX_FAILED_TASKS_LISTED`]).
    pub failed_tasks: Vec<String>,
    /// How many of the run's tasks failed.
    pub failed_task_count: u64,
    /// `schedule_silent`: the slot that passed without a run.
    pub slot: Option<DateTime<Utc>>,
    /// When it happened (the run ended, the slot settled).
    pub occurred_at: DateTime<Utc>,
}

/// One delivery: the input of `tf.notify` (and, in a list, of `NotifyWorkflow`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Notification {
    /// Unique per (run or slot, kind, entry): the row that makes delivery happen once.
    pub dedupe_key: String,
    /// Index of the entry in the definition's `notify` list.
    pub entry: u32,
    /// Where to send it (secrets still placeholders).
    pub webhook: Webhook,
    /// What to say.
    pub event: NotificationEvent,
}

impl Notification {
    /// The dedupe key of a run's notification.
    pub fn run_key(run_workflow_id: &str, kind: NotifyKind, entry: u32) -> String {
        format!("run:{run_workflow_id}:{}:{entry}", kind.as_str())
    }

    /// The dedupe key of a silent slot's notification.
    pub fn slot_key(definition_id: &str, slot: DateTime<Utc>, entry: u32) -> String {
        format!("silent:{definition_id}:{}:{entry}", slot.to_rfc3339())
    }
}

/// The input of `tf.notify_plan`: a run that ended, and its definition's entries.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct NotifyRunInput {
    /// The run.
    pub run_workflow_id: String,
    /// Its definition.
    pub definition_id: String,
    /// The definition's name.
    pub definition_name: String,
    /// `completed` or `failed`.
    pub status: crate::run::Status,
    /// The run's error.
    pub error: Option<String>,
    /// The `notify` entries of the version the run used.
    pub entries: Vec<NotifyEntry>,
}

/// What `tf.notify` did.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct NotifyOutcome {
    /// `false` when an earlier attempt (or execution) had delivered it already.
    pub sent: bool,
    /// The webhook's HTTP status.
    pub http_status: Option<u16>,
}

/// The request body for `format`; `run_url` links to the run (or to the definition for
/// `schedule_silent`) in taskfactory's UI.
pub fn body(event: &NotificationEvent, format: WebhookFormat, run_url: &str) -> Value {
    match format {
        WebhookFormat::Json => {
            let mut value = serde_json::to_value(event).unwrap_or(Value::Null);
            if let Some(object) = value.as_object_mut() {
                object.insert("run_url".to_owned(), Value::String(run_url.to_owned()));
            }
            value
        }
        WebhookFormat::Slack => slack(event, run_url),
    }
}

/// A Slack message: a one-line `text` (the fallback) and blocks with the details and a link.
fn slack(event: &NotificationEvent, url: &str) -> Value {
    let name = &event.definition_name;
    let headline = match event.kind {
        NotifyKind::RunFailed => format!(":red_circle: Run of *{name}* failed"),
        NotifyKind::RunRecovered => format!(":large_green_circle: *{name}* recovered: the run completed"),
        NotifyKind::TaskFailed => {
            format!(":warning: {} task(s) of a run of *{name}* failed", event.failed_task_count)
        }
        NotifyKind::ScheduleSilent => {
            let slot = event.slot.map(|s| s.to_rfc3339()).unwrap_or_default();
            format!(":mute: *{name}* did not run at {slot}")
        }
    };
    let mut details = Vec::new();
    if let Some(run) = &event.run_workflow_id {
        details.push(format!("run `{run}`"));
    }
    if let Some(error) = &event.error {
        details.push(format!("error: {error}"));
    }
    if !event.failed_tasks.is_empty() {
        let ids: Vec<String> = event.failed_tasks.iter().take(10).map(|t| format!("`{t}`")).collect();
        let more = event.failed_task_count.saturating_sub(ids.len() as u64);
        let more = if more > 0 { format!(" and {more} more") } else { String::new() };
        details.push(format!("failed tasks: {}{more}", ids.join(", ")));
    }
    let link = if event.run_workflow_id.is_some() { "Open the run" } else { "Open the definition" };
    let mut blocks = vec![json!({"type": "section", "text": {"type": "mrkdwn", "text": headline}})];
    if !details.is_empty() {
        blocks.push(json!({"type": "section", "text": {"type": "mrkdwn", "text": details.join("\n")}}));
    }
    blocks.push(json!({"type": "context", "elements": [{"type": "mrkdwn", "text": format!("<{url}|{link}> · {} · {}", event.definition_id, event.occurred_at.to_rfc3339())}]}));
    json!({"text": format!("{headline} — {url}"), "blocks": blocks})
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(on: &[&str], url: &str) -> NotifyEntry {
        NotifyEntry {
            on: on.iter().map(|s| (*s).to_owned()).collect(),
            webhook: Webhook { url: url.to_owned(), headers: BTreeMap::new(), format: WebhookFormat::Json },
        }
    }

    #[test]
    fn entries_are_checked_with_their_paths() {
        let t = Templates::new();
        assert!(
            validate(&[entry(&["run_failed", "schedule_silent"], "https://x.test/h")], TriggerKind::Cron, &t)
                .is_empty()
        );
        let errs = validate(
            &[
                entry(&["run_failed", "x"], "ftp://x"),
                entry(&[], "https://{{ run.id }}"),
                entry(&["schedule_silent"], "http:///"),
            ],
            TriggerKind::Event,
            &t,
        );
        let paths: Vec<&str> = errs.iter().map(|(p, _)| p.as_str()).collect();
        assert_eq!(
            paths,
            [
                "notify[0].on[1]",
                "notify[0].webhook.url",
                "notify[1].on",
                "notify[1].webhook.url",
                "notify[2].on[0]",
                "notify[2].webhook.url"
            ]
        );
        assert_eq!(errs[0].1, "unknown kind \"x\"; one of run_failed, run_recovered, task_failed, schedule_silent");
    }

    #[test]
    fn secrets_render_to_placeholders() {
        let t = Templates::new();
        assert_eq!(render_field("Bearer {{ secret.HOOK_TOKEN }}", &t).unwrap(), "Bearer ⟦secret:HOOK_TOKEN⟧");
        assert!(validate(&[entry(&["run_failed"], "{{ secret.SLACK_URL }}")], TriggerKind::Manual, &t).is_empty());
        assert!(render_field("{{ secret.X | upper }}", &t).is_err());
    }

    #[test]
    fn slack_bodies_link_to_the_run() {
        let event = NotificationEvent {
            kind: NotifyKind::TaskFailed,
            definition_id: "d".into(),
            definition_name: "D".into(),
            run_workflow_id: Some("tf:d:manual:1".into()),
            status: Some("failed".into()),
            error: Some("1 of 2 tasks failed".into()),
            failed_tasks: vec!["tf:d:manual:1/t/0".into()],
            failed_task_count: 1,
            slot: None,
            occurred_at: Utc::now(),
        };
        let body = body(&event, WebhookFormat::Slack, "http://ui/#/runs/x");
        assert!(body["text"].as_str().unwrap().contains("http://ui/#/runs/x"));
        assert!(body["blocks"].as_array().unwrap().len() >= 2);
    }
}
