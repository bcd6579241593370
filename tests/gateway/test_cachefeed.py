"""The semantic entries one cache writes to a real ``redis-server`` adopted by another cache's feed: by
notification, by loading at (re)subscription after Redis was killed and restarted, never an entry its
own embedder would not have made."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable, Mapping
from pathlib import Path
from typing import Any

from loadbench.cache import BuiltinEmbedderConfig, CacheConfig, CachedAnswer, CacheScope, HashingEmbedder, ResponseCache
from loadbench.gateway.cachefeed import CacheFeed
from loadbench.gateway.config import StateSpec, compile_model, parse_model
from loadbench.gateway.sharedcache import SharedExactCache, decode_portable, embedder_key, encode_portable
from tests.gateway.harness import run
from tests.redis_server import RedisServer

SCOPE = CacheScope("key:alice", "default", "vm")
ANSWER = CachedAnswer("Open settings.", "stop", {"prompt_tokens": 9, "completion_tokens": 2, "total_tokens": 11}, "m")
CONFIG = CacheConfig(mode="semantic", ttl_s=60)
OTHER_EMBEDDER = BuiltinEmbedderConfig(dim=64)


def _body(text: str) -> dict[str, Any]:
    return {"model": "vm", "temperature": 0, "messages": [{"role": "user", "content": text}]}


def _state(redis: RedisServer, folder: Path) -> StateSpec:
    config = {"targets": [{"name": "t", "url": "http://127.0.0.1:9", "model": "m"}],
              "virtual_models": [{"name": "vm", "targets": [{"target": "t"}]}],
              "request_log": {"path": str(folder / "gw.db")},
              "state": {"backend": "redis", "url_env": "R", "prefix": "unit:"}}
    return compile_model(parse_model(config, "g.yaml"), "g.yaml", env={"R": redis.url}).state


def _cache(config: CacheConfig = CONFIG) -> ResponseCache:
    return ResponseCache(config, HashingEmbedder(), clock=time.monotonic)


async def _store_and_share(cache: ResponseCache, shared: SharedExactCache, text: str) -> None:
    found = await cache.lookup(SCOPE, _body(text))
    assert found.prepared is not None and await cache.store(SCOPE, _body(text), ANSWER, lookup=found)
    portable = cache.portable(SCOPE, found.prepared.exact_digest)
    assert portable is not None
    assert await shared.put(SCOPE, found.prepared.exact_digest, ANSWER, CONFIG, 1, portable)


async def _until(check: Any, within_s: float = 5.0) -> None:
    deadline = time.monotonic() + within_s
    while not check():
        assert time.monotonic() < deadline, "not within the deadline"
        await asyncio.sleep(0.01)


@contextlib.asynccontextmanager
async def _feeding(redis: RedisServer, folder: Path, caches: Callable[[], Mapping[str, ResponseCache]],
                   adopted: list[str]) -> AsyncIterator[tuple[SharedExactCache, SharedExactCache]]:
    """(a writer, the feed's reader), the feed running into ``caches`` while inside."""
    spec = _state(redis, folder)
    writer, reader = SharedExactCache(spec), SharedExactCache(spec)
    feed = CacheFeed(reader, caches, adopted.append)
    task = asyncio.create_task(feed.run())
    try:
        yield writer, reader
    finally:
        feed.stop()
        await asyncio.wait_for(task, 3.0)
        await writer.aclose()
        await reader.aclose()


def test_a_portable_entry_travels_whole() -> None:
    cache = _cache()
    run(cache.store(SCOPE, _body("How do I reset my password?"), ANSWER))
    (digest,) = [key[1] for key in cache._exact]  # the one entry's exact digest
    entry = cache.portable(SCOPE, digest)
    assert entry is not None
    decoded = decode_portable(encode_portable(entry, embedder_key(CONFIG)), ttl_left_ms=1500)
    assert decoded is not None
    back, embedder = decoded
    assert embedder == embedder_key(CONFIG) != embedder_key(CONFIG.model_copy(update={"embedder": OTHER_EMBEDDER}))
    assert (back.scope, back.exact_digest, back.context_digest, back.answer, back.features) == \
        (entry.scope, entry.exact_digest, entry.context_digest, entry.answer, entry.features)
    assert (back.vector == entry.vector).all() and back.ttl_left_s == 1.5
    assert decode_portable('{"text": "hi", "finish_reason": "stop"}') is None  # an exact-only entry


def test_entries_are_adopted_by_notification_and_after_redis_returns(redis_server: RedisServer,
                                                                      tmp_path: Path) -> None:
    async def main() -> None:
        mine, theirs = _cache(), _cache()
        adopted: list[str] = []
        async with _feeding(redis_server, tmp_path, lambda: {"vm": theirs}, adopted) as (writer, reader):
            await asyncio.sleep(0.2)  # subscribed
            await _store_and_share(mine, writer, "How do I reset my password?")
            await _until(lambda: len(adopted) == 1)
            hit = await theirs.lookup(SCOPE, _body("how can i reset my password"))
            assert hit.outcome == "hit-semantic" and hit.entry is not None and hit.entry.answer == ANSWER

            redis_server.kill()
            await _until(lambda: not reader.breaker.up)
            redis_server.start()  # empty: the entry written now is published while the feed is not listening
            await _store_and_share(mine, writer, "What are your opening hours on Sunday?")
            await _until(lambda: len(adopted) == 2)  # loaded when the feed subscribed again
            hit = await theirs.lookup(SCOPE, _body("what are your opening hours on sunday"))
            assert hit.outcome == "hit-semantic"

            # a replica whose embedder makes other vectors adopts nothing (its index could not compare them)
            other = _cache(CacheConfig(mode="semantic", embedder=OTHER_EMBEDDER))
            elsewhere: list[str] = []
            assert await CacheFeed(reader, lambda: {"vm": other}, elsewhere.append).load() == 0
            # Redis came back empty: the entry written since is the one there
            assert await CacheFeed(reader, lambda: {"vm": _cache()}, elsewhere.append).load() == 1

    run(main())


def test_without_a_semantic_cache_the_feed_asks_nothing_until_one_is_configured(redis_server: RedisServer,
                                                                               tmp_path: Path) -> None:
    async def main() -> None:
        caches: dict[str, ResponseCache] = {"vm": _cache(CacheConfig(mode="exact"))}
        adopted: list[str] = []
        async with _feeding(redis_server, tmp_path, lambda: caches, adopted) as (writer, reader):
            await _store_and_share(_cache(), writer, "How do I reset my password?")
            redis_server.kill()
            await asyncio.sleep(1.5)
            assert reader.breaker.failures == 0 and adopted == []  # it never called the Redis that went away
            redis_server.start()
            await _store_and_share(_cache(), writer, "What are your opening hours on Sunday?")
            caches["vm"] = theirs = _cache()  # a reload makes the virtual model's cache semantic
            await _until(lambda: len(adopted) == 1)  # loaded as soon as there is an index to adopt into
            found = await theirs.lookup(SCOPE, _body("what are your opening hours on sunday"))
            assert found.outcome == "hit-semantic"

    run(main())
