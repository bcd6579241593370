"""The gateway app in-process against small scripted aiohttp upstreams (real sockets, port 0)."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import orjson
from aiohttp import web

from loadbench.gateway.app import create_app
from loadbench.gateway.config import compile_model, parse_model
from loadbench.gateway.state import Gateway
from tests.gateway.harness import (
    CHAT,
    DONE,
    ROLE,
    USAGE,
    WHOLE,
    Upstream,
    chunk,
    failing,
    gateway,
    ok,
    one_target,
    post,
    priority_pair,
    run,
    serve,
    single,
    two_targets,
    upstream,
)


def test_request_errors_are_openai_shaped() -> None:
    async def main() -> None:
        up = Upstream(ok)
        async with (
            upstream(up) as up_url,
            gateway({**one_target(up_url), "limits": {"max_body_bytes": 2000}}) as (url, _),
            aiohttp.ClientSession() as s,
        ):
            status, _, body = await post(s, url, None, raw=b"{not json")
            assert status == 400 and orjson.loads(body)["error"]["type"] == "invalid_request_error"
            status, _, body = await post(s, url, {**CHAT, "model": "nope"})
            assert status == 404 and orjson.loads(body)["error"]["code"] == "model_not_found"
            status, _, body = await post(s, url, {"messages": []})
            assert status == 400 and orjson.loads(body)["error"]["param"] == "model"
            status, _, body = await post(s, url, {**CHAT, "messages": [{"role": "user", "content": "x" * 5000}]})
            assert status == 413 and "error" in orjson.loads(body)
            status, _, _ = await post(s, url, CHAT, headers={"X-Loadbench-Metadata": "[1]"})
            assert status == 400
            assert up.bodies == []  # none of them went upstream

    run(main())


def test_auth_and_upstream_key() -> None:
    async def main() -> None:
        up = Upstream(ok)
        async with upstream(up) as up_url:
            cfg = one_target(up_url)
            cfg["targets"][0]["api_key_env"] = "UP_KEY"
            cfg["auth"] = {"api_keys_env": "GW_KEYS"}
            async with gateway(cfg) as (url, _), aiohttp.ClientSession() as s:
                assert (await post(s, url, CHAT))[0] == 401
                assert (await post(s, url, CHAT, headers={"Authorization": "Bearer wrong"}))[0] == 401
                status, headers, _ = await post(s, url, CHAT, headers={"Authorization": "Bearer k2"})
                assert status == 200 and headers["x-loadbench-target"] == "t"
                # the client's key never goes upstream; the target's key does
                assert up.headers[-1]["Authorization"] == "Bearer sk-up"
                assert up.bodies[-1]["model"] == "up-model"

    run(main())


def test_the_upstream_request_carries_no_user_agent_and_asks_for_bytes_as_sent() -> None:
    async def main() -> None:
        up = Upstream(ok)
        async with upstream(up) as up_url, gateway(one_target(up_url)) as (url, _), aiohttp.ClientSession() as s:
            for stream in (False, True):
                assert (await post(s, url, {**CHAT, "stream": stream}, headers={"User-Agent": "client/1"}))[0] == 200
                sent = {k.lower(): v for k, v in up.headers[-1].items()}
                assert "user-agent" not in sent  # neither aiohttp's nor the client's
                assert sent["accept-encoding"] == "identity" and sent["content-type"] == "application/json"
                assert "authorization" not in sent  # the target has no key

    run(main())


def test_override_params_and_metadata_routing() -> None:
    async def main() -> None:
        a, b = Upstream(ok), Upstream(ok)
        async with upstream(a) as a_url, upstream(b) as b_url:
            route_targets = [
                {"target": "a", "weight": 1, "metadata_match": {"task": "sum"}, "override_params": {"temperature": 0}},
                {"target": "b", "weight": 0},
            ]
            cfg = two_targets(("a", a_url), ("b", b_url), route_targets)
            async with gateway(cfg) as (url, _), aiohttp.ClientSession() as s:
                meta = {"X-Loadbench-Metadata": '{"task": "sum"}'}
                status, headers, _ = await post(s, url, {**CHAT, "temperature": 0.9}, headers=meta)
                assert status == 200 and headers["x-loadbench-target"] == "a"
                assert a.bodies[-1]["temperature"] == 0 and a.bodies[-1]["model"] == "m"
                status, headers, _ = await post(s, url, CHAT, headers={"X-Loadbench-Metadata": '{"task": "x"}'})
                assert status == 200 and headers["x-loadbench-target"] == "b"

    run(main())


def test_retry_then_fallback_and_pass_through_of_non_fallback_errors() -> None:
    async def main() -> None:
        bad, good = Upstream(failing(503)), Upstream(ok)
        async with upstream(bad) as bad_url, upstream(good) as good_url:
            cfg = two_targets(
                ("bad", bad_url),
                ("good", good_url),
                [{"target": "bad", "priority": 0}, {"target": "good", "priority": 1}],
                routing="priority",
                retry={"attempts": 2, "delay_ms": 1},
            )
            cfg["targets"][0]["failure_tolerance"] = {"allowed_failures_per_minute": 100}
            async with gateway(cfg) as (url, gw), aiohttp.ClientSession() as s:
                for stream in (False, True):
                    status, headers, body = await post(s, url, {**CHAT, "stream": stream})
                    assert status == 200, body
                    assert headers["x-loadbench-target"] == "good"
                    assert headers["x-loadbench-attempts"] == "4"  # 3 on bad, 1 on good
                assert len(bad.bodies) == 6
                assert gw.metrics.counters["fallbacks"][("vm",)] == 2
                assert gw.metrics.counters["retries"][("bad",)] == 4
        bad400 = Upstream(failing(400))
        good2 = Upstream(ok)
        async with upstream(bad400) as bad_url, upstream(good2) as good_url:
            cfg = priority_pair(("bad", bad_url), good_url)
            async with gateway(cfg) as (url, _), aiohttp.ClientSession() as s:
                status, headers, body = await post(s, url, CHAT)
                assert status == 400 and b"no (400)" in body  # the upstream's own error, not retried
                assert good2.bodies == []

    run(main())


def test_stream_relays_split_events_byte_for_byte() -> None:
    parts = [ROLE, chunk("a"), chunk("b"), chunk("c"), USAGE, DONE]
    stream = b"".join(parts)

    async def split(up: Upstream, request: web.Request, body: dict[str, Any]) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        for i in range(0, len(stream), 37):  # cuts fall inside events
            await resp.write(stream[i : i + 37])
            await asyncio.sleep(0.002)
        return resp

    async def main() -> None:
        up = Upstream(split)
        async with single(up) as (url, gw, s):
            status, headers, body = await post(s, url, {**CHAT, "stream": True})
            assert status == 200 and headers["Content-Type"].startswith("text/event-stream")
            assert body == stream
            timings = gw.metrics.target("t")
            assert sum(timings.ttft.counts) == 1 and sum(timings.tpot.counts) == 1
            assert sum(timings.itl.counts) >= 1

    run(main())


def test_mid_stream_break_ends_with_an_error_event() -> None:
    async def breaking(up: Upstream, request: web.Request, body: dict[str, Any]) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        await resp.write(ROLE + chunk("a"))
        await resp.write(chunk("b")[:20])  # half an event, then the connection dies
        await asyncio.sleep(0.05)
        assert request.transport is not None
        request.transport.close()
        return resp

    async def main() -> None:
        up = Upstream(breaking)
        async with single(up) as (url, gw, s):
            status, _, body = await post(s, url, {**CHAT, "stream": True})
            assert status == 200
            events = [e for e in body.split(b"\n\n") if e]
            assert events[:2] == [ROLE[:-2], chunk("a")[:-2]]
            last = orjson.loads(events[-1][len(b"data: ") :])
            assert last["error"]["code"] == 502 and "after the stream started" in last["error"]["message"]
            assert len(up.bodies) == 1  # never retried once bytes went to the client
            assert gw.metrics.counters["stream_breaks"][("t",)] == 1

    run(main())


def test_client_disconnect_cancels_the_upstream_request() -> None:
    async def slow(up: Upstream, request: web.Request, body: dict[str, Any]) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        try:
            for i in range(200):
                await resp.write(chunk(str(i)))
                await asyncio.sleep(0.02)
        except (ConnectionResetError, asyncio.CancelledError):
            up.disconnected.set()
            raise
        return resp

    async def main() -> None:
        up = Upstream(slow)
        async with upstream(up) as up_url, gateway(one_target(up_url)) as (url, _):
            async with (
                aiohttp.ClientSession() as s,
                s.post(url + "/v1/chat/completions", json={**CHAT, "stream": True}) as resp,
            ):
                await resp.content.readany()
            await asyncio.wait_for(up.disconnected.wait(), 3)

    run(main())


def test_models_health_and_metrics_endpoints() -> None:
    async def main() -> None:
        up = Upstream(ok)
        async with single(up) as (url, _, s):
            await post(s, url, {**CHAT, "stream": True})
            async with s.get(url + "/v1/models") as r:
                assert [m["id"] for m in (await r.json())["data"]] == ["vm"]
            async with s.get(url + "/health") as r:
                assert (await r.json())["targets"]["t"]["healthy"] is True
            async with s.get(url + "/metrics") as r:
                text = await r.text()
            assert 'loadbench_gateway_requests_total{model="vm",status="200"' in text
            assert 'loadbench_gateway_ttft_seconds_count{target="t"' in text
            assert "loadbench_gateway_tpot_seconds_bucket" in text

    run(main())


def test_timeouts_fall_back_before_the_first_byte_and_break_after_it() -> None:
    async def silent(up: Upstream, request: web.Request, body: dict[str, Any]) -> web.StreamResponse:
        await asyncio.sleep(2)  # longer than first_token_s
        return web.Response(body=WHOLE, content_type="application/json")

    async def stalls(up: Upstream, request: web.Request, body: dict[str, Any]) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        await resp.write(ROLE + chunk("a"))
        await asyncio.sleep(2)  # longer than idle_s, shorter than first_token_s
        return resp

    async def main() -> None:
        slow, good = Upstream(silent), Upstream(ok)
        async with upstream(slow) as slow_url, upstream(good) as good_url:
            cfg = priority_pair(("slow", slow_url), good_url)
            cfg["targets"][0]["timeouts"] = {"first_token_s": 0.3}
            async with gateway(cfg) as (url, gw), aiohttp.ClientSession() as s:
                status, headers, body = await post(s, url, {**CHAT, "stream": True})
                assert status == 200 and headers["x-loadbench-target"] == "good" and body.endswith(DONE)
                assert gw.metrics.counters["attempts"][("slow", "timeout")] == 1
        async with single(Upstream(stalls), timeouts={"first_token_s": 5, "idle_s": 0.3}) as (url, _, s):
            status, _, body = await post(s, url, {**CHAT, "stream": True})
            assert status == 200
            last = orjson.loads([e for e in body.split(b"\n\n") if e][-1][len(b"data: ") :])
            assert "timed out after the stream started" in last["error"]["message"]

    run(main())


def test_cache_hook_sees_lookup_then_store_after_a_complete_answer() -> None:
    from loadbench.gateway.context import RequestContext

    class DictCache:
        def __init__(self) -> None:
            self.saved: dict[str, bytes] = {}

        async def lookup(self, ctx: RequestContext) -> web.StreamResponse | None:
            key = orjson.dumps(ctx.body).decode()
            if key in self.saved:
                return web.Response(body=self.saved[key], headers={"x-loadbench-cache": "hit"})
            ctx.capture = True
            ctx.extra_headers["x-loadbench-cache"] = "miss"
            return None

        async def store(self, ctx: RequestContext, status: int, body: bytes) -> None:
            self.saved[orjson.dumps(ctx.body).decode()] = body

    async def main() -> None:
        up = Upstream(ok)
        cache = DictCache()
        async with upstream(up) as up_url:
            spec = compile_model(parse_model(one_target(up_url), "t.yaml"), "t.yaml", env={})
            async with serve(create_app(Gateway(spec), cache=cache)) as url, aiohttp.ClientSession() as s:
                body = {**CHAT, "stream": True}
                status, headers, first = await post(s, url, body)
                assert status == 200 and headers["x-loadbench-cache"] == "miss"
                assert list(cache.saved.values()) == [first]  # the whole stream, stored after [DONE]
                status, headers, second = await post(s, url, body)
                assert headers["x-loadbench-cache"] == "hit" and second == first
                assert len(up.bodies) == 1

    run(main())


def test_a_role_only_first_chunk_keeps_the_first_token_deadline() -> None:
    async def thinks(up: Upstream, request: web.Request, body: dict[str, Any]) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        await resp.write(ROLE)
        await asyncio.sleep(0.6)  # longer than idle_s, shorter than first_token_s
        for part in (chunk("a"), chunk("b"), DONE):
            await resp.write(part)
        return resp

    async def main() -> None:
        async with single(Upstream(thinks), timeouts={"first_token_s": 3, "idle_s": 0.2}) as (url, _, s):
            status, _, body = await post(s, url, {**CHAT, "stream": True})
            assert status == 200 and body.endswith(DONE) and b'"error"' not in body

    run(main())
