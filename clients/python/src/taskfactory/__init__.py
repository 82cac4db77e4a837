"""Python client for taskfactory.

- `Client` / `AsyncClient`: the HTTP API (events, manual runs, runs, external and task events).
- `EventSink`: trigger events sent in the background, batched and retried.
- `taskfactory.dramatiq`: `TaskfactoryMiddleware`, reporting Dramatiq jobs into a run
  (needs the `[dramatiq]` extra).
- `taskfactory.temporal`: `progress`, `log`, `artifact` (and `a…` coroutines) for Temporal
  Python activities run by taskfactory tasks (needs the `[temporal]` extra).

Configuration: `TASKFACTORY_URL` (e.g. `http://127.0.0.1:8080`) and `TASKFACTORY_API_KEY`,
unless given to `Client`.
"""

from ._client import DEFAULT_URL, ApiError, AsyncClient, Client, event, run_path
from ._sink import EventSink, Sink

__all__ = ["DEFAULT_URL", "ApiError", "AsyncClient", "Client", "EventSink", "Sink", "event", "run_path"]
__version__ = "0.1.0"
