"""End to end: the gateway and mock upstreams as real subprocesses on port 0."""

from __future__ import annotations

import asyncio
import signal
import time
from collections import Counter
from pathlib import Path
from typing import Any

import aiohttp
import openai
import pytest
import yaml

from loadbench.procs import ServerProcess
from loadbench.protocol.openai import content_deltas
from tests.gateway.harness import start_gateway, start_mock

pytestmark = pytest.mark.slow


def targets(*mocks: ServerProcess, **options: Any) -> list[dict[str, Any]]:
    return [
        {"name": f"m{i}", "url": m.base_url, "model": "mock-model", **options} for i, m in enumerate(mocks)
    ]


async def fire(
    url: str, n: int, concurrency: int, model: str = "vm", stream_every: int = 2, deadline_s: float = 30.0
) -> list[tuple[int, str, bytes]]:
    """n requests (every ``stream_every``-th streamed), bounded in count and time."""
    results: list[tuple[int, str, bytes]] = []
    sem = asyncio.Semaphore(concurrency)
    end = time.monotonic() + deadline_s

    async def one(i: int, s: aiohttp.ClientSession) -> None:
        stream = i % stream_every == 0
        body = {
            "model": model,
            "messages": [{"role": "user", "content": "hi"}],
            "stream": stream,
            "max_tokens": 6,
        }
        if stream:
            body["stream_options"] = {"include_usage": True}
        async with sem:
            if time.monotonic() > end:
                return
            async with s.post(url + "/v1/chat/completions", json=body) as r:
                data = await r.read()
                results.append((r.status, r.headers.get("x-loadbench-target", ""), data))

    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=deadline_s)) as s:
        await asyncio.gather(*(one(i, s) for i in range(n)))
    return results


async def get_json(url: str) -> Any:
    async with aiohttp.ClientSession() as s, s.get(url) as r:
        return await r.json()


def ok_stream(data: bytes) -> bool:
    return data.rstrip().endswith(b"data: [DONE]") and b'"error"' not in data


def test_failover_under_load_cools_down_and_retries_after_cooldown(
    servers: list[ServerProcess], tmp_path: Path
) -> None:
    good = start_mock(servers)
    bad = start_mock(servers, "--error-rate", "1", "--error-status", "503")
    tolerance = {"allowed_failures_per_minute": 3, "cooldown_period_s": 1.5}
    cfg = {
        "targets": targets(good, bad, failure_tolerance=tolerance),
        "virtual_models": [
            {
                "name": "vm",
                "routing": "weight",
                "targets": [{"target": "m0", "weight": 50}, {"target": "m1", "weight": 50}],
            }
        ],
    }
    gw, _ = start_gateway(servers, tmp_path, cfg)

    results = asyncio.run(fire(gw.url, 80, 8))
    assert len(results) == 80
    assert [r for r in results if r[0] != 200] == []
    assert all(ok_stream(d) for i, (_, _, d) in enumerate(results) if d.startswith(b"data:"))
    assert {t for _, t, _ in results} == {"m0"}
    health = asyncio.run(get_json(gw.url + "/health"))["targets"]
    assert health["m1"]["healthy"] is False and health["m1"]["cooldowns"] == 1
    bad_seen = asyncio.run(get_json(bad.url + "/mock/stats"))["requests"]
    assert 4 <= bad_seen <= 4 + 8  # its allowance plus at most the requests already in flight

    time.sleep(1.7)  # the cooldown ends; the target returns by itself
    results = asyncio.run(fire(gw.url, 40, 4))
    assert [r for r in results if r[0] != 200] == []
    assert asyncio.run(get_json(bad.url + "/mock/stats"))["requests"] > bad_seen  # tried again
    health = asyncio.run(get_json(gw.url + "/health"))["targets"]
    assert health["m1"]["cooldowns"] == 2  # on probation, one failure sent it back out
    metrics = asyncio.run(_text(gw.url + "/metrics"))
    assert 'loadbench_gateway_cooldowns_total{target="m1"' in metrics


async def _text(url: str) -> str:
    async with aiohttp.ClientSession() as s, s.get(url) as r:
        return await r.text()


async def _set_itl(m: ServerProcess, itl_ms: float) -> None:
    async with aiohttp.ClientSession() as s, s.post(m.url + "/mock/config", json={"itl_ms": itl_ms}) as r:
        assert r.status == 200


def test_latency_routing_follows_the_faster_mock_and_back(
    servers: list[ServerProcess], tmp_path: Path
) -> None:
    a = start_mock(servers)
    b = start_mock(servers, "--itl-ms", "15")
    cfg = {
        "targets": targets(a, b),
        "virtual_models": [
            {"name": "vm", "routing": "latency", "targets": [{"target": "m0"}, {"target": "m1"}]}
        ],
        "latency_routing": {"window_requests": 10, "min_samples": 3, "explore_fraction": 0.1},
    }
    gw, _ = start_gateway(servers, tmp_path, cfg)
    first = asyncio.run(fire(gw.url, 60, 3, stream_every=1))
    assert all(status == 200 for status, _, _ in first)
    share = Counter(t for _, t, _ in first[-30:])
    assert share["m0"] >= 22, share
    asyncio.run(_set_itl(a, 15))
    asyncio.run(_set_itl(b, 1))
    second = asyncio.run(fire(gw.url, 90, 3, stream_every=1))
    share = Counter(t for _, t, _ in second[-30:])
    assert share["m1"] >= 22, share


