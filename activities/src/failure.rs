//! How the activities fail: which errors Temporal retries and which it does not.

use temporalio_sdk::ApplicationFailure;
use temporalio_sdk::activities::ActivityError;

use crate::store::StoreError;

/// A failure Temporal does not retry.
pub fn permanent(message: impl Into<String>) -> ActivityError {
    ActivityError::application(ApplicationFailure::non_retryable(message.into()))
}

/// A store error as an activity failure: a missing, corrupt or unstorable row cannot get better
/// by retrying; a database that is down or busy can.
pub fn store_error(e: StoreError) -> ActivityError {
    match e {
        StoreError::NotFound(_) | StoreError::Corrupt(_) | StoreError::Unstorable(_) => permanent(e.to_string()),
        StoreError::Db(db) => ActivityError::from(anyhow::Error::new(db)),
        StoreError::Unavailable(message) => ActivityError::from(anyhow::anyhow!(message)),
    }
}
