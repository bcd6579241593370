"""A dialect added from outside the package (tests/protocol/toy_dialect.py plus its registration) carries
real requests: the eval runner, pointed at an endpoint that speaks ``toy``, sends the toy request to a
real aiohttp server on 127.0.0.1 and reads its toy answers, streamed (split mid-line), whole and failed."""

from __future__ import annotations

import asyncio

import aiohttp
from aiohttp import web

from loadbench import outcomes
from loadbench.eval.runner import Endpoint, Reply, chat
from loadbench.protocol.dialect import LLMRequest, Message
from loadbench.protocol.registry import dialect, names
from tests.protocol.toy_dialect import TOY
from tests.protocol.toy_server import SECRET, toy_app


async def _calls() -> tuple[list[Reply], list[dict[str, object]]]:
    seen: list[dict[str, object]] = []
    runner = web.AppRunner(toy_app(seen))
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    base = f"http://127.0.0.1:{port}/v9"
    ep = Endpoint("toy-target", base, "toy-model", api_key=SECRET, protocol="toy")
    ask = (Message("system", "be brief"), Message("user", "what is six times seven?"))
    try:
        async with aiohttp.ClientSession() as session:
            replies = [
                await chat(session, ep, LLMRequest("toy-model", ask, max_tokens=5, stream=True), 5.0),
                await chat(session, ep, LLMRequest("toy-model", ask, stream=False), 5.0),
                await chat(session, ep, LLMRequest("toy-model", (Message("user", "fail please"),), stream=True), 5.0),
                await chat(session, Endpoint("toy-target", base, "cut-model", SECRET, protocol="toy"),
                           LLMRequest("cut-model", ask, stream=True), 5.0),
                await chat(session, Endpoint("toy-target", base, "toy-model", "wrong", protocol="toy"),
                           LLMRequest("toy-model", ask, stream=True), 5.0),
            ]
    finally:
        await runner.cleanup()
    return replies, seen


def test_a_dialect_registered_from_outside_carries_real_eval_calls() -> None:
    assert "toy" in names() and dialect("toy") is TOY
    replies, seen = asyncio.run(_calls())
    streamed, whole, failed, cut, refused = replies

    # the request went out in the toy protocol: its path, its query-string key, its headers and body
    assert seen[0] == {"model": "toy-model", "token": SECRET, "content_type": "application/x-toy+json",
                       "accept": "text/x-toy-lines", "version": "1",
                       "body": {"ask": "what is six times seven?", "model": "toy-model", "limit": 5, "stream": True}}
    assert seen[1]["accept"] != "text/x-toy-lines"  # a whole answer asks for no stream

    # the answer was decoded by the toy decoder: lines split across reads joined, thinking not in the text
    assert streamed.ok and streamed.outcome == outcomes.OK
    assert streamed.text == "forty two"
    assert (streamed.usage.prompt_tokens, streamed.usage.completion_tokens) == (3, 2)
    assert not streamed.usage_estimated and streamed.finish_reason == "stop"
    assert streamed.ttft_ms is not None and streamed.e2e_ms is not None and streamed.ttft_ms <= streamed.e2e_ms

    assert whole.ok and whole.text == "forty two" and whole.usage.completion_tokens == 2

    # errors are mapped by the toy dialect, in the one outcome vocabulary
    assert not failed.ok and failed.outcome == outcomes.HTTP_ERROR and failed.status == 503
    assert failed.error == "HTTP 503: toy engine is down" and failed.retryable
    assert not cut.ok and cut.outcome == outcomes.STREAM_CUT and cut.text == "only a start"
    assert cut.error == "stream cut (ended without its E line)" and cut.retryable
    assert not refused.ok and refused.outcome == outcomes.HTTP_ERROR and refused.error == "HTTP 401: who are you?"
    assert not refused.retryable
