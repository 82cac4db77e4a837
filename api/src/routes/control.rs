//! Run control: cancel a running run, retry a finished one (reusing what completed).

use std::collections::{BTreeMap, BTreeSet};

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Extension, Path, State};
use axum::http::StatusCode;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use taskfactory_activities::StoreError;
use taskfactory_activities::auth_store::Principal;
use taskfactory_activities::store::{CancelRequest, Retried};
use taskfactory_schemas::DefinitionId;
use taskfactory_schemas::ids::check_workflow_id_len;
use taskfactory_schemas::plan::{Outcome, PlanRequest, plan};
use taskfactory_schemas::run::{RetryPlan, RetryTasks};
use temporalio_client::WorkflowCancelOptions;
use temporalio_common::UntypedWorkflow;

use super::extract::RunPath;
use super::json_body;
use super::runs::check_key;
use crate::ApiState;
use crate::error::ApiError;
use crate::starter::start_run;

/// Longest cancel reason accepted.
const MAX_REASON_LEN: usize = 1000;

/// The most tasks a retry's comparison with the latest version plans.
const MAX_COMPARED_TASKS: usize = 50_000;

/// Who is asking: the API key's name, or `anonymous` when authentication is off.
fn caller(principal: Option<&Principal>) -> String {
    principal.map(|p| p.name.clone()).unwrap_or_else(|| "anonymous".to_owned())
}

/// Body of `POST /api/v1/runs/{workflow_id}/cancel` (optional).
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CancelBody {
    /// Why; recorded with the run's cancellation.
    #[serde(default)]
    pub reason: Option<String>,
}

/// A cancellation asked for.
#[derive(Debug, Serialize, Deserialize, JsonSchema)]
pub struct CancelAnswer {
    /// The run.
    pub workflow_id: String,
    /// `cancelling`: Temporal has the request; the run records `cancelled` when its workflow
    /// has stopped its tasks.
    pub status: String,
    /// Who asked.
    pub by: String,
}

/// Cancel a running run
///
/// No new task starts, tasks in flight are cancelled, open human tasks become `cancelled`, and
/// the run ends `cancelled` with the reason and who asked (as a cancel in the Temporal Web UI
/// does). 202: Temporal has the request.
#[utoipa::path(post, path = "/api/v1/runs/{workflow_id}/cancel", operation_id = "cancel_run", tag = "runs", params(RunPath),
    request_body(content = ref("#/components/schemas/CancelBody"), description = "Optional; an empty body is `{}`"),
    responses(
        (status = 202, description = "Cancelling", body = ref("#/components/schemas/CancelAnswer")),
        (status = 404, description = "No such run in the run log"),
        (status = 409, description = "The run has ended (`run_not_running`)"),
        (status = 422, description = "A bad reason"),
        (status = 503, description = "Temporal is unavailable"),
    ))]
pub async fn cancel(
    State(state): State<ApiState>,
    principal: Option<Extension<Principal>>,
    Path(RunPath { workflow_id }): Path<RunPath>,
    body: Bytes,
) -> Result<(StatusCode, Json<CancelAnswer>), ApiError> {
    let request: CancelBody = json_body(&body)?;
    if let Some(reason) = &request.reason
        && (reason.chars().count() > MAX_REASON_LEN || reason.chars().any(char::is_control))
    {
        return Err(ApiError::field(
            "reason",
            format!("must be at most {MAX_REASON_LEN} characters without control characters"),
        ));
    }
    let by = caller(principal.as_deref());
    let reason = request.reason.filter(|r| !r.trim().is_empty()).unwrap_or_else(|| "no reason given".to_owned());
    match state.store.request_cancel(&workflow_id, &by, Some(&reason)).await? {
        CancelRequest::Recorded => {}
        CancelRequest::NotRunning(status) => {
            return Err(ApiError::Conflict {
                code: "run_not_running",
                message: format!("run {workflow_id} is {status}: only a running run can be cancelled"),
            });
        }
    }
    let handle = state.temporal.get_workflow_handle::<UntypedWorkflow>(workflow_id.clone());
    let options = WorkflowCancelOptions::builder().reason(format!("{reason} (by {by})")).build();
    handle.cancel(options).await.map_err(|e| ApiError::Unavailable(format!("temporal: {e}")))?;
    tracing::info!(workflow_id = %workflow_id, by = %by, reason = %reason, "run cancel requested");
    Ok((StatusCode::ACCEPTED, Json(CancelAnswer { workflow_id, status: "cancelling".to_owned(), by })))
}

/// Which version a retry runs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum RetryVersion {
    /// The version the retried run used (its plan is made again from the same context).
    #[default]
    Same,
    /// The definition's current version: tasks whose spec or params changed run again.
    Latest,
}

