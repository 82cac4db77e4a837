"""`taskfactory.temporal` in a real Temporal Python worker serving `activity` tasks of a run:
progress, log lines and artifacts land on the task's node as NODE_PROGRESS / NODE_LOG /
NODE_ARTIFACT (`POST /api/v1/task-events`).

Covers the three places a task's activity can run: activity mode (the activity of the task's
batch workflow, activity id = task id), workflow mode (`execution: workflow`: the task's own
workflow, workflow id = task id), from both a `def` and an `async def` activity.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from harness import Taskfactory, put_definition, run_events, run_finished, wait_for
from temporalio import activity
from temporalio.client import Client as TemporalClient
from temporalio.worker import Worker

import taskfactory
from taskfactory import temporal as tf_report


@activity.defn(name="py_report")
def py_report(params: dict[str, Any]) -> dict[str, Any]:
    steps = int(params["steps"])
    delivered = [tf_report.progress(i, steps, message=f"step {i}") for i in range(1, steps + 1)]
    delivered.append(tf_report.log("reported", level="info", steps=steps))
    delivered.append(tf_report.artifact("report.txt", data="all good", media_type="text/plain"))
    delivered.append(tf_report.artifact("blob.bin", data=b"\x00\x01\xff", media_type="application/octet-stream"))
    delivered.append(tf_report.artifact("elsewhere", url="https://example.com/report/1"))
    return {"delivered": delivered}


@activity.defn(name="py_report_async")
async def py_report_async(params: dict[str, Any]) -> dict[str, Any]:
    steps = int(params["steps"])
    delivered = [await tf_report.aprogress(i, steps) for i in range(1, steps + 1)]
    delivered.append(await tf_report.alog("reported", level="warn", steps=steps))
    delivered.append(await tf_report.aartifact("report.txt", data="all good"))
    delivered.append(await tf_report.aartifact("blob.bin", data=b"\x00\x01\xff"))
    delivered.append(await tf_report.aartifact("elsewhere", url="https://example.com/report/1"))
    return {"delivered": delivered}


@pytest.fixture
def report_queue(tf: Taskfactory, uid: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A Temporal Python worker on a task queue of its own, in a thread of this process; the
    helpers find taskfactory through the environment, as a real worker would."""
    monkeypatch.setenv("TASKFACTORY_URL", tf.url)
    monkeypatch.setenv("TASKFACTORY_API_KEY", tf.api_key)
    queue = f"py-report-{uid}"
    loop = asyncio.new_event_loop()
    stop = asyncio.Event()
    ready = threading.Event()
    failure: list[BaseException] = []

    async def serve() -> None:
        client = await TemporalClient.connect(tf.temporal_address)
        with ThreadPoolExecutor(4) as pool:
            async with Worker(
                client, task_queue=queue, activities=[py_report, py_report_async], activity_executor=pool
            ):
                ready.set()
                await stop.wait()

    def main() -> None:
        try:
            loop.run_until_complete(serve())
        except BaseException as e:
            failure.append(e)
            ready.set()

    thread = threading.Thread(target=main, name="temporal-worker", daemon=True)
    thread.start()
    assert ready.wait(60), "the Temporal worker did not start"
    assert not failure, f"the Temporal worker failed: {failure[0]!r}"
    yield queue
    loop.call_soon_threadsafe(stop.set)
    thread.join(30)
    loop.close()


def test_progress_logs_and_artifacts_land_on_the_tasks_node(
    client: taskfactory.Client, report_queue: str, uid: str
) -> None:
    definition = f"py-report-{uid}"
    activity_task = {"kind": "activity", "task_queue": report_queue, "retry": {"max_attempts": 1}}
    put_definition(
        client,
        {"id": definition, "name": "report", "trigger": {"kind": "manual"},
         "tasks": [
             {"id": "r", "activity_type": "py_report", "params": {"steps": 3}, **activity_task},
             {"id": "ra", "activity_type": "py_report_async", "params": {"steps": 3}, **activity_task},
             {"id": "rw", "activity_type": "py_report", "params": {"steps": 2}, "execution": "workflow", **activity_task},
         ]},
    )  # fmt: skip
    run = client.trigger(definition, key="one")["workflow_id"]
    finished = wait_for(lambda: run_finished(client, run), 120, "the run to finish")
    assert finished["status"] == "completed", finished
    outputs = {t["template_id"]: t["output"] for t in finished["tasks"]}
    # Each helper answers whether taskfactory took the report.
    assert all(all(o["delivered"]) for o in outputs.values()), f"reports refused (see the log): {outputs}"

    events = run_events(client, run)
    for template, steps in (("r", 3), ("ra", 3), ("rw", 2)):
        node = f"{run}/{template}/_"
        on_node = [e["type"] for e in events if e["node_id"] == node]
        assert on_node.count("NODE_PROGRESS") == steps, (template, on_node)
        assert on_node.count("NODE_LOG") == 1, (template, on_node)
        assert on_node.count("NODE_ARTIFACT") == 3, (template, on_node)
        logged = next(e for e in events if e["node_id"] == node and e["type"] == "NODE_LOG")
        assert "reported" in (logged["message"] or str(logged["payload"])), logged