def test_official_openai_client_works_unchanged(servers: list[ServerProcess], tmp_path: Path) -> None:
    m = start_mock(servers)
    cfg = {
        "targets": targets(m),
        "auth": {"api_keys_env": "GW_TEST_KEYS"},
        "virtual_models": [{"name": "team/chat", "targets": [{"target": "m0"}]}],
    }
    gw, _ = start_gateway(servers, tmp_path, cfg, env={"GW_TEST_KEYS": "sk-client"})
    client = openai.OpenAI(base_url=gw.base_url, api_key="sk-client", max_retries=0, timeout=20)
    messages: Any = [{"role": "user", "content": "hello"}]
    raw = client.chat.completions.with_raw_response.create(model="team/chat", messages=messages)
    assert raw.headers["x-loadbench-target"] == "m0" and raw.headers["x-loadbench-attempts"] == "1"
    done = raw.parse()
    assert done.choices[0].message.content and done.usage is not None and done.usage.completion_tokens == 6
    pieces: list[str] = []
    usage = None
    for ev in client.chat.completions.create(
        model="team/chat", messages=messages, stream=True, stream_options={"include_usage": True}
    ):
        if ev.choices and ev.choices[0].delta.content:
            pieces.append(ev.choices[0].delta.content)
        if ev.usage is not None:
            usage = ev.usage
    assert len(pieces) == 6 and usage is not None and usage.completion_tokens == 6
    text = client.completions.create(model="team/chat", prompt="hi", max_tokens=4)
    assert text.choices[0].text
    assert [x.id for x in client.models.list()] == ["team/chat"]
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="nope", messages=messages)
    bad = openai.OpenAI(base_url=gw.base_url, api_key="wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        bad.chat.completions.create(model="team/chat", messages=messages)


def test_sighup_reload_valid_and_invalid_without_dropping_streams(
    servers: list[ServerProcess], tmp_path: Path
) -> None:
    m = start_mock(servers)
    cfg = {
        "targets": targets(m, max_connections=16),
        "virtual_models": [{"name": "old", "targets": [{"target": "m0"}]}],
    }
    gw, path = start_gateway(servers, tmp_path, cfg)

    async def long_stream() -> bytes:
        body = {
            "model": "old",
            "messages": [{"role": "user", "content": "x"}],
            "stream": True,
            "max_tokens": 40,
        }
        async with (
            aiohttp.ClientSession() as s,
            s.post(gw.url + "/v1/chat/completions", json=body, headers={"X-Mock-ITL-Ms": "20"}) as r,
        ):
            return await r.read()

    async def models() -> list[str]:
        return [x["id"] for x in (await get_json(gw.base_url + "/models"))["data"]]

    async def scenario() -> None:
        in_flight = asyncio.create_task(long_stream())  # ~0.8 s
        await asyncio.sleep(0.2)
        # the new config renames the model and resizes the pool (a new pool; the old one drains)
        cfg2 = {
            "targets": targets(m, max_connections=32),
            "virtual_models": [{"name": "new", "targets": [{"target": "m0"}]}],
        }
        path.write_text(yaml.safe_dump(cfg2))
        gw.proc.send_signal(signal.SIGHUP)
        for _ in range(100):
            if await models() == ["new"]:
                break
            await asyncio.sleep(0.05)
        assert await models() == ["new"]
        data = await in_flight
        assert ok_stream(data) and content_deltas(data) == 40
        path.write_text("targets: [oops")
        gw.proc.send_signal(signal.SIGHUP)
        await asyncio.sleep(0.5)
        assert gw.proc.poll() is None
        assert await models() == ["new"]
        results = await fire(gw.url, 4, 2, model="new")
        assert all(r[0] == 200 for r in results)

    asyncio.run(scenario())
    assert any("reload rejected" in line for line in gw.output)


def test_workers_share_the_port(servers: list[ServerProcess], tmp_path: Path) -> None:
    m = start_mock(servers)
    cfg = {"targets": targets(m), "virtual_models": [{"name": "vm", "targets": [{"target": "m0"}]}]}
    gw, _ = start_gateway(servers, tmp_path, cfg, "--workers", "2")

    async def ids() -> set[str]:
        seen: set[str] = set()
        for _ in range(40):  # a new connection each time, so the kernel spreads them
            async with (
                aiohttp.ClientSession() as s,
                s.post(
                    gw.url + "/v1/chat/completions",
                    json={"model": "vm", "messages": [{"role": "user", "content": "x"}]},
                ) as r,
            ):
                assert r.status == 200
                seen.add(r.headers["x-request-id"].split("-")[1])
        return seen

    assert len(asyncio.run(ids())) == 2
    assert gw.stop() == 0
