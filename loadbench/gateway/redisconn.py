"""Connections to the shared state's Redis, made one way (docs/deploy.md).

Every call is bounded by ``state.timeout_ms`` (connect and read) and never retried inside redis-py: the
caller decides what a failure means. ``Breaker`` is the request path's guard: after a failure the
callers skip Redis for ``RETRY_S`` and decide in the process, so a Redis that is away costs a request
one timeout at most, once a second. redis-py is imported here only, when ``backend: redis`` is set.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from loadbench.gateway.config import StateSpec

if TYPE_CHECKING:
    import redis
    import redis.asyncio as aredis

log = logging.getLogger("loadbench.gateway")
RETRY_S = 1.0
MAX_CONNECTIONS = 32  # the blocking client's pool: the poller, the log's writer, the admin API, the judges


def sync_client(spec: StateSpec) -> redis.Redis:
    import redis
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    assert spec.url is not None
    return redis.Redis.from_url(spec.url, socket_timeout=spec.timeout_s, socket_connect_timeout=spec.timeout_s,
                                retry=Retry(NoBackoff(), 0), max_connections=MAX_CONNECTIONS, decode_responses=True)


def async_client(spec: StateSpec) -> aredis.Redis:
    import redis.asyncio as aredis
    from redis.asyncio.retry import Retry
    from redis.backoff import NoBackoff

    assert spec.url is not None
    return aredis.Redis.from_url(spec.url, socket_timeout=spec.timeout_s, socket_connect_timeout=spec.timeout_s,
                                 retry=Retry(NoBackoff(), 0), decode_responses=True)


def errors() -> tuple[type[BaseException], ...]:
    """What a failed call raises: redis-py's errors, a socket's, a timeout."""
    import redis

    return (redis.RedisError, OSError, TimeoutError)


class Breaker:
    """Skip Redis for ``RETRY_S`` after a failure (one log line a second at most, naming ``what``)."""

    def __init__(self, what: str, clock: Callable[[], float] = time.monotonic) -> None:
        self.what = what
        self.clock = clock
        self.skipped = 0  # calls decided without Redis (/metrics)
        self._retry_at = 0.0

    def closed(self) -> bool:
        """True: ask Redis. False: decide in the process (counted)."""
        if self.clock() < self._retry_at:
            self.skipped += 1
            return False
        return True

    def failed(self, exc: BaseException) -> None:
        if self.clock() >= self._retry_at:
            log.warning("%s: Redis did not answer (%s); deciding in this process for %.0f s", self.what,
                        type(exc).__name__, RETRY_S)
        self.skipped += 1
        self._retry_at = self.clock() + RETRY_S
