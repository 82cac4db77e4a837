"""Progress, log lines and artifacts from a Temporal Python activity run by a taskfactory task.

```python
from temporalio import activity
from taskfactory import temporal as tf

@activity.defn
def resize(images: list[str]) -> int:
    for i, image in enumerate(images, 1):
        ...
        tf.progress(i, len(images), message=image)
    tf.log("resized", level="info", count=len(images))
    tf.artifact("report.csv", data=csv_text, media_type="text/csv")
    return len(images)
```

Each call posts one `POST /api/v1/task-events` with the activity's identity from
`temporalio.activity.info()`: `{"temporal": {"workflow_id", "activity_id"}, "type", ...}`;
taskfactory finds the task from it (a task in activity mode is the activity `{task id}` of its
batch workflow; in workflow mode its workflow is `{task id}`; a `workflow` task's own workflow
is `{task id}/work`). The blocking functions suit `def` activities, the `a…` coroutines
`async def` ones.

Reporting is best effort: a failure is logged (logger `taskfactory.temporal`) and the call
answers `False`, so taskfactory being away never fails the activity.
"""

from __future__ import annotations

import base64
import logging
import threading
from typing import Any

import httpx
from temporalio import activity

from ._client import JSON, ApiError, AsyncClient, Client

__all__ = ["aartifact", "alog", "aprogress", "artifact", "log", "progress"]

logger = logging.getLogger("taskfactory.temporal")

# One client per process (from TASKFACTORY_URL / TASKFACTORY_API_KEY), made on first use; each
# function also takes `client=` for callers who configure their own.
_lock = threading.Lock()
_client: Client | None = None


def _default_client() -> Client:
    global _client
    with _lock:
        if _client is None:
            _client = Client()
        return _client


def _identity() -> dict[str, str]:
    info = activity.info()  # raises outside an activity, as it should
    return {"workflow_id": info.workflow_id or "", "activity_id": info.activity_id}


def _body(type: str, fields: dict[str, JSON]) -> dict[str, JSON]:
    body: dict[str, JSON] = {"temporal": _identity(), "type": type}
    body.update({k: v for k, v in fields.items() if v is not None})
    return body


def _progress(current: float, total: float | None, message: str | None) -> dict[str, JSON]:
    return _body("progress", {"current": current, "total": total, "message": message})


def _log(message: str, level: str, fields: dict[str, Any]) -> dict[str, JSON]:
    return _body("log", {"message": message, "level": level, "fields": fields})


def _artifact(name: str, url: str | None, data: str | bytes | None, media_type: str | None) -> dict[str, JSON]:
    if (url is None) == (data is None):
        raise ValueError("give an artifact either url= or data=")
    fields: dict[str, JSON] = {"name": name, "url": url, "media_type": media_type}
    if isinstance(data, bytes):
        fields["data_base64"] = base64.b64encode(data).decode("ascii")
    else:
        fields["data"] = data
    return _body("artifact", fields)


def _post(body: dict[str, JSON], client: Client | None) -> bool:
    try:
        (client or _default_client()).task_events(body)
        return True
    except (ApiError, httpx.HTTPError) as e:
        logger.warning("taskfactory: %s report of %s not delivered: %s", body["type"], body["temporal"], e)
        return False


async def _apost(body: dict[str, JSON], client: AsyncClient | None) -> bool:
    try:
        if client is not None:
            await client.task_events(body)
        else:
            # An async client is bound to its event loop, so none is kept between calls.
            async with AsyncClient() as own:
                await own.task_events(body)
        return True
    except (ApiError, httpx.HTTPError) as e:
        logger.warning("taskfactory: %s report of %s not delivered: %s", body["type"], body["temporal"], e)
        return False


def progress(
    current: float, total: float | None = None, message: str | None = None, *, client: Client | None = None
) -> bool:
    """Reports how far the task is (`NODE_PROGRESS`): `current` of `total`."""
    return _post(_progress(current, total, message), client)


def log(message: str, level: str = "info", *, client: Client | None = None, **fields: Any) -> bool:
    """Writes a line to the task's log (`NODE_LOG`); `fields` are structured detail."""
    return _post(_log(message, level, fields), client)


def artifact(
    name: str,
    *,
    url: str | None = None,
    data: str | bytes | None = None,
    media_type: str | None = None,
    client: Client | None = None,
) -> bool:
    """Records an artifact of the task (`NODE_ARTIFACT`): a `url` where it lives, or its
    `data` (text, or bytes sent as base64)."""
    return _post(_artifact(name, url, data, media_type), client)


async def aprogress(
    current: float, total: float | None = None, message: str | None = None, *, client: AsyncClient | None = None
) -> bool:
    """`progress` for `async def` activities."""
    return await _apost(_progress(current, total, message), client)


async def alog(message: str, level: str = "info", *, client: AsyncClient | None = None, **fields: Any) -> bool:
    """`log` for `async def` activities."""
    return await _apost(_log(message, level, fields), client)


async def aartifact(
    name: str,
    *,
    url: str | None = None,
    data: str | bytes | None = None,
    media_type: str | None = None,
    client: AsyncClient | None = None,
) -> bool:
    """`artifact` for `async def` activities."""
    return await _apost(_artifact(name, url, data, media_type), client)
