"""The response cache wired into the gateway: config, lookup/store through real aiohttp servers,
headers, Cache-Control, tenant isolation with gateway auth, /metrics, and replay to the openai client."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import openai
import orjson
import pytest
from aiohttp import web

from loadbench.cache import CachedAnswer, replay_json, replay_sse
from loadbench.errors import ConfigError
from loadbench.gateway.app import create_app
from loadbench.gateway.config import compile_model, parse_model
from loadbench.gateway.state import Gateway
from tests.gateway.harness import Upstream, post, run, serve, upstream

TEXT = "The capital of France is Paris, on the Seine."
USAGE = {"prompt_tokens": 12, "completion_tokens": 9, "total_tokens": 21}
ANSWER = CachedAnswer(text=TEXT, finish_reason="stop", usage=USAGE, model="up-model")
KEYS = {"GW_KEYS": "key-alice,key-mallory", "TEAM_A_KEYS": "key-alice,key-bob"}


async def good(up: Upstream, request: web.Request, body: dict[str, Any]) -> web.StreamResponse:
    """A well-formed OpenAI answer (chat or completions, streamed or not)."""
    fmt = "chat" if "messages" in body else "completions"
    if not body.get("stream"):
        return web.json_response(replay_json(ANSWER, fmt=fmt, model="up-model", response_id="up-1",
                                             created_s=1))
    resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
    await resp.prepare(request)
    usage = bool((body.get("stream_options") or {}).get("include_usage"))
    for event in replay_sse(ANSWER, fmt=fmt, model="up-model", response_id="up-1", created_s=1,
                            include_usage=usage, chunk_chars=6):
        await resp.write(event)
    return resp


async def broken(up: Upstream, request: web.Request, body: dict[str, Any]) -> web.StreamResponse:
    """200, two content events, then the connection dies (no finish, no [DONE])."""
    resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
    await resp.prepare(request)
    events = list(replay_sse(ANSWER, fmt="chat", model="up-model", response_id="up-1", created_s=1))
    for event in events[:3]:
        await resp.write(event)
    assert request.transport is not None
    request.transport.close()
    return resp


def config(url: str, gateway_cache: dict[str, Any] | None, *, auth: bool = False,
           namespaces: dict[str, str] | None = None, **vm: Any) -> dict[str, Any]:
    cfg: dict[str, Any] = {
        "targets": [{"name": "t", "url": url, "model": "up-model"}],
        "virtual_models": [{"name": "vm", "targets": [{"target": "t"}], **vm}],
    }
    if gateway_cache is not None:
        cfg["cache"] = gateway_cache
    if auth:
        cfg["auth"] = {"api_keys_env": "GW_KEYS"}
    if namespaces:
        cfg.setdefault("auth", {})["namespaces"] = namespaces
    return cfg


@contextlib.asynccontextmanager
async def cached_gateway(behave: Any, cache: dict[str, Any] | None, **kw: Any
                         ) -> AsyncIterator[tuple[str, Upstream, Gateway, aiohttp.ClientSession]]:
    up = Upstream(behave)
    async with upstream(up) as up_url:
        spec = compile_model(parse_model(config(up_url, cache, **kw), "gw.yaml"), "gw.yaml", env=KEYS)
        gw = Gateway(spec, seed=1)
        async with serve(create_app(gw)) as url, aiohttp.ClientSession() as s:
            yield url, up, gw, s


def chat(text: str, **extra: Any) -> dict[str, Any]:
    return {"model": "vm", "temperature": 0, "messages": [{"role": "user", "content": text}], **extra}


def sse_events(raw: bytes) -> list[Any]:
    events = [e for e in raw.split(b"\n\n") if e.strip()]
    assert all(e.startswith(b"data: ") for e in events), raw
    assert events[-1] == b"data: [DONE]"
    return [orjson.loads(e[6:]) for e in events[:-1]]


def streamed_text(raw: bytes) -> str:
    return "".join(c["choices"][0]["delta"].get("content") or "" for c in sse_events(raw) if c["choices"])


# ------------------------------------------------------------------ config


def test_cache_config_in_the_gateway_file_and_per_virtual_model() -> None:
    def compile_(cfg: dict[str, Any]) -> Any:
        return compile_model(parse_model(cfg, "gw.yaml"), "gw.yaml", env={"EMB": "sk-emb"})

    base = config("http://127.0.0.1:1/v1", {"mode": "semantic", "ttl_s": 60})
    base["virtual_models"] += [
        {"name": "strict", "targets": [{"target": "t"}], "cache": {"similarity_threshold": 0.97}},
        {"name": "off", "targets": [{"target": "t"}], "cache": False},
    ]
    routes = compile_(base).routes
    assert routes["vm"].cache.mode == "semantic" and routes["vm"].cache.ttl_s == 60
    assert routes["strict"].cache.similarity_threshold == 0.97 and routes["strict"].cache.ttl_s == 60
    assert routes["off"].cache is None
    assert compile_(config("http://127.0.0.1:1/v1", None)).routes["vm"].cache is None
    only_vm = config("http://127.0.0.1:1/v1", None, cache={"mode": "exact"})
    assert compile_(only_vm).routes["vm"].cache.mode == "exact"

    for cfg, field in [
        (config("http://x/v1", {"modee": "exact"}), "cache.modee"),
        (config("http://x/v1", {"mode": "fuzzy"}), "cache.mode"),
        (config("http://x/v1", {}, cache={"similarity_threshold": 1.5}),
         "virtual_models[0].cache.similarity_threshold"),
        (config("http://x/v1", {"embedder": {"kind": "openai", "base_url": "http://127.0.0.1:1/v1", "model": "e",
                                             "api_key_env": "NOT_SET_ANYWHERE"}}), "cache.embedder.api_key_env"),
    ]:
        with pytest.raises(ConfigError) as info:
            compile_(cfg)
        assert info.value.field == field, (info.value.field, field)


# ------------------------------------------------------------------ lookup and store


def test_miss_is_stored_then_replayed_as_sse_or_json_without_the_upstream() -> None:
    async def main() -> None:
        async with cached_gateway(good, {"mode": "exact"}) as (url, up, gw, s):
            status, h, first = await post(s, url, chat("What is the capital of France?"))
            assert status == 200 and h["x-loadbench-cache"] == "miss" and h["x-loadbench-target"] == "t"
            assert orjson.loads(first)["choices"][0]["message"]["content"] == TEXT
            # the same request streamed: an exact hit (stream is presentation, not part of the key)
            body = chat("What is the capital of France?", stream=True, stream_options={"include_usage": True})
            status, h, raw = await post(s, url, body)
            assert status == 200 and h["x-loadbench-cache"] == "hit-exact"
            assert h["x-loadbench-target"] == "cache" and h["Content-Type"].startswith("text/event-stream")
            events = sse_events(raw)
            assert streamed_text(raw) == TEXT
            assert events[-1]["usage"] == USAGE and events[-2]["choices"][0]["finish_reason"] == "stop"
            assert events[0]["model"] == "up-model"
            status, h, again = await post(s, url, chat("What is the capital of France?"))
            assert h["x-loadbench-cache"] == "hit-exact"
            assert orjson.loads(again)["choices"][0]["message"]["content"] == TEXT
            assert len(up.bodies) == 1
            # a hit never reaches a target's latency histograms
            assert sum(gw.metrics.target("t").ttft.counts) == 1

    run(main())


def test_a_streamed_miss_is_stored_only_after_a_complete_stream() -> None:
    async def main() -> None:
        async with cached_gateway(good, {"mode": "exact"}) as (url, up, _gw, s):
            body = chat("Tell me a fact.", stream=True)
            _, h, raw = await post(s, url, body)
            assert h["x-loadbench-cache"] == "miss" and streamed_text(raw) == TEXT
            _, h, raw = await post(s, url, {**body, "stream": False})
            assert h["x-loadbench-cache"] == "hit-exact"
            assert orjson.loads(raw)["choices"][0]["message"]["content"] == TEXT
            assert len(up.bodies) == 1

    run(main())


def test_broken_streams_and_errors_are_never_stored() -> None:
    async def main() -> None:
        async with cached_gateway(broken, {"mode": "exact"}) as (url, up, gw, s):
            body = chat("Tell me a fact.", stream=True)
            for _ in range(2):
                status, h, raw = await post(s, url, body)
                assert status == 200 and h["x-loadbench-cache"] == "miss"
                assert b'"error"' in raw  # the client saw the break
            assert len(up.bodies) == 2

        async def failing(up: Upstream, request: web.Request, body: dict[str, Any]) -> web.StreamResponse:
            return web.json_response({"error": {"message": "overloaded"}}, status=503)

        async with cached_gateway(failing, {"mode": "exact"}) as (url, up, gw, s):
            for _ in range(2):
                status, h, _ = await post(s, url, chat("Tell me a fact."))
                assert status == 503 and h["x-loadbench-cache"] == "miss"
            assert len(up.bodies) == 2
            assert gw.state is not None and len(gw.state.caches["vm"]) == 0

    run(main())


def test_semantic_hit_headers_and_cache_control() -> None:
    async def main() -> None:
        async with cached_gateway(good, {"mode": "semantic"}) as (url, up, _gw, s):
            await post(s, url, chat("What is the capital of France?"))
            _, h, raw = await post(s, url, chat("what's the capital of France"))
            assert h["x-loadbench-cache"] == "hit-semantic"
            assert 0.9 <= float(h["x-loadbench-cache-similarity"]) < 1.0
            assert orjson.loads(raw)["choices"][0]["message"]["content"] == TEXT
            # a near miss (another entity) goes upstream
            _, h, _ = await post(s, url, chat("What is the capital of Germany?"))
            assert h["x-loadbench-cache"] == "miss"
            calls = len(up.bodies)
            # no-cache: skip the lookup (fresh answer, which may be stored)
            _, h, _ = await post(s, url, chat("What is the capital of France?"), headers={"Cache-Control": "no-cache"})
            assert h["x-loadbench-cache"] == "bypass" and len(up.bodies) == calls + 1
            # no-store: an uncached request goes upstream and is not kept
            new = chat("How tall is the Eiffel Tower?")
            _, h, _ = await post(s, url, new, headers={"Cache-Control": "no-store"})
            assert h["x-loadbench-cache"] == "miss"
            _, h, _ = await post(s, url, new)
            assert h["x-loadbench-cache"] == "miss" and len(up.bodies) == calls + 3
            _, h, _ = await post(s, url, new)
            assert h["x-loadbench-cache"] == "hit-exact" and len(up.bodies) == calls + 3
            # temperature unset = non-deterministic: never cached
            _, h, _ = await post(s, url, {"model": "vm", "messages": [{"role": "user", "content": "Hi"}]})
            assert h["x-loadbench-cache"] == "bypass"

    run(main())


# ------------------------------------------------------------------ isolation


def test_no_cross_tenant_hit_even_for_identical_requests_with_the_loosest_settings() -> None:
    """Adversarial: semantic mode, threshold 0.01, guard off, identical requests, two client keys."""
    loosest = {"mode": "semantic", "similarity_threshold": 0.01, "near_miss_guard": False}

    async def main() -> None:
        async with cached_gateway(good, loosest, auth=True) as (url, _up, gw, s):
            alice = {"Authorization": "Bearer key-alice"}
            # no-store: mallory's probes never fill mallory's own partition, so any hit would be alice's
            mallory = {"Authorization": "Bearer key-mallory", "Cache-Control": "no-store"}
            body = chat("Where is my delivery?")
            _, h, _ = await post(s, url, body, headers=alice)
            assert h["x-loadbench-cache"] == "miss"
            for probe in (body, {**body, "stream": True}, chat("where is my delivery"), chat("Where is it?")):
                for extra in ({}, {"X-Loadbench-Cache-Namespace": "default"}):
                    status, h, _ = await post(s, url, probe, headers={**mallory, **extra})
                    assert status == 200 and not h["x-loadbench-cache"].startswith("hit"), (probe, extra)
            _, h, _ = await post(s, url, body, headers=alice)
            assert h["x-loadbench-cache"] == "hit-exact"
            stats = gw.state.caches["vm"].stats() if gw.state else None
            assert stats is not None and stats.hits_exact + stats.hits_semantic == 1

    run(main())


def test_namespace_header_shares_entries_only_when_the_operator_allows_it() -> None:
    async def main() -> None:
        for allowed in (False, True):
            cache = {"mode": "exact", "allow_namespace_header": allowed}
            async with cached_gateway(good, cache, auth=True) as (url, _up, _gw, s):
                team = {"X-Loadbench-Cache-Namespace": "team-a"}
                await post(s, url, chat("Hi there"), headers={"Authorization": "Bearer key-alice", **team})
                mallory = {"Authorization": "Bearer key-mallory", "Cache-Control": "no-store"}
                _, h, _ = await post(s, url, chat("Hi there"), headers={**mallory, **team})
                assert h["x-loadbench-cache"] == ("hit-exact" if allowed else "miss")
                # without the header, each key is its own tenant again
                _, h, _ = await post(s, url, chat("Hi there"), headers=mallory)
                assert h["x-loadbench-cache"] == "miss"

    run(main())


def test_with_auth_off_each_presented_key_is_its_own_tenant() -> None:
    async def main() -> None:
        async with cached_gateway(good, {"mode": "exact"}) as (url, _up, _gw, s):
            body = chat("Where is my delivery?")
            _, h, _ = await post(s, url, body, headers={"Authorization": "Bearer anything-1"})
            assert h["x-loadbench-cache"] == "miss"
            _, h, _ = await post(s, url, body, headers={"Authorization": "Bearer anything-2"})
            assert h["x-loadbench-cache"] == "miss"  # another key: another tenant, auth or not
            _, h, _ = await post(s, url, body, headers={"api-key": "anything-1"})
            assert h["x-loadbench-cache"] == "hit-exact"  # the same key, presented either way
            _, h, _ = await post(s, url, body)
            assert h["x-loadbench-cache"] == "miss"  # no key: the anonymous tenant
            _, h, _ = await post(s, url, body)
            assert h["x-loadbench-cache"] == "hit-exact"

    run(main())


def test_namespaces_bound_to_keys_ignore_the_header_of_any_other_key() -> None:
    async def main() -> None:
        cache = {"mode": "exact", "allow_namespace_header": True}
        async with cached_gateway(good, cache, namespaces={"team-a": "TEAM_A_KEYS"}) as (url, _up, _gw, s):
            team = {"X-Loadbench-Cache-Namespace": "team-a"}
            await post(s, url, chat("Hi there"), headers={"Authorization": "Bearer key-alice", **team})
            _, h, _ = await post(s, url, chat("Hi there"), headers={"Authorization": "Bearer key-bob", **team})
            assert h["x-loadbench-cache"] == "hit-exact"  # bound to team-a: shares its entries
            mallory = {"Authorization": "Bearer key-mallory", "Cache-Control": "no-store", **team}
            _, h, _ = await post(s, url, chat("Hi there"), headers=mallory)
            assert h["x-loadbench-cache"] == "miss"  # guessed the name, not bound: own tenant
            _, h, _ = await post(s, url, chat("Hi there"), headers=team)
            assert h["x-loadbench-cache"] == "miss"  # no key at all

    run(main())


def test_a_namespace_bound_to_an_unset_variable_is_a_config_error() -> None:
    cfg = config("http://127.0.0.1:1/v1", {"allow_namespace_header": True}, namespaces={"team-a": "UNSET_VAR"})
    with pytest.raises(ConfigError) as err:
        compile_model(parse_model(cfg, "gw.yaml"), "gw.yaml", env={})
    assert err.value.field == "auth.namespaces.team-a" and "UNSET_VAR" in err.value.problem


# ------------------------------------------------------------------ metrics


def test_metrics_show_hits_misses_entries_evictions_and_tokens_saved() -> None:
    async def main() -> None:
        async with cached_gateway(good, {"mode": "exact", "max_entries": 2}) as (url, _up, gw, s):
            for text in ("one", "one", "two", "three", "one"):
                await post(s, url, chat(f"Question {text}?"))
            async with s.get(url + "/metrics") as resp:
                text = await resp.text()
        lines = {line.split(" ")[0].replace(f',worker="{gw.metrics.worker}"', ""): line.split(" ")[1]
                 for line in text.splitlines() if line and not line.startswith("#")}
        assert lines['loadbench_gateway_cache_lookups_total{model="vm",outcome="hit-exact"}'] == "1"
        assert lines['loadbench_gateway_cache_lookups_total{model="vm",outcome="miss"}'] == "4"
        assert lines['loadbench_gateway_cache_model_tokens_saved_total{model="vm"}'] == str(USAGE["total_tokens"])
        assert lines['loadbench_gateway_cache_captures_total{model="vm",result="stored"}'] == "4"
        assert lines['loadbench_gateway_cache_tokens_saved_total{cache="vm"}'] == str(USAGE["total_tokens"])
        assert lines['loadbench_gateway_cache_entries{cache="vm"}'] == "2"
        assert lines['loadbench_gateway_cache_evictions_total{cache="vm"}'] == "2"
        assert lines['loadbench_gateway_cache_misses_total{cache="vm"}'] == "4"

    run(main())


# ------------------------------------------------------------------ the official client


def test_openai_client_reads_replayed_answers_streamed_and_not() -> None:
    async def main() -> None:
        async with cached_gateway(good, {"mode": "semantic"}, auth=True) as (url, up, _gw, _s):
            client = openai.AsyncOpenAI(base_url=url + "/v1", api_key="key-alice", max_retries=0)
            msgs: Any = [{"role": "user", "content": "What is the capital of France?"}]
            first = await client.chat.completions.create(model="vm", messages=msgs, temperature=0)
            assert first.choices[0].message.content == TEXT
            for text in ("What is the capital of France?", "what's the capital of France"):
                msgs = [{"role": "user", "content": text}]
                raw = await client.chat.completions.with_raw_response.create(model="vm", messages=msgs,
                                                                             temperature=0)
                assert raw.headers["x-loadbench-cache"].startswith("hit")
                done = raw.parse()
                assert done.choices[0].message.content == TEXT and done.usage is not None
                assert done.usage.total_tokens == USAGE["total_tokens"]
                stream = await client.chat.completions.create(model="vm", messages=msgs, temperature=0,
                                                              stream=True, stream_options={"include_usage": True})
                parts, usage, finish = [], None, None
                async for ev in stream:
                    if ev.choices:
                        parts.append(ev.choices[0].delta.content or "")
                        finish = ev.choices[0].finish_reason or finish
                    if ev.usage is not None:
                        usage = ev.usage
                assert "".join(parts) == TEXT and finish == "stop"
                assert usage is not None and usage.completion_tokens == USAGE["completion_tokens"]
            # completions endpoint: its own key space (the body differs), replayed as text_completion
            await client.completions.create(model="vm", prompt="Say hi", temperature=0)
            comp = await client.completions.create(model="vm", prompt="Say hi", temperature=0, stream=True)
            text = "".join([c.choices[0].text async for c in comp if c.choices])
            assert text == TEXT
            assert len(up.bodies) == 2
            await client.close()

    run(main())


def test_concurrent_identical_misses_all_succeed() -> None:
    async def main() -> None:
        async with cached_gateway(good, {"mode": "semantic"}) as (url, _up, gw, s):
            results = await asyncio.gather(*(post(s, url, chat("What is the capital of France?", stream=i % 2 == 0))
                                             for i in range(8)))
            assert all(status == 200 for status, _, _ in results)
            _, h, _ = await post(s, url, chat("What is the capital of France?"))
            assert h["x-loadbench-cache"] == "hit-exact"
            assert gw.state is not None and len(gw.state.caches["vm"]) == 1

    run(main())
