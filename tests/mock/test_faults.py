"""The mock's fault injection (``--fault``), seen by a plain HTTP client against the real process."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import aiohttp
import orjson
import pytest

from loadbench.mock.faults import FAULTS
from loadbench.procs import ServerProcess, start_server

BODY = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 8}


@pytest.fixture(scope="module")
def mock() -> Iterator[ServerProcess]:
    server = start_server(["mock", "--port", "0", "--ttft-ms", "1", "--itl-ms", "1", "--fault-hold-s", "1.5",
                           "--fault-retry-after-s", "7"])
    yield server
    server.stop()


async def _ask(url: str, fault: str, stream: bool) -> tuple[int | str, str, bytes, float]:
    """(status or exception name, content type, body read, seconds) of one request under ``fault``."""
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session:
        async with session.post(url + "/mock/config", json={"fault": fault, "fault_rate": 1.0}) as r:
            assert r.status == 200, await r.text()
        t0 = time.monotonic()
        try:
            async with session.post(url + "/v1/chat/completions", json={**BODY, "stream": stream}) as r:
                ctype = r.headers.get("Content-Type", "")
                parts: list[bytes] = []
                try:
                    while part := await r.content.readany():
                        parts.append(part)
                except aiohttp.ClientPayloadError:
                    return f"cut:{r.status}", ctype, b"".join(parts), time.monotonic() - t0
                return r.status, ctype, b"".join(parts), time.monotonic() - t0
        except aiohttp.ClientError as exc:
            return type(exc).__name__, "", b"", time.monotonic() - t0
        finally:
            async with session.post(url + "/mock/config", json={"fault": ""}) as r:
                assert r.status == 200


def ask(mock: ServerProcess, fault: str, stream: bool = True) -> tuple[int | str, str, bytes, float]:
    return asyncio.run(_ask(mock.url, fault, stream))


def test_every_fault_is_listed_in_the_cli_choices() -> None:
    assert len(FAULTS) == len(set(FAULTS)) == 12


def test_refuse_resets_without_an_answer(mock: ServerProcess) -> None:
    status, _, _, _ = ask(mock, "refuse")
    assert status in ("ServerDisconnectedError", "ClientOSError")


def test_hang_answers_nothing_until_the_hold_ends(mock: ServerProcess) -> None:
    status, _, _, took_s = ask(mock, "hang")
    assert status in ("ServerDisconnectedError", "ClientOSError")
    assert took_s >= 1.4


@pytest.mark.parametrize("fault", ["headers-then-stall", "stall-after-role"])
def test_stalls_send_200_headers_then_cut_after_the_hold(mock: ServerProcess, fault: str) -> None:
    status, ctype, got, took_s = ask(mock, fault)
    assert status == "cut:200"
    assert ctype.startswith("text/event-stream")
    assert took_s >= 1.4
    assert (b'"role":"assistant"' in got) == (fault == "stall-after-role")


def test_html_200(mock: ServerProcess) -> None:
    status, ctype, got, _ = ask(mock, "html-200", stream=False)
    assert (status, ctype.split(";")[0]) == (200, "text/html")
    assert got.startswith(b"<html>")


def test_garbage_200_is_neither_json_nor_sse(mock: ServerProcess) -> None:
    status, _, got, _ = ask(mock, "garbage-200", stream=False)
    assert status == 200
    with pytest.raises(orjson.JSONDecodeError):
        orjson.loads(got)
    assert b"data:" not in got


def test_sse_200_streams_to_a_request_that_did_not_ask(mock: ServerProcess) -> None:
    status, ctype, got, _ = ask(mock, "sse-200", stream=False)
    assert status == 200 and ctype.startswith("text/event-stream")
    assert got.endswith(b"data: [DONE]\n\n")


def test_no_done_ends_cleanly_without_the_sentinel(mock: ServerProcess) -> None:
    status, _, got, _ = ask(mock, "no-done")
    assert status == 200
    assert got.count(b'"content":" tok') == 8
    assert b"[DONE]" not in got


def test_endless_event_never_ends_its_event(mock: ServerProcess) -> None:
    status, _, got, took_s = ask(mock, "endless-event")
    assert status == "cut:200"
    assert took_s >= 1.4
    assert got.count(b"\n\n") == 1  # only the role chunk ever ends
    assert len(got) > 100_000


def test_cut_mid_stream_sends_half_then_resets(mock: ServerProcess) -> None:
    status, _, got, _ = ask(mock, "cut-mid-stream")
    assert status == "cut:200"
    assert got.count(b'"content":" tok') == 4
    assert b"[DONE]" not in got


def test_429_carries_retry_after(mock: ServerProcess) -> None:
    async def go() -> tuple[int, str | None, object]:
        async with aiohttp.ClientSession() as session:
            await (await session.post(mock.url + "/mock/config", json={"fault": "429-retry-after"})).read()
            try:
                async with session.post(mock.url + "/v1/chat/completions", json=BODY) as r:
                    return r.status, r.headers.get("Retry-After"), orjson.loads(await r.read())
            finally:
                await (await session.post(mock.url + "/mock/config", json={"fault": ""})).read()

    status, retry_after, body = asyncio.run(go())
    assert (status, retry_after) == (429, "7")
    assert isinstance(body, dict) and body["error"]["code"] == 429


def test_html_502(mock: ServerProcess) -> None:
    status, ctype, _, _ = ask(mock, "html-502", stream=False)
    assert status == 502 and ctype.startswith("text/html")


def test_fault_rate_is_a_seeded_fraction(mock: ServerProcess) -> None:
    async def go() -> list[int]:
        async with aiohttp.ClientSession() as session:
            await (await session.post(mock.url + "/mock/config",
                                      json={"fault": "html-502", "fault_rate": 0.5})).read()
            statuses = []
            for _ in range(40):
                async with session.post(mock.url + "/v1/chat/completions", json=BODY) as r:
                    await r.read()
                    statuses.append(r.status)
            await (await session.post(mock.url + "/mock/config", json={"fault": "", "fault_rate": 1.0})).read()
            return statuses

    statuses = asyncio.run(go())
    assert set(statuses) == {200, 502}
    assert 8 <= statuses.count(502) <= 32


def test_unknown_fault_is_refused_live(mock: ServerProcess) -> None:
    async def go() -> tuple[int, bytes]:
        async with aiohttp.ClientSession() as session, \
                session.post(mock.url + "/mock/config", json={"fault": "explode"}) as r:
            return r.status, await r.read()

    status, body = asyncio.run(go())
    assert status == 400 and b"unknown fault" in body


def test_max_tokens_above_the_limit_is_a_clear_400(mock: ServerProcess) -> None:
    async def go() -> tuple[int, dict]:
        async with aiohttp.ClientSession() as session, session.post(
                mock.url + "/v1/chat/completions", json={**BODY, "max_tokens": 10**8, "stream": True}) as r:
            return r.status, orjson.loads(await r.read())

    status, body = asyncio.run(go())
    assert status == 400
    assert "above this mock's limit of 32768" in body["error"]["message"]
    assert "--max-output-tokens" in body["error"]["message"]
