-- Durable ingress: an accepted event is a receipt committed inside the request, `pending`
-- until a starter in the API processes has started its run in Temporal (`started`), or has
-- given up on it (`error`: the definition version it was accepted for is gone). Receipts
-- written before this migration had started their run already.
alter table event_receipts
    add column state      text not null default 'started' check (state in ('pending', 'started', 'error')),
    add column version    integer,
    add column attempts   integer not null default 0,
    add column last_error text,
    add column started_at timestamptz;
create index event_receipts_pending on event_receipts (received_at) where state = 'pending';

-- New decision outcomes: `accepted` (an event taken, its run not started yet: the starter
-- turns it into `fired` or `error`), `queued` (a run waiting for a concurrency slot),
-- `debounced` and `batched` (an event that went into a run with others).
alter table trigger_decisions drop constraint trigger_decisions_outcome_check;
alter table trigger_decisions add constraint trigger_decisions_outcome_check check (outcome in
    ('fired', 'fired_zero_tasks', 'skipped', 'deduplicated', 'filtered', 'error', 'accepted', 'queued', 'debounced', 'batched'));
