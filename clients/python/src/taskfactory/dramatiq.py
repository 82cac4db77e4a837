"""Dramatiq middleware reporting jobs into a taskfactory run.

```python
import dramatiq
from taskfactory.dramatiq import TaskfactoryMiddleware

broker.add_middleware(TaskfactoryMiddleware())
resize.send_with_options(args=(image_id,), taskfactory_run=run_workflow_id, taskfactory_node="resize")
```

Every message carrying `taskfactory_run` (a message option, or an actor option) is reported to
`POST /api/v1/runs/{run}/external-events` with the message id as `job_id`: `job_started`
before it is processed, `job_finished` after (`duration_seconds`), `job_failed` when it raised
(`retrying: true` while Dramatiq's `Retries` middleware will try it again) or was skipped. Each
event's key is `{message_id}:{attempt}:{type}`, so a redelivered message writes nothing twice.

Reports go through a background `Sink` (batched, retried, bounded), made on first use in each
worker process: a slow or absent taskfactory never slows a job, and no error of this
middleware ever fails one.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from dramatiq import Broker, Middleware
from dramatiq.middleware import Retries

from ._client import JSON, Client, run_path
from ._sink import Sink

__all__ = ["NODE_OPTION", "RUN_OPTION", "TaskfactoryMiddleware"]

log = logging.getLogger("taskfactory.dramatiq")

RUN_OPTION = "taskfactory_run"
"""The option naming the run (its workflow id) a message's job belongs to."""
NODE_OPTION = "taskfactory_node"
"""The option naming the task node the job belongs to (optional)."""


class TaskfactoryMiddleware(Middleware):
    """Reports the jobs of messages with `taskfactory_run` into that run.

    `client` is made from `TASKFACTORY_URL` / `TASKFACTORY_API_KEY` when not given; the other
    arguments are those of the background sink.
    """

    def __init__(
        self,
        client: Client | None = None,
        *,
        max_batch: int = 100,
        flush_interval: float = 0.5,
        max_queue: int = 10_000,
    ) -> None:
        self._client = client
        self._max_batch, self._flush_interval, self._max_queue = max_batch, flush_interval, max_queue
        self._sink: Sink | None = None
        self._lock = threading.Lock()
        # message id -> (attempt, start): set before processing, read after.
        self._running: dict[str, tuple[int, float]] = {}

    @property
    def actor_options(self) -> set[str]:
        return {RUN_OPTION, NODE_OPTION}

    def before_process_message(self, broker: Broker, message: Any) -> None:
        try:
            run = _option(broker, message, RUN_OPTION)
            if run is None:
                return
            attempt = int(message.options.get("retries", 0)) + 1
            with self._lock:
                self._running[message.message_id] = (attempt, time.monotonic())
            self._report(
                broker, message, run, "job_started", attempt, f"{message.actor_name} started (attempt {attempt})"
            )
        except Exception:  # a report must never fail the job
            log.exception("taskfactory: could not report the start of message %s", message.message_id)

    def after_process_message(
        self, broker: Broker, message: Any, *, result: object = None, exception: BaseException | None = None
    ) -> None:
        try:
            run = _option(broker, message, RUN_OPTION)
            if run is None:
                return
            with self._lock:
                attempt, began = self._running.pop(message.message_id, (0, None))
            attempt = attempt or int(message.options.get("retries", 0)) + 1
            extra: dict[str, JSON] = {}
            if began is not None:
                extra["duration_seconds"] = round(time.monotonic() - began, 6)
            if exception is None:
                self._report(broker, message, run, "job_finished", attempt, f"{message.actor_name} finished", extra)
                return
            extra["retrying"] = _will_retry(broker, message, exception, attempt)
            extra["error"] = type(exception).__name__
            self._report(
                broker, message, run, "job_failed", attempt, f"{type(exception).__name__}: {exception}"[:2000], extra
            )
        except Exception:
            log.exception("taskfactory: could not report the end of message %s", message.message_id)

    def after_skip_message(self, broker: Broker, message: Any) -> None:
        try:
            run = _option(broker, message, RUN_OPTION)
            if run is None:
                return
            with self._lock:
                attempt, _ = self._running.pop(message.message_id, (0, None))
            attempt = attempt or int(message.options.get("retries", 0)) + 1
            extra: dict[str, JSON] = {"skipped": True, "retrying": False}
            self._report(broker, message, run, "job_failed", attempt, f"{message.actor_name} skipped", extra)
        except Exception:
            log.exception("taskfactory: could not report the skip of message %s", message.message_id)

    def after_worker_shutdown(self, broker: Broker, worker: object) -> None:
        # After the worker threads finished their messages: deliver their reports.
        with self._lock:
            sink, self._sink = self._sink, None
        if sink is not None:
            sink.close(timeout=10.0)

    def _report(
        self,
        broker: Broker,
        message: Any,
        run: str,
        type: str,
        attempt: int,
        text: str,
        extra: dict[str, JSON] | None = None,
    ) -> None:
        payload: dict[str, JSON] = {"actor": message.actor_name, "queue": message.queue_name, "attempt": attempt}
        node = _option(broker, message, NODE_OPTION)
        if node is not None:
            payload["node"] = node
        payload.update(extra or {})
        event = {
            "type": type,
            "job_id": message.message_id,
            "message": text,
            "payload": payload,
            "key": f"{message.message_id}:{attempt}:{type}",
        }
        self._get_sink().put(run_path(run, "/external-events"), event)

    def _get_sink(self) -> Sink:
        # Made on first use, so each forked worker process has its own delivery thread.
        with self._lock:
            if self._sink is None:
                self._sink = Sink(
                    self._client,
                    max_batch=self._max_batch,
                    flush_interval=self._flush_interval,
                    max_queue=self._max_queue,
                    name="taskfactory-dramatiq",
                )
            return self._sink


def _option(broker: Broker, message: Any, name: str) -> str | None:
    value = message.options.get(name)
    if value is None:
        try:
            value = broker.get_actor(message.actor_name).options.get(name)
        except Exception:  # an actor this process does not know
            return None
    return None if value is None else str(value)


def _will_retry(broker: Broker, message: Any, exception: BaseException, attempt: int) -> bool:
    """Whether Dramatiq's `Retries` middleware enqueues the message again, by its own rules
    (`throws`, `retry_when`, `max_retries`), whichever of the two middlewares runs first."""
    if getattr(message, "failed", False):
        return False
    retries = next((m for m in broker.middleware if isinstance(m, Retries)), None)
    if retries is None:
        return False
    actor = broker.get_actor(message.actor_name)
    throws = message.options.get("throws") or actor.options.get("throws")
    if throws and isinstance(exception, throws):
        return False
    previous = attempt - 1
    retry_when = actor.options.get("retry_when", retries.retry_when)
    if retry_when is not None:
        return bool(retry_when(previous, exception))
    max_retries = message.options.get("max_retries", actor.options.get("max_retries", retries.max_retries))
    return max_retries is None or previous < max_retries
