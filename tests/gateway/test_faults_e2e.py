"""Every fault of ``loadbench mock --fault`` through a real ``loadbench gateway``: what the client saw
and what the gateway recorded against the faulty target (its /metrics), with and without a fallback."""

from __future__ import annotations

import asyncio
import re
import subprocess
from collections import Counter
from collections.abc import Iterator
from typing import Any

import aiohttp
import orjson
import pytest

from loadbench.procs import ServerProcess
from tests.gateway.harness import start_gateway, start_mock

pytestmark = pytest.mark.slow

BODY = {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 6}
_COUNTER = re.compile(r'^loadbench_gateway_(\w+)_total\{([^}]*)\} (\d+)$', re.M)

# fault -> (outcome recorded for the faulty target, streamed?) ; "break" = failed after the first token
EXPECTED: dict[tuple[str, bool], str] = {
    ("refuse", False): "connection_error", ("refuse", True): "connection_error",
    ("hang", False): "timeout", ("hang", True): "timeout",
    ("headers-then-stall", False): "timeout", ("headers-then-stall", True): "timeout",
    ("stall-after-role", True): "timeout",
    ("html-200", False): "invalid_answer", ("html-200", True): "invalid_answer",
    ("garbage-200", False): "invalid_answer", ("garbage-200", True): "invalid_answer",
    ("sse-200", False): "invalid_answer",
    ("no-done", False): "invalid_answer", ("no-done", True): "break",
    ("endless-event", False): "invalid_answer", ("endless-event", True): "invalid_answer",
    ("cut-mid-stream", False): "connection_error", ("cut-mid-stream", True): "break",
    ("429-retry-after", False): "429", ("429-retry-after", True): "429",
    ("html-502", False): "502", ("html-502", True): "502",
}


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServerProcess, ServerProcess]]:
    """(the faulty mock m0, the gateway): vm falls back from m0 to a healthy m1, solo has only m0."""
    servers: list[ServerProcess] = []
    try:
        bad = start_mock(servers, "--fault-hold-s", "6", "--fault-retry-after-s", "3")
        good = start_mock(servers)
        target = {"timeouts": {"first_token_s": 1.0, "idle_s": 1.0, "total_s": 2.5},
                  "failure_tolerance": {"allowed_failures_per_minute": 10_000}}
        cfg = {
            "targets": [{"name": "m0", "url": bad.base_url, "model": "mock-model", **target},
                        {"name": "m1", "url": good.base_url, "model": "mock-model"}],
            "virtual_models": [
                {"name": "vm", "routing": "priority", "targets": [{"target": "m0"}, {"target": "m1", "priority": 1}]},
                {"name": "solo", "targets": [{"target": "m0"}]},
            ],
            "limits": {"max_event_bytes": 262144, "max_upstream_body_bytes": 1_000_000},
        }
        gw, _ = start_gateway(servers, tmp_path_factory.mktemp("gw"), cfg)
        yield bad, gw
    finally:
        for server in reversed(servers):
            server.stop()


async def _counters(s: aiohttp.ClientSession, gw: ServerProcess) -> Counter[tuple[str, str]]:
    async with s.get(gw.url + "/metrics") as r:
        text = await r.text()
    out: Counter[tuple[str, str]] = Counter()
    for name, labels, value in _COUNTER.findall(text):
        if 'target="m0"' in labels:
            outcome = re.search(r'outcome="([^"]*)"', labels)
            out[(name, outcome.group(1) if outcome else "")] += int(value)
    return out


async def _ask(s: aiohttp.ClientSession, gw: ServerProcess, model: str, stream: bool
               ) -> tuple[int, dict[str, str], bytes]:
    async with s.post(gw.url + "/v1/chat/completions", json={**BODY, "model": model, "stream": stream}) as r:
        return r.status, dict(r.headers), await r.read()


