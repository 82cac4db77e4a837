//! Search attributes and memo fields (registered by `taskfactory dev` / `setup`).
//!
//! In the Temporal Web UI, `TfDefinitionId = "overdue-invoices"` lists every run and task of a
//! definition.

use temporalio_common::search_attributes::{SearchAttributeKey, Timestamp};

/// The definition id (Keyword).
pub const TF_DEFINITION_ID: SearchAttributeKey<String> = SearchAttributeKey::keyword("TfDefinitionId");
/// What started the run: `schedule`, `event` or `manual` (Keyword).
pub const TF_TRIGGER: SearchAttributeKey<String> = SearchAttributeKey::keyword("TfTrigger");
/// The definition version used (Int).
pub const TF_VERSION: SearchAttributeKey<i64> = SearchAttributeKey::int("TfVersion");
/// `run` or `task` (Keyword).
pub const TF_KIND: SearchAttributeKey<String> = SearchAttributeKey::keyword("TfKind");

/// Set by Temporal on workflows a schedule starts: the slot they are for.
pub const SCHEDULED_START_TIME: SearchAttributeKey<Timestamp> =
    SearchAttributeKey::datetime("TemporalScheduledStartTime");

/// Every custom search attribute with its Temporal type name, for registration.
pub const ALL: &[(&str, &str)] =
    &[("TfDefinitionId", "Keyword"), ("TfTrigger", "Keyword"), ("TfVersion", "Int"), ("TfKind", "Keyword")];

/// Memo field holding the definition's human-readable name.
pub const MEMO_DEFINITION_NAME: &str = "definition_name";