/// Body of `POST /api/v1/runs/{workflow_id}/retry` (all optional).
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RetryBody {
    /// `"failed"` (default: what did not complete runs again, completed tasks are reused),
    /// `"all"`, or a list of the retried run's task ids to run again (with everything that
    /// did not complete).
    #[serde(default)]
    pub tasks: RetryTasks,
    /// `same` (default) or `latest`.
    #[serde(default)]
    pub version: RetryVersion,
    /// Resolve the context anew instead of reusing the retried run's snapshot.
    #[serde(default)]
    pub refresh_context: bool,
    /// Idempotency key: the same key again answers the same retry.
    #[serde(default)]
    pub key: Option<String>,
}

/// What a retry will do with the retried run's tasks, known before it runs (planned over the
/// retried run's context snapshot; with `refresh_context`, the context resolved anew may plan
/// otherwise).
#[derive(Debug, Default, Serialize, Deserialize, JsonSchema)]
pub struct RetryTasksAnswer {
    /// Tasks whose outcome is carried over (not run again).
    pub reused: usize,
    /// Tasks that run again (ids of the retried run).
    pub rerun: Vec<String>,
    /// Tasks the retry plans that the retried run did not have (`template/key`; with
    /// `version: latest`, or a template reading the run's id).
    pub added: Vec<String>,
    /// Tasks of the retried run the retry no longer plans.
    pub removed: Vec<String>,
    /// Tasks whose spec or params changed (they run again).
    pub changed: Vec<String>,
    /// Templates planned from their dependencies' outputs while the retry runs: whether their
    /// tasks are reused is decided then, by the same rule.
    pub deferred: Vec<String>,
}

/// A retry.
#[derive(Debug, Serialize, Deserialize, JsonSchema)]
pub struct RetryAnswer {
    /// The new run (`{workflow_id}:retry:{n}`).
    pub workflow_id: String,
    /// Temporal's run id, when known.
    pub run_id: Option<String>,
    /// `false` when the key was used before: this is that retry.
    pub started: bool,
    /// The run retried.
    pub retry_of: String,
    /// The definition version the retry runs.
    pub version: i32,
    /// What happens to the retried run's tasks.
    pub tasks: RetryTasksAnswer,
}

/// Retry a finished run
///
/// Starts a new run `{workflow_id}:retry:{n}` with the same trigger and, unless asked, the
/// same context snapshot and version. Tasks that completed are reused (their outputs carried
/// over, `reused_from` set, never run again); failed, skipped and cancelled ones run, with
/// everything below them. 201 with `started: true`, or 200 and the earlier retry for a key
/// used before.
#[utoipa::path(post, path = "/api/v1/runs/{workflow_id}/retry", operation_id = "retry_run", tag = "runs", params(RunPath),
    request_body(content = ref("#/components/schemas/RetryBody"), description = "Optional; an empty body is `{}`"),
    responses(
        (status = 201, description = "Started", body = ref("#/components/schemas/RetryAnswer")),
        (status = 200, description = "The key was used before: that retry", body = ref("#/components/schemas/RetryAnswer")),
        (status = 404, description = "No such run, or its definition version is gone"),
        (status = 409, description = "The run is still running (`run_running`) or its definition is disabled"),
        (status = 422, description = "A bad body (the field is named)"),
        (status = 503, description = "Temporal is unavailable"),
    ))]
