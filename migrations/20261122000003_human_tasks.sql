-- Tasks waiting for a person (kind: human). The TaskWorkflow waits for a signal that
-- POST /api/v1/human-tasks/{id}/complete or /reject sends.
create table human_tasks (
    -- Short stable id for URLs (derived from task_id).
    id              text primary key,
    -- The TaskWorkflow's id.
    task_id         text not null unique,
    run_workflow_id text not null references activity_runs (workflow_id),
    title           text not null,
    assignee        text,
    -- The rendered params, shown as the form.
    form            jsonb not null,
    status          text not null default 'waiting' check (status in ('waiting', 'completed', 'rejected', 'timed_out')),
    created_at      timestamptz not null default now(),
    decided_at      timestamptz,
    decided_by      text,
    response        jsonb
);
create index human_tasks_waiting on human_tasks (status, created_at);
