"""Background delivery: a bounded queue and one daemon thread that posts batches.

`Sink` is the machinery (batching, retries, drops); `EventSink` puts trigger events in it, and
the Dramatiq middleware puts external job events. Callers never wait on the network: `put`
serialises the item (so later changes to it are not sent, and a value JSON cannot hold fails
at the caller) and returns.

What is retried: connection errors, timeouts, 408, 429 and 5xx, with exponential backoff,
jitter and the server's `Retry-After`, until delivered or the sink is closed. What is not: any
other 4xx (logged and dropped). Events the API took but refused one by one (an invalid event
in a batch, a definition answering `error`) are logged, never retried: sending them again
cannot change the answer.
"""

from __future__ import annotations

import atexit
import email.utils
import json
import logging
import random
import re
import threading
import time
from collections import deque
from collections.abc import Mapping
from typing import Any

import httpx

from ._client import JSON, Client, event

__all__ = ["EventSink", "Sink"]

log = logging.getLogger("taskfactory.sink")

EVENTS_PATH = "/api/v1/events"
# The API refuses bodies over 2 MiB; batches stay well under it.
MAX_BATCH_BYTES = 1024 * 1024
_RETRYABLE = {408, 429, 500, 502, 503, 504}
_INDEX = re.compile(r"^\[(\d+)\]")


