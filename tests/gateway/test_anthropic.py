"""The gateway between OpenAI and Anthropic Messages, with the official SDKs as the clients.

Either ingress reaches either backend, streamed and whole: the ``openai`` SDK through the gateway to an
Anthropic target, the ``anthropic`` SDK at the gateway's ``/v1/messages`` to an OpenAI target and to an
Anthropic one (whose stream it then gets byte for byte). The Anthropic target is a real server answering
with the anthropic dialect's server half (tests/protocol/dialect_server.py). If an SDK rejects what
the gateway sends, the bytes are wrong.
"""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import anthropic
import openai
import orjson
import pytest
from aiohttp import web

from loadbench.protocol.anthropic import ANTHROPIC
from loadbench.protocol.dialect import WireError
from tests.gateway.harness import Upstream as Scripted
from tests.gateway.harness import gateway, ok, run, serve, upstream
from tests.protocol.dialect_server import USAGE, DialectServer, Script

ENV = {"CLAUDE_KEY": "sk-ant-test"}
QUESTION = [{"role": "user", "content": "hi"}]


def claude(url: str, name: str = "claude", **extra: Any) -> dict[str, Any]:
    return {"name": name, "url": url, "model": "claude-x", "protocol": "anthropic",
            "api_key_env": "CLAUDE_KEY", **extra}


def one(*targets: dict[str, Any], **vm: Any) -> dict[str, Any]:
    return {"targets": list(targets),
            "virtual_models": [{"name": "vm", "targets": [{"target": t["name"]} for t in targets], **vm}]}


async def read_stream(stream: Any) -> tuple[str, Any]:
    """The answer text and the usage of an openai SDK stream."""
    text, usage = "", None
    async for part in stream:
        if part.choices and part.choices[0].delta.content:
            text += part.choices[0].delta.content
        usage = part.usage or usage
    return text, usage


async def hello_both_ways(client: Any) -> Any:
    """An openai SDK client asks the gateway's "vm" streamed then whole: "Hello world" with the
    script's usage each time; returns the streamed usage."""
    stream = await client.chat.completions.create(model="vm", messages=QUESTION, stream=True,
                                                  stream_options={"include_usage": True})
    text, usage = await read_stream(stream)
    assert text == "Hello world"
    assert usage is not None and usage.completion_tokens == USAGE.completion_tokens
    whole = await client.chat.completions.create(model="vm", messages=QUESTION)
    assert whole.choices[0].message.content == "Hello world" and whole.choices[0].finish_reason == "stop"
    assert whole.usage is not None and whole.usage.prompt_tokens == USAGE.prompt_tokens
    await client.close()
    return usage


def test_the_openai_sdk_reaches_an_anthropic_target_streamed_and_whole() -> None:
    with DialectServer() as server:
        async def go() -> None:
            async with gateway(one(claude(server.url)), ENV) as (url, _gw):
                usage = await hello_both_ways(openai.AsyncOpenAI(base_url=url + "/v1", api_key="none",
                                                                 max_retries=0))
                assert usage.prompt_tokens == USAGE.prompt_tokens and usage.prompt_tokens_details is not None
                assert usage.prompt_tokens_details.cached_tokens == USAGE.cached_tokens
        run(go())
        # the Anthropic request: its path, its headers, the key from the environment, max_tokens always
        first = server.seen[0]
        assert first.dialect == "anthropic" and first.path == "/v1/messages"
        assert first.headers["x-api-key"] == "sk-ant-test" and first.headers["anthropic-version"]
        assert first.request.model == "claude-x" and first.request.stream
        assert orjson.loads(first.body)["max_tokens"] >= 1


