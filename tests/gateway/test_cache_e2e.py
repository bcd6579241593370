"""End to end: `loadbench run` with scenarios/cache-mix.yaml through a caching gateway in front of a
mock (real subprocesses), and the openai-kind embedder pointed at the mock's /v1/embeddings."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import yaml

from loadbench.procs import ServerProcess, start_server

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
MOCK_TTFT_MS = 150.0
USERS = 8


def start(servers: list[ServerProcess], tmp_path: Path, cache: dict[str, Any]) -> tuple[ServerProcess, ServerProcess]:
    mock = start_server(["mock", "--port", "0", "--ttft-ms", str(MOCK_TTFT_MS), "--itl-ms", "2"])
    servers.append(mock)
    cfg = {"targets": [{"name": "m0", "url": mock.base_url, "model": "mock-model"}],
           "virtual_models": [{"name": "chat", "targets": [{"target": "m0"}]}],
           "cache": cache}
    path = tmp_path / "gateway.yaml"
    path.write_text(yaml.safe_dump(cfg))
    gw = start_server(["gateway", "--config", str(path), "--port", "0"])
    servers.append(gw)
    return mock, gw


def get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as resp:
        return resp.read().decode()


def post_json(url: str, body: dict[str, Any]) -> int:
    req = urllib.request.Request(url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as resp:
        resp.read()
        return int(resp.status)


def metrics(gw: ServerProcess) -> dict[str, float]:
    text = get(gw.url + "/metrics")
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            out[name.split(',worker="')[0].rstrip("}") + "}"] = float(value)
    return out


def test_cache_mix_scenario_gives_the_expected_hit_rates_and_splits_latency(
        servers: list[ServerProcess], tmp_path: Path) -> None:
    _, gw = start(servers, tmp_path, {"mode": "semantic"})
    out = tmp_path / "runs"
    proc = subprocess.run(
        [sys.executable, "-m", "loadbench", "run", "--target", gw.base_url, "--model", "chat",
         "--scenario", str(REPO / "scenarios" / "cache-mix.yaml"), "--users", str(USERS), "--ramp-up", "0",
         "--duration", "8", "--no-calibrate", "--workers", "1", "--out", str(out)],
        capture_output=True, text=True, timeout=90, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    (run_dir,) = out.iterdir()
    samples = [json.loads(line) for line in (run_dir / "samples.jsonl").read_text().splitlines()]
    summary = json.loads((run_dir / "summary.json").read_text())
    assert all(s["outcome"] == "ok" for s in samples)
    by_type = Counter((s["type"], s["cache"]) for s in samples)
    outcome = Counter(s["cache"] for s in samples)
    n = len(samples)
    assert n >= 200, by_type

    # unique prompts never hit; repeats and paraphrases hit once their question has been seen
    assert by_type[("unique", "miss")] == sum(v for (t, _), v in by_type.items() if t == "unique")
    cacheable = sum(v for (t, _), v in by_type.items() if t != "unique")
    cacheable_misses = by_type[("repeated", "miss")] + by_type[("paraphrased", "miss")]
    assert cacheable_misses <= 0.15 * cacheable, by_type
    hits = outcome["hit-exact"] + outcome["hit-semantic"]
    assert 0.38 <= hits / n <= 0.58, by_type  # 50% cacheable, minus each question's first requests
    assert outcome["hit-exact"] >= 0.15 * n and outcome["hit-semantic"] >= 0.10 * n, by_type

    # the summary splits latency by cache outcome, with the same counts as the samples
    cache = summary["breakdowns"]["cache"]
    assert {k: v["requests"] for k, v in cache.items()} == dict(outcome)
    miss_ttft = cache["miss"]["metrics"]["ttft_ms"]
    assert miss_ttft["p50"] >= MOCK_TTFT_MS
    for kind in ("hit-exact", "hit-semantic"):
        assert cache[kind]["metrics"]["ttft_ms"]["p99"] < MOCK_TTFT_MS / 3, cache[kind]
    # hits never hide inside a model target's latency: they carry target "cache"
    targets = summary["breakdowns"]["target"]
    assert targets["cache"]["requests"] == hits and targets["m0"]["requests"] == outcome["miss"]

    m = metrics(gw)
    assert m['loadbench_gateway_cache_lookups_total{model="chat",outcome="hit-exact"}'] >= outcome["hit-exact"]
    assert m['loadbench_gateway_cache_lookups_total{model="chat",outcome="hit-semantic"}'] >= outcome["hit-semantic"]
    assert m['loadbench_gateway_cache_model_tokens_saved_total{model="chat"}'] > 0
    assert m['loadbench_gateway_cache_entries{cache="chat"}'] >= outcome["miss"] * 0.9


def test_openai_embedder_on_the_mock_and_a_dead_one_degrades_to_exact(
        servers: list[ServerProcess], tmp_path: Path) -> None:
    probe = start_server(["mock", "--port", "0"])
    servers.append(probe)
    for base_url, works in ((probe.base_url, True), ("http://127.0.0.1:9/v1", False)):
        sub = tmp_path / ("ok" if works else "dead")
        sub.mkdir()
        _, gw = start(servers, sub, {"mode": "semantic", "embedder": {
            "kind": "openai", "base_url": base_url, "model": "text-embedding-3-small", "timeout_s": 0.5}})
        before = json.loads(get(probe.url + "/mock/stats"))["requests"]
        texts = ("What is the capital of France?", "what's the capital of France", "What is the capital of France?")
        for i, text in enumerate(texts):
            body = {"model": "chat", "temperature": 0, "max_tokens": 8,
                    "messages": [{"role": "user", "content": text}]}
            assert post_json(gw.base_url + "/chat/completions", body) == 200
            if i < 2:  # the store runs after the answer (its embedding is a remote call): wait for it
                stored = 'loadbench_gateway_cache_captures_total{model="chat",result="stored"}'
                deadline = time.monotonic() + 5
                while metrics(gw).get(stored, 0) < i + 1 and time.monotonic() < deadline:
                    time.sleep(0.02)
        m = metrics(gw)
        assert m['loadbench_gateway_cache_lookups_total{model="chat",outcome="hit-exact"}'] == 1
        embeds = json.loads(get(probe.url + "/mock/stats"))["requests"] - before
        if works:
            # store, store (and the second lookup, which found a group with the same signature)
            assert embeds >= 2 and m['loadbench_gateway_cache_embed_errors_total{cache="chat"}'] == 0
            assert m['loadbench_gateway_cache_vector_bytes{cache="chat"}'] > 0
        else:
            assert embeds == 0 and m['loadbench_gateway_cache_embed_errors_total{cache="chat"}'] >= 2
