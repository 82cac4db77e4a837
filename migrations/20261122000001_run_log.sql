-- The run log and definition store. sqlx migrations are the only source of truth for the schema.

-- Current pointer per definition; the documents live in activity_definition_versions.
create table activity_definitions (
    id              text primary key,
    current_version integer not null,
    name            text not null,
    enabled         boolean not null,
    trigger_kind    text not null,
    created_at      timestamptz not null default now(),
    updated_at      timestamptz not null default now(),
    -- Soft delete: versions stay readable for the runs that used them.
    deleted_at      timestamptz
);

-- Immutable: one row per version, never updated.
create table activity_definition_versions (
    definition_id text not null references activity_definitions (id),
    version       integer not null check (version > 0),
    document      jsonb not null,
    created_at    timestamptz not null default now(),
    primary key (definition_id, version)
);

create table activity_runs (
    workflow_id      text primary key,
    -- Temporal's run id of the first execution under this workflow id.
    run_id           text not null,
    definition_id    text not null,
    version_used     integer,
    trigger_kind     text not null check (trigger_kind in ('schedule', 'event', 'manual')),
    trigger          jsonb not null,
    scheduled_for    timestamptz,
    fired_at         timestamptz not null default now(),
    context_snapshot jsonb,
    plan             jsonb,
    tasks_spawned    integer not null default 0,
    status           text not null default 'running' check (status in ('running', 'completed', 'failed')),
    finished_at      timestamptz,
    error            text,
    -- Highest seq handed out in run_events; the row lock on it orders appends (ADR-003).
    last_seq         bigint not null default 0
);
create index activity_runs_by_definition on activity_runs (definition_id, fired_at desc);
create index activity_runs_by_time on activity_runs (fired_at desc);

create table task_runs (
    -- The task's workflow id: {run_workflow_id}/{template_id}/{item_key}.
    id              text primary key,
    run_workflow_id text not null references activity_runs (workflow_id),
    template_id     text not null,
    item_key        text not null,
    kind            text not null,
    params          jsonb not null,
    status          text not null default 'pending'
                    check (status in ('pending', 'running', 'completed', 'failed', 'skipped')),
    attempt         integer not null default 0,
    temporal_run_id text,
    started_at      timestamptz,
    finished_at     timestamptz,
    output          jsonb,
    error           text
);
create index task_runs_by_run on task_runs (run_workflow_id, status);

-- Append-only trace events. seq is gapless per run; event_key makes retried writes no-ops.
create table run_events (
    run_workflow_id text not null references activity_runs (workflow_id),
    seq             bigint not null check (seq > 0),
    event_key       text not null,
    ts              timestamptz not null default now(),
    type            text not null,
    node_id         text,
    level           text not null,
    message         text,
    payload         jsonb not null default '{}'::jsonb,
    primary key (run_workflow_id, seq),
    unique (run_workflow_id, event_key)
);

-- What event ingress accepted: keeps a dedupe key deduplicated after Temporal forgot the run.
create table event_receipts (
    definition_id text not null,
    dedupe_key    text not null,
    workflow_id   text not null,
    run_id        text,
    event         jsonb not null,
    received_at   timestamptz not null default now(),
    primary key (definition_id, dedupe_key)
);