def test_the_anthropic_sdk_reaches_an_openai_target_at_v1_messages_streamed_and_whole() -> None:
    async def go() -> None:
        scripted = Scripted(ok)
        async with upstream(scripted) as up_url:
            cfg = {"targets": [{"name": "oai", "url": up_url, "model": "up-model"}],
                   "virtual_models": [{"name": "vm", "targets": [{"target": "oai"}]}]}
            async with gateway(cfg) as (url, _gw):
                client = anthropic.AsyncAnthropic(base_url=url, api_key="none", max_retries=0)
                async with client.messages.stream(model="vm", max_tokens=50, messages=QUESTION) as stream:  # type: ignore[arg-type]
                    text = "".join([t async for t in stream.text_stream])
                    final = await stream.get_final_message()
                assert text == "abc"
                assert final.usage.input_tokens == 1 and final.usage.output_tokens == 3
                assert final.stop_reason == "end_turn"
                whole = await client.messages.create(model="vm", max_tokens=50, messages=QUESTION)  # type: ignore[arg-type]
                assert whole.content[0].type == "text" and whole.content[0].text == "ok"
                assert whole.usage.output_tokens == 1
                await client.close()
        # the OpenAI target got an OpenAI request: its model, the question, max_tokens, usage asked for
        streamed = scripted.bodies[0]
        assert streamed["model"] == "up-model" and streamed["messages"] == QUESTION
        assert streamed["max_tokens"] == 50 and streamed["stream_options"] == {"include_usage": True}
    run(go())


def test_anthropic_to_anthropic_is_passed_through_byte_for_byte() -> None:
    with DialectServer() as server:
        async def go() -> None:
            async with gateway(one(claude(server.url)), ENV) as (url, _gw), aiohttp.ClientSession() as s:
                body = {"model": "vm", "max_tokens": 20, "messages": QUESTION, "stream": True}
                async with s.post(url + "/v1/messages", json=body) as r:
                    via_gateway = await r.read()
                    assert r.status == 200 and r.headers["x-loadbench-target"] == "claude"
                async with s.post(server.url + "/v1/messages", json={**body, "model": "claude-x"},
                                  headers={"x-api-key": "k", "anthropic-version": "2023-06-01"}) as r:
                    direct = await r.read()
                assert via_gateway == direct
                client = anthropic.AsyncAnthropic(base_url=url, api_key="none", max_retries=0)
                whole = await client.messages.create(model="vm", max_tokens=20, messages=QUESTION)  # type: ignore[arg-type]
                assert [b.type for b in whole.content] == ["thinking", "text"]
                assert whole.usage.cache_read_input_tokens == USAGE.cached_tokens
                await client.close()
        run(go())


def test_an_overloaded_error_before_the_first_token_falls_back_and_counts_as_529() -> None:
    overloaded = WireError("Overloaded", "overloaded_error", 529)
    with DialectServer(Script(pieces=(), stream_error=overloaded)) as bad, DialectServer() as good:
        async def go() -> None:
            cfg = {"targets": [claude(bad.url, "bad", failure_tolerance={
                       "allowed_failures_per_minute": 0, "failure_status_codes": [529]}),
                               claude(good.url, "good")],
                   "virtual_models": [{"name": "vm", "routing": "priority",
                                       "fallback_status_codes": [529],
                                       "targets": [{"target": "bad"}, {"target": "good", "priority": 1}]}]}
            async with gateway(cfg, ENV) as (url, gw), aiohttp.ClientSession() as s:
                body = {"model": "vm", "messages": QUESTION, "stream": True}
                async with s.post(url + "/v1/chat/completions", json=body) as r:
                    raw = await r.read()
                    assert r.status == 200 and r.headers["x-loadbench-target"] == "good", raw
                    assert r.headers["x-loadbench-attempts"] == "2"
                assert b"Hello" in raw
                assert gw.metrics.counters["attempts"][("bad", "529")] == 1
                assert gw.metrics.counters["cooldowns"][("bad",)] == 1  # 529 is in its failure_status_codes
        run(go())


async def overloaded_midway(request: web.Request) -> web.StreamResponse:
    """An Anthropic stream that breaks with ``overloaded_error`` after its first tokens, each event in a
    read of its own (what arrives in one read with the error never reached a client: it falls back)."""
    req = ANTHROPIC.parse_request(await request.read())
    resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
    await resp.prepare(request)
    enc = ANTHROPIC.encoder(req.model, "msg_1")
    for part in (enc.head(), enc.content("Hello"), enc.content(" world"),
                 enc.error(WireError("Overloaded", "overloaded_error", 529))):
        await resp.write(part)
        await asyncio.sleep(0.1)  # each its own read, also on a busy machine
    return resp


