"""Exact-match cache entries shared through a real ``redis-server`` by two gateways (as two replicas):
an answer paid for on one is served by the other, never across tenants, within the size bound, and a
Redis that is away turns the shared lookup into a miss, never an error."""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import orjson
from aiohttp import web

from loadbench.gateway.app import create_app
from loadbench.gateway.config import compile_model, parse_model
from loadbench.gateway.connections import GuardedRunner, RejectLog
from loadbench.gateway.sharedcache import decode, encode
from loadbench.gateway.state import Gateway
from tests.gateway.harness import Upstream, post, run, serve, upstream
from tests.redis_server import RedisServer

K1, K2 = {"Authorization": "Bearer k1"}, {"Authorization": "Bearer k2"}
ANSWER = orjson.dumps({"object": "chat.completion", "model": "m",
                       "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"},
                                    "finish_reason": "stop"}],
                       "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}})


async def ok(up: Upstream, request: web.Request, body: dict[str, Any]) -> web.StreamResponse:
    return web.Response(body=ANSWER, content_type="application/json")


def _chat(text: str) -> dict[str, Any]:
    return {"model": "vm", "temperature": 0, "messages": [{"role": "user", "content": text}]}


@contextlib.asynccontextmanager
async def _replica(up_url: str, folder: Path, redis: RedisServer) -> AsyncIterator[str]:
    folder.mkdir()
    config = {"targets": [{"name": "t", "url": up_url, "model": "m"}],
              "virtual_models": [{"name": "vm", "targets": [{"target": "t"}]}],
              "auth": {"api_keys_env": "GW_KEYS"}, "cache": {"mode": "exact", "ttl_s": 60, "max_entries": 3},
              "request_log": {"path": str(folder / "gw.db")},
              "state": {"backend": "redis", "url_env": "R", "prefix": "c:"}}
    spec = compile_model(parse_model(config, "g.yaml"), "g.yaml", env={"GW_KEYS": "k1,k2", "R": redis.url})
    gw = Gateway(spec, seed=1)
    app = create_app(gw)
    async with serve(app, GuardedRunner(app, spec.limits, RejectLog(), handler_cancellation=True)) as url:
        yield url


async def _settle(s: aiohttp.ClientSession, url: str, stored: int = 1) -> None:
    """The store runs after the answer has gone out: wait until this replica has written ``stored``."""
    for _ in range(100):
        async with s.get(url + "/metrics", headers=K1) as r:
            if f'cache_shared_total{{model="vm",result="stored",worker="{os.getpid()}"}} {stored}' in await r.text():
                return
        await asyncio.sleep(0.02)
    raise AssertionError(f"{stored} answers not written to Redis")


def test_an_answer_paid_for_on_one_replica_is_served_by_the_other(redis_server: RedisServer,
                                                                   tmp_path: Path) -> None:
    async def main() -> None:
        up = Upstream(ok)
        async with upstream(up) as up_url, _replica(up_url, tmp_path / "a", redis_server) as a, \
                _replica(up_url, tmp_path / "b", redis_server) as b, aiohttp.ClientSession() as s:
            status, headers, _ = await post(s, a, _chat("hello"), K1)
            assert status == 200 and headers["x-loadbench-cache"] == "miss" and len(up.bodies) == 1
            await _settle(s, a)
            status, headers, cached = await post(s, b, _chat("hello"), K1)
            assert status == 200 and len(up.bodies) == 1  # the other replica answered from Redis
            assert (headers["x-loadbench-target"], headers["x-loadbench-cache"]) == ("cache", "hit-exact")
            assert orjson.loads(cached)["choices"][0]["message"]["content"] == "ok"
            status, headers, _ = await post(s, b, _chat("hello"), K1)
            assert headers["x-loadbench-target"] == "cache"  # and it now holds it itself
            status, headers, _ = await post(s, b, _chat("hello"), K2)
            assert headers["x-loadbench-cache"] == "miss" and len(up.bodies) == 2  # never across tenants
            async with s.get(b + "/metrics", headers=K1) as r:
                text = await r.text()
            assert 'loadbench_gateway_cache_shared_total{model="vm",result="hit",worker=' in text

    run(main())


def test_the_shared_entries_keep_to_the_size_bound_and_redis_away_is_a_miss(redis_server: RedisServer,
                                                                           tmp_path: Path) -> None:
    async def main() -> None:
        up = Upstream(ok)
        async with upstream(up) as up_url, _replica(up_url, tmp_path / "a", redis_server) as a, \
                aiohttp.ClientSession() as s:
            for i in range(5):
                assert (await post(s, a, _chat(f"q{i}"), K1))[0] == 200
                await _settle(s, a, i + 1)
            client = redis_server.client()
            assert client.zcard("c:cache:index:vm") == 3 and len(client.keys("c:cache:vm:*")) == 3
            assert all(0 < client.pttl(k) <= 60_000 for k in client.keys("c:cache:vm:*"))
            redis_server.kill()
        async with upstream(up) as up_url, _replica(up_url, tmp_path / "b", redis_server) as b, \
                aiohttp.ClientSession() as s:
            status, headers, _ = await post(s, b, _chat("q4"), K1)
            assert status == 200 and headers["x-loadbench-cache"] == "miss" and len(up.bodies) == 6

    run(main())


def test_an_entry_that_is_not_an_answer_is_a_miss() -> None:
    answer = decode(encode(decode('{"text": "hi", "finish_reason": "stop", "usage": {"total_tokens": 3}}')))  # type: ignore[arg-type]
    assert answer is not None and answer.text == "hi" and answer.tokens == 3
    assert decode("[1, 2]") is None and decode("not json") is None and decode('{"text": "x"}') is None
