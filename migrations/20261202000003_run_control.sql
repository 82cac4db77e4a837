-- Run control: cancel (who asked and why), resets done in Temporal, retries of finished runs.
--
-- cancel_requested_by / cancel_reason: written by `POST /runs/{id}/cancel` before it asks
-- Temporal, read by the run workflow when it records its cancellation (a cancel from the
-- Temporal Web UI or CLI leaves them null: the run says "Temporal" asked).
-- resets: how many times the run was reset in Temporal; each reset continues the same run
-- record (a new Temporal run id) and keys the run's end event anew.
-- retry_of: the run this one retries; reused_from: the finished task whose outcome a retry
-- carried over instead of running it again.
alter table activity_runs add column cancel_requested_by text;
alter table activity_runs add column cancel_reason text;
alter table activity_runs add column resets integer not null default 0;
alter table activity_runs add column retry_of text;
alter table task_runs add column reused_from text;

-- One row per retry asked for: `{run}:retry:{n}` is the new run's workflow id; the same key
-- twice answers the same retry.
create table run_retries (
    run_workflow_id text not null,
    n integer not null check (n >= 1),
    key text,
    workflow_id text not null unique,
    requested_by text,
    request jsonb not null,
    created_at timestamptz not null default now(),
    primary key (run_workflow_id, n),
    unique (run_workflow_id, key)
);

-- Leases of background duties one API process does at a time (the run reconciler): the holder
-- renews its lease each pass; another process takes over once it has expired.
create table leases (
    name text primary key,
    holder text not null,
    until timestamptz not null
);
