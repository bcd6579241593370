"""Automatic rollback in a real ``loadbench gateway --workers 2`` over real mocks: a candidate with 20%
errors (or a TTFT above the ceiling) at weight 10 is rolled back within one window, in every worker."""

from __future__ import annotations

import asyncio
import re
import sqlite3
import time
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest

from loadbench.procs import ServerProcess
from tests.gateway.harness import CHAT, start_gateway, start_mock

ADMIN = {"Authorization": "Bearer adm-secret"}
WINDOW_S = 30.0


def _config(inc: ServerProcess, cand: ServerProcess, db: Path, rollback: dict[str, Any]) -> dict[str, Any]:
    return {
        "targets": [{"name": "inc", "url": inc.base_url, "model": "m"},
                    {"name": "cand", "url": cand.base_url, "model": "m",
                     "failure_tolerance": {"allowed_failures_per_minute": 10_000}}],
        "virtual_models": [{"name": "vm", "targets": [{"target": "inc"}, {"target": "cand"}],
                            "experiment": {"name": "canary", "incumbent": "inc", "candidate": "cand", "weight": 10,
                                           "rollback": {"window_s": WINDOW_S, "min_requests": 20, "failed_checks": 2,
                                                        "interval_s": 0.5, **rollback}}}],
        "request_log": {"path": str(db), "flush_ms": 100},
        "admin": {"api_keys_env": "ADMIN_KEYS"},
    }


async def _until_rolled_back(url: str, limit_s: float) -> dict[str, Any]:
    stop = asyncio.Event()

    async def user(s: aiohttp.ClientSession) -> None:
        while not stop.is_set():
            async with s.post(url + "/v1/chat/completions", data=orjson.dumps({**CHAT, "stream": True})) as r:
                await r.read()

    async with aiohttp.ClientSession() as s:
        users = [asyncio.ensure_future(user(s)) for _ in range(8)]
        deadline = time.monotonic() + limit_s
        try:
            while time.monotonic() < deadline:
                await asyncio.sleep(0.2)
                async with s.get(url + "/admin/experiments", headers=ADMIN) as r:
                    listing = await r.json()
                if listing["experiments"][0]["state"] == "rolled_back":
                    return listing  # type: ignore[no-any-return]
            raise AssertionError(f"no rollback within {limit_s} s: {listing}")
        finally:
            stop.set()
            await asyncio.gather(*users, return_exceptions=True)


async def _weights_by_worker(url: str) -> dict[str, str]:
    """The experiment's weight and state in each worker's /metrics (new connections reach both)."""
    seen: dict[str, str] = {}
    pattern = re.compile(r'loadbench_gateway_experiment_(weight|state)\{experiment="canary",(?:state="(\w+)",'
                         r'reason="[^"]*",)?worker="(\d+)"\}\s+(\S+)')
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as s:
        for _ in range(200):
            async with s.get(url + "/metrics") as r:
                text = await r.text()
            parts = {m.group(1): (m.group(2) or m.group(4)) for m in pattern.finditer(text)}
            worker = pattern.search(text).group(3)  # type: ignore[union-attr]
            seen[worker] = f"{parts['weight']} {parts['state']}"
            if len(seen) == 2:
                break
    return seen


async def _targets(url: str, n: int) -> set[str]:
    got = set()
    async with aiohttp.ClientSession() as s:
        for _ in range(n):
            async with s.post(url + "/v1/chat/completions", data=orjson.dumps(CHAT)) as r:
                await r.read()
                got.add(r.headers["x-loadbench-target"])
    return got


def _check_rollback(gw: ServerProcess, db: Path, words: str) -> None:
    listing = asyncio.run(_until_rolled_back(gw.url, 60.0))
    trip = next(e for e in listing["events"] if e["action"] == "trip")
    assert words in trip["reason"]
    conn = sqlite3.connect(db)
    first_ms = conn.execute("SELECT MIN(ts_ms) FROM requests WHERE arm = 'candidate'").fetchone()[0]
    conn.close()
    assert trip["ts_ms"] - first_ms <= WINDOW_S * 1000  # within one window of the candidate's first request
    time.sleep(1.0)  # every worker reads the shared table within a second
    workers = asyncio.run(_weights_by_worker(gw.url))
    assert len(workers) == 2 and set(workers.values()) == {"0 rolled_back"}, (workers, "\n".join(gw.output[-40:]))
    assert asyncio.run(_targets(gw.url, 40)) == {"inc"}


@pytest.mark.slow
def test_a_candidate_with_20_percent_errors_is_rolled_back_in_every_worker(
        servers: list[ServerProcess], tmp_path: Path) -> None:
    inc = start_mock(servers)
    cand = start_mock(servers, "--error-rate", "0.2", "--seed", "3")
    db = tmp_path / "gw.db"
    gw, _ = start_gateway(servers, tmp_path, _config(inc, cand, db, {"max_error_rate": 0.05}), "--workers", "2",
                          env={"ADMIN_KEYS": "adm-secret"})
    _check_rollback(gw, db, "error rate")


@pytest.mark.slow
def test_a_candidate_above_the_ttft_ceiling_is_rolled_back_in_every_worker(
        servers: list[ServerProcess], tmp_path: Path) -> None:
    inc = start_mock(servers)
    cand = start_mock(servers, "--ttft-ms", "120")
    db = tmp_path / "gw.db"
    gw, _ = start_gateway(servers, tmp_path, _config(inc, cand, db, {"max_p95_ttft_ms": 60}), "--workers", "2",
                          env={"ADMIN_KEYS": "adm-secret"})
    _check_rollback(gw, db, "P95 TTFT")
