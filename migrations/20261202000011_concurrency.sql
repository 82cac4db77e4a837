-- Concurrency keys: a run of a definition with `concurrency` asks for a slot of its key
-- (`run_admissions`, one row per run). A slot is held by an `admitted` row whose run is still
-- open, so however a run ends (its own workflow code, or the run reconciler recording a
-- terminate or a timeout in Temporal) its slot frees with the run's status: no release
-- message can be lost. Waiting rows are served first in, first out (`seq`).
alter table activity_runs drop constraint activity_runs_status_check;
alter table activity_runs add constraint activity_runs_status_check
    check (status in ('queued', 'running', 'completed', 'failed', 'skipped', 'cancelled', 'terminated', 'timed_out'));

create table run_admissions (
    run_workflow_id text primary key references activity_runs (workflow_id) on delete cascade,
    definition_id   text not null,
    concurrency_key text not null,
    slot_limit      integer not null check (slot_limit >= 1),
    seq             bigserial not null,
    state           text not null check (state in ('waiting', 'admitted', 'skipped')),
    queued_at       timestamptz not null default now(),
    admitted_at     timestamptz,
    -- on_limit: cancel_running: the run this one asked to cancel (asked once).
    cancelled_run   text
);
create index run_admissions_by_key on run_admissions (definition_id, concurrency_key, state, seq);
