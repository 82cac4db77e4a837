"""How many events per second one process delivers through an EventSink to a local API.

    TASKFACTORY_URL=http://127.0.0.1:8080 TASKFACTORY_API_KEY=tfk_... \
        python clients/python/bench/sink.py [--events 20000] [--batch 100]

Sends events of a type no definition listens to (so the figure is the ingress and the sink,
not run starts), then waits for `flush()`; prints the figures as JSON with the command.
"""

from __future__ import annotations

import argparse
import json
import time
import uuid

from taskfactory import Client, EventSink


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--batch", type=int, default=100)
    args = parser.parse_args()
    kind = f"bench.sink.{uuid.uuid4().hex[:8]}"
    sink = EventSink(Client(), max_batch=args.batch, max_queue=args.events)
    began = time.perf_counter()
    for i in range(args.events):
        sink.send(kind, {"n": i}, key=f"k{i}")
    queued = time.perf_counter() - began
    sink.flush(timeout=600)
    took = time.perf_counter() - began
    sink.close()
    print(json.dumps({
        "events": args.events,
        "batch": args.batch,
        "send_loop_s": round(queued, 3),
        "delivered_s": round(took, 3),
        "events_per_s": round(args.events / took),
        "dropped": sink.dropped,
        "retries": sink.retries,
        "command": f"python clients/python/bench/sink.py --events {args.events} --batch {args.batch}",
    }))


if __name__ == "__main__":
    main()
