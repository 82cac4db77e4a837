-- Plan order of each task within its run: outputs of a fanned-out template are handed to its
-- dependents in this order.
alter table task_runs add column position integer not null default 0;
create index task_runs_by_template on task_runs (run_workflow_id, template_id, position);

-- The task's typed spec (kind and its settings), so batch workflows load their tasks from the
-- run log instead of carrying whole plans through workflow history.
alter table task_runs add column spec jsonb not null default '{"kind": "noop"}'::jsonb;
