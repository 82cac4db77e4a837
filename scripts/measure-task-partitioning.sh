#!/usr/bin/env bash
# What partitioning task_runs by day would cost its hot statements: pgbench on a table of one
# million tasks over 2,000 runs, as one table and as 39 day partitions (30 days of retention and
# the week ahead), for the worker's update of a task by id and the run page's count of a run's
# tasks; the partitioned table with and without the run's day bound as a value. In a schema of
# its own in any scratch database (dropped afterwards), e.g. the one `taskfactory dev` runs:
#
#   DATABASE_URL=postgres://postgres@127.0.0.1:PORT/taskfactory scripts/measure-task-partitioning.sh [SECONDS]
set -euo pipefail
db=${DATABASE_URL:?the scratch database}; seconds=${1:-15}
command -v pgbench >/dev/null || { echo "error: pgbench is missing: install the Postgres server package (e.g. apt-get install postgresql)" >&2; exit 1; }
schema="tf_measure_$$"
work=$(mktemp -d); trap 'psql "$db" -qc "drop schema if exists $schema cascade" >/dev/null 2>&1; rm -rf "$work"' EXIT
export PGOPTIONS="-c search_path=$schema"
echo "filling $schema: 1,000,000 tasks over 2,000 runs, one table and 39 day partitions ..." >&2
psql "$db" -q -v ON_ERROR_STOP=1 <<SQL
create schema $schema;
set search_path = $schema;
create table runs (workflow_id text primary key, fired_at timestamptz not null);
insert into runs select 'run-' || n, date_trunc('day', now()) - make_interval(days => n % 30) + interval '1 hour'
  from generate_series(1, 2000) n;
create table tasks_plain (id text primary key, run_workflow_id text not null, run_fired_at timestamptz not null,
  status text not null, attempt int not null default 0);
create index on tasks_plain (run_workflow_id, status);
create table tasks_part (like tasks_plain, primary key (id, run_fired_at)) partition by range (run_fired_at);
create index on tasks_part (run_workflow_id, status);
do \$\$ begin
  for d in -30..8 loop
    execute format('create table tasks_p%s partition of tasks_part for values from (%L) to (%L)', d + 30,
      date_trunc('day', now()) + make_interval(days => d), date_trunc('day', now()) + make_interval(days => d + 1));
  end loop;
end \$\$;
insert into tasks_plain select r.workflow_id || '/t/' || n, r.workflow_id, r.fired_at, 'pending'
  from runs r, generate_series(1, 500) n;
insert into tasks_part select * from tasks_plain;
vacuum analyze runs, tasks_plain, tasks_part;
SQL
# Run n's day as epoch seconds, for a statement that binds it.
base=$(psql "$db" -Atc "select extract(epoch from date_trunc('day', now()) + interval '1 hour')::bigint")
pick='\set r random(1, 2000)
\set t random(1, 500)
\set e '"$base"' - (:r % 30) * 86400'
update="update TABLE set status = 'running', attempt = attempt + 1 where id = 'run-' || :r || '/t/' || :t"
count="select count(*) from TABLE where run_workflow_id = 'run-' || :r and status = 'pending'"
bound="and run_fired_at = to_timestamp(:e)"
declare -A statements=(
  [1-update-one-table]="${update/TABLE/tasks_plain}"
  [2-update-partitioned]="${update/TABLE/tasks_part}"
  [3-update-partitioned-day-bound]="${update/TABLE/tasks_part} $bound"
  [4-count-one-table]="${count/TABLE/tasks_plain}"
  [5-count-partitioned]="${count/TABLE/tasks_part}"
  [6-count-partitioned-day-bound]="${count/TABLE/tasks_part} $bound"
)
printf '%-32s %12s %10s\n' statement "latency ms" "per s"
for name in $(printf '%s\n' "${!statements[@]}" | sort); do
  printf '%s\n%s;\n' "$pick" "${statements[$name]}" > "$work/$name.sql"
  out=$(pgbench "$db" -n -M prepared -T "$seconds" -f "$work/$name.sql" 2>&1) || { echo "$out" >&2; exit 1; }
  printf '%-32s %12s %10.0f\n' "${name#*-}" "$(sed -n 's/^latency average = \([0-9.]*\) ms/\1/p' <<<"$out")" \
    "$(sed -n 's/^tps = \([0-9.]*\).*/\1/p' <<<"$out")"
done
