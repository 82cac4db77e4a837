-- Debounced and batched event triggers: events that become one run together. A group is
-- `open` while it takes events (at most one open group per definition and key), `closed` once
-- it is due (its `fire_at` passed, or a batch is full) and `started` when the starter has its
-- run in Temporal. Its run's workflow id is the first event's: `tf:{definition}:event:{key}`.
-- Each event still gets its receipt (dedupe per event), naming the group's run.
create table event_groups (
    id            bigserial primary key,
    definition_id text not null,
    version       integer not null,
    mode          text not null check (mode in ('debounce', 'batch')),
    group_key     text not null,
    workflow_id   text not null unique,
    dedupe_key    text not null,
    state         text not null default 'open' check (state in ('open', 'closed', 'started', 'error')),
    events        jsonb not null default '[]'::jsonb,
    event_count   integer not null default 0,
    first_at      timestamptz not null default now(),
    last_at       timestamptz not null default now(),
    fire_at       timestamptz not null,
    attempts      integer not null default 0,
    last_error    text,
    started_at    timestamptz
);
create unique index event_groups_open on event_groups (definition_id, group_key) where state = 'open';
create index event_groups_due on event_groups (fire_at) where state in ('open', 'closed');

alter table event_receipts drop constraint event_receipts_state_check;
alter table event_receipts add constraint event_receipts_state_check check (state in ('pending', 'started', 'error', 'grouped'));