pub async fn retry(
    State(state): State<ApiState>,
    principal: Option<Extension<Principal>>,
    Path(RunPath { workflow_id }): Path<RunPath>,
    body: Bytes,
) -> Result<(StatusCode, Json<RetryAnswer>), ApiError> {
    let request: RetryBody = json_body(&body)?;
    if let Some(key) = &request.key {
        check_key(key)?;
    }
    let retried = state.store.retried(&workflow_id).await?;
    if retried.status == "running" || retried.status == "queued" {
        return Err(ApiError::Conflict {
            code: "run_running",
            message: format!("run {workflow_id} is still running: cancel it or wait until it ends to retry it"),
        });
    }
    if let RetryTasks::Ids(ids) = &request.tasks {
        let known: BTreeSet<&str> = retried.tasks.iter().map(|t| t.id.as_str()).collect();
        for (i, id) in ids.iter().enumerate() {
            if !known.contains(id.as_str()) {
                return Err(ApiError::field(format!("tasks[{i}]"), format!("run {workflow_id} has no task {id:?}")));
            }
        }
    }
    let definition_id = DefinitionId::parse(&retried.definition_id)
        .map_err(|e| ApiError::Internal(anyhow::anyhow!("stored definition id: {e}")))?;
    let version = match request.version {
        RetryVersion::Same => retried.version_used,
        RetryVersion::Latest => None,
    };
    let loaded = match state.store.load_for_run(&definition_id, version).await {
        Ok(loaded) => loaded,
        Err(StoreError::NotFound(what)) => return Err(ApiError::NotFound(what)),
        Err(e) => return Err(e.into()),
    };
    if !loaded.definition.enabled {
        return Err(ApiError::Conflict {
            code: "definition_disabled",
            message: format!("definition {definition_id} is disabled"),
        });
    }
    let plan = RetryPlan { tasks: request.tasks.clone(), refresh_context: request.refresh_context };
    let by = caller(principal.as_deref());
    let retry = state.store.new_retry(&workflow_id, request.key.as_deref(), &by, &plan).await?;
    if let Err(m) = check_workflow_id_len(&retry.workflow_id) {
        state.store.drop_retry(&retry.workflow_id).await?;
        return Err(ApiError::Conflict { code: "id_too_long", message: format!("the retry's workflow id {m}") });
    }
    let tasks = match retry_tasks(&state, &retry.workflow_id, &workflow_id, &retried, &request, &loaded).await {
        Ok(tasks) => tasks,
        Err(e) => {
            if retry.created {
                state.store.drop_retry(&retry.workflow_id).await?;
            }
            return Err(e);
        }
    };
    let started =
        match start_run(&state, &loaded, retried.trigger.clone(), retry.workflow_id.clone(), Some(workflow_id.clone()))
            .await
        {
            Ok(started) => started,
            Err(e) => {
                if retry.created {
                    state.store.drop_retry(&retry.workflow_id).await?;
                }
                return Err(e);
            }
        };
    let status = if retry.created && started.started { StatusCode::CREATED } else { StatusCode::OK };
    Ok((
        status,
        Json(RetryAnswer {
            workflow_id: started.workflow_id,
            run_id: started.run_id,
            started: retry.created && started.started,
            retry_of: workflow_id,
            version: loaded.version,
            tasks,
        }),
    ))
}

/// Says which of the retried run's tasks a retry reuses and which run again, by the rule the
/// run log applies when the retry plans (same template, key, spec and params, completed, not
/// asked to run again): the retry's version is planned here, as the retry `new_run` will plan
/// it, over the retried run's context snapshot.
async fn retry_tasks(
    state: &ApiState,
    new_run: &str,
    workflow_id: &str,
    retried: &Retried,
    request: &RetryBody,
    loaded: &taskfactory_schemas::run::LoadedDefinition,
) -> Result<RetryTasksAnswer, ApiError> {
    let again: BTreeSet<&str> = match &request.tasks {
        RetryTasks::Ids(ids) => ids.iter().map(String::as_str).collect(),
        RetryTasks::Named(_) => BTreeSet::new(),
    };
    let all = matches!(request.tasks, RetryTasks::Named(taskfactory_schemas::run::RetryWhich::All));
    let mut answer = RetryTasksAnswer::default();
    // A run that failed before resolving its context has none: it plans over null, as it did.
    let context = match state.store.context_snapshot(workflow_id).await {
        Ok(context) => context,
        Err(StoreError::NotFound(_)) => serde_json::Value::Null,
        Err(e) => return Err(e.into()),
    };
    let new_plan = plan(&PlanRequest {
        definition: &loaded.definition,
        version: loaded.version,
        run_workflow_id: new_run,
        context: &context,
        trigger: &retried.trigger,
        max_tasks: MAX_COMPARED_TASKS,
    })
    .map_err(|e| ApiError::Invalid(vec![e]))?;
    let planned: BTreeMap<(String, String), (serde_json::Value, serde_json::Value)> = new_plan
        .tasks
        .iter()
        .map(|t| {
            let spec = serde_json::to_value(&t.spec).unwrap_or_default();
            ((t.template_id.clone(), t.item_key.clone()), (spec, t.params.clone()))
        })
        .collect();
    let deferred: BTreeSet<String> =
        new_plan.decisions.iter().filter(|d| d.outcome == Outcome::Deferred).map(|d| d.template_id.clone()).collect();
    answer.deferred = deferred.iter().cloned().collect();
    let mut seen = BTreeSet::new();
    for task in &retried.tasks {
        let key = (task.template_id.clone(), task.item_key.clone());
        seen.insert(key.clone());
        let unchanged = if deferred.contains(&task.template_id) {
            // Planned while the retry runs, from its dependencies' outputs: decided then.
            true
        } else {
            match planned.get(&key) {
                None => {
                    answer.removed.push(format!("{}/{}", task.template_id, task.item_key));
                    continue;
                }
                Some((spec, params)) => {
                    let same = *spec == task.spec && *params == task.params;
                    if !same {
                        answer.changed.push(format!("{}/{}", task.template_id, task.item_key));
                    }
                    same
                }
            }
        };
        let reused = !all && unchanged && task.status == "completed" && !again.contains(task.id.as_str());
        if reused {
            answer.reused += 1;
        } else {
            answer.rerun.push(task.id.clone());
        }
    }
    answer.added = planned.keys().filter(|k| !seen.contains(*k)).map(|(t, k)| format!("{t}/{k}")).collect();
    Ok(answer)
}
