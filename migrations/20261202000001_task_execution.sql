-- How each task runs (ADR-017): as a TaskWorkflow of its own ('workflow', what every task did
-- before) or as an activity of its batch workflow ('activity'). For activity-mode tasks,
-- temporal_workflow_id is the batch workflow that holds the task's activity (its activity id
-- is the task id); null means the task's own workflow, whose id is the task id.
alter table task_runs add column execution text not null default 'workflow'
    check (execution in ('workflow', 'activity'));
alter table task_runs add column temporal_workflow_id text;
