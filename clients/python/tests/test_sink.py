"""EventSink against real API processes: delivery through an API restart, rate limiting
(429 + Retry-After), events refused one by one, a full queue, an absent API."""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Iterator

import pytest
from harness import Proc, Taskfactory, port_block, put_definition, start_api, wait_for

import taskfactory


def _lone_api(tf: Taskfactory) -> tuple[Proc, int]:
    """A `taskfactory api` process of the test's own (on dev's Postgres and Temporal), so it
    can be killed, and its rate limiter is the test's alone."""
    errors = []
    for attempt in range(20, 24):
        port = port_block(attempt)[0]
        try:
            return start_api(tf, port), port
        except AssertionError as e:
            errors.append(str(e))
    raise AssertionError("no taskfactory api would start:\n" + "\n".join(errors))


@pytest.fixture
def lone_api(tf: Taskfactory) -> Iterator[tuple[Proc, int]]:
    proc, port = _lone_api(tf)
    yield proc, port
    proc.stop()


def _event_runs(client: taskfactory.Client, definition_id: str) -> set[str]:
    page = client.request("GET", f"/api/v1/runs?definition_id={definition_id}&limit=500")
    return {run["workflow_id"] for run in page["runs"]}


def test_every_event_arrives_once_per_key_through_an_api_restart(
    tf: Taskfactory, client: taskfactory.Client, uid: str
) -> None:
    definition = f"py-sink-{uid}"
    put_definition(
        client,
        {"id": definition, "name": "sink", "trigger": {"kind": "event", "event_type": "py.tested"},
         "tasks": [{"id": "a", "kind": "noop"}]},
    )  # fmt: skip
    api, port = _lone_api(tf)
    sink = taskfactory.EventSink(
        taskfactory.Client(f"http://127.0.0.1:{port}", tf.api_key), max_batch=10, flush_interval=0.05
    )
    # 300 events, 150 keys, the two events of a key side by side: a key whose events were both
    # sent while the API was down has no other way in.
    events = [("py.tested", {"i": i}, f"k{i // 2}") for i in range(300)]
    try:
        for type, payload, key in events[:150]:
            sink.send(type, payload, key=key, source="pytest")
        wait_for(lambda: _event_runs(client, definition), 60, "the first runs")
        api.kill()  # mid-stream: batches are in flight or queued

        for type, payload, key in events[150:]:
            sink.send(type, payload, key=key)
        wait_for(lambda: sink.retries > 0, 30, "the sink to meet the dead API")
        api = start_api(tf, port)
        sink.flush(timeout=120)
    finally:
        sink.close(timeout=5)
        api.stop()

    assert (sink.dropped, sink.rejected) == (0, 0)
    expected = {f"tf:{definition}:event:k{n}" for n in range(150)}
    runs = wait_for(lambda: (r := _event_runs(client, definition)) >= expected and r, 180, "150 runs")
    assert runs == expected


def test_a_lone_event_goes_out_within_the_flush_interval(client: taskfactory.Client, uid: str) -> None:
    definition = f"py-lone-{uid}"
    put_definition(
        client,
        {"id": definition, "name": "lone", "trigger": {"kind": "event", "event_type": f"py.lone.{uid}"},
         "tasks": [{"id": "a", "kind": "noop"}]},
    )  # fmt: skip
    sink = taskfactory.EventSink(client, flush_interval=0.2)
    try:
        sink.send(f"py.lone.{uid}", {"n": 1}, key="one")  # no flush: the thread sends it alone
        wait_for(lambda: _event_runs(client, definition), 60, "the event's run")
    finally:
        sink.close()


def test_a_rate_limited_batch_waits_for_retry_after(
    tf: Taskfactory, lone_api: tuple[Proc, int], caplog: pytest.LogCaptureFixture
) -> None:
    _, port = lone_api
    # The API takes 2,000 events at once per key, then 200 a second: the third batch of
    # 1,000 answers 429 with Retry-After, and goes in once the bucket has refilled.
    with taskfactory.EventSink(taskfactory.Client(f"http://127.0.0.1:{port}", tf.api_key), max_batch=1000) as sink:
        for i in range(3000):
            sink.send("py.nobody-listens", {"i": i})
        began = time.monotonic()
        sink.flush(timeout=60)
    assert sink.retries >= 1
    assert (sink.dropped, sink.rejected) == (0, 0)
    assert any("429" in r.getMessage() for r in caplog.records), caplog.text
    assert time.monotonic() - began >= 1.0, "the sink waited as long as Retry-After said"


def test_events_refused_one_by_one_are_logged_not_retried(
    client: taskfactory.Client, caplog: pytest.LogCaptureFixture
) -> None:
    with taskfactory.EventSink(client, flush_interval=0.05) as sink:
        sink.send("py.nobody-listens", key="")  # invalid: keys are 1 to 200 characters
        sink.send("py.nobody-listens", key="fine")
        sink.flush(timeout=30)
        assert (sink.rejected, sink.retries, sink.dropped) == (1, 0, 0)
    assert any("[0].key" in r.getMessage() for r in caplog.records), caplog.text


def test_a_batch_the_api_refuses_whole_is_dropped_and_logged(tf: Taskfactory, caplog: pytest.LogCaptureFixture) -> None:
    with taskfactory.EventSink(taskfactory.Client(tf.url, "tfk_wrong"), flush_interval=0.05) as sink:
        sink.send("py.nobody-listens")
        sink.flush(timeout=30)
        assert (sink.rejected, sink.retries) == (1, 0)
    assert any("401" in r.getMessage() for r in caplog.records), caplog.text


def test_a_full_queue_drops_the_oldest_and_never_blocks(caplog: pytest.LogCaptureFixture) -> None:
    # A port nothing listens on: every attempt is refused, so the queue only fills.
    with socket.socket() as s:
        dead = port_block(30)[0]
        s.bind(("127.0.0.1", dead))  # bound, never listening: connections are refused
        sink = taskfactory.EventSink(taskfactory.Client(f"http://127.0.0.1:{dead}", "k"), max_batch=2, max_queue=5)
        began = time.monotonic()
        for i in range(50):
            sink.send("py.dropped", {"i": i})
        assert time.monotonic() - began < 0.5, "send never waits on the network"
        wait_for(lambda: sink.retries > 0, 10, "a refused connection")
        with caplog.at_level(logging.WARNING, logger="taskfactory.sink"):
            wait_for(lambda: sink.dropped >= 43, 10, "the oldest to be dropped")
            with pytest.raises(TimeoutError):
                sink.flush(timeout=0.3)
            sink.close(timeout=0.5)
    assert sink.dropped == 50, "everything is dropped: the API never answered"
    assert any("dropped" in r.getMessage() for r in caplog.records), caplog.text
    with pytest.raises(RuntimeError):
        sink.send("py.dropped")