class Sink:
    """Posts JSON items to API paths in batches (a JSON array per path) from a daemon thread.

    `max_batch` items or `flush_interval` seconds after the first one, whichever comes first,
    make a batch. A queue of `max_queue` items drops its oldest to take a new one; `dropped`
    counts them and the count is logged.
    """

    def __init__(
        self,
        client: Client | None = None,
        *,
        max_batch: int = 100,
        flush_interval: float = 0.5,
        max_queue: int = 10_000,
        max_backoff: float = 10.0,
        name: str = "taskfactory-sink",
    ) -> None:
        if max_batch < 1 or max_queue < 1:
            raise ValueError("max_batch and max_queue must be at least 1")
        self._client = client if client is not None else Client()
        self._max_batch = min(max_batch, 1000)  # the API's own limit per request
        self._flush_interval = flush_interval
        self._max_queue = max_queue
        self._max_backoff = max_backoff
        self._queue: deque[tuple[str, bytes]] = deque()
        self._cond = threading.Condition()
        self._stop = threading.Event()  # set when close gives up: retries end, sleeps wake
        self._accepted = 0  # items ever put
        self._settled = 0  # items delivered, refused or dropped
        self._flushing = 0  # callers waiting in flush: batches go out without waiting
        self._closed = False
        self._unlogged_drops = 0
        self.dropped = 0
        """Items dropped: the oldest of a full queue, or left when `close` gave up."""
        self.rejected = 0
        """Items the API refused (a 4xx other than 408/429, or invalid in a batch)."""
        self.retries = 0
        """Failed attempts that were retried."""
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()
        atexit.register(self.close, 5.0)  # what is queued at exit gets 5 s

    def put(self, path: str, item: Mapping[str, JSON]) -> None:
        """Queues `item` for `POST path`; never blocks on the network. Raises `TypeError` or
        `ValueError` when it is not JSON (NaN included), `RuntimeError` after `close`."""
        body = json.dumps(item, separators=(",", ":"), allow_nan=False).encode()
        with self._cond:
            if self._closed:
                raise RuntimeError("the sink is closed")
            if len(self._queue) >= self._max_queue:
                self._queue.popleft()
                self.dropped += 1
                self._unlogged_drops += 1
                self._settled += 1
            self._queue.append((path, body))
            self._accepted += 1
            # The thread waits for a first item, then for a full batch or the interval.
            if len(self._queue) == 1 or len(self._queue) >= self._max_batch:
                self._cond.notify_all()

    def flush(self, timeout: float | None = None) -> None:
        """Waits until everything put so far was delivered (or refused, or dropped); raises
        `TimeoutError` after `timeout` seconds."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            target = self._accepted
            self._flushing += 1
            self._cond.notify_all()
            try:
                while self._settled < target:
                    remaining = None if deadline is None else deadline - time.monotonic()
                    if remaining is not None and remaining <= 0:
                        raise TimeoutError(f"{target - self._settled} item(s) not delivered after {timeout} s")
                    self._cond.wait(remaining)
            finally:
                self._flushing -= 1

    def close(self, timeout: float | None = 10.0) -> None:
        """Delivers what is queued (waiting at most `timeout` seconds), then stops; what is
        left is dropped and logged. Idempotent."""
        with self._cond:
            if self._closed:
                return
            self._closed = True
            self._cond.notify_all()
        atexit.unregister(self.close)
        try:
            self.flush(timeout)
        except TimeoutError as e:
            log.error("taskfactory: closing the sink: %s; they are dropped", e)
        self._stop.set()
        with self._cond:
            self._cond.notify_all()
        self._thread.join(timeout=5)

    def __enter__(self) -> Sink:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the delivery thread

    def _run(self) -> None:
        while True:
            batch = self._next_batch()
            if batch is None:
                return
            for path, bodies in _by_path(batch).items():
                self._post(path, bodies)
            with self._cond:
                self._settled += len(batch)
                self._cond.notify_all()
            self._log_drops()

    def _next_batch(self) -> list[tuple[str, bytes]] | None:
        with self._cond:
            while not self._queue or self._stop.is_set():
                if self._stop.is_set() and self._queue:
                    self._lose(len(self._queue), "the sink was closed before they could be sent")
                    self._settled += len(self._queue)
                    self._queue.clear()
                    self._cond.notify_all()
                if self._closed or self._stop.is_set():
                    return None
                self._cond.wait()
            deadline = time.monotonic() + self._flush_interval
            while len(self._queue) < self._max_batch and not (self._closed or self._flushing):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._cond.wait(remaining)
            batch: list[tuple[str, bytes]] = []
            size = 0
            while self._queue and len(batch) < self._max_batch:
                size += len(self._queue[0][1]) + 1
                if batch and size > MAX_BATCH_BYTES:
                    break
                batch.append(self._queue.popleft())
            return batch

    def _post(self, path: str, bodies: list[bytes]) -> None:
        attempt = 0
        while True:
            try:
                response = self._client._send_json(path, b"[" + b",".join(bodies) + b"]")
            except httpx.TransportError as e:
                wait, why = self._backoff(attempt), f"{type(e).__name__}: {e}"
            else:
                status = response.status_code
                if status < 400:
                    self._log_refusals(path, bodies, response)
                    return
                if status not in _RETRYABLE:
                    self._refused(path, bodies, response)
                    return
                wait = max(self._backoff(attempt), _retry_after(response))
                why = f"{status} {response.text[:200]}"
            if self._stop.is_set():
                self._lose(len(bodies), f"POST {path} failed ({why}) and the sink is closed")
                return
            self.retries += 1
            self._log_drops()  # while the API is away is when the queue fills
            log.warning("taskfactory: POST %s failed (%s); retrying in %.1f s", path, why, wait)
            self._stop.wait(wait)
            attempt += 1

    def _backoff(self, attempt: int) -> float:
        # Exponential with "equal jitter": never less than half the step, so retries spread
        # out without hammering a recovering server.
        step = min(self._max_backoff, 0.1 * 2.0**attempt)
        return step / 2 + random.uniform(0, step / 2)

    def _refused(self, path: str, bodies: list[bytes], response: httpx.Response) -> None:
        status = response.status_code
        if status == 413 and len(bodies) > 1:
            half = len(bodies) // 2
            self._post(path, bodies[:half])
            self._post(path, bodies[half:])
            return
        bad = _indexes(response) if status == 422 and path != EVENTS_PATH else set()
        if bad and len(bad) < len(bodies):
            # external-events takes a batch all or nothing: send the good ones again alone.
            self._reject(path, [bodies[i] for i in sorted(bad)], response)
            self._post(path, [b for i, b in enumerate(bodies) if i not in bad])
            return
        self._reject(path, bodies, response)

    def _reject(self, path: str, bodies: list[bytes], response: httpx.Response) -> None:
        self.rejected += len(bodies)
        log.error(
            "taskfactory: POST %s refused %d item(s), not retried: %d %s",
            path,
            len(bodies),
            response.status_code,
            response.text[:500],
        )

    def _log_refusals(self, path: str, bodies: list[bytes], response: httpx.Response) -> None:
        """An events answer says per event what happened; invalid ones and definitions that
        answered `error` are logged."""
        if path != EVENTS_PATH:
            return
        try:
            results = response.json()["results"]
        except (ValueError, KeyError, TypeError):
            return
        for result in results:
            if result.get("status") == "invalid":
                self.rejected += 1
                log.error("taskfactory: event refused, not retried: %s", result.get("error"))
            for outcome in result.get("outcomes") or []:
                if outcome.get("outcome") == "error":
                    log.error("taskfactory: event of type %r: %s", result.get("type"), outcome)

    def _lose(self, count: int, why: str) -> None:
        self.dropped += count
        log.error("taskfactory: %d item(s) dropped: %s", count, why)

    def _log_drops(self) -> None:
        with self._cond:
            count, self._unlogged_drops = self._unlogged_drops, 0
        if count:
            log.warning(
                "taskfactory: the sink's queue was full (%d items): dropped the %d oldest (%d in all)",
                self._max_queue,
                count,
                self.dropped,
            )


class EventSink(Sink):
    """Sends trigger events in the background: `send` returns at once, a daemon thread posts
    batches to `POST /api/v1/events`.

    ```python
    with taskfactory.EventSink() as sink:
        sink.send("repo.pushed", {"branch": "main"}, key="push-41")
    ```
    """

    def __init__(
        self,
        client: Client | None = None,
        max_batch: int = 100,
        flush_interval: float = 0.5,
        max_queue: int = 10_000,
    ) -> None:
        super().__init__(
            client, max_batch=max_batch, flush_interval=flush_interval, max_queue=max_queue, name="taskfactory-events"
        )

    def send(self, type: str, payload: JSON = None, key: str | None = None, source: str | None = None) -> None:
        """Queues one event (see `Client.send_event`)."""
        self.put(EVENTS_PATH, event(type, payload, key, source))

    def __enter__(self) -> EventSink:
        return self


def _by_path(batch: list[tuple[str, bytes]]) -> dict[str, list[bytes]]:
    groups: dict[str, list[bytes]] = {}
    for path, body in batch:
        groups.setdefault(path, []).append(body)
    return groups


def _indexes(response: httpx.Response) -> set[int]:
    """The batch positions a 422 names (`[3].type`)."""
    try:
        details: list[Any] = response.json()["error"]["details"]
        return {int(m.group(1)) for d in details if (m := _INDEX.match(str(d.get("path", ""))))}
    except (ValueError, KeyError, TypeError, AttributeError):
        return set()


def _retry_after(response: httpx.Response) -> float:
    value = response.headers.get("retry-after")
    if not value:
        return 0.0
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, email.utils.parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError):
        return 0.0
