"""Connections to the shared state's Redis, made one way (docs/deploy.md).

Every call is bounded by ``state.timeout_ms`` (connect and read) and never retried inside redis-py: the
caller decides what a failure means. ``Breaker`` is every caller's guard: after a failure the callers
skip Redis for ``RETRY_S`` and decide in the process, so a Redis that is away costs a thread, or a
request on the request path, one timeout at most, once a second. These modules are imported only when
``state: {backend: redis}`` is set (a gateway without it never loads redis-py).
"""

from __future__ import annotations

import logging
import math
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
    """After a failure, skip Redis for ``RETRY_S`` (callers decide without it meanwhile); say so once per
    ``log_every_s`` while it stays away, and once when it answers again."""

    def __init__(self, what: str, meanwhile: str, clock: Callable[[], float] = time.monotonic,
                 log_every_s: float = RETRY_S) -> None:
        self.what = what  # who asks Redis, for the log lines
        self.meanwhile = meanwhile  # what happens while it is away, for the log line
        self.clock = clock
        self.log_every_s = log_every_s
        self.up = True
        self.failures = 0  # calls that failed or timed out (/metrics)
        self.skipped = 0  # calls not made, within the pause after a failure (/metrics)
        self._retry_at = 0.0
        self._logged_at = -math.inf

    def closed(self) -> bool:
        """True: ask Redis. False: it failed less than ``RETRY_S`` ago; decide without it (counted)."""
        if not self.up and self.clock() < self._retry_at:
            self.skipped += 1
            return False
        return True

    def failed(self, exc: BaseException) -> None:
        now = self.clock()
        self.failures += 1
        self.up = False
        self._retry_at = now + RETRY_S
        if now - self._logged_at >= self.log_every_s:
            self._logged_at = now
            # the exception's class and message name the host at most, never the URL's credentials
            log.warning("%s unavailable (%s: %s): %s, retrying every %.0f s", self.what, type(exc).__name__,
                        str(exc)[:200], self.meanwhile, RETRY_S)

    def succeeded(self) -> bool:
        """A call answered; True when that ends an outage."""
        if self.up:
            return False
        self.up = True
        log.warning("%s answers again", self.what)
        return True
