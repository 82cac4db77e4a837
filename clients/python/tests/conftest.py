"""Fixtures: one `taskfactory dev` and one `redis-server` per session, a client on them."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from harness import Taskfactory, start_dev, start_redis, stop_dev

import taskfactory


@pytest.fixture(scope="session")
def tf() -> Iterator[Taskfactory]:
    """`taskfactory dev` ($TASKFACTORY_BIN, default /tmp/tf-bin/taskfactory) on its own ports
    and data dir, without examples."""
    dev = start_dev()
    try:
        yield dev
    finally:
        stop_dev(dev)


@pytest.fixture
def client(tf: Taskfactory) -> Iterator[taskfactory.Client]:
    with taskfactory.Client(tf.url, tf.api_key) as c:
        yield c


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    proc, url = start_redis(tmp_path_factory.mktemp("redis"))
    try:
        yield url
    finally:
        proc.stop()


@pytest.fixture
def uid() -> str:
    """A short suffix that keeps the ids of one test apart from every other's."""
    return uuid.uuid4().hex[:8]
