"""The gateway in front of two real engines of different sizes: weighted routing, latency routing
toward the faster one, failover when one is killed, and the request log's usage and TTFT."""

from __future__ import annotations

import os
import signal
import sqlite3
import time
import urllib.request
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from bench.engine import MODEL_NAME, EngineConfig
from bench.engine_model import ModelSpec
from loadbench.procs import ServerProcess
from tests.gateway.harness import start_gateway

pytestmark = [pytest.mark.real, pytest.mark.slow]
MAX_TOKENS = 12
FAST = ModelSpec(dims=128, layers=2, heads=2, kv_heads=1, ffn_dims=256)
SLOW = ModelSpec(dims=768, layers=12, heads=12, kv_heads=4, ffn_dims=2048)


@pytest.fixture
def gateway_servers() -> Iterator[list[ServerProcess]]:
    started: list[ServerProcess] = []
    yield started
    for s in started:
        s.stop()


def _chat(gateway: ServerProcess, model: str, i: int) -> tuple[int, str, bytes]:
    """One streamed chat request through the gateway: (status, answering target, body)."""
    body = orjson.dumps({"model": model, "stream": True, "stream_options": {"include_usage": True},
                         "max_tokens": MAX_TOKENS, "messages": [{"role": "user", "content": f"request {i}: hello"}]})
    req = urllib.request.Request(gateway.url + "/v1/chat/completions", data=body, method="POST",
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=60) as resp:
            return resp.status, resp.headers.get("x-loadbench-target", ""), resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers.get("x-loadbench-target", ""), exc.read()


def _usage(data: bytes) -> dict:
    for line in data.splitlines():
        if line.startswith(b"data: {") and b'"usage"' in line:
            usage = orjson.loads(line[6:]).get("usage")
            if usage:
                return dict(usage)
    return {}


def test_gateway_routes_fails_over_and_logs_two_real_engines(engine_factory, gateway_servers, tmp_path: Path) -> None:
    fast = engine_factory(EngineConfig(slots=2, model=FAST))
    slow = engine_factory(EngineConfig(slots=2, model=SLOW))
    db = tmp_path / "gw.db"
    targets = [{"name": name, "url": e.base_url, "model": MODEL_NAME} for name, e in (("fast", fast), ("slow", slow))]
    cfg = {"targets": targets,
           "virtual_models": [
               {"name": "vm-weight", "routing": "weight",
                "targets": [{"target": "fast", "weight": 50}, {"target": "slow", "weight": 50}]},
               {"name": "vm-latency", "routing": "latency", "targets": [{"target": "fast"}, {"target": "slow"}]}],
           "latency_routing": {"min_samples": 3, "explore_fraction": 0.05},
           "request_log": {"path": str(db), "flush_ms": 20}}
    gateway, _ = start_gateway(gateway_servers, tmp_path, cfg)

    # weighted routing: both engines answer, each with the exact usage it counted
    weighted = [_chat(gateway, "vm-weight", i) for i in range(16)]
    assert all(status == 200 for status, _, _ in weighted), weighted[:2]
    by_target = Counter(target for _, target, _ in weighted)
    assert set(by_target) == {"fast", "slow"}, by_target
    assert {_usage(data).get("completion_tokens") for _, _, data in weighted} == {MAX_TOKENS}

    # latency routing: once each target has its samples, the faster engine takes the traffic
    latency = [_chat(gateway, "vm-latency", i) for i in range(30)]
    assert all(status == 200 for status, _, _ in latency)
    settled = Counter(target for _, target, _ in latency[10:])
    assert settled["fast"] >= 16, Counter(target for _, target, _ in latency)

    # failover: the slow engine killed; every request still answered, by the engine left
    os.kill(slow.proc.pid, signal.SIGKILL)
    slow.proc.wait(timeout=10)
    after = [_chat(gateway, "vm-weight", i) for i in range(10)]
    assert [(status, target) for status, target, _ in after] == [(200, "fast")] * 10, after

    # the request log: every request, with the engine's usage and a TTFT measured by the gateway
    deadline = time.monotonic() + 10
    rows: list[tuple] = []
    while time.monotonic() < deadline and len(rows) < 56:
        with sqlite3.connect(db) as conn:
            rows = conn.execute("SELECT model, target, status, outcome, ttft_ms, e2e_ms, prompt_tokens, "
                                "output_tokens, attempts FROM requests ORDER BY id").fetchall()
        time.sleep(0.1)
    assert len(rows) == 56
    print("attempts before the kill", Counter(r[8] for r in rows[:46]), "after", [r[8] for r in rows[46:]])
    assert all(r[2] == 200 and r[3] == "ok" and r[7] == MAX_TOKENS and r[6] > 0 for r in rows), rows[:3]
    assert all(0 < r[4] <= r[5] for r in rows)
    ttft = {t: sorted(r[4] for r in rows if r[1] == t) for t in ("fast", "slow")}
    # the larger model is slower to its first token (its prefill costs more)
    assert ttft["slow"][len(ttft["slow"]) // 2] > ttft["fast"][len(ttft["fast"]) // 2], ttft
    # the failover requests took more than one attempt when the weighted pick was the dead engine
    assert any(r[8] > 1 for r in rows[-10:]), rows[-10:]
