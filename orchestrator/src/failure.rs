//! Readable messages from Temporal failures.

use temporalio_common::protos::temporal::api::failure::v1::Failure;
use temporalio_sdk::{ActivityExecutionError, ChildWorkflowExecutionError, WorkflowCancellationToken};

/// An error of an activity or child workflow, which may carry Temporal's failure.
pub trait CarriesFailure: std::fmt::Display {
    /// The failure Temporal reported, when there is one.
    fn temporal_failure(&self) -> Option<&Failure>;
}

impl CarriesFailure for ActivityExecutionError {
    fn temporal_failure(&self) -> Option<&Failure> {
        self.failure()
    }
}

impl CarriesFailure for ChildWorkflowExecutionError {
    fn temporal_failure(&self) -> Option<&Failure> {
        self.failure()
    }
}

/// Why a workflow was cancelled, as a task's error: the reason Temporal delivered, or
/// "cancelled".
pub fn cancel_reason(token: &WorkflowCancellationToken) -> String {
    token.reason().filter(|r| !r.is_empty()).unwrap_or_else(|| "cancelled".to_owned())
}

/// A readable message for `error`: [`describe`] of its failure, else its own text.
pub fn describe_error(error: &impl CarriesFailure) -> String {
    error.temporal_failure().map_or_else(|| error.to_string(), describe)
}

/// The failure's message chain, outermost first: `Activity task failed: definition "x" not found`.
///
/// Temporal wraps the interesting message (the application error) in causes; generic wrapper
/// messages are dropped so people read the cause.
pub fn describe(failure: &Failure) -> String {
    let mut parts: Vec<&str> = Vec::new();
    let mut current = Some(failure);
    while let Some(f) = current {
        if !f.message.is_empty() && !parts.contains(&f.message.as_str()) {
            parts.push(&f.message);
        }
        current = f.cause.as_deref();
    }
    if parts.len() > 1 {
        parts.retain(|m| {
            !matches!(*m, "Activity task failed" | "Child Workflow execution failed" | "Workflow execution failed")
        });
    }
    if parts.is_empty() { "unknown failure".to_owned() } else { parts.join(": ") }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_cause_and_drops_wrappers() {
        let failure = Failure {
            message: "Activity task failed".into(),
            cause: Some(Box::new(Failure { message: "definition \"x\" not found".into(), ..Default::default() })),
            ..Default::default()
        };
        assert_eq!(describe(&failure), "definition \"x\" not found");
        assert_eq!(describe(&Failure::default()), "unknown failure");
    }
}
