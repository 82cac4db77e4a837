//! Notifications: which deliveries a run's end asks for (`tf.notify_plan`), and one delivery
//! (`tf.notify`): claim its row, POST the webhook through the SSRF guard like an `http` task,
//! record the attempt.
//!
//! Once a row is `delivered`, a retry of the activity, a second execution or a reset of the
//! workflow posts nothing. The one window left is a crash after the webhook answered 2xx and
//! before the row's commit: that delivery is attempted again (at least once, never twice
//! after it was recorded); every request carries the delivery's dedupe key as
//! `Idempotency-Key` so a receiver can drop that resend. Secrets in the url and headers are revealed for the request only;
//! the stored body and errors never hold a value.

use std::time::Duration;

use chrono::Utc;
use reqwest::Method;
use serde_json::Value;
use taskfactory_schemas::notify::{
    self, MAX_ATTEMPTS, MAX_FAILED_TASKS_LISTED, Notification, NotificationEvent, NotifyKind, NotifyOutcome,
    NotifyRunInput, Webhook,
};
use taskfactory_schemas::run::Status;
use taskfactory_schemas::template::Templates;
use temporalio_sdk::activities::ActivityError;

use crate::egress::{self, Egress, EgressError, Outgoing};
use crate::failure::{permanent, store_error};
use crate::kinds::http::header_map;
use crate::secrets::{Revealed, SecretStore};
use crate::store::{Attempted, Store};

/// How long one webhook request may take.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// The deliveries a run's end asks for: one per (kind that applies, entry subscribed to it).
pub async fn plan(store: &Store, input: &NotifyRunInput) -> Result<Vec<Notification>, ActivityError> {
    let wanted = |kind: NotifyKind| input.entries.iter().any(|e| e.wants(kind));
    let mut kinds = Vec::new();
    let failed = input.status == Status::Failed;
    if failed && wanted(NotifyKind::RunFailed) {
        kinds.push(NotifyKind::RunFailed);
    }
    let (mut failed_tasks, mut failed_task_count) = (Vec::new(), 0);
    if failed && wanted(NotifyKind::TaskFailed) {
        (failed_tasks, failed_task_count) =
            store.failed_tasks(&input.run_workflow_id, MAX_FAILED_TASKS_LISTED as i64).await.map_err(store_error)?;
        if failed_task_count > 0 {
            kinds.push(NotifyKind::TaskFailed);
        }
    }
    if input.status == Status::Completed
        && wanted(NotifyKind::RunRecovered)
        && store.previous_verdict_failed(&input.definition_id, &input.run_workflow_id).await.map_err(store_error)?
    {
        kinds.push(NotifyKind::RunRecovered);
    }
    let occurred_at = Utc::now();
    let mut deliveries = Vec::new();
    for kind in kinds {
        let event = NotificationEvent {
            kind,
            definition_id: input.definition_id.clone(),
            definition_name: input.definition_name.clone(),
            run_workflow_id: Some(input.run_workflow_id.clone()),
            status: Some(input.status.as_str().to_owned()),
            error: input.error.clone(),
            failed_tasks: if kind == NotifyKind::TaskFailed { failed_tasks.clone() } else { Vec::new() },
            failed_task_count,
            slot: None,
            occurred_at,
        };
        for (index, entry) in input.entries.iter().enumerate().filter(|(_, e)| e.wants(kind)) {
            let index = u32::try_from(index).unwrap_or(u32::MAX);
            deliveries.push(Notification {
                dedupe_key: Notification::run_key(&input.run_workflow_id, kind, index),
                entry: index,
                webhook: entry.webhook.clone(),
                event: event.clone(),
            });
        }
    }
    Ok(deliveries)
}

/// Where the notification links to in taskfactory's UI: the run, or the definition for a
/// silent slot.
pub fn ui_link(public_url: &str, event: &NotificationEvent) -> String {
    let base = public_url.trim_end_matches('/');
    match &event.run_workflow_id {
        Some(run) => format!("{base}/#/runs/{}", encode_component(run)),
        None => format!("{base}/#/definitions/{}", encode_component(&event.definition_id)),
    }
}