def _run(bad: ServerProcess, gw: ServerProcess, fault: str, stream: bool) -> dict[str, Any]:
    async def main() -> dict[str, Any]:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=20)) as s:
            async with s.post(bad.url + "/mock/config", json={"fault": fault}) as r:
                assert r.status == 200
            before = await _counters(s, gw)
            fell_back = await _ask(s, gw, "vm", stream)
            alone = await _ask(s, gw, "solo", stream)
            after = await _counters(s, gw)
            async with s.post(bad.url + "/mock/config", json={"fault": ""}) as r:
                assert r.status == 200
            return {"vm": fell_back, "solo": alone, "recorded": after - before}

    return asyncio.run(main())


def _sse_error(body: bytes) -> dict[str, Any] | None:
    events = [e for e in body.split(b"\n\n") if e.startswith(b"data: {")]
    last = orjson.loads(events[-1][6:]) if events else {}
    return last.get("error") if isinstance(last, dict) else None


@pytest.mark.parametrize(("fault", "stream"), list(EXPECTED), ids=[f"{f}-{'stream' if s else 'whole'}"
                                                                 for f, s in EXPECTED])
def test_fault_through_the_gateway(stack: tuple[ServerProcess, ServerProcess], fault: str, stream: bool) -> None:
    bad, gw = stack
    got = _run(bad, gw, fault, stream)
    outcome = EXPECTED[(fault, stream)]
    recorded = got["recorded"]
    status, headers, body = got["vm"]
    solo_status, solo_headers, solo_body = got["solo"]
    if outcome == "break":
        # content reached the client: no fallback any more; the stream ends with an SSE error event
        for st, hd, bd in (got["vm"], got["solo"]):
            assert st == 200 and hd["x-loadbench-target"] == "m0"
            error = _sse_error(bd)
            assert error is not None and error["code"] == 502 and "after the stream started" in error["message"]
        assert recorded[("stream_breaks", "")] == 2
        return
    # before the first token: the client never sees the fault, the fallback answers
    assert status == 200 and headers["x-loadbench-target"] == "m1", body[:300]
    if stream:
        assert body.endswith(b"data: [DONE]\n\n") and _sse_error(body) is None
    else:
        assert orjson.loads(body)["choices"][0]["message"]["content"]
    assert recorded[("attempts", outcome)] == 2  # one for vm, one for solo
    # without a fallback: a well-formed OpenAI error, never the faulty bytes
    assert solo_status >= 400 and solo_headers["Content-Type"].startswith("application/json")
    error = orjson.loads(solo_body)["error"]
    assert set(error) == {"message", "type", "param", "code"}
    if fault == "429-retry-after":
        assert solo_status == 429 and solo_headers["Retry-After"] == "3"
    elif fault == "html-502":
        assert solo_status == 502 and b"<html" not in solo_body


def test_sse_to_a_stream_is_just_a_stream(stack: tuple[ServerProcess, ServerProcess]) -> None:
    bad, gw = stack
    got = _run(bad, gw, "sse-200", True)
    status, headers, body = got["vm"]
    assert status == 200 and headers["x-loadbench-target"] == "m0" and body.endswith(b"data: [DONE]\n\n")
    assert got["recorded"][("attempts", "200")] == 2


def test_the_listen_backlog_is_2048(stack: tuple[ServerProcess, ServerProcess]) -> None:
    _, gw = stack
    port = gw.url.rsplit(":", 1)[1]
    out = subprocess.run(["ss", "-ltnH", f"sport = :{port}"], capture_output=True, text=True, timeout=10).stdout
    # a listening socket's Send-Q is its backlog
    backlogs = {int(line.split()[2]) for line in out.splitlines() if line.strip()}
    assert backlogs == {2048}, out


def test_the_faulty_target_never_made_the_gateway_unhealthy_for_its_fallback(
        stack: tuple[ServerProcess, ServerProcess]) -> None:
    _, gw = stack

    async def main() -> tuple[int, Any]:
        async with aiohttp.ClientSession() as s, s.get(gw.url + "/health") as r:
            return r.status, await r.json()

    status, health = asyncio.run(main())
    assert status == 200 and health["targets"]["m1"]["healthy"] is True
