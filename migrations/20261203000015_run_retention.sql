-- Run-log retention (ADR-026): the pruner finds finished runs by definition and finish time,
-- and deletes the rows keyed by each run; these indexes keep both from scanning whole tables.
create index activity_runs_finished on activity_runs (definition_id, finished_at desc) where finished_at is not null;
create index human_tasks_by_run on human_tasks (run_workflow_id);
create index task_artifacts_by_run on task_artifacts (run_workflow_id);
create index notifications_by_run on notifications (run_workflow_id) where run_workflow_id is not null;
