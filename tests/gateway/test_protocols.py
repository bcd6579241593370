"""The gateway routes across protocols: a target speaks its own ``protocol:``, the client keeps its own.

The target here is a real server speaking the toy protocol (tests/protocol/toy_server.py), added from
outside the package as any provider is: the gateway builds each attempt with the toy dialect, decodes
the toy stream and answers an OpenAI client in OpenAI's words, streamed and whole, with usage for the log.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest

from loadbench.errors import ConfigError
from loadbench.gateway.config import compile_model, parse_model
from loadbench.protocol.openai import OPENAI, stream_text
from tests.gateway.harness import CHAT, gateway, ok, run, serve, upstream
from tests.gateway.harness import Upstream as Scripted
from tests.gateway.test_requestlog import rows
from tests.protocol.toy_server import SECRET, toy_app

ENV = {"TOY_KEY": SECRET}


def toy_target(url: str, name: str = "toy", model: str = "toy-model", **extra: Any) -> dict[str, Any]:
    return {"name": name, "url": url + "/v9", "model": model, "protocol": "toy", "api_key_env": "TOY_KEY", **extra}


def config(*targets: dict[str, Any], **vm: Any) -> dict[str, Any]:
    return {"targets": list(targets),
            "virtual_models": [{"name": "vm", "targets": [{"target": t["name"]} for t in targets], **vm}]}


async def ask(url: str, body: dict[str, Any]) -> tuple[int, dict[str, str], bytes]:
    async with aiohttp.ClientSession() as s, s.post(url + "/v1/chat/completions", json=body) as r:
        return r.status, dict(r.headers), await r.read()


def test_an_openai_client_reaches_a_toy_target_streamed_with_usage_and_reasoning() -> None:
    seen: list[dict[str, object]] = []

    async def go() -> None:
        async with serve(toy_app(seen)) as toy, gateway(config(toy_target(toy)), ENV) as (url, _gw):
            body = {**CHAT, "stream": True, "stream_options": {"include_usage": True}}
            status, headers, raw = await ask(url, body)
            assert status == 200, raw
            assert headers["Content-Type"].startswith("text/event-stream")
            assert headers["x-loadbench-target"] == "toy"
            decoded = OPENAI.decoder().feed(raw, end_of_stream=True)
            assert decoded.done and decoded.error is None
            assert [(c.channel, c.text) for c in decoded.content] == [
                ("reasoning", "hmm"), ("answer", "forty"), ("answer", " two")]
            assert decoded.usage is not None
            assert (decoded.usage.prompt_tokens, decoded.usage.completion_tokens) == (3, 2)
            # the toy request: its path, its key in the query, its own body
            assert seen[0]["model"] == "toy-model" and seen[0]["token"] == SECRET
            assert seen[0]["body"] == {"ask": "hi", "model": "toy-model", "limit": None, "stream": True}
    run(go())


def test_an_openai_client_without_include_usage_gets_no_usage_chunk() -> None:
    async def go() -> None:
        async with serve(toy_app([])) as toy, gateway(config(toy_target(toy)), ENV) as (url, _gw):
            status, _, raw = await ask(url, {**CHAT, "stream": True})
            assert status == 200
            decoded = OPENAI.decoder().feed(raw, end_of_stream=True)
            assert decoded.done and decoded.usage is None and b'"usage"' not in raw
    run(go())


def test_a_whole_toy_answer_is_an_openai_completion() -> None:
    async def go() -> None:
        async with serve(toy_app([])) as toy, gateway(config(toy_target(toy)), ENV) as (url, _gw):
            status, headers, raw = await ask(url, CHAT)
            assert status == 200, raw
            assert headers["Content-Type"].startswith("application/json")
            obj = orjson.loads(raw)
            assert obj["object"] == "chat.completion"
            assert obj["choices"][0]["message"]["content"] == "forty two"
            assert obj["usage"]["prompt_tokens"] == 3 and obj["usage"]["completion_tokens"] == 2
            assert obj["model"] == "toy-model"
    run(go())


def test_a_toy_error_answer_falls_back_to_an_openai_target_and_counts_as_its_status() -> None:
    async def go() -> None:
        async with serve(toy_app([])) as toy, upstream(Scripted(ok)) as good:
            cfg = {"targets": [toy_target(toy), {"name": "good", "url": good, "model": "m"}],
                   "virtual_models": [{"name": "vm", "routing": "priority", "targets": [
                       {"target": "toy"}, {"target": "good", "priority": 1}]}]}
            async with gateway(cfg, ENV) as (url, gw):
                body = {"model": "vm", "messages": [{"role": "user", "content": "fail please"}]}
                status, headers, raw = await ask(url, body)
                assert status == 200 and headers["x-loadbench-target"] == "good"
                assert headers["x-loadbench-attempts"] == "2"
                assert gw.metrics.counters["attempts"][("toy", "503")] == 1
                # alone, the toy's 503 reaches the client as an OpenAI error naming the toy's message
                async with gateway(config(toy_target(toy)), ENV) as (url2, _):
                    status, _, raw = await ask(url2, body)
                    assert status == 503
                    err = orjson.loads(raw)["error"]
                    assert "toy engine is down" in err["message"] and err["type"] == "upstream_error"
    run(go())


def test_a_toy_stream_cut_after_its_first_token_ends_with_an_openai_error_event() -> None:
    async def go() -> None:
        async with serve(toy_app([])) as toy, gateway(config(toy_target(toy, model="cut-model")), ENV) as (url, gw):
            status, _, raw = await ask(url, {**CHAT, "stream": True})
            assert status == 200
            decoded = OPENAI.decoder().feed(raw, end_of_stream=True)
            assert [c.text for c in decoded.content] == ["only a start"]
            assert decoded.error is not None and "before its E line" in decoded.error.message
            assert not decoded.done
            assert gw.metrics.counters["stream_breaks"][("toy",)] == 1
    run(go())


def test_an_unknown_protocol_is_refused_naming_the_field() -> None:
    cfg = config({"name": "x", "url": "http://127.0.0.1:9/v1", "model": "m", "protocol": "klingon"})
    with pytest.raises(ConfigError) as err:
        compile_model(parse_model(cfg, "gw.yaml"), "gw.yaml", env={})
    assert "targets[0].protocol" in str(err.value) and "openai" in str(err.value)


def test_the_log_prices_a_toy_targets_usage_and_a_toy_shadow_is_read_in_its_protocol(tmp_path: Path) -> None:
    db = tmp_path / "gw.db"
    prices = tmp_path / "pricing.yaml"
    prices.write_text("source: test\nas_of: 2026-11-01\nmodels:\n"
                      "  toy-model: {input_per_mtok: 1000000, output_per_mtok: 10000000}\n"
                      "  m: {input_per_mtok: 0, output_per_mtok: 0}\n")

    async def go() -> None:
        async with serve(toy_app([])) as toy, upstream(Scripted(ok)) as good:
            cfg = {"targets": [toy_target(toy), {"name": "good", "url": good, "model": "m"},
                               toy_target(toy, name="toy-shadow")],
                   "virtual_models": [
                       {"name": "vm", "targets": [{"target": "toy"}]},
                       {"name": "vm2", "targets": [{"target": "good"}],
                        "shadow": {"targets": ["toy-shadow"], "fraction": 1.0}}],
                   "request_log": {"path": str(db), "flush_ms": 20, "pricing": str(prices)}}
            async with gateway(cfg, ENV) as (url, gw):
                for stream in (True, False):
                    status, _, _ = await ask(url, {**CHAT, "stream": stream})
                    assert status == 200
                    status, _, _ = await ask(url, {**CHAT, "model": "vm2", "stream": stream})
                    assert status == 200
                await gw.close()

    run(go())
    toy_rows = rows(db, "target IN ('toy', 'toy-shadow')")
    assert sorted((r["target"], r["role"]) for r in toy_rows) == [
        ("toy", "primary"), ("toy", "primary"), ("toy-shadow", "shadow"), ("toy-shadow", "shadow")]
    for r in toy_rows:
        assert (r["prompt_tokens"], r["output_tokens"], r["outcome"]) == (3, 2, "ok"), r
        assert r["cost_usd"] == pytest.approx(3 * 1.0 + 2 * 10.0)


def test_the_escalation_check_reads_an_answer_in_the_clients_protocol() -> None:
    import re

    from aiohttp import web

    from loadbench.gateway.abconfig import AnswerCheck, CostRoutingSpec
    from loadbench.gateway.context import RequestContext
    from loadbench.gateway.escalation import failed_answer
    from loadbench.protocol.anthropic import ANTHROPIC
    from loadbench.protocol.dialect import Answer

    spec = CostRoutingSpec(0.9, {}, 1, 10, escalate=True, check=AnswerCheck(re.compile("forty"), False))
    ctx = RequestContext("r", 0, "chat")
    ctx.ingress = ANTHROPIC
    good = web.Response(body=ANTHROPIC.answer_body(Answer(text="forty two", finish_reason="stop", choices=1), "m1"))
    bad = web.Response(body=ANTHROPIC.answer_body(Answer(text="no idea", finish_reason="stop", choices=1), "m2"))
    assert not failed_answer(ctx, good, spec) and failed_answer(ctx, bad, spec)


def test_the_cache_keeps_a_toy_targets_answer_translated_for_openai_clients() -> None:
    seen: list[dict[str, object]] = []

    async def go() -> None:
        async with serve(toy_app(seen)) as toy, \
                gateway({**config(toy_target(toy)), "cache": {"mode": "exact"}}, ENV) as (url, _gw):
            got = []
            for stream in (True, True, False):
                status, headers, raw = await ask(url, {**CHAT, "stream": stream, "temperature": 0})
                assert status == 200, raw
                text = stream_text(raw) if stream else orjson.loads(raw)["choices"][0]["message"]["content"]
                got.append((headers["x-loadbench-target"], headers["x-loadbench-cache"], text))
            assert got == [("toy", "miss", "forty two"), ("cache", "hit-exact", "forty two"),
                           ("cache", "hit-exact", "forty two")]
    run(go())
    assert len(seen) == 1  # the repeats, streamed or whole, were answered from the cache
