-- Execution mode `local`: a task of taskfactory's own kinds (noop, http) runs as a local
-- activity of its batch workflow (temporal_workflow_id is the batch, as in activity mode).
alter table task_runs drop constraint task_runs_execution_check;
alter table task_runs add constraint task_runs_execution_check check (execution in ('workflow', 'activity', 'local'));
