"""Per-key rate limits: requests and tokens per minute, as token buckets (docs/gateway.md, "Rate limits").

Each key (its sha256: the tenant; callers without a key share one bucket) has a bucket per limit that
holds at most one minute's worth and refills continuously at limit / 60 per second. A request takes one
from the requests bucket and needs one left in the tokens bucket; once answered, its prompt +
completion tokens are charged to the tokens bucket, which may go below zero (a long answer is paid for
by the waits after it). A refusal says how long until the bucket admits again (``Retry-After``).

``LocalBuckets`` keeps the buckets in this process: with ``--workers N`` or N replicas each process
admits the limit on its own. ``RedisBuckets`` keeps them in Redis, one Lua script per admission (atomic
across replicas, on Redis's clock), with this process's buckets as the fallback: a call that fails or
takes longer than the socket timeout is decided locally, and for ``RETRY_S`` afterwards every decision
is local, so a Redis that is away costs a request one timeout at most, once a second.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from loadbench.gateway import redisconn
from loadbench.gateway.config import RateLimit, StateSpec

MAX_TENANTS = 100_000  # buckets kept per process; the least recently used are forgotten beyond it
REQUESTS, TOKENS = "requests", "tokens"


@dataclass(slots=True)
class Bucket:
    level: float
    at_s: float


def refill(bucket: Bucket | None, now_s: float, per_minute: int) -> Bucket:
    """The bucket at ``now_s``: one minute's worth when new, else topped up since its last change."""
    if bucket is None:
        return Bucket(float(per_minute), now_s)
    return Bucket(min(float(per_minute), bucket.level + max(0.0, now_s - bucket.at_s) * per_minute / 60), now_s)


def wait_s(level: float, need: float, per_minute: int) -> float:
    """Seconds until a bucket at ``level`` holds ``need`` (0: it does now)."""
    short = need - level
    return 0.0 if short <= 0 else short * 60 / per_minute


@dataclass(frozen=True, slots=True)
class Refusal:
    limit: str  # REQUESTS | TOKENS
    retry_after_s: float


def tenant_of(digest: bytes | None) -> str:
    return digest.hex()[:32] if digest is not None else "anonymous"


class LocalBuckets:
    """The buckets of this process (pure but for the dict; the clock is the caller's)."""

    def __init__(self) -> None:
        self._buckets: OrderedDict[tuple[str, str], Bucket] = OrderedDict()

    def _get(self, kind: str, tenant: str, now_s: float, per_minute: int) -> Bucket:
        key = (kind, tenant)
        bucket = self._buckets[key] = refill(self._buckets.pop(key, None), now_s, per_minute)
        if len(self._buckets) > MAX_TENANTS:
            self._buckets.popitem(last=False)
        return bucket

    def admit(self, tenant: str, limit: RateLimit, now_s: float) -> Refusal | None:
        req = tok = None
        wait = 0.0
        which = REQUESTS
        if limit.requests_per_minute is not None:
            req = self._get(REQUESTS, tenant, now_s, limit.requests_per_minute)
            wait = wait_s(req.level, 1.0, limit.requests_per_minute)
        if limit.tokens_per_minute is not None:
            tok = self._get(TOKENS, tenant, now_s, limit.tokens_per_minute)
            tok_wait = wait_s(tok.level, 1.0, limit.tokens_per_minute)  # admitted while above zero
            if tok_wait > wait:
                wait, which = tok_wait, TOKENS
        if wait > 0:
            return Refusal(which, wait)
        if req is not None:
            req.level -= 1
        return None

    def charge(self, tenant: str, limit: RateLimit, tokens: int, now_s: float) -> None:
        if limit.tokens_per_minute is not None and tokens > 0:
            self._get(TOKENS, tenant, now_s, limit.tokens_per_minute).level -= tokens


# ARGV: requests per minute ('' none), tokens per minute ('' none); the same arithmetic as refill/wait_s
_ADMIT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local function level(key, per_min)
  local v = redis.call('HMGET', key, 'level', 'at')
  local lvl, at = tonumber(v[1]), tonumber(v[2])
  if lvl == nil then return per_min end
  return math.min(per_min, lvl + math.max(0, now - at) * per_min / 60)
end
local wait, which, rl = 0, 'requests', nil
if ARGV[1] ~= '' then
  local per = tonumber(ARGV[1])
  rl = level(KEYS[1], per)
  if rl < 1 then wait = (1 - rl) * 60 / per end
end
if ARGV[2] ~= '' then
  local per = tonumber(ARGV[2])
  local tl = level(KEYS[2], per)
  if tl < 1 and (1 - tl) * 60 / per > wait then wait, which = (1 - tl) * 60 / per, 'tokens' end
