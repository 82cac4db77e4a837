#!/usr/bin/env bash
# Bytes per task in the run log: runs one fan-out of N tasks through a running taskfactory
# (e.g. `taskfactory dev`) and reads the sizes of activity_runs, task_runs and run_events
# (pg_total_relation_size: heap, TOAST and indexes, summed over partitions) before and after.
#
#   TASKFACTORY_API_URL=http://127.0.0.1:8080 TASKFACTORY_API_KEY=tfk_... \
#   DATABASE_URL=postgres://postgres@127.0.0.1:PORT/taskfactory \
#   scripts/measure-sizing.sh 10000 noop            # N noop tasks, no params
#   scripts/measure-sizing.sh 1000 noop-output      # N noop tasks with ~300 bytes of params (their output)
set -euo pipefail
n=${1:?N tasks}; kind=${2:-noop}
api=${TASKFACTORY_API_URL:?}; key=${TASKFACTORY_API_KEY:?}; db=${DATABASE_URL:?}
id="sizing-$kind-$n-$(date +%s)"
case $kind in
  noop) task='{"id": "t", "kind": "noop", "for_each": "items", "key": "{{ item }}"}' ;;
  noop-output) task='{"id": "t", "kind": "noop", "for_each": "items", "key": "{{ item }}",
      "params": {"invoice": "INV-{{ item }}", "customer": "customer-{{ item }}@example.com",
                 "message": "Dear customer, invoice INV-{{ item }} is overdue; this is a reminder sent by the overdue-invoices definition of taskfactory.",
                 "amount": "{{ item * 3 }}.50", "currency": "EUR", "region": "eu-west-1"}}' ;;
  *) echo "kind: noop | noop-output" >&2; exit 2 ;;
esac
items=$(python3 -c "import json,sys; print(json.dumps(list(range(int(sys.argv[1])))))" "$n")
sizes() {
  psql "$db" -Atc "vacuum analyze activity_runs, task_runs, run_events" >/dev/null
  # Summed over a partitioned table's partitions (run_events: pg_partition_tree has no rows
  # for a plain table).
  psql "$db" -AtF' ' -c "select t, \
      coalesce((select sum(pg_total_relation_size(p.relid)) from pg_partition_tree(t::regclass) p), \
               pg_total_relation_size(t::regclass))::bigint, \
      coalesce((select sum(greatest(c.reltuples, 0)) from pg_partition_tree(t::regclass) p join pg_class c on c.oid = p.relid), \
               (select greatest(reltuples, 0) from pg_class where oid = t::regclass))::bigint \
    from unnest(array['activity_runs', 'task_runs', 'run_events']) t"
}
before=$(sizes)
curl -fsS -X PUT "$api/api/v1/definitions/$id" -H "authorization: Bearer $key" -H 'content-type: application/json' \
  -d "{\"id\": \"$id\", \"name\": \"Sizing $n\", \"trigger\": {\"kind\": \"manual\"},
       \"context\": [{\"name\": \"items\", \"kind\": \"static\", \"value\": $items}], \"tasks\": [$task]}" >/dev/null
run=$(curl -fsS -X POST "$api/api/v1/definitions/$id/runs" -H "authorization: Bearer $key" -H 'content-type: application/json' -d '{}' \
  | python3 -c "import json,sys; print(json.load(sys.stdin)['workflow_id'])")
start=$(date +%s)
while :; do
  status=$(curl -fsS "$api/api/v1/runs/$run?plan=false" -H "authorization: Bearer $key" | python3 -c "import json,sys; print(json.load(sys.stdin)['status'])")
  [[ $status == running || $status == queued ]] || break
  (( $(date +%s) - start < 3600 )) || { echo "run $run still $status after an hour" >&2; exit 1; }
  sleep 5
done
[[ $status == completed ]] || { echo "run $run $status" >&2; exit 1; }
after=$(sizes)
rows=$(psql "$db" -AtF' ' -c "select (select count(*) from task_runs where run_workflow_id = '$run'), (select count(*) from run_events where run_workflow_id = '$run')")
echo "run $run ($n $kind tasks) $status; its rows: task_runs, run_events = $rows"
python3 - "$n" "$before" "$after" <<'PY'
import sys
n = int(sys.argv[1])
parse = lambda s: {l.split()[0]: int(l.split()[1]) for l in s.splitlines()}
before, after = parse(sys.argv[2]), parse(sys.argv[3])
print(f"{'table':<14} {'bytes before':>14} {'bytes after':>14} {'bytes/task':>11} {'GiB/1M tasks':>13}")
total = 0
for t in before:
    d = after[t] - before[t]; total += d
    print(f"{t:<14} {before[t]:>14} {after[t]:>14} {d / n:>11.0f} {d / n * 1e6 / 2**30:>13.2f}")
print(f"{'total':<14} {'':>14} {'':>14} {total / n:>11.0f} {total / n * 1e6 / 2**30:>13.2f}")
PY
