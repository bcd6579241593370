"""The mock's HTTP behaviour against a real aiohttp server on 127.0.0.1 (port chosen by the OS)."""

from __future__ import annotations

import asyncio
import base64
import itertools
import statistics
import struct
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

import aiohttp
import orjson
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from loadbench.mock.app import create_app
from loadbench.mock.server import loop_factory
from loadbench.mock.settings import MockSettings

T = TypeVar("T")
CHAT = "/v1/chat/completions"
COMPLETIONS = "/v1/completions"
MESSAGES = [{"role": "user", "content": "one two three"}]


def run(settings: MockSettings, scenario: Callable[[aiohttp.ClientSession], Awaitable[T]]) -> T:
    async def main() -> T:
        async with serving(settings) as session:
            return await scenario(session)

    with asyncio.Runner(loop_factory=loop_factory()) as runner:
        return runner.run(main())


@asynccontextmanager
async def serving(settings: MockSettings) -> AsyncIterator[aiohttp.ClientSession]:
    server = TestServer(create_app(settings), host="127.0.0.1", port=0)
    await server.start_server()
    try:
        async with aiohttp.ClientSession(str(server.make_url("")),
                                         connector=aiohttp.TCPConnector(limit=0)) as session:
            yield session
    finally:
        await server.close()


@dataclass
class Stream:
    sent_ns: int
    events: list[tuple[int, Any]]  # (arrival ns, parsed JSON or "[DONE]")

    @property
    def content(self) -> list[tuple[int, str]]:
        """(arrival ns, text) of every chunk that carries text: the tokens."""
        out = []
        for t, ev in self.events:
            if isinstance(ev, dict) and ev["choices"]:
                choice = ev["choices"][0]
                text = choice["delta"].get("content") if "delta" in choice else choice["text"]
                if text:
                    out.append((t, text))
        return out

    def ms_after_send(self, t_ns: int) -> float:
        return (t_ns - self.sent_ns) / 1e6


async def stream(session: aiohttp.ClientSession, path: str = CHAT, headers: dict[str, str] | None = None,
                 **body: Any) -> Stream:
    payload = {"model": "m", "stream": True, **body}
    if path == CHAT:
        payload.setdefault("messages", MESSAGES)
    else:
        payload.setdefault("prompt", "one two three")
    sent = time.perf_counter_ns()
    async with session.post(path, data=orjson.dumps(payload), headers=headers) as resp:
        assert resp.status == 200, await resp.text()
        assert resp.headers["Content-Type"].startswith("text/event-stream")
        events: list[tuple[int, Any]] = []
        buf = b""
        async for piece in resp.content.iter_any():
            now = time.perf_counter_ns()
            buf += piece
            while b"\n\n" in buf:
                event, buf = buf.split(b"\n\n", 1)
                assert event.startswith(b"data: "), event
                data = event[len(b"data: "):]
                events.append((now, "[DONE]" if data == b"[DONE]" else orjson.loads(data)))
        assert buf == b""
    return Stream(sent, events)


async def warm(session: aiohttp.ClientSession, connections: int) -> None:
    """Open the pool's connections (and the resolver's thread) so timed requests start warm."""
    await asyncio.gather(*(stream(session, max_tokens=1, headers={"X-Mock-TTFT-Ms": "20"})
                           for _ in range(connections)))


async def post(session: aiohttp.ClientSession, path: str, body: object,
               headers: dict[str, str] | None = None) -> tuple[int, Any, float]:
    """(status, parsed body, ms from send to full response)."""
    sent = time.perf_counter_ns()
    async with session.post(path, data=orjson.dumps(body), headers=headers) as resp:
        data = await resp.read()
        return resp.status, orjson.loads(data), (time.perf_counter_ns() - sent) / 1e6


async def get(session: aiohttp.ClientSession, path: str) -> Any:
    async with session.get(path) as resp:
        assert resp.status == 200
        return await resp.json()


# --- shape ----------------------------------------------------------------------------------


