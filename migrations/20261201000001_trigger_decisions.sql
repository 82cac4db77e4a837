-- The trigger decision log: one row per schedule slot, event (per definition) and manual
-- trigger, with what became of it (fired, fired_zero_tasks, skipped, deduplicated, filtered,
-- error). Rows are written by event ingress, by the run itself and by the schedule observer.
create table trigger_decisions (
    id            bigserial primary key,
    definition_id text not null,
    source        text not null check (source in ('schedule', 'event', 'manual')),
    outcome       text not null check (outcome in ('fired', 'fired_zero_tasks', 'skipped', 'deduplicated', 'filtered', 'error')),
    reason        text,
    message       text not null,
    slot          timestamptz,
    workflow_id   text,
    dedupe_key    text,
    detail        jsonb not null default '{}'::jsonb,
    recorded_at   timestamptz not null default now(),
    -- Makes the writers idempotent: `run:{workflow_id}` for a started run, `slot:{time}` for a
    -- schedule slot, `skip:{reason}:{n}` for Temporal's n-th counted skip. Null: every
    -- delivery of an event is a decision of its own.
    decision_key  text
);
create unique index trigger_decisions_key on trigger_decisions (definition_id, decision_key) where decision_key is not null;
create index trigger_decisions_by_definition on trigger_decisions (definition_id, id desc);
-- Retention: API processes delete entries older than --decision-retention (default 30 days).
create index trigger_decisions_by_time on trigger_decisions (recorded_at);
create index trigger_decisions_by_run on trigger_decisions (workflow_id) where workflow_id is not null;
create index trigger_decisions_by_slot on trigger_decisions (definition_id, slot) where slot is not null;
create index activity_runs_by_slot on activity_runs (definition_id, scheduled_for) where scheduled_for is not null;

-- What the schedule observer last saw of each schedule: slots up to `slots_through` have
-- their decision; the counters are Temporal's, to attribute new skips.
create table schedule_observations (
    definition_id   text primary key,
    slots_through   timestamptz not null,
    missed_catchup  bigint not null default 0,
    overlap_skipped bigint not null default 0,
    paused          boolean not null default false,
    observed_at     timestamptz not null default now()
);
