-- Notifications: one row per delivery a definition's `notify` entries ask for (per run,
-- kind and entry; per silent cron slot and entry). `dedupe_key` makes delivery happen once:
-- the `tf.notify` activity claims the row before posting and marks it delivered, so an
-- activity retry or a workflow reset finds it delivered and posts nothing. Failures are kept
-- (attempts, the last error); after the last attempt the row stays `failed`.
create table notifications (
    id bigserial primary key,
    definition_id text not null,
    run_workflow_id text,
    kind text not null check (kind in ('run_failed', 'run_recovered', 'task_failed', 'schedule_silent')),
    entry int not null,
    dedupe_key text not null unique,
    status text not null default 'pending' check (status in ('pending', 'delivered', 'failed')),
    attempts int not null default 0,
    http_status int,
    error text,
    -- The body sent, secrets as placeholders (never revealed values).
    payload jsonb not null,
    created_at timestamptz not null default now(),
    delivered_at timestamptz
);
create index notifications_definition on notifications (definition_id, id desc);