def test_chat_stream_has_role_first_then_tokens_finish_usage_done() -> None:
    s = run(MockSettings(ttft_ms=5, itl_ms=1),
            lambda c: stream(c, max_tokens=6, stream_options={"include_usage": True}))
    events = [ev for _, ev in s.events]
    assert events[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert [ev["choices"][0]["delta"] for ev in events[1:7]] == [{"content": f" tok{i}"} for i in range(6)]
    assert events[7]["choices"] == [{"index": 0, "delta": {}, "finish_reason": "length"}]
    assert events[8]["choices"] == []
    assert events[8]["usage"] == {"prompt_tokens": 3, "completion_tokens": 6, "total_tokens": 9}
    assert events[9] == "[DONE]" and len(events) == 10
    assert len({ev["id"] for ev in events[:9]}) == 1
    assert all(ev["object"] == "chat.completion.chunk" and ev["model"] == "m" for ev in events[:9])
    # the role chunk is not a token: it arrives right away, long before ttft
    assert s.ms_after_send(s.events[0][0]) < s.ms_after_send(s.content[0][0])


def test_completions_stream_uses_text_and_sends_usage_only_when_asked() -> None:
    s = run(MockSettings(ttft_ms=1, itl_ms=1), lambda c: stream(c, COMPLETIONS, max_tokens=4))
    events = [ev for _, ev in s.events]
    assert events[0]["choices"][0]["text"] == ""  # an empty first chunk, not a token
    assert "".join(text for _, text in s.content) == " tok0 tok1 tok2 tok3"
    assert events[-2]["choices"][0]["finish_reason"] == "length"
    assert events[-1] == "[DONE]"
    assert not any(isinstance(ev, dict) and "usage" in ev for ev in events)
    assert all(ev["object"] == "text_completion" for ev in events[:-1])


@pytest.mark.parametrize("key", ["max_tokens", "max_completion_tokens"])
def test_max_tokens_is_honoured_exactly(key: str) -> None:
    async def scenario(c: aiohttp.ClientSession) -> tuple[Stream, Any]:
        s = await stream(c, **{key: 37}, stream_options={"include_usage": True})
        _, body, _ = await post(c, CHAT, {"messages": MESSAGES, key: 37})
        return s, body

    s, body = run(MockSettings(ttft_ms=0, itl_ms=0, output_tokens=5), scenario)
    text = "".join(t for _, t in s.content)
    assert len(text.split()) == 37 == s.events[-2][1]["usage"]["completion_tokens"]
    assert body["usage"]["completion_tokens"] == 37
    assert len(body["choices"][0]["message"]["content"].split()) == 37


def test_output_tokens_default_and_tokens_per_chunk() -> None:
    s = run(MockSettings(ttft_ms=0, itl_ms=1, output_tokens=7, tokens_per_chunk=3), lambda c: stream(c))
    assert [len(text.split()) for _, text in s.content] == [3, 3, 1]
    assert "".join(text for _, text in s.content) == "".join(f" tok{i}" for i in range(7))


def test_prompt_tokens_count_words_across_messages_and_parts() -> None:
    messages = [{"role": "system", "content": "be  brief"},
                {"role": "user", "content": [{"type": "text", "text": "a b c"},
                                             {"type": "text", "text": "d"}]}]

    async def scenario(c: aiohttp.ClientSession) -> tuple[Any, Any]:
        _, chat, _ = await post(c, CHAT, {"messages": messages, "max_tokens": 2})
        _, comp, _ = await post(c, COMPLETIONS, {"prompt": ["x y", "z"], "max_tokens": 2})
        return chat, comp

    chat, comp = run(MockSettings(ttft_ms=0, itl_ms=0), scenario)
    assert chat["usage"] == {"prompt_tokens": 6, "completion_tokens": 2, "total_tokens": 8}
    assert chat["object"] == "chat.completion"
    assert chat["choices"][0]["message"]["role"] == "assistant"
    assert chat["choices"][0]["finish_reason"] == "length"
    assert comp["usage"]["prompt_tokens"] == 3 and comp["choices"][0]["text"] == " tok0 tok1"


def test_no_usage_never_sends_usage() -> None:
    async def scenario(c: aiohttp.ClientSession) -> tuple[Stream, Any]:
        s = await stream(c, max_tokens=3, stream_options={"include_usage": True})
        _, body, _ = await post(c, CHAT, {"messages": MESSAGES, "max_tokens": 3})
        return s, body

    s, body = run(MockSettings(ttft_ms=0, itl_ms=0, no_usage=True), scenario)
    assert not any(isinstance(ev, dict) and "usage" in ev for _, ev in s.events)
    assert len(s.content) == 3
    assert "usage" not in body


# --- errors ---------------------------------------------------------------------------------


def test_error_rate_one_fails_every_inference_request_with_the_status() -> None:
    async def scenario(c: aiohttp.ClientSession) -> tuple[list[tuple[int, Any]], Any]:
        out = []
        for path, body in [(CHAT, {"messages": MESSAGES, "stream": True}), (CHAT, {"messages": MESSAGES}),
                           (COMPLETIONS, {"prompt": "a"}), ("/v1/embeddings", {"input": "a"})]:
            status, data, _ = await post(c, path, body)
            out.append((status, data))
        return out, await get(c, "/mock/stats")

    results, stats = run(MockSettings(error_rate=1.0, error_status=429), scenario)
    for status, data in results:
        assert status == 429
        assert data["error"]["type"] == "rate_limit_error" and data["error"]["code"] == 429
        assert data["error"]["message"]
    assert stats["by_status"] == {"429": 4} and stats["requests"] == 4


def test_seeded_error_rate_repeats_the_same_sequence() -> None:
    async def scenario(c: aiohttp.ClientSession) -> list[int]:
        return [(await post(c, CHAT, {"messages": MESSAGES, "max_tokens": 1}))[0] for _ in range(30)]

    settings = MockSettings(ttft_ms=0, itl_ms=0, error_rate=0.5, seed=7)
    first, second = run(settings, scenario), run(settings, scenario)
    assert first == second
    assert set(first) == {200, 503}
    other = run(MockSettings(ttft_ms=0, itl_ms=0, error_rate=0.5, seed=8), scenario)
    assert other != first


def test_bad_requests_get_openai_errors() -> None:
    async def scenario(c: aiohttp.ClientSession) -> list[tuple[int, Any]]:
        out = []
        async with c.post(CHAT, data=b"{not json") as r:
            out.append((r.status, await r.json()))
        out.append((await post(c, CHAT, {"messages": MESSAGES, "max_tokens": 0}))[:2])
        out.append((await post(c, CHAT, {"messages": MESSAGES}, {"X-Mock-TTFT-Ms": "soon"}))[:2])
        async with c.get("/v1/nothing") as r:
            out.append((r.status, await r.json()))
        async with c.get(CHAT) as r:
            out.append((r.status, await r.json()))
        return out

    results = run(MockSettings(), scenario)
    assert [status for status, _ in results] == [400, 400, 400, 404, 405]
    for _, body in results:
        assert set(body["error"]) == {"message", "type", "param", "code"}
    assert results[3][1]["error"]["type"] == "not_found_error"


# --- other endpoints ------------------------------------------------------------------------


def test_models_health_and_stats() -> None:
    async def scenario(c: aiohttp.ClientSession) -> tuple[Any, Any, Any, Any]:
        models = await get(c, "/v1/models")
        health = await get(c, "/health")
        await asyncio.gather(*(stream(c, max_tokens=3) for _ in range(3)))
        stats = await get(c, "/mock/stats")
        async with c.delete("/mock/stats") as r:
            reset = await r.json()
        return models, health, stats, reset

    models, health, stats, reset = run(MockSettings(model="tiny", ttft_ms=20, itl_ms=5), scenario)
    assert [m["id"] for m in models["data"]] == ["tiny"]
    assert health == {"status": "ok"}
    assert stats["requests"] == 3 and stats["by_status"] == {"200": 3}
    assert stats["max_in_flight"] == 3 and stats["in_flight"] == 0 and stats["chunks"] == 9
    assert reset["requests"] == 0 and reset["chunks"] == 0


def test_embeddings_are_deterministic_per_text() -> None:
    async def scenario(c: aiohttp.ClientSession) -> tuple[Any, Any]:
        texts = ["hello world", "other", "hello world"]
        _, a, _ = await post(c, "/v1/embeddings", {"model": "e", "input": texts})
        _, b, _ = await post(c, "/v1/embeddings", {"input": "hello world", "encoding_format": "base64"})
        return a, b

    a, b = run(MockSettings(embedding_dim=16), scenario)
    a2, _ = run(MockSettings(embedding_dim=16, seed=99), scenario)
    vectors = [d["embedding"] for d in a["data"]]
    assert [d["index"] for d in a["data"]] == [0, 1, 2]
    assert len(vectors[0]) == 16
    assert vectors[0] == vectors[2] != vectors[1]
    assert a2["data"] == a["data"]  # depends on the text only, not on the process or seed
    assert a["usage"] == {"prompt_tokens": 5, "total_tokens": 5} and a["model"] == "e"
    decoded = struct.unpack("<16f", base64.b64decode(b["data"][0]["embedding"]))
    assert decoded == pytest.approx(vectors[0], rel=1e-6)


def test_mock_config_changes_live_settings_for_new_requests() -> None:
    async def scenario(c: aiohttp.ClientSession) -> tuple[Any, int, Any, Stream, int, Any]:
        before = await get(c, "/mock/config")
        status_bad, _, _ = await post(c, "/mock/config", {"ttft_ms": -5})
        changed = await post(c, "/mock/config", {"ttft_ms": 150, "itl_ms": 2})
        s = await stream(c, max_tokens=3)
        await post(c, "/mock/config", {"error_rate": 1.0, "error_status": 500})
        status_err, _, _ = await post(c, CHAT, {"messages": MESSAGES})
        return before, status_bad, changed, s, status_err, await get(c, "/mock/config")

    before, status_bad, changed, s, status_err, after = run(MockSettings(ttft_ms=10), scenario)
    assert before["ttft_ms"] == 10.0 and status_bad == 400
    assert changed[0] == 200 and changed[1]["ttft_ms"] == 150.0
    assert s.ms_after_send(s.content[0][0]) >= 149.0
    assert status_err == 500
    live = (after["ttft_ms"], after["itl_ms"], after["error_rate"], after["error_status"])
    assert live == (150.0, 2.0, 1.0, 500)


# --- timing ---------------------------------------------------------------------------------


def test_override_headers_set_ttft_and_itl_per_request() -> None:
    async def scenario(c: aiohttp.ClientSession) -> Stream:
        return await stream(c, headers={"X-Mock-TTFT-Ms": "120", "X-Mock-ITL-Ms": "30"}, max_tokens=3)

    s = run(MockSettings(ttft_ms=1, itl_ms=1), scenario)
    times = [s.ms_after_send(t) for t, _ in s.content]
    assert times[0] >= 119.0
    assert times[2] >= 119.0 + 2 * 30  # lateness can only add, so a floor is busy-machine safe


def test_non_stream_response_arrives_when_the_last_token_would() -> None:
    async def scenario(c: aiohttp.ClientSession) -> list[float]:
        await warm(c, 1)
        return [(await post(c, CHAT, {"messages": MESSAGES, "max_tokens": 6}))[2] for _ in range(3)]

    elapsed = run(MockSettings(ttft_ms=40, itl_ms=10), scenario)  # due at 40 + 5 * 10 = 90 ms
    assert 89.0 <= statistics.median(elapsed) <= 100.0


def test_stream_timing_is_exact_and_does_not_drift() -> None:
    ttft, itl, n = 50.0, 10.0, 20

    async def staggered(c: aiohttp.ClientSession, i: int) -> Stream:
        await asyncio.sleep(0.003 * i)  # so one hiccup of a busy machine hits different chunks
        return await stream(c, max_tokens=n)

    async def scenario(c: aiohttp.ClientSession) -> list[Stream]:
        await warm(c, 5)
        return list(await asyncio.gather(*(staggered(c, i) for i in range(5))))

    streams = run(MockSettings(ttft_ms=ttft, itl_ms=itl), scenario)
    firsts, gaps, lasts = [], [], []
    for s in streams:
        times = [s.ms_after_send(t) for t, _ in s.content]
        assert len(times) == n
        firsts.append(times[0])
        gaps += [b - a for a, b in itertools.pairwise(times)]
        lasts.append(times[-1])
    # Medians: robust to a few wake-ups delayed by a busy machine, yet off if the schedule is.
    assert ttft - 1.5 <= statistics.median(firsts) <= ttft + 6
    assert itl - 2 <= statistics.median(gaps) <= itl + 2
    # Absolute deadlines: the last chunk is due at ttft + (n-1)*itl, with no accumulated error.
    due_last = ttft + (n - 1) * itl
    assert due_last - 1.5 <= statistics.median(lasts) <= due_last + 6


def test_small_itl_does_not_accumulate_sleep_overshoot() -> None:
    # 100 chunks 1 ms apart: sleeping 1 ms per chunk would overshoot by tens of ms in total.
    s = run(MockSettings(ttft_ms=10, itl_ms=1), lambda c: stream(c, max_tokens=100))
    times = [s.ms_after_send(t) for t, _ in s.content]
    assert len(times) == 100
    assert times[-1] - times[0] <= 99 + 6


def test_max_concurrency_queues_fifo_and_the_wait_delays_ttft() -> None:
    ttft, itl, n = 50.0, 10.0, 10  # one request: last token at 50 + 9 * 10 = 140 ms

    async def scenario(c: aiohttp.ClientSession) -> tuple[Stream, Stream, Any]:
        first = asyncio.create_task(stream(c, max_tokens=n))
        await asyncio.sleep(0.01)
        second = asyncio.create_task(stream(c, max_tokens=n))
        await asyncio.sleep(0.02)
        during = await get(c, "/mock/stats")
        return await first, await second, during

    a, b, during = run(MockSettings(ttft_ms=ttft, itl_ms=itl, max_concurrency=1), scenario)
    assert during["queued"] == 1 and during["in_flight"] == 2
    a_last = a.content[-1][0]
    b_first = b.content[0][0]
    # b starts its clock when a releases its slot (right after a's last token)
    assert ttft - 2 <= (b_first - a_last) / 1e6 <= ttft + 15
    # ... but its role chunk came at once, while it waited
    assert b.ms_after_send(b.events[0][0]) < 30
    assert a.ms_after_send(b_first) >= ttft + (n - 1) * itl + ttft - 2  # a's e2e, then b's ttft


@pytest.mark.parametrize("handler_cancellation", [False, True])  # the mock's default, TestServer's
def test_a_client_leaving_mid_stream_is_counted_and_frees_its_slot(handler_cancellation: bool) -> None:
    async def scenario(c: aiohttp.ClientSession) -> tuple[Any, Stream, Any]:
        async with c.post(CHAT, data=orjson.dumps({"messages": MESSAGES, "stream": True,
                                                   "max_tokens": 500})) as resp:
            got = b""
            while got.count(b" tok") < 3:
                got += await resp.content.readany()
            resp.connection.transport.abort()  # type: ignore[union-attr]  # hang up mid-stream
        for _ in range(200):  # the pacer notices at the stream's next deadline
            stats = await get(c, "/mock/stats")
            if stats["in_flight"] == 0:
                break
            await asyncio.sleep(0.01)
        # with --max-concurrency 1 this only gets served if the slot was given back
        follow = await asyncio.wait_for(stream(c, max_tokens=2), 5)
        return stats, follow, await get(c, "/mock/stats")

    async def main() -> tuple[Any, Stream, Any]:
        app = create_app(MockSettings(ttft_ms=0, itl_ms=5, max_concurrency=1))
        runner = web.AppRunner(app, handler_cancellation=handler_cancellation)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = runner.addresses[0][1]
        try:
            async with aiohttp.ClientSession(f"http://127.0.0.1:{port}") as session:
                return await scenario(session)
        finally:
            await runner.cleanup()

    with asyncio.Runner(loop_factory=loop_factory()) as aio:
        stats, follow, after = aio.run(main())
    assert stats["disconnects"] == 1 and stats["in_flight"] == 0, str(stats)
    assert 3 <= stats["chunks"] < 500
    assert [t for _, t in follow.content] == [" tok0", " tok1"]
    assert after["disconnects"] == 1 and after["queued"] == 0


def test_http_1_0_streams_without_chunked_framing() -> None:
    async def scenario(c: aiohttp.ClientSession) -> bytes:
        url = c._base_url
        assert url is not None and url.port is not None
        reader, writer = await asyncio.open_connection("127.0.0.1", url.port)
        body = orjson.dumps({"messages": MESSAGES, "stream": True, "max_tokens": 3})
        writer.write(b"POST /v1/chat/completions HTTP/1.0\r\nHost: x\r\nContent-Type: application/json\r\n"
                     b"Content-Length: %d\r\n\r\n%b" % (len(body), body))
        data = await asyncio.wait_for(reader.read(-1), 5)  # HTTP/1.0: the body ends at close
        writer.close()
        return data

    raw = run(MockSettings(ttft_ms=0, itl_ms=1), scenario)
    head, _, body = raw.partition(b"\r\n\r\n")
    assert b"chunked" not in head.lower()
    events = body.split(b"\n\n")
    assert events[-1] == b"" and events[-2] == b"data: [DONE]"
    texts = [orjson.loads(e[6:])["choices"][0]["delta"].get("content") for e in events[:-2]]
    assert texts == ["", " tok0", " tok1", " tok2", None]
