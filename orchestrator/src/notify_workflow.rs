//! Notifications from workflow code.
//!
//! - [`deliver`]: runs `tf.notify` once per notification, all at once, each with its own
//!   retries ([`MAX_ATTEMPTS`]); a delivery that fails for good is recorded on its row by the
//!   activity and never fails the caller. `RunActivityWorkflow` calls it at the run's end.
//! - [`NotifyWorkflow`]: the same for notifications no run sends (`schedule_silent`): the API's
//!   schedule observer starts it under an id per (definition, slot, kind), so a second observer
//!   or a restart starts nothing twice.

use std::time::Duration;

use taskfactory_schemas::notify::{MAX_ATTEMPTS, Notification};
use temporalio_common::RetryPolicy;
use temporalio_macros::{workflow, workflow_methods};
use temporalio_sdk::workflows::join_all;
use temporalio_sdk::{ActivityOptions, WorkflowContext, WorkflowResult};

use crate::contracts::TfActivities;

/// The options of one `tf.notify`: a few quick retries (about 15 s in all), the webhook's
/// request timeout inside the activity's.
fn notify_options(notification: &Notification) -> ActivityOptions {
    let retry = RetryPolicy::builder()
        .initial_interval(Duration::from_secs(1))
        .backoff_coefficient(2.0)
        .maximum_interval(Duration::from_secs(30))
        .maximum_attempts(MAX_ATTEMPTS)
        .build();
    ActivityOptions::with_start_to_close_timeout(Duration::from_secs(30))
        .retry_policy(retry)
        .summary(format!("notify {} (entry {})", notification.event.kind.as_str(), notification.entry))
        .build()
}

/// Delivers every notification (concurrently); answers how many were delivered now or before.
pub(crate) async fn deliver<W>(ctx: &WorkflowContext<W>, notifications: Vec<Notification>) -> usize {
    let sends = notifications.into_iter().map(|notification| {
        let options = notify_options(&notification);
        ctx.execute_activity(TfActivities::notify, notification, options)
    });
    join_all(sends).await.into_iter().filter(Result::is_ok).count()
}

/// Delivers notifications no run sends (`schedule_silent`).
#[workflow]
#[derive(Default)]
pub struct NotifyWorkflow;

#[workflow_methods]
impl NotifyWorkflow {
    /// Delivers `notifications`; answers how many were delivered (the others are recorded
    /// `failed` on their rows).
    #[run(name = "NotifyWorkflow")]
    pub async fn run(ctx: &mut WorkflowContext<Self>, notifications: Vec<Notification>) -> WorkflowResult<u64> {
        Ok(deliver(ctx, notifications).await as u64)
    }
}