def test_an_error_after_the_first_token_reaches_each_client_in_its_own_protocol() -> None:
    app = web.Application()
    app.router.add_post("/v1/messages", overloaded_midway)

    async def go() -> None:
        async with serve(app) as server_url, gateway(one(claude(server_url)), ENV) as (url, gw):
            oai = openai.AsyncOpenAI(base_url=url + "/v1", api_key="none", max_retries=0)
            got = ""
            try:
                stream = await oai.chat.completions.create(model="vm", messages=QUESTION, stream=True)  # type: ignore[arg-type]
                async for part in stream:
                    if part.choices and part.choices[0].delta.content:
                        got += part.choices[0].delta.content
                raise AssertionError("the OpenAI SDK read no error")
            except openai.APIError as exc:
                assert "Overloaded" in str(exc)
            assert got == "Hello world"
            client = anthropic.AsyncAnthropic(base_url=url, api_key="none", max_retries=0)
            try:
                async with client.messages.stream(model="vm", max_tokens=9, messages=QUESTION) as stream:  # type: ignore[arg-type]
                    async for _ in stream.text_stream:
                        pass
                raise AssertionError("the Anthropic SDK read no error")
            except anthropic.APIStatusError as exc:
                assert "Overloaded" in str(exc)
            assert gw.metrics.counters["stream_breaks"][("claude",)] == 2
            await oai.close()
            await client.close()
    run(go())


def test_errors_the_gateway_writes_are_in_the_anthropic_clients_protocol() -> None:
    async def go() -> None:
        async with upstream(Scripted(ok)) as up_url:
            cfg = {"targets": [{"name": "oai", "url": up_url, "model": "m"}],
                   "virtual_models": [{"name": "vm", "targets": [{"target": "oai"}]}],
                   "auth": {"api_keys_env": "GW_KEYS"}}
            async with gateway(cfg) as (url, _gw):
                client = anthropic.AsyncAnthropic(base_url=url, api_key="wrong", max_retries=0)
                try:
                    await client.messages.create(model="vm", max_tokens=5, messages=QUESTION)  # type: ignore[arg-type]
                    raise AssertionError("accepted a wrong key")
                except anthropic.AuthenticationError as exc:
                    assert exc.body is not None and "Invalid or missing API key" in str(exc)
                good = anthropic.AsyncAnthropic(base_url=url, api_key="k1", max_retries=0)
                try:
                    await good.messages.create(model="nope", max_tokens=5, messages=QUESTION)  # type: ignore[arg-type]
                    raise AssertionError("accepted an unknown model")
                except anthropic.NotFoundError as exc:
                    assert "nope" in str(exc)
                try:
                    await good.messages.create(model="vm", messages=QUESTION)  # type: ignore[call-arg]
                    raise AssertionError("accepted a request without max_tokens")
                except (anthropic.BadRequestError, TypeError):
                    pass
                await client.close()
                await good.close()
    run(go())


def test_the_azure_sdk_reaches_an_anthropic_target_through_the_gateway() -> None:
    with DialectServer() as server:
        async def go() -> None:
            async with gateway(one(claude(server.url)), ENV) as (url, _gw):
                await hello_both_ways(openai.AsyncAzureOpenAI(azure_endpoint=url, api_key="none",
                                                              api_version="2024-10-21", max_retries=0))
        run(go())
        assert [s.dialect for s in server.seen] == ["anthropic", "anthropic"]


def test_an_anthropic_client_reaches_an_azure_target() -> None:
    with DialectServer() as server:
        async def go() -> None:
            cfg = one({"name": "az", "url": server.url, "model": "gpt-dep", "protocol": "azure",
                       "api_key_env": "CLAUDE_KEY"})
            async with gateway(cfg, ENV) as (url, _gw):
                client = anthropic.AsyncAnthropic(base_url=url, api_key="none", max_retries=0)
                async with client.messages.stream(model="vm", max_tokens=50, messages=QUESTION) as stream:  # type: ignore[arg-type]
                    text = "".join([t async for t in stream.text_stream])
                    final = await stream.get_final_message()
                assert text == "Hello world" and final.usage.output_tokens == USAGE.completion_tokens
                await client.close()
        run(go())
        (seen,) = server.seen
        assert seen.dialect == "azure" and seen.path.startswith("/openai/deployments/gpt-dep/chat/completions?")
        assert seen.headers["api-key"] == "sk-ant-test"


