"""TaskfactoryMiddleware in a real Dramatiq worker on a real Redis, reporting into a real run."""

from __future__ import annotations

import importlib
import socket
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from harness import TESTS, Proc, Taskfactory, child_env, port_block, put_definition, run_events, wait_for

import taskfactory


def _start_worker(redis_url: str, log: Path, url: str, api_key: str) -> Proc:
    env = child_env({"REDIS_URL": redis_url, "TASKFACTORY_URL": url, "TASKFACTORY_API_KEY": api_key})
    args = [sys.executable, "-m", "dramatiq", "dramatiq_app", "--path", str(TESTS), "--processes", "1", "--threads", "4",
            "--queues", "py-jobs"]  # fmt: skip
    proc = Proc(args, log, env=env, cwd=str(TESTS))
    # Dramatiq's own line once its consumers and worker threads are up.
    if not proc.wait_line("is ready for action", timeout=60):
        raise AssertionError(f"the Dramatiq worker exited:\n{proc.output()}")
    return proc


@pytest.fixture
def worker(tf: Taskfactory, redis_url: str, tmp_path: Path) -> Iterator[Proc]:
    proc = _start_worker(redis_url, tmp_path / "dramatiq.out", tf.url, tf.api_key)
    yield proc
    proc.stop(timeout=30)


@pytest.fixture
def app(redis_url: str, monkeypatch: pytest.MonkeyPatch) -> Any:
    """The same application in this process, to send the messages."""
    monkeypatch.setenv("REDIS_URL", redis_url)
    return importlib.import_module("dramatiq_app")


def _graph(client: taskfactory.Client, workflow_id: str) -> dict[str, Any]:
    return client.request("GET", taskfactory.run_path(workflow_id, "/graph"))


def test_jobs_are_reported_into_the_run_with_their_states(
    client: taskfactory.Client, worker: Proc, app: Any, uid: str
) -> None:
    definition = f"py-jobs-{uid}"
    put_definition(
        client,
        {"id": definition, "name": "jobs", "trigger": {"kind": "manual"},
         # A human task nobody completes holds the run open while the jobs report into it.
         "tasks": [{"id": "hold", "kind": "human", "title": "wait", "assignee": "py"}]},
    )  # fmt: skip
    run = client.trigger(definition, key="jobs/1")["workflow_id"]
    wait_for(lambda: client.run(run)["status"] == "running", 60, "the run to be running")

    modes = ["ok"] * 12 + ["flaky"] * 4 + ["broken"] * 4
    messages = {}
    for n, mode in enumerate(modes):
        options: dict[str, Any] = {"taskfactory_run": run}
        if n == 0:
            options["taskfactory_node"] = "resize"
        message = app.work.send_with_options(args=(n, mode), **options)
        messages[message.message_id] = mode
    want = {f"job:{mid}": ("failed" if mode == "broken" else "completed") for mid, mode in messages.items()}

    def settled() -> dict[str, str] | None:
        got = {job["id"]: job["status"] for job in _graph(client, run)["external"]}
        return got if got == want else None

    try:
        wait_for(settled, 90, "every job's final state in the run graph")
    except AssertionError:
        raise AssertionError(f"{_graph(client, run)['external']}\nworker:\n{worker.output()}") from None

    events = [e for e in run_events(client, run) if (e["node_id"] or "").startswith("job:")]
    by_job: dict[str, list[dict[str, Any]]] = {}
    for e in events:
        by_job.setdefault(e["payload"]["job_id"], []).append(e)
    for mid, mode in messages.items():
        seen = [(e["type"], e["payload"]["data"]["attempt"], e["payload"]["data"].get("retrying")) for e in by_job[mid]]
        expected = {
            "ok": [("NODE_STARTED", 1, None), ("NODE_COMPLETED", 1, None)],
            "flaky": [
                ("NODE_STARTED", 1, None),
                ("NODE_FAILED", 1, True),
                ("NODE_STARTED", 2, None),
                ("NODE_COMPLETED", 2, None),
            ],
            "broken": [
                ("NODE_STARTED", 1, None),
                ("NODE_FAILED", 1, True),
                ("NODE_STARTED", 2, None),
                ("NODE_FAILED", 2, False),
            ],
        }[mode]
        assert sorted(seen, key=lambda s: (s[1], s[0] != "NODE_STARTED")) == expected, (mode, seen)

    first = next(iter(messages))
    data = [e["payload"]["data"] for e in by_job[first]]
    assert all(d["node"] == "resize" and d["actor"] == "work" and d["queue"] == "py-jobs" for d in data), data
    finished = next(e for e in by_job[first] if e["type"] == "NODE_COMPLETED")
    assert finished["payload"]["data"]["duration_seconds"] >= 0
    failed = next(
        e for m, mode in messages.items() if mode == "broken" for e in by_job[m] if e["type"] == "NODE_FAILED"
    )
    assert failed["message"].startswith("Boom: job ") and failed["level"] == "error"

    # The run itself is untouched: still waiting on its human task.
    assert client.run(run)["status"] == "running"


def test_jobs_run_on_when_taskfactory_is_away(redis_url: str, app: Any, tmp_path: Path) -> None:
    # A port nothing listens on: every report is refused and retried in the background.
    with socket.socket() as s:
        dead = port_block(31)[0]
        s.bind(("127.0.0.1", dead))
        proc = _start_worker(redis_url, tmp_path / "dramatiq.out", f"http://127.0.0.1:{dead}", "tfk_x")
        try:
            for n in range(10):
                app.work.send_with_options(args=(n, "ok"), taskfactory_run="tf:nowhere:manual:x")
            began = time.monotonic()
            app.broker.join("py-jobs", timeout=30_000)
            assert time.monotonic() - began < 15, "jobs did not wait on taskfactory"
            assert proc.wait_line("retrying in", timeout=30), proc.output()
            assert proc.popen.poll() is None
            assert not any("Failed to process message" in line for line in proc.lines), proc.output()
        finally:
            proc.stop(timeout=30)
