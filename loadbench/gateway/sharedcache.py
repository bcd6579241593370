"""Exact-match cache entries shared between replicas in Redis (with ``state: {backend: redis}``).

Each replica keeps its own ``ResponseCache`` (exact and semantic); an exact miss there asks Redis
before going upstream, and every answer stored here is also written there, so an answer paid for on
one replica is served by all. A key is ``P cache:VM:SCOPE:DIGEST``: the virtual model, the sha256 of
the whole scope (tenant, namespace, virtual model: a hard partition, as in the local cache) and the
request's exact digest; the value is the answer (JSON) with the cache's ``ttl_s`` as its TTL. Each
virtual model's entries are listed in ``P cache:index:VM`` by store time and trimmed to the cache's
``max_entries`` (oldest first) in the script that adds one. Semantic entries stay per replica.

Bounded as the rate limits are (``redisconn.Breaker``): a lookup waits ``state.timeout_ms`` at most and,
after a failure, skips Redis for a second (a miss); a write runs after the answer has gone out.
"""

from __future__ import annotations

import asyncio
import hashlib

import orjson

from loadbench.cache import CachedAnswer
from loadbench.cache.headers import CacheScope
from loadbench.gateway import redisconn
from loadbench.gateway.config import StateSpec

# KEYS: entry, index; ARGV: value, ttl ms, max entries, now ms
_PUT = """
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
redis.call('ZADD', KEYS[2], ARGV[4], KEYS[1])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', tonumber(ARGV[4]) - tonumber(ARGV[2]))
local over = redis.call('ZCARD', KEYS[2]) - tonumber(ARGV[3])
if over > 0 then
  local victims = redis.call('ZRANGE', KEYS[2], 0, over - 1)
  redis.call('DEL', unpack(victims))
  redis.call('ZREMRANGEBYRANK', KEYS[2], 0, over - 1)
end
redis.call('PEXPIRE', KEYS[2], ARGV[2])
return 1
"""


def scope_key(scope: CacheScope) -> str:
    return hashlib.sha256(f"{scope.tenant}\0{scope.namespace}\0{scope.virtual_model}".encode()).hexdigest()[:32]


def encode(answer: CachedAnswer) -> str:
    return orjson.dumps({"text": answer.text, "finish_reason": answer.finish_reason, "usage": answer.usage,
                         "model": answer.model}).decode()


def decode(raw: str | bytes) -> CachedAnswer | None:
    try:
        obj = orjson.loads(raw)
        usage = {str(k): int(v) for k, v in dict(obj.get("usage") or {}).items()}
        return CachedAnswer(str(obj["text"]), str(obj["finish_reason"]), usage, str(obj.get("model", "")))
    except (orjson.JSONDecodeError, AttributeError, KeyError, TypeError, ValueError):
        return None  # not ours (or an older shape): a miss


class SharedExactCache:
    def __init__(self, spec: StateSpec) -> None:
        self.client = redisconn.async_client(spec)
        self._errors = redisconn.errors()
        self.breaker = redisconn.Breaker("shared cache's Redis", "exact misses go upstream")
        self.timeout_s = spec.timeout_s
        self.prefix = spec.prefix
        self._put = self.client.register_script(_PUT)

    def _keys(self, scope: CacheScope, digest: bytes) -> list[str]:
        vm = scope.virtual_model
        return [f"{self.prefix}cache:{vm}:{scope_key(scope)}:{digest.hex()}", f"{self.prefix}cache:index:{vm}"]

    async def get(self, scope: CacheScope, digest: bytes) -> CachedAnswer | None:
        if not self.breaker.closed():
            return None
        try:
            async with asyncio.timeout(self.timeout_s):
                raw = await self.client.get(self._keys(scope, digest)[0])
        except self._errors as exc:
            self.breaker.failed(exc)
            return None
        self.breaker.succeeded()
        return decode(raw) if raw is not None else None

    async def put(self, scope: CacheScope, digest: bytes, answer: CachedAnswer, ttl_s: float, max_entries: int,
                  now_ms: int) -> bool:
        if not self.breaker.closed():
            return False
        try:
            async with asyncio.timeout(self.timeout_s):
                await self._put(keys=self._keys(scope, digest),
                                args=[encode(answer), max(1, round(ttl_s * 1000)), max_entries, now_ms])
        except self._errors as exc:
            self.breaker.failed(exc)
            return False
        self.breaker.succeeded()
        return True

    async def aclose(self) -> None:
        await self.client.aclose()
