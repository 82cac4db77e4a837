"""The Dramatiq application of the tests: a Redis broker (`REDIS_URL`) with the taskfactory
middleware, and one actor whose jobs succeed, fail once, or always fail, as told.

Imported by the worker (`dramatiq dramatiq_app`) and by the test that sends the messages.
"""

from __future__ import annotations

import os

import dramatiq
from dramatiq.brokers.redis import RedisBroker
from dramatiq.middleware import CurrentMessage

from taskfactory.dramatiq import TaskfactoryMiddleware

broker = RedisBroker(url=os.environ["REDIS_URL"])
broker.add_middleware(CurrentMessage())
broker.add_middleware(TaskfactoryMiddleware())
dramatiq.set_broker(broker)


class Boom(Exception):
    pass


@dramatiq.actor(queue_name="py-jobs", max_retries=1, min_backoff=20, max_backoff=100)
def work(n: int, mode: str) -> int:
    """`ok`: succeeds; `flaky`: fails its first attempt; `broken`: fails every attempt."""
    message = CurrentMessage.get_current_message()
    retries = message.options.get("retries", 0) if message else 0
    if mode == "broken" or (mode == "flaky" and retries == 0):
        raise Boom(f"job {n} failed on attempt {retries + 1}")
    return n * 2
