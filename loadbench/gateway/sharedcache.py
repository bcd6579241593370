"""Exact-match cache entries shared between replicas in Redis (with ``state: {backend: redis}``).

Each replica keeps its own ``ResponseCache`` (exact and semantic); an exact miss there asks Redis
before going upstream, and every answer stored here is also written there, so an answer paid for on
one replica is served by all. A key is ``P cache:VM:SCOPE:DIGEST``: the virtual model, the sha256 of
the whole scope (tenant, namespace, virtual model: a hard partition, as in the local cache) and the
request's exact digest; the value is the answer (JSON) with the cache's ``ttl_s`` as its TTL. Each
virtual model's entries are listed in ``P cache:index:VM`` by store time and trimmed to the cache's
``max_entries`` (oldest first) in the script that adds one.

A semantic entry carries what another replica needs to find it by similarity (``PortableEntry``: the
scope, the context digest, the vector, the near-miss guard's features) and is published on
``P cache:new`` as it is written; ``cachefeed.py`` adopts it into each replica's own vector index.

Bounded as the rate limits are (``redisconn.Breaker``): a lookup waits ``state.timeout_ms`` at most and,
after a failure, skips Redis for a second (a miss); a write runs after the answer has gone out.
"""

from __future__ import annotations

import asyncio
import base64
import functools
import hashlib
from typing import Any

import numpy as np
import orjson

from loadbench.cache import CacheConfig, CachedAnswer, PortableEntry
from loadbench.cache.guard import TextFeatures
from loadbench.cache.headers import CacheScope
from loadbench.gateway import redisconn
from loadbench.gateway.config import StateSpec

