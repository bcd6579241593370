"""Semantic cache entries shared by ``loadbench gateway`` replicas (separate processes, own ports, own request
logs, no shared file) through a real ``redis-server``, over a real mock: a paraphrase answered on one
replica is a semantic hit on another, never for another tenant, and a replica started later loads the
entries already shared into its own index."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import aiohttp
import orjson

from loadbench.procs import ServerProcess
from tests.gateway.harness import run, start_gateway, start_mock
from tests.redis_server import RedisServer

K1, K2 = {"Authorization": "Bearer k1"}, {"Authorization": "Bearer k2"}
ASKED = "How do I reset my password?"
PARAPHRASE = "how can i reset my password"


def _chat(text: str) -> dict[str, Any]:
    return {"model": "vm", "temperature": 0, "messages": [{"role": "user", "content": text}]}


def _replica(servers: list[ServerProcess], folder: Path, redis: RedisServer, mock: ServerProcess) -> ServerProcess:
    folder.mkdir()
    config = {"targets": [{"name": "t", "url": mock.base_url, "model": "m"}],
              "virtual_models": [{"name": "vm", "targets": [{"target": "t"}]}],
              "auth": {"api_keys_env": "GW_KEYS"}, "cache": {"mode": "semantic", "ttl_s": 60, "max_entries": 100},
              "request_log": {"path": str(folder / "gw.db")},
              "state": {"backend": "redis", "url_env": "GW_REDIS_URL", "prefix": "feed:"}}
    gw, _ = start_gateway(servers, folder, config, env={"GW_KEYS": "k1,k2", "GW_REDIS_URL": redis.url})
    return gw


async def _ask(s: aiohttp.ClientSession, gw: ServerProcess, text: str, key: dict[str, str]) -> tuple[str, str, str]:
    """(x-loadbench-cache, x-loadbench-target, the answer's text)."""
    async with s.post(gw.url + "/v1/chat/completions", data=orjson.dumps(_chat(text)), headers=key) as r:
        assert r.status == 200, await r.text()
        body = orjson.loads(await r.read())
        return r.headers["x-loadbench-cache"], r.headers["x-loadbench-target"], body["choices"][0]["message"]["content"]


async def _adopted(s: aiohttp.ClientSession, gw: ServerProcess, n: int) -> float:
    """Seconds until ``gw`` has adopted ``n`` entries from the other replicas (fails after 5 s)."""
    start = time.monotonic()
    while time.monotonic() - start < 5.0:
        async with s.get(gw.url + "/metrics", headers=K1) as r:
            text = await r.text()
        for line in text.splitlines():
            if line.startswith('loadbench_gateway_cache_shared_total{model="vm",result="adopted"') \
                    and float(line.rsplit(" ", 1)[1]) >= n:
                return time.monotonic() - start
        await asyncio.sleep(0.01)
    raise AssertionError(f"{gw.url} did not adopt {n} entries within 5 s")


def test_a_paraphrase_answered_on_one_replica_is_a_semantic_hit_on_another(
        servers: list[ServerProcess], redis_server: RedisServer, tmp_path: Path) -> None:
    mock = start_mock(servers)
    a = _replica(servers, tmp_path / "a", redis_server, mock)
    b = _replica(servers, tmp_path / "b", redis_server, mock)

    async def main() -> None:
        async with aiohttp.ClientSession() as s:
            outcome, target, answered = await _ask(s, a, ASKED, K1)
            assert (outcome, target) == ("miss", "t")
            took_s = await _adopted(s, b, 1)
            print(f"\nadopted by the other replica {took_s * 1000:.0f} ms after the answer")
            outcome, target, text = await _ask(s, b, PARAPHRASE, K1)
            assert (outcome, target, text) == ("hit-semantic", "cache", answered)
            assert (await _ask(s, b, PARAPHRASE, K2))[:2] == ("miss", "t")  # another tenant never sees it

            # a replica started afterwards loads what is already shared before it hears anything new
            c = _replica(servers, tmp_path / "c", redis_server, mock)
            await _adopted(s, c, 2)  # K1's question and K2's paraphrase
            outcome, target, text = await _ask(s, c, PARAPHRASE + "?", K1)
            assert (outcome, target, text) == ("hit-semantic", "cache", answered)

    run(main())
