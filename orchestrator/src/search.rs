//! Search attributes and memo fields (registered by `taskfactory dev` / `setup`).
//!
//! In the Temporal Web UI, `TfDefinitionId = "overdue-invoices"` lists every run and task of a
//! definition.

use taskfactory_schemas::ids::DefinitionId;
use taskfactory_schemas::run::RunTrigger;
use temporalio_common::search_attributes::{SearchAttributeKey, SearchAttributes, Timestamp};

/// The definition id (Keyword).
pub const TF_DEFINITION_ID: SearchAttributeKey<String> = SearchAttributeKey::keyword("TfDefinitionId");
/// What started the run: `schedule`, `event` or `manual` (Keyword).
pub const TF_TRIGGER: SearchAttributeKey<String> = SearchAttributeKey::keyword("TfTrigger");
/// The definition version used (Int).
pub const TF_VERSION: SearchAttributeKey<i64> = SearchAttributeKey::int("TfVersion");
/// `run`, `batch`, `task` or `notify` (Keyword): see [`Kind`].
pub const TF_KIND: SearchAttributeKey<String> = SearchAttributeKey::keyword("TfKind");

/// Set by Temporal on workflows a schedule starts: the slot they are for.
pub const SCHEDULED_START_TIME: SearchAttributeKey<Timestamp> =
    SearchAttributeKey::datetime("TemporalScheduledStartTime");

/// Every custom search attribute with its Temporal type name, for registration.
pub const ALL: &[(&str, &str)] =
    &[("TfDefinitionId", "Keyword"), ("TfTrigger", "Keyword"), ("TfVersion", "Int"), ("TfKind", "Keyword")];

/// Memo field holding the definition's human-readable name.
pub const MEMO_DEFINITION_NAME: &str = "definition_name";

/// What a workflow of taskfactory is, as `TfKind` says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A `RunActivityWorkflow`: one run of a definition.
    Run,
    /// A `TaskBatchWorkflow`: a slice of one template's tasks.
    Batch,
    /// A `TaskWorkflow`: one task.
    Task,
    /// A `NotifyWorkflow` the API starts: notifications no run workflow sends
    /// (`schedule_silent`, `run_failed` of a run Temporal ended).
    Notify,
}

impl Kind {
    /// The value of `TfKind`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Run => "run",
            Self::Batch => "batch",
            Self::Task => "task",
            Self::Notify => "notify",
        }
    }
}

/// The search attributes every workflow of a run carries: the definition, what triggered the
/// run, the version it uses (unknown to a schedule's action, which the run then upserts) and
/// what kind of workflow it is. The one place the set is written: starters, the schedule
/// action, and the run and batch workflows for their children all call this
/// ([`notify_attributes`] for the API's notification workflows).
pub fn attributes(
    definition_id: &DefinitionId,
    trigger: RunTrigger,
    version: Option<i32>,
    kind: Kind,
) -> SearchAttributes {
    let mut values =
        vec![TF_DEFINITION_ID.value_set(definition_id.to_string()), TF_TRIGGER.value_set(trigger.as_str().to_owned())];
    if let Some(version) = version {
        values.push(TF_VERSION.value_set(i64::from(version)));
    }
    values.push(TF_KIND.value_set(kind.as_str().to_owned()));
    SearchAttributes::new(values)
}

/// The search attributes of a `NotifyWorkflow`: its definition and `TfKind = notify` (no
/// trigger or version: it is no run's).
pub fn notify_attributes(definition_id: &DefinitionId) -> SearchAttributes {
    SearchAttributes::new(vec![
        TF_DEFINITION_ID.value_set(definition_id.to_string()),
        TF_KIND.value_set(Kind::Notify.as_str().to_owned()),
    ])
}
