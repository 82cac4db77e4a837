-- Runs an operator closed in Temporal (cancel, terminate, an execution timeout) end in the
-- status Temporal gives them, found by the API's run reconciler; their unfinished tasks and
-- waiting human tasks are closed as cancelled.
alter table activity_runs drop constraint activity_runs_status_check;
alter table activity_runs add constraint activity_runs_status_check
    check (status in ('running', 'completed', 'failed', 'cancelled', 'terminated', 'timed_out'));
alter table task_runs drop constraint task_runs_status_check;
alter table task_runs add constraint task_runs_status_check
    check (status in ('pending', 'running', 'completed', 'failed', 'skipped', 'cancelled'));
alter table human_tasks drop constraint human_tasks_status_check;
alter table human_tasks add constraint human_tasks_status_check
    check (status in ('waiting', 'completed', 'rejected', 'timed_out', 'cancelled'));
