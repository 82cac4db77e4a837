-- Run-log partitioning (ADR-027). run_events is partitioned by its run's start: run_fired_at is
-- the run's activity_runs.fired_at, so every event of a run lies in one partition, one per UTC
-- day. A day whose runs are all past retention is detached and dropped whole, not deleted row
-- by row. The keys gain run_fired_at (a partitioned table's keys must hold the partition key);
-- a run's fired_at never changes, so (run, seq) and (run, event_key) stay unique per run, and
-- reads by (run, seq) name run_fired_at too, so they touch one partition.
--
-- The existing table is converted in this migration's transaction: every event is copied into
-- the partitioned table, the copy is counted, and only then is the old table dropped.

alter table run_events rename to run_events_unpartitioned;
alter index run_events_pkey rename to run_events_unpartitioned_pkey;
alter index run_events_run_workflow_id_event_key_key rename to run_events_unpartitioned_event_key;

create table run_events (
    run_workflow_id text not null,
    -- The run's activity_runs.fired_at: the partition key.
    run_fired_at    timestamptz not null,
    seq             bigint not null check (seq > 0),
    event_key       text not null,
    ts              timestamptz not null default now(),
    type            text not null,
    node_id         text,
    level           text not null,
    message         text,
    payload         jsonb not null default '{}'::jsonb,
    primary key (run_workflow_id, run_fired_at, seq),
    unique (run_workflow_id, run_fired_at, event_key)
) partition by range (run_fired_at);

-- The partition of run_events holding the runs started on `day` (UTC), created if missing;
-- answers its name. Concurrent callers are serialised by an advisory lock.
create function taskfactory_event_partition(day date) returns text language plpgsql as $$
declare
    part text := 'run_events_p' || to_char(day, 'YYYYMMDD');
begin
    if to_regclass(part) is null then
        perform pg_advisory_xact_lock(hashtext('taskfactory_event_partition'));
        if to_regclass(part) is null then
            execute format('create table %I partition of run_events for values from (%L) to (%L)',
                part, day::timestamp at time zone 'UTC', (day + 1)::timestamp at time zone 'UTC');
        end if;
    end if;
    return part;
end $$;
revoke execute on function taskfactory_event_partition(date) from public;

-- A partition for every day that has runs, and for today to a week ahead.
select taskfactory_event_partition(day) from (
    select distinct (fired_at at time zone 'UTC')::date as day from activity_runs
    union
    select (now() at time zone 'UTC')::date + n from generate_series(0, 7) n
) days order by day;

insert into run_events (run_workflow_id, run_fired_at, seq, event_key, ts, type, node_id, level, message, payload)
select e.run_workflow_id, r.fired_at, e.seq, e.event_key, e.ts, e.type, e.node_id, e.level, e.message, e.payload
from run_events_unpartitioned e join activity_runs r on r.workflow_id = e.run_workflow_id;

do $$
declare
    copied bigint := (select count(*) from run_events);
    kept bigint := (select count(*) from run_events_unpartitioned);
begin
    if copied <> kept then
        raise exception 'partitioning run_events copied % of % events', copied, kept;
    end if;
end $$;

drop table run_events_unpartitioned;