end
if wait > 0 then return {0, which, tostring(wait)} end
if rl ~= nil then
  redis.call('HSET', KEYS[1], 'level', tostring(rl - 1), 'at', tostring(now))
  redis.call('EXPIRE', KEYS[1], 120)
end
return {1, '', '0'}
"""
_CHARGE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local per = tonumber(ARGV[1])
local v = redis.call('HMGET', KEYS[1], 'level', 'at')
local lvl, at = tonumber(v[1]), tonumber(v[2])
if lvl == nil then lvl = per else lvl = math.min(per, lvl + math.max(0, now - at) * per / 60) end
redis.call('HSET', KEYS[1], 'level', tostring(lvl - tonumber(ARGV[2])), 'at', tostring(now))
redis.call('EXPIRE', KEYS[1], 120)
return 1
"""


class RedisBuckets:
    """The buckets in Redis (asyncio client on the event loop), with ``LocalBuckets`` while it is away."""

    def __init__(self, spec: StateSpec, clock: Callable[[], float] = time.monotonic) -> None:
        self.client = redisconn.async_client(spec)
        self._errors = redisconn.errors()
        self.breaker = redisconn.Breaker("rate limits' Redis", "each process decides with its own buckets", clock)
        self.timeout_s = spec.timeout_s
        self.prefix = spec.prefix
        self.local = LocalBuckets()
        self._admit = self.client.register_script(_ADMIT)
        self._charge = self.client.register_script(_CHARGE)

    def _keys(self, tenant: str) -> list[str]:
        return [f"{self.prefix}rl:{REQUESTS}:{tenant}", f"{self.prefix}rl:{TOKENS}:{tenant}"]

    @property
    def local_decisions(self) -> int:
        return self.breaker.skipped + self.breaker.failures

    async def admit(self, tenant: str, limit: RateLimit, now_s: float) -> Refusal | None:
        if self.breaker.closed():
            try:
                async with asyncio.timeout(self.timeout_s):
                    allowed, which, wait = await self._admit(
                        keys=self._keys(tenant),
                        args=[_arg(limit.requests_per_minute), _arg(limit.tokens_per_minute)])
                self.breaker.succeeded()
                return None if int(allowed) else Refusal(str(which), float(wait))
            except self._errors as exc:
                self.breaker.failed(exc)
        return self.local.admit(tenant, limit, now_s)

    async def charge(self, tenant: str, limit: RateLimit, tokens: int, now_s: float) -> None:
        if limit.tokens_per_minute is None or tokens <= 0:
            return
        if self.breaker.closed():
            try:
                async with asyncio.timeout(self.timeout_s):
                    await self._charge(keys=self._keys(tenant)[1:], args=[limit.tokens_per_minute, tokens])
                self.breaker.succeeded()
                return
            except self._errors as exc:
                self.breaker.failed(exc)
        self.local.charge(tenant, limit, tokens, now_s)

    def render(self, worker: str) -> list[str]:
        metric = "loadbench_gateway_rate_limit_local_decisions_total"
        return [f"# HELP {metric} Rate-limit decisions taken in this process because Redis did not answer",
                f"# TYPE {metric} counter", f'{metric}{{worker="{worker}"}} {self.local_decisions}']

    async def aclose(self) -> None:
        await self.client.aclose()


def _arg(per_minute: int | None) -> str:
    return "" if per_minute is None else str(per_minute)


class RateLimiter:
    """What the exchange asks: admit a key's request, and charge its tokens once answered."""

    def __init__(self, shared: RedisBuckets | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        self.shared = shared
        self.local = shared.local if shared is not None else LocalBuckets()
        self.clock = clock

    async def admit(self, digest: bytes | None, limit: RateLimit) -> Refusal | None:
        if self.shared is None:
            return self.local.admit(tenant_of(digest), limit, self.clock())
        return await self.shared.admit(tenant_of(digest), limit, self.clock())

    def charge(self, digest: bytes | None, limit: RateLimit, tokens: int,
               spawn: Callable[[Coroutine[Any, Any, None]], None]) -> None:
        """Charge an answer's tokens: at once here, or in a task of its own (the client has its answer)."""
        if limit.tokens_per_minute is None or tokens <= 0:
            return
        if self.shared is None:
            self.local.charge(tenant_of(digest), limit, tokens, self.clock())
        else:
            spawn(self.shared.charge(tenant_of(digest), limit, tokens, self.clock()))

    async def aclose(self) -> None:
        if self.shared is not None:
            await self.shared.aclose()
