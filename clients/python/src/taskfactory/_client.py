"""The HTTP client: one method per endpoint, as sync (`Client`) and async (`AsyncClient`) twins.

Both build the same requests (`_Calls`) and read answers the same way (`_answer`); only the
transport differs. Configuration comes from the arguments, else from `TASKFACTORY_URL` and
`TASKFACTORY_API_KEY`, read once, when the client is made.
"""

from __future__ import annotations

import gzip

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx

__all__ = ["DEFAULT_URL", "ApiError", "AsyncClient", "Client"]

#: Where the API is when neither the caller nor the environment says.
DEFAULT_URL = "http://127.0.0.1:8080"

JSON = Any
"""Any JSON value, as `json.loads` gives it."""


class ApiError(Exception):
    """An error answer of the API, from its envelope `{"error": {code, message, details}}`."""

    status: int
    """The HTTP status."""
    code: str
    """Stable and machine-readable: `invalid`, `not_found`, `unauthorized`, `rate_limited`, ..."""
    message: str
    """For people."""
    details: list[dict[str, str]]
    """For `invalid`: one `{"path", "message"}` per problem, e.g. `tasks[0].kind`."""

    def __init__(self, status: int, code: str, message: str, details: list[dict[str, str]] | None = None) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.details = details or []

    @classmethod
    def from_response(cls, response: httpx.Response) -> ApiError:
        """Reads the envelope; an answer without one (a proxy's page, a 503 listing what
        happened to each event) keeps its status and text."""
        try:
            error = response.json()["error"]
            details = [{"path": str(d["path"]), "message": str(d["message"])} for d in error.get("details") or []]
            return cls(response.status_code, str(error["code"]), str(error["message"]), details)
        except (ValueError, KeyError, TypeError):
            code = "unavailable" if response.status_code == 503 else "http_error"
            return cls(response.status_code, code, response.text[:500] or response.reason_phrase)


def run_path(workflow_id: str, tail: str = "") -> str:
    """`/api/v1/runs/{workflow_id}{tail}`, the id encoded whole: it holds `:` and `/`."""
    return f"/api/v1/runs/{quote(workflow_id, safe='')}{tail}"


def event(type: str, payload: JSON = None, key: str | None = None, source: str | None = None) -> dict[str, JSON]:
    """The body of one event for `POST /api/v1/events`; fields left as `None` are not sent."""
    body: dict[str, JSON] = {"type": type}
    if key is not None:
        body["key"] = key
    if source is not None:
        body["source"] = source
    if payload is not None:
        body["payload"] = payload
    return body


@dataclass(frozen=True)
class _Call:
    method: str
    path: str
    body: JSON = None


class _Calls:
    """The request of each endpoint, shared by both clients."""

    @staticmethod
    def events(events: Sequence[Mapping[str, JSON]] | Mapping[str, JSON]) -> _Call:
        return _Call("POST", "/api/v1/events", events if isinstance(events, Mapping) else list(events))

    @staticmethod
    def trigger(definition_id: str, key: str | None, payload: JSON) -> _Call:
        body: dict[str, JSON] = {}
        if key is not None:
            body["key"] = key
        if payload is not None:
            body["payload"] = payload
        return _Call("POST", f"/api/v1/definitions/{quote(definition_id, safe='')}/runs", body)

    @staticmethod
    def run(workflow_id: str) -> _Call:
        return _Call("GET", run_path(workflow_id))

    @staticmethod
    def external_events(workflow_id: str, events: Sequence[Mapping[str, JSON]] | Mapping[str, JSON]) -> _Call:
        body = events if isinstance(events, Mapping) else list(events)
        return _Call("POST", run_path(workflow_id, "/external-events"), body)

    @staticmethod
    def task_events(events: Sequence[Mapping[str, JSON]] | Mapping[str, JSON]) -> _Call:
        return _Call("POST", "/api/v1/task-events", events if isinstance(events, Mapping) else list(events))


def _settings(url: str | None, api_key: str | None) -> tuple[str, dict[str, str]]:
    base = (url or os.environ.get("TASKFACTORY_URL") or os.environ.get("TASKFACTORY_API_URL") or DEFAULT_URL).rstrip(
        "/"
    )
    key = api_key if api_key is not None else os.environ.get("TASKFACTORY_API_KEY")
    headers = {"User-Agent": "taskfactory-client-python/0.1"}
    if key:
        headers["Authorization"] = f"Bearer {key}"
    return base, headers


def _answer(response: httpx.Response) -> JSON:
    if response.is_error:
        raise ApiError.from_response(response)
    return response.json() if response.content else None


def _object(response: httpx.Response) -> dict[str, JSON]:
    """The answer of an endpoint that answers an object."""
    value = _answer(response)
    if not isinstance(value, dict):
        raise ApiError(response.status_code, "unexpected_answer", f"expected a JSON object, got {value!r:.200}")
    return value