/// `encodeURIComponent`, as the UI's links are written.
fn encode_component(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    for byte in raw.bytes() {
        if byte.is_ascii_alphanumeric() || b"-_.!~*'()".contains(&byte) {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// What a delivery may use.
pub struct Delivery<'a> {
    /// The run log (the `notifications` rows).
    pub store: &'a Store,
    /// The shared HTTP client (follows no redirects: [`egress::send`] does).
    pub http: &'a reqwest::Client,
    /// The SSRF guard.
    pub egress: &'a Egress,
    /// Secret values.
    pub secrets: &'a SecretStore,
    /// The UI's public base URL, for links.
    pub public_url: &'a str,
}

/// Why an attempt failed.
struct Failed {
    message: String,
    http_status: Option<u16>,
    /// Sending it again cannot help (a 4xx other than 408/429, a refused target, a bad url).
    permanent: bool,
}

impl Failed {
    fn permanent(message: String) -> Self {
        Self { message, http_status: None, permanent: true }
    }
}

/// Delivers `notification` once (attempt `attempt` of [`MAX_ATTEMPTS`]); a failure is recorded
/// on its row and returned (retryable unless permanent).
pub async fn deliver(
    tools: &Delivery<'_>,
    notification: &Notification,
    attempt: u32,
) -> Result<NotifyOutcome, ActivityError> {
    let link = ui_link(tools.public_url, &notification.event);
    let body = notify::body(&notification.event, notification.webhook.format, &link);
    let claim = tools.store.claim_notification(notification, &body).await.map_err(store_error)?;
    if claim.delivered {
        tracing::info!(key = %notification.dedupe_key, "notification delivered before: not sent again");
        return Ok(NotifyOutcome { sent: false, http_status: None });
    }
    let mut revealed = Revealed::default();
    let result = post(tools, &mut revealed, notification, body).await;
    let (http_status, error, last) = match &result {
        Ok(status) => (Some(*status), None, true),
        Err(f) => (f.http_status, Some(revealed.redact(&f.message)), f.permanent || attempt >= MAX_ATTEMPTS),
    };
    claim.finish(&Attempted { http_status, error: error.clone(), last }).await.map_err(store_error)?;
    match result {
        Ok(status) => {
            tracing::info!(key = %notification.dedupe_key, http_status = status, "notification delivered");
            Ok(NotifyOutcome { sent: true, http_status: Some(status) })
        }
        Err(f) => {
            let message = error.unwrap_or_default();
            tracing::warn!(key = %notification.dedupe_key, attempt, error = %message, "notification not delivered");
            Err(if f.permanent { permanent(message) } else { anyhow::anyhow!(message).into() })
        }
    }
}

/// Header carrying the delivery's dedupe key, so a receiver can drop the one resend a crash
/// between its answer and our commit can cause (unless the entry sets it itself).
pub const IDEMPOTENCY_HEADER: &str = "idempotency-key";

/// POSTs `body` to the webhook; answers the HTTP status of a 2xx.
async fn post(
    tools: &Delivery<'_>,
    revealed: &mut Revealed,
    notification: &Notification,
    body: Value,
) -> Result<u16, Failed> {
    let webhook: &Webhook = &notification.webhook;
    let templates = Templates::new();
    let rendered = notify::render_field(&webhook.url, &templates).map_err(Failed::permanent)?;
    let raw_url = revealed.reveal(tools.secrets, &rendered).map_err(Failed::permanent)?;
    let url = reqwest::Url::parse(&raw_url)
        .map_err(|e| Failed::permanent(format!("invalid webhook url {:?}: {e}", webhook.url)))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(Failed::permanent(format!("webhook url {:?} is not http or https", webhook.url)));
    }
    let mut headers = Vec::with_capacity(webhook.headers.len());
    for (name, value) in &webhook.headers {
        let rendered = notify::render_field(value, &templates).map_err(Failed::permanent)?;
        headers.push((name, revealed.reveal(tools.secrets, &rendered).map_err(Failed::permanent)?));
    }
    let mut headers = header_map(headers).map_err(Failed::permanent)?;
    if !headers.contains_key(IDEMPOTENCY_HEADER)
        && let Ok(key) = reqwest::header::HeaderValue::from_str(&notification.dedupe_key)
    {
        headers.insert(IDEMPOTENCY_HEADER, key);
    }
    let request = Outgoing { method: Method::POST, url, headers, body: Some(body), timeout: REQUEST_TIMEOUT };
    let shown = &webhook.url;
    let response = egress::send(tools.http, tools.egress, request).await.map_err(|e| match e {
        EgressError::Refused(m) => Failed::permanent(m),
        EgressError::Transport(m) => Failed { message: m, http_status: None, permanent: false },
    })?;
    let status = response.status();
    if status.is_success() {
        return Ok(status.as_u16());
    }
    let excerpt: String = response.text().await.unwrap_or_default().chars().take(200).collect();
    let retry_helps = status.is_server_error() || matches!(status.as_u16(), 408 | 429);
    Err(Failed {
        message: format!("HTTP {status} from {shown}: {excerpt}"),
        http_status: Some(status.as_u16()),
        permanent: !retry_helps,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_encode_the_run_id_like_the_ui() {
        let event = NotificationEvent {
            kind: NotifyKind::RunFailed,
            definition_id: "d".into(),
            definition_name: "D".into(),
            run_workflow_id: Some("tf:d:manual:1".into()),
            status: None,
            error: None,
            failed_tasks: vec![],
            failed_task_count: 0,
            slot: None,
            occurred_at: Utc::now(),
        };
        assert_eq!(ui_link("http://h:8080/", &event), "http://h:8080/#/runs/tf%3Ad%3Amanual%3A1");
    }
}