def test_the_cache_answers_an_anthropic_client_in_its_protocol_and_shares_entries_with_openai_clients() -> None:
    with DialectServer() as server:
        async def go() -> None:
            cfg = {**one(claude(server.url)), "cache": {"mode": "exact"}}
            async with gateway(cfg, ENV) as (url, _gw):
                client = anthropic.AsyncAnthropic(base_url=url, api_key="none", max_retries=0)
                texts, sources = [], []
                for _ in range(2):
                    raw = await client.messages.with_raw_response.create(
                        model="vm", max_tokens=20, messages=QUESTION, extra_body={"temperature": 0})  # type: ignore[arg-type]
                    sources.append((raw.headers["x-loadbench-target"], raw.headers["x-loadbench-cache"]))
                    texts.append("".join(b.text for b in (await raw.parse()).content if b.type == "text"))
                async with client.messages.stream(model="vm", max_tokens=20, extra_body={"temperature": 0},
                                                  messages=QUESTION) as stream:  # type: ignore[arg-type]
                    texts.append("".join([t async for t in stream.text_stream]))
                    final = await stream.get_final_message()
                assert final.usage.output_tokens == USAGE.completion_tokens
                oai = openai.AsyncOpenAI(base_url=url + "/v1", api_key="none", max_retries=0)
                whole = await oai.chat.completions.with_raw_response.create(
                    model="vm", max_tokens=20, temperature=0, messages=QUESTION)  # type: ignore[arg-type]
                texts.append(whole.parse().choices[0].message.content or "")
                sources.append((whole.headers["x-loadbench-target"], whole.headers["x-loadbench-cache"]))
                assert texts == ["Hello world"] * 4
                assert sources == [("claude", "miss"), ("cache", "hit-exact"), ("cache", "hit-exact")]
                await client.close()
                await oai.close()
        run(go())
        assert len(server.seen) == 1


PROTOCOL_TARGETS = {
    "anthropic": {"model": "claude-x", "api_key_env": "CLAUDE_KEY"},
    "azure": {"model": "gpt-dep", "api_key_env": "CLAUDE_KEY"},
    "bedrock": {"model": "anthropic.claude-v2", "region": "us-east-1"},
    "gemini": {"model": "gemini-2.5-flash", "api_key_env": "CLAUDE_KEY"},
    "openai-responses": {"model": "gpt-5", "api_key_env": "CLAUDE_KEY", "base": "/v1"},
}


@pytest.mark.parametrize("protocol", sorted(PROTOCOL_TARGETS))
def test_the_openai_sdk_reaches_a_target_of_every_protocol(protocol: str) -> None:
    extra = dict(PROTOCOL_TARGETS[protocol])
    base = extra.pop("base", "")
    env = {**ENV, "AWS_ACCESS_KEY_ID": "AKIDTEST", "AWS_SECRET_ACCESS_KEY": "s"}
    with DialectServer() as server:
        async def go() -> None:
            target = {"name": "t", "url": server.url + base, "protocol": protocol, **extra}
            async with gateway(one(target), env) as (url, _gw):
                await hello_both_ways(openai.AsyncOpenAI(base_url=url + "/v1", api_key="none", max_retries=0))
        run(go())
        assert [s.dialect for s in server.seen] == [protocol, protocol]
        assert server.seen[0].request.stream and not server.seen[1].request.stream


def test_the_openai_sdks_responses_api_reaches_an_anthropic_target() -> None:
    with DialectServer() as server:
        async def go() -> None:
            async with gateway(one(claude(server.url)), ENV) as (url, _gw):
                client = openai.AsyncOpenAI(base_url=url + "/v1", api_key="none", max_retries=0)
                text = ""
                stream = await client.responses.create(model="vm", input="hi", stream=True)
                async for event in stream:
                    if event.type == "response.output_text.delta":
                        text += event.delta
                    elif event.type == "response.completed":
                        assert event.response.usage is not None
                        assert event.response.usage.output_tokens == USAGE.completion_tokens
                assert text == "Hello world"
                whole = await client.responses.create(model="vm", input="hi")
                assert whole.output_text == "Hello world"
                await client.close()
        run(go())
        assert [s.dialect for s in server.seen] == ["anthropic", "anthropic"]