class Client:
    """The taskfactory HTTP API, blocking. Safe to share between threads.

    `url` is the API's base URL (`http://127.0.0.1:8080`), else `TASKFACTORY_URL`;
    `api_key` is sent as `Authorization: Bearer ...`, else `TASKFACTORY_API_KEY`.
    Every method raises `ApiError` for an error answer and `httpx.HTTPError` when the API
    cannot be reached.
    """

    def __init__(self, url: str | None = None, api_key: str | None = None, timeout: float = 10.0) -> None:
        self.url, headers = _settings(url, api_key)
        self._http = httpx.Client(base_url=self.url, headers=headers, timeout=timeout)

    def send_event(
        self, type: str, payload: JSON = None, key: str | None = None, source: str | None = None
    ) -> dict[str, JSON]:
        """`POST /api/v1/events` with one event: `{"results": [...]}`, one per event, each
        `accepted` with an outcome per matching definition, or `invalid`."""
        return _object(self._send(_Calls.events(event(type, payload, key, source))))

    def send_events(self, events: Sequence[Mapping[str, JSON]]) -> dict[str, JSON]:
        """`POST /api/v1/events` with a batch of up to 1,000 (see `taskfactory.event`)."""
        return _object(self._send(_Calls.events(events)))

    def trigger(self, definition_id: str, key: str | None = None, payload: JSON = None) -> dict[str, JSON]:
        """Starts a manual run: `{workflow_id, run_id, started}` (`started: false` when `key`
        was used before)."""
        return _object(self._send(_Calls.trigger(definition_id, key, payload)))

    def run(self, workflow_id: str) -> dict[str, JSON]:
        """A run: status, counts, plan, tasks."""
        return _object(self._send(_Calls.run(workflow_id)))

    def external_events(
        self, workflow_id: str, events: Sequence[Mapping[str, JSON]] | Mapping[str, JSON]
    ) -> dict[str, JSON]:
        """Reports jobs outside Temporal into a run: `{type: job_started|job_finished|job_failed|
        job_log, job_id, message?, payload?, key?}` or a list; answers `{accepted, new}`."""
        return _object(self._send(_Calls.external_events(workflow_id, events)))

    def task_events(self, events: Sequence[Mapping[str, JSON]] | Mapping[str, JSON]) -> JSON:
        """Progress, log lines and artifacts of task code (`POST /api/v1/task-events`); see
        `taskfactory.temporal` for the shape."""
        return _answer(self._send(_Calls.task_events(events)))

    def request(self, method: str, path: str, json: JSON = None) -> JSON:
        """Any other endpoint, e.g. `request("PUT", "/api/v1/definitions/x", {...})`: the
        answer's JSON, or `ApiError`."""
        return _answer(self._send(_Call(method, path, json)))

    def _send(self, call: _Call) -> httpx.Response:
        """The answer as it is, error or not (the sinks read the status themselves)."""
        return self._http.request(call.method, call.path, json=call.body)

    def _send_json(self, path: str, content: bytes) -> httpx.Response:
        """`POST path` with a body already serialised (the sinks' batches), gzip-compressed."""
        headers = {"Content-Type": "application/json", "Content-Encoding": "gzip"}
        return self._http.post(path, content=gzip.compress(content, compresslevel=5), headers=headers)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class AsyncClient:
    """The same API as `Client`, for `asyncio`."""

    def __init__(self, url: str | None = None, api_key: str | None = None, timeout: float = 10.0) -> None:
        self.url, headers = _settings(url, api_key)
        self._http = httpx.AsyncClient(base_url=self.url, headers=headers, timeout=timeout)

    async def send_event(
        self, type: str, payload: JSON = None, key: str | None = None, source: str | None = None
    ) -> dict[str, JSON]:
        return _object(await self._send(_Calls.events(event(type, payload, key, source))))

    async def send_events(self, events: Sequence[Mapping[str, JSON]]) -> dict[str, JSON]:
        return _object(await self._send(_Calls.events(events)))

    async def trigger(self, definition_id: str, key: str | None = None, payload: JSON = None) -> dict[str, JSON]:
        return _object(await self._send(_Calls.trigger(definition_id, key, payload)))

    async def run(self, workflow_id: str) -> dict[str, JSON]:
        return _object(await self._send(_Calls.run(workflow_id)))

    async def external_events(
        self, workflow_id: str, events: Sequence[Mapping[str, JSON]] | Mapping[str, JSON]
    ) -> dict[str, JSON]:
        return _object(await self._send(_Calls.external_events(workflow_id, events)))

    async def task_events(self, events: Sequence[Mapping[str, JSON]] | Mapping[str, JSON]) -> JSON:
        return _answer(await self._send(_Calls.task_events(events)))

    async def request(self, method: str, path: str, json: JSON = None) -> JSON:
        return _answer(await self._send(_Call(method, path, json)))

    async def _send(self, call: _Call) -> httpx.Response:
        return await self._http.request(call.method, call.path, json=call.body)

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()
