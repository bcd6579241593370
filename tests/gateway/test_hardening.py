"""What slow clients, broken targets and hostile input do to the gateway (in-process, real sockets)."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import aiohttp
import orjson
import pytest
from aiohttp import web

from tests.gateway.harness import (
    CHAT,
    DONE,
    ROLE,
    WHOLE,
    Upstream,
    chunk,
    gateway,
    ok,
    one_target,
    post,
    priority_pair,
    run,
    single,
    upstream,
)


def _error(body: bytes) -> dict[str, Any]:
    obj = orjson.loads(body)
    assert set(obj["error"]) == {"message", "type", "param", "code"}
    return dict(obj["error"])


def _failures(gw: Any, name: str) -> int:
    return int(gw.metrics.counters["cooldowns"].get((name,), 0)) + len(gw.state.health[name].failures_ns)


# ------------------------------------------------------------------ 1. slow readers


def test_a_client_that_stops_reading_is_cut_and_the_target_is_not_charged() -> None:
    big = chunk("x" * 65536)

    async def flood(up: Upstream, request: web.Request, body: dict[str, Any]) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        try:
            await resp.write(ROLE)
            for _ in range(400):  # 26 MB: far more than the socket buffers hold
                await resp.write(big)
            await resp.write(DONE)
        except (ConnectionResetError, asyncio.CancelledError):
            up.disconnected.set()
            raise
        return resp

    async def main() -> None:
        up = Upstream(flood)
        async with upstream(up) as up_url:
            cfg = one_target(up_url)
            cfg["targets"][0]["timeouts"] = {"idle_s": 0.3}
            cfg["targets"][0]["failure_tolerance"] = {"allowed_failures_per_minute": 0}
            cfg["limits"] = {"client_write_timeout_s": 0.6}
            async with gateway(cfg) as (url, gw), aiohttp.ClientSession() as s:
                async with s.post(url + "/v1/chat/completions", json={**CHAT, "stream": True}) as resp:
                    assert resp.status == 200
                    await asyncio.sleep(2.5)  # reads nothing: the gateway's writes block
                    with pytest.raises(aiohttp.ClientError):
                        while await resp.content.readany():
                            pass
                await asyncio.wait_for(up.disconnected.wait(), 3)
                assert gw.metrics.counters["slow_clients"][("t",)] == 1
                assert gw.metrics.counters["stream_breaks"].get(("t",), 0) == 0
                assert _failures(gw, "t") == 0  # a cooldown would start at the first failure
                assert gw.state.health["t"].last_failure_ns == -1

    run(main())


# ------------------------------------------------------------------ 2. connection timeouts and limit


async def _raw(url: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    host, port = url.removeprefix("http://").split(":")
    return await asyncio.open_connection(host, int(port))


def test_idle_and_slow_header_connections_are_closed() -> None:
    async def main() -> None:
        async with upstream(Upstream(ok)) as up_url:
            cfg = {**one_target(up_url), "limits": {"idle_timeout_s": 0.5}}
            async with gateway(cfg) as (url, _):
                idle_r, _idle_w = await _raw(url)
                slow_r, slow_w = await _raw(url)
                t0 = time.monotonic()
                for byte in b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n":
                    slow_w.write(bytes([byte]))
                    await slow_w.drain()
                    await asyncio.sleep(0.05)
                    if slow_r.at_eof() or time.monotonic() - t0 > 3:
                        break
                assert await asyncio.wait_for(idle_r.read(), 3) == b""
                assert await asyncio.wait_for(slow_r.read(), 3) == b""
                assert time.monotonic() - t0 < 3

    run(main())


def test_a_partial_body_times_out_with_408() -> None:
    async def main() -> None:
        async with upstream(Upstream(ok)) as up_url:
            cfg = {**one_target(up_url), "limits": {"body_timeout_s": 0.4}}
            async with gateway(cfg) as (url, _):
                reader, writer = await _raw(url)
                writer.write(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                             b"Content-Length: 1000\r\n\r\n{\"model\":")
                await writer.drain()
                answer = await asyncio.wait_for(reader.read(), 3)
                assert answer.startswith(b"HTTP/1.1 408")
                assert "not received within 0.4 s" in _error(answer.split(b"\r\n\r\n", 1)[1])["message"]

    run(main())


def test_connections_beyond_the_limit_get_a_clear_503() -> None:
    async def main() -> None:
        async with upstream(Upstream(ok)) as up_url:
            cfg = {**one_target(up_url), "limits": {"max_connections": 3}}
            async with gateway(cfg) as (url, _):
                held = [await _raw(url) for _ in range(3)]
                await asyncio.sleep(0.1)
                reader, _ = await _raw(url)
                answer = await asyncio.wait_for(reader.read(), 3)
                assert answer.startswith(b"HTTP/1.1 503")
                assert "too many open connections" in _error(answer.split(b"\r\n\r\n", 1)[1])["message"]
                for _, w in held:
                    w.close()
                await asyncio.sleep(0.1)
                async with aiohttp.ClientSession() as s:  # below the limit again: served
                    status, _, _ = await post(s, url, CHAT)
                    assert status == 200

    run(main())


# ------------------------------------------------------------------ 3. body limits


def test_a_chunked_upload_stops_being_read_at_the_limit() -> None:
    async def main() -> None:
        async with upstream(Upstream(ok)) as up_url:
            cfg = {**one_target(up_url), "limits": {"max_body_bytes": 100_000}}
            async with gateway(cfg) as (url, _):
                reader, writer = await _raw(url)
                writer.write(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
                piece = b"10000\r\n" + b" " * 0x10000 + b"\r\n"
                sent = 0
                answer = b""
                with pytest.raises((ConnectionError, TimeoutError)):
                    while sent < 200 * 1024 * 1024:
                        writer.write(piece)
                        sent += len(piece)
                        await asyncio.wait_for(writer.drain(), 2)
                        if reader._buffer:  # type: ignore[attr-defined]  # the answer arrived
                            answer = bytes(reader._buffer)  # type: ignore[attr-defined]
                            raise ConnectionError("answered")
                assert sent < 20 * 1024 * 1024
                answer = answer or await asyncio.wait_for(reader.read(), 3)
                assert answer.startswith(b"HTTP/1.1 413")

    run(main())


def test_an_oversized_upstream_answer_is_not_relayed() -> None:
    big = orjson.dumps({"choices": [{"message": {"content": "x" * 3_000_000}}]})

    async def huge(up: Upstream, request: web.Request, body: dict[str, Any]) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Type": "application/json"})  # no length: read to the end
        await resp.prepare(request)
        for i in range(0, len(big), 65536):
            await resp.write(big[i:i + 65536])
        return resp

    async def main() -> None:
        async with single(Upstream(huge), limits={"max_upstream_body_bytes": 1_000_000}) as (url, gw, s):
            status, _, body = await post(s, url, CHAT)
            assert status == 502
            assert "did not answer with an OpenAI completion" in _error(body)["message"]
            assert gw.metrics.counters["attempts"][("t", "invalid_answer")] == 1

    run(main())


# ------------------------------------------------------------------ 4. an event that never ends


def test_an_event_that_never_ends_fails_at_the_bound_not_at_total_s() -> None:
    async def endless(up: Upstream, request: web.Request, body: dict[str, Any]) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        await resp.write(ROLE + chunk("a") + b'data: {"choices":[{"delta":{"content":"')
        try:
            for _ in range(10_000):
                await resp.write(b"x" * 16384)
                await asyncio.sleep(0.001)
        except (ConnectionResetError, asyncio.CancelledError):
            pass
        return resp

    async def main() -> None:
        limits = {"max_event_bytes": 256 * 1024}
        async with single(Upstream(endless), {"total_s": 20.0}, limits=limits) as (url, gw, s):
            t0 = time.monotonic()
            status, _, body = await post(s, url, {**CHAT, "stream": True})
            assert time.monotonic() - t0 < 5
            assert status == 200
            last = body.rstrip(b"\n").split(b"\n\n")[-1]
            err = orjson.loads(last[len(b"data: "):])["error"]
            assert "larger than 262144 bytes" in err["message"]
            assert len(body) < 400 * 1024  # the partial event was never forwarded
            assert gw.metrics.counters["stream_breaks"][("t",)] == 1

    run(main())


# ------------------------------------------------------------------ 5 and 6. errors outside the handler


def test_parser_rejections_never_echo_or_log_headers(caplog: pytest.LogCaptureFixture) -> None:
    secret = b"sk-very-secret-key"

    async def main() -> None:
        async with upstream(Upstream(ok)) as up_url, gateway(one_target(up_url)) as (url, _):
            for raw in (b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + secret
                        + b"\x01\r\n\r\n",
                        b"GARBAGE " + secret + b" HTTP/1.1\r\n\r\n",
                        b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
                        b"Content-Length: 7\r\n\r\n" + secret):
                reader, writer = await _raw(url)
                writer.write(raw)
                await writer.drain()
                answer = await asyncio.wait_for(reader.read(), 3)
                head, _, body = answer.partition(b"\r\n\r\n")
                assert head.split(b"\r\n")[0].endswith(b" 400 Bad Request"), answer
                assert b"application/json" in head
                assert _error(body)["code"] == 400
                assert secret not in answer

    with caplog.at_level(logging.DEBUG):
        run(main())
    logged = "\n".join(r.getMessage() + str(r.exc_info or "") for r in caplog.records)
    assert secret.decode() not in logged
    assert sum("rejected a request" in r.getMessage() for r in caplog.records) == 1  # rate-limited


def test_unknown_paths_and_wrong_methods_are_openai_errors() -> None:
    async def main() -> None:
        async with upstream(Upstream(ok)) as up_url, gateway(one_target(up_url)) as (url, _), \
                aiohttp.ClientSession() as s:
            async with s.get(url + "/v1/secret-path-xyz") as r:
                assert r.status == 404 and r.content_type == "application/json"
                body = await r.read()
                assert _error(body)["type"] == "not_found_error" and b"secret-path-xyz" not in body
            async with s.get(url + "/v1/chat/completions") as r:
                assert r.status == 405 and r.content_type == "application/json"
                assert r.headers["Allow"] == "POST"
                _error(await r.read())

    run(main())


def test_a_non_json_upstream_error_is_wrapped_with_its_status() -> None:
    async def html_502(up: Upstream, request: web.Request, body: dict[str, Any]) -> web.StreamResponse:
        return web.Response(status=502, body=b"<html><h1>Bad Gateway</h1></html>", content_type="text/html")

    async def main() -> None:
        async with single(Upstream(html_502)) as (url, _, s):
            status, headers, body = await post(s, url, CHAT)
            assert status == 502 and headers["Content-Type"].startswith("application/json")
            assert "answered 502" in _error(body)["message"]

    run(main())


# ------------------------------------------------------------------ 7. a 200 that is not an answer


async def _html(up: Upstream, request: web.Request, body: dict[str, Any]) -> web.StreamResponse:
    return web.Response(body=b"<html>captive portal</html>", content_type="text/html")


async def _garbage(up: Upstream, request: web.Request, body: dict[str, Any]) -> web.StreamResponse:
    ctype = "text/event-stream" if body.get("stream") else "application/json"
    return web.Response(body=b"\x00garbage\xff", headers={"Content-Type": ctype})


async def _sse(up: Upstream, request: web.Request, body: dict[str, Any]) -> web.StreamResponse:
    return web.Response(body=ROLE + chunk("a") + DONE, headers={"Content-Type": "text/event-stream"})


async def _json_to_stream(up: Upstream, request: web.Request, body: dict[str, Any]) -> web.StreamResponse:
    return web.Response(body=WHOLE, content_type="application/json")


async def _stall_after_role(up: Upstream, request: web.Request, body: dict[str, Any]) -> web.StreamResponse:
    resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
    await resp.prepare(request)
    await resp.write(ROLE)
    await asyncio.sleep(10)  # cancelled when the gateway gives up on it
    return resp


async def _no_done_before_content(up: Upstream, request: web.Request, body: dict[str, Any]) -> web.StreamResponse:
    return web.Response(body=ROLE, headers={"Content-Type": "text/event-stream"})


CASES = [
    ("html-200", _html, False), ("html-200", _html, True), ("garbage-200", _garbage, False),
    ("garbage-200", _garbage, True), ("sse-to-whole", _sse, False), ("json-to-stream", _json_to_stream, True),
    ("stall-after-role", _stall_after_role, True), ("end-after-role", _no_done_before_content, True),
]


@pytest.mark.parametrize(("name", "behave", "stream"), CASES, ids=[f"{c[0]}-{'stream' if c[2] else 'whole'}"
                                                                   for c in CASES])
def test_a_200_that_is_not_an_answer_falls_back_and_counts_against_the_target(
        name: str, behave: Any, stream: bool) -> None:
    async def main() -> None:
        bad, good = Upstream(behave), Upstream(ok)
        async with upstream(bad) as bad_url, upstream(good) as good_url:
            cfg = priority_pair(("bad", bad_url), good_url)
            cfg["targets"][0]["timeouts"] = {"first_token_s": 0.5}
            async with gateway(cfg) as (url, gw), aiohttp.ClientSession() as s:
                status, headers, body = await post(s, url, {**CHAT, "stream": stream})
                assert status == 200 and headers["x-loadbench-target"] == "good", body
                if stream:
                    assert body.startswith(ROLE) and body.endswith(DONE)  # nothing of the bad target's bytes
                else:
                    assert orjson.loads(body)["choices"][0]["message"]["content"] == "ok"
                assert gw.state.health["bad"].last_failure_ns > 0
                outcomes = {k[1] for k in gw.metrics.counters["attempts"] if k[0] == "bad"}
                assert outcomes <= {"invalid_answer", "timeout"} and outcomes

    run(main())


def test_without_a_fallback_a_non_answer_is_a_well_formed_error() -> None:
    async def main() -> None:
        async with single(Upstream(_html)) as (url, _, s):
            status, _, body = await post(s, url, CHAT)
            assert status == 502 and "did not answer with an OpenAI completion" in _error(body)["message"]
            status, _, body = await post(s, url, {**CHAT, "stream": True})
            assert status == 502 and "text/html to a streamed request" in _error(body)["message"]

    run(main())


# ------------------------------------------------------------------ content-delta rule through the relay


def test_a_later_empty_content_chunk_is_not_a_token() -> None:
    empty = b'data: {"choices":[{"index":0,"delta":{"content":""}}]}\n\n'

    async def paced(up: Upstream, request: web.Request, body: dict[str, Any]) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        for part in (ROLE, chunk("a"), empty, chunk("b"), DONE):
            await resp.write(part)
            await asyncio.sleep(0.02)  # one read each
        return resp

    async def main() -> None:
        async with single(Upstream(paced)) as (url, gw, s):
            status, _, _ = await post(s, url, {**CHAT, "stream": True})
            assert status == 200
            assert sum(gw.metrics.target("t").itl.counts) == 1  # a -> b; the empty chunk is no token

    run(main())


# ------------------------------------------------------------------ 9 and 10. auth on the side endpoints, tenants


def test_with_auth_on_side_endpoints_need_a_key_and_health_says_only_alive() -> None:
    async def main() -> None:
        async with upstream(Upstream(ok)) as up_url:
            cfg = {**one_target(up_url), "auth": {"api_keys_env": "GW_KEYS"}}
            async with gateway(cfg) as (url, _), aiohttp.ClientSession() as s:
                for path in ("/v1/models", "/metrics"):
                    async with s.get(url + path) as r:
                        assert r.status == 401, path
                    async with s.get(url + path, headers={"Authorization": "Bearer k1"}) as r:
                        assert r.status == 200, path
                async with s.get(url + "/health") as r:
                    assert r.status == 200 and await r.json() == {"status": "ok"}
                async with s.get(url + "/health", headers={"Authorization": "Bearer k2"}) as r:
                    assert "t" in (await r.json())["targets"]

    run(main())
