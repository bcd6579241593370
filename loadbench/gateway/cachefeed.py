"""The other replicas' semantic cache entries, adopted into this replica's own vector indexes (with
``state: {backend: redis}`` and a ``mode: semantic`` cache).

Each replica keeps its own ``ResponseCache`` and vector index (docs/cache.md, "Several replicas"): a
lookup never leaves the process. What Redis shares is the entries: each semantic answer a replica stores
is written with its vector and published on ``P cache:new`` (``sharedcache.py``); this task hears the
channel and adopts each entry into the cache of its virtual model, in its own tenant's partition (the
scope travels with the entry, so isolation is the local cache's). A notification missed while the
connection was down is made up for by reading the shared entries, newest first and at most
``LOAD_MAX_ENTRIES`` per virtual model, every time the task (re)subscribes: at start and after each
outage, and when a reload adds a semantic cache (with none, the task asks Redis nothing). Runs on the
gateway's event loop, because the cache is not thread-safe; each turn waits one second at most.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Mapping

from loadbench.cache import ResponseCache
from loadbench.gateway.redisconn import RETRY_S
from loadbench.gateway.sharedcache import SharedExactCache, decode_portable, embedder_key

log = logging.getLogger("loadbench.gateway")
LOAD_MAX_ENTRIES = 10_000  # per virtual model, at each (re)subscription: newest first
LOAD_CHUNK = 256  # entries per Redis call while loading (each call bounded by state.timeout_ms)
ADOPT_CHUNK = 64  # entries adopted between two yields to the loop: about 40-50 us of CPU each
WAIT_S = 1.0  # the longest a turn waits for a notification


class CacheFeed:
    def __init__(self, shared: SharedExactCache, caches: Callable[[], Mapping[str, ResponseCache]],
                 adopted: Callable[[str], None]) -> None:
        self.shared = shared
        self.caches = caches  # the current config's caches by virtual model (a reload may change them)
        self.adopted = adopted  # called with the virtual model of each adopted entry (metrics)
        self._stop = asyncio.Event()

    def _semantic(self) -> dict[str, ResponseCache]:
        return {vm: cache for vm, cache in self.caches().items() if cache.config.mode == "semantic"}

    def _cache_of(self, vm: str) -> ResponseCache | None:
        cache = self.caches().get(vm)
        return cache if cache is not None and cache.config.mode == "semantic" else None

    def adopt(self, raw: str | bytes, ttl_left_ms: int | None = None) -> bool:
        """Keep one shared entry in its virtual model's cache; False when it is not for a semantic cache
        here, made by another embedder, already held or expired."""
        found = decode_portable(raw, ttl_left_ms)
        if found is None:
            return False
        entry, embedder = found
        cache = self._cache_of(entry.scope.virtual_model)
        if cache is None or embedder != embedder_key(cache.config) or not cache.adopt(entry):
            return False
        self.adopted(entry.scope.virtual_model)
        return True

    async def load(self) -> int:
        """The shared entries of every semantic virtual model, newest first (bounded); the oldest is adopted
        first so the newest are the last to leave this replica's LRU. Raises when Redis fails."""
        adopted = 0
        for vm, cache in self._semantic().items():
            bound = min(LOAD_MAX_ENTRIES, cache.config.max_entries)
            found: list[tuple[str, int]] = []
            for first in range(0, bound, LOAD_CHUNK):
                chunk = await self.shared.newest(vm, first, min(first + LOAD_CHUNK, bound) - 1)
                found.extend(chunk)
                if len(chunk) < LOAD_CHUNK:
                    break
            found.reverse()
            for first in range(0, len(found), ADOPT_CHUNK):
                adopted += sum(self.adopt(raw, ttl_ms) for raw, ttl_ms in found[first:first + ADOPT_CHUNK])
                await asyncio.sleep(0)  # the requests waiting meanwhile go first: a chunk costs about 3 ms
        return adopted

    async def run(self) -> None:
        """Subscribe, load, adopt each notification; after a failure wait ``RETRY_S`` and start again."""
        breaker = self.shared.breaker
        while not self._stop.is_set():
            if not self._semantic():  # nothing to adopt into (yet: a reload may add a semantic cache)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stop.wait(), WAIT_S)
                continue
            pubsub = self.shared.client.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(self.shared.channel)
                loaded = await self.load()  # after subscribing: nothing written meanwhile is missed
                if loaded:
                    log.info("semantic cache: %d entries adopted from the shared cache", loaded)
                breaker.succeeded()
                while not self._stop.is_set() and self._semantic():
                    message = await pubsub.get_message(timeout=WAIT_S)
                    if message is not None and message.get("type") == "message":
                        self.adopt(message["data"])
            except self.shared.errors as exc:
                breaker.failed(exc)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stop.wait(), RETRY_S)
            finally:
                with contextlib.suppress(*self.shared.errors):  # TimeoutError among them
                    await asyncio.wait_for(pubsub.aclose(), self.shared.timeout_s)

    def stop(self) -> None:
        self._stop.set()
