"""Client against a real `taskfactory dev`: manual runs, reading runs, events, error answers."""

from __future__ import annotations

import asyncio
import time

import pytest
from harness import Taskfactory, put_definition, run_finished, wait_for

import taskfactory


def test_trigger_and_read_a_run_until_it_completes(client: taskfactory.Client, uid: str) -> None:
    saved = put_definition(
        client,
        {"id": f"py-x-{uid}", "name": "X", "trigger": {"kind": "manual"}, "tasks": [{"id": "a", "kind": "noop"}]},
    )
    assert saved["version"] == 1

    started = client.trigger(f"py-x-{uid}", key="a/b:c", payload={"n": 1})
    assert started["started"] is True
    # The id holds ':' and '/' (escaped as %2F by the API): the client encodes it whole.
    assert started["workflow_id"] == f"tf:py-x-{uid}:manual:a%2Fb:c"

    run = wait_for(lambda: run_finished(client, started["workflow_id"]), 60, "the run to finish")
    assert run["status"] == "completed"
    assert run["tasks_completed"] == 1
    assert run["trigger"]["payload"] == {"n": 1}

    again = client.trigger(f"py-x-{uid}", key="a/b:c")
    assert again["started"] is False
    assert again["workflow_id"] == started["workflow_id"]


def test_send_event_starts_a_run_once_per_key(client: taskfactory.Client, uid: str) -> None:
    put_definition(
        client,
        {"id": f"py-ev-{uid}", "name": "E", "trigger": {"kind": "event", "event_type": f"py.client.{uid}"},
         "tasks": [{"id": "a", "kind": "noop"}]},
    )  # fmt: skip
    first = client.send_event(f"py.client.{uid}", {"n": 1}, key="k1", source="pytest")
    [result] = first["results"]
    assert result["status"] == "accepted"
    assert result["outcomes"] == [
        {"definition_id": f"py-ev-{uid}", "outcome": "accepted", "workflow_id": f"tf:py-ev-{uid}:event:k1"}
    ]
    second = client.send_event(f"py.client.{uid}", {"n": 1}, key="k1")
    assert second["results"][0]["outcomes"][0]["outcome"] == "duplicate"

    batch = client.send_events([taskfactory.event(f"py.client.{uid}", key="k2"), {"type": ""}])
    assert [r["status"] for r in batch["results"]] == ["accepted", "invalid"]
    assert batch["results"][1]["error"]["path"] == "[1].type"


def test_an_invalid_definition_is_an_api_error_with_field_details(client: taskfactory.Client, uid: str) -> None:
    with pytest.raises(taskfactory.ApiError) as caught:
        put_definition(
            client,
            {"id": f"py-bad-{uid}", "name": "X", "trigger": {"kind": "manual"}, "tasks": [{"id": "a", "kind": "nope"}]},
        )
    error = caught.value
    assert error.status == 422
    assert error.code == "invalid"
    assert "tasks[0].kind" in error.message
    assert [d["path"] for d in error.details] == ["tasks[0].kind"]
    assert "unknown variant" in error.details[0]["message"]


def test_unknown_things_are_404_not_found(client: taskfactory.Client, uid: str) -> None:
    with pytest.raises(taskfactory.ApiError) as caught:
        client.run(f"tf:py-none-{uid}:manual:x/y")
    assert (caught.value.status, caught.value.code, caught.value.details) == (404, "not_found", [])
    assert "not found" in caught.value.message

    with pytest.raises(taskfactory.ApiError) as caught:
        client.trigger(f"py-none-{uid}")
    assert (caught.value.status, caught.value.code) == (404, "not_found")


def test_a_wrong_key_is_401(tf: Taskfactory) -> None:
    with taskfactory.Client(tf.url, "tfk_wrong") as wrong, pytest.raises(taskfactory.ApiError) as caught:
        wrong.run("tf:x:manual:y")
    assert (caught.value.status, caught.value.code) == (401, "unauthorized")


def test_configuration_comes_from_the_environment(tf: Taskfactory, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TASKFACTORY_URL", tf.url + "/")
    monkeypatch.setenv("TASKFACTORY_API_KEY", tf.api_key)
    with taskfactory.Client() as c:
        assert c.url == tf.url
        assert c.request("GET", "/api/v1/runs?limit=1")["runs"] is not None


def test_the_async_client_is_the_same_api(tf: Taskfactory, uid: str) -> None:
    asyncio.run(_async_client(tf, uid))


async def _async_client(tf: Taskfactory, uid: str) -> None:
    async with taskfactory.AsyncClient(tf.url, tf.api_key) as c:
        await c.request(
            "PUT", f"/api/v1/definitions/py-async-{uid}",
            {"id": f"py-async-{uid}", "name": "A", "trigger": {"kind": "manual"}, "tasks": [{"id": "a", "kind": "noop"}]},
        )  # fmt: skip
        started = await c.trigger(f"py-async-{uid}", key="one")
        # The run log has the run once its workflow recorded itself, a moment after the trigger.
        deadline = time.monotonic() + 60
        while True:
            try:
                run = await c.run(started["workflow_id"])
                break
            except taskfactory.ApiError as e:
                if e.status != 404 or time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.1)
        assert run["definition_id"] == f"py-async-{uid}"
        with pytest.raises(taskfactory.ApiError) as caught:
            await c.run(f"tf:py-async-{uid}:manual:none")
        assert caught.value.status == 404