# KEYS: entry, index, channel; ARGV: value, ttl ms, max entries, now ms, publish ('1')
_PUT = """
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
if ARGV[5] == '1' then redis.call('PUBLISH', KEYS[3], ARGV[1]) end
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


# KEYS: index; ARGV: first, last rank (newest first). Each entry still there and its time to live.
_NEWEST = """
local out = {}
for _, key in ipairs(redis.call('ZREVRANGE', KEYS[1], ARGV[1], ARGV[2])) do
  local value = redis.call('GET', key)
  if value then
    out[#out + 1] = value
    out[#out + 1] = redis.call('PTTL', key)
  end
end
return out
"""


@functools.lru_cache(maxsize=64)
def embedder_key(config: CacheConfig) -> str:
    """Which embedder made a vector: a replica adopts only the vectors its own embedder would make."""
    return hashlib.sha256(config.embedder.model_dump_json().encode()).hexdigest()[:16]


def _answer_fields(answer: CachedAnswer) -> dict[str, Any]:
    return {"text": answer.text, "finish_reason": answer.finish_reason, "usage": answer.usage, "model": answer.model}


def encode(answer: CachedAnswer) -> str:
    return orjson.dumps(_answer_fields(answer)).decode()


def encode_portable(entry: PortableEntry, embedder: str) -> str:
    """An exact entry that also carries what a semantic lookup needs (the tenant is a digest of the key)."""
    f = entry.features
    return orjson.dumps({
        **_answer_fields(entry.answer), "scope": [entry.scope.tenant, entry.scope.namespace, entry.scope.virtual_model],
        "exact": entry.exact_digest.hex(), "context": entry.context_digest.hex(), "embedder": embedder,
        "vector": base64.b64encode(entry.vector.astype("<f4").tobytes()).decode(),
        "features": None if f is None else [f.numbers, f.negations, f.entities, f.words, f.content, f.anchors],
        "ttl_ms": round(entry.ttl_left_s * 1000)}).decode()


def decode_portable(raw: str | bytes, ttl_left_ms: int | None = None) -> tuple[PortableEntry, str] | None:
    """(the entry, its embedder's key), or None for an exact-only entry or one that is not ours."""
    try:
        obj = orjson.loads(raw)
        answer = _answer(obj)
        tenant, namespace, vm = (str(x) for x in obj["scope"])
        vector = np.frombuffer(base64.b64decode(obj["vector"], validate=True), dtype="<f4").astype(np.float32)
        f = obj["features"]
        features = None if f is None else TextFeatures(
            tuple(map(str, f[0])), int(f[1]), tuple(map(str, f[2])), tuple(map(str, f[3])), tuple(map(str, f[4])),
            tuple((str(a), str(b)) for a, b in f[5]))
        ttl_ms = int(obj["ttl_ms"]) if ttl_left_ms is None else ttl_left_ms
        entry = PortableEntry(CacheScope(tenant, namespace, vm), bytes.fromhex(obj["exact"]),
                              bytes.fromhex(obj["context"]), answer, vector, features, ttl_ms / 1000)
        return entry, str(obj["embedder"])
    except (orjson.JSONDecodeError, AttributeError, KeyError, TypeError, ValueError, IndexError):
        return None


def _answer(obj: Any) -> CachedAnswer:
    usage = {str(k): int(v) for k, v in dict(obj.get("usage") or {}).items()}
    return CachedAnswer(str(obj["text"]), str(obj["finish_reason"]), usage, str(obj.get("model", "")))


def decode(raw: str | bytes) -> CachedAnswer | None:
    try:
        return _answer(orjson.loads(raw))
    except (orjson.JSONDecodeError, AttributeError, KeyError, TypeError, ValueError):
        return None  # not ours (or an older shape): a miss


class SharedExactCache:
    def __init__(self, spec: StateSpec) -> None:
        self.client = redisconn.async_client(spec)
        self.errors = redisconn.errors()
        self.breaker = redisconn.Breaker("shared cache's Redis", "exact misses go upstream")
        self.timeout_s = spec.timeout_s
        self.prefix = spec.prefix
        self._put = self.client.register_script(_PUT)
        self._newest = self.client.register_script(_NEWEST)
        self.channel = f"{self.prefix}cache:new"

    def _keys(self, scope: CacheScope, digest: bytes) -> list[str]:
        vm = scope.virtual_model
        return [f"{self.prefix}cache:{vm}:{scope_key(scope)}:{digest.hex()}", self._index(vm)]

    def _index(self, vm: str) -> str:
        return f"{self.prefix}cache:index:{vm}"

    async def get(self, scope: CacheScope, digest: bytes) -> CachedAnswer | None:
        if not self.breaker.closed():
            return None
        try:
            async with asyncio.timeout(self.timeout_s):
                raw = await self.client.get(self._keys(scope, digest)[0])
        except self.errors as exc:
            self.breaker.failed(exc)
            return None
        self.breaker.succeeded()
        return decode(raw) if raw is not None else None

    async def put(self, scope: CacheScope, digest: bytes, answer: CachedAnswer, config: CacheConfig, now_ms: int,
                  portable: PortableEntry | None = None) -> bool:
        """Write an answer stored here; a semantic one (``portable``) is also published to the other replicas."""
        if not self.breaker.closed():
            return False
        value = encode(answer) if portable is None else encode_portable(portable, embedder_key(config))
        try:
            async with asyncio.timeout(self.timeout_s):
                await self._put(keys=[*self._keys(scope, digest), self.channel],
                                args=[value, max(1, round(config.ttl_s * 1000)), config.max_entries, now_ms,
                                      "0" if portable is None else "1"])
        except self.errors as exc:
            self.breaker.failed(exc)
            return False
        self.breaker.succeeded()
        return True

    async def newest(self, vm: str, first: int, last: int) -> list[tuple[str, int]]:
        """Entries of ``vm`` by rank, newest first, each with its time to live in ms (raises when Redis fails)."""
        async with asyncio.timeout(self.timeout_s):
            flat = await self._newest(keys=[self._index(vm)], args=[first, last])
        return [(str(flat[i]), int(flat[i + 1])) for i in range(0, len(flat) - 1, 2)]

    async def aclose(self) -> None:
        await self.client.aclose()
