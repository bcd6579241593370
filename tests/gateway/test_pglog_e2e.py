"""A real ``loadbench gateway`` with its request log in a real PostgreSQL, in front of the mock: the rows
match the traffic, ``loadbench ab`` on PostgreSQL says what it says on SQLite for the same traffic, and
PostgreSQL killed or frozen under load costs no client request: rows wait, the surplus is dropped and
counted, writing resumes when it is back, and what was committed before stays."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import signal
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import psutil
import psycopg
import pytest

from loadbench.procs import ServerProcess
from tests.conftest import run_loadbench
from tests.gateway.harness import CHAT, start_gateway, start_mock
from tests.postgres import PostgresServer, fresh_database, postgres

__all__ = ["postgres"]

PRICES = """currency: USD
source: test prices
as_of: 2026-11-01
models:
  inc: {input_per_mtok: 1.0, output_per_mtok: 2.0}
  cand: {input_per_mtok: 3.0, output_per_mtok: 6.0}
"""


class Load:
    """Streamed chat requests from ``users`` loops until stopped: every answer's status and request id."""

    def __init__(self, url: str, users: int, metadata: Callable[[int], dict[str, str]] | None = None) -> None:
        self.url = url
        self.users = users
        self.metadata = metadata
        self.ok: list[str] = []
        self.failed: list[str] = []
        self.stop = False
        self.slowest_s = 0.0

    async def run(self, seconds: float | None = None, requests: int | None = None) -> None:
        deadline = time.monotonic() + (seconds or 120.0)
        counter = iter(range(requests or 10**9))

        async def user(s: aiohttp.ClientSession) -> None:
            while not self.stop and time.monotonic() < deadline:
                i = next(counter, None)
                if i is None:
                    return
                headers = {"X-Loadbench-Metadata": orjson.dumps(self.metadata(i)).decode()} if self.metadata else {}
                t0 = time.monotonic()
                try:
                    async with s.post(self.url + "/v1/chat/completions", data=orjson.dumps({**CHAT, "stream": True}),
                                      headers=headers) as r:
                        body = await r.read()
                        if r.status == 200 and b"[DONE]" in body:
                            self.ok.append(r.headers["x-request-id"])
                        else:
                            self.failed.append(f"{r.status} {body[:200]!r}")
                except aiohttp.ClientError as exc:
                    self.failed.append(repr(exc))
                self.slowest_s = max(self.slowest_s, time.monotonic() - t0)

        async with aiohttp.ClientSession() as s:
            await asyncio.wait_for(asyncio.gather(*(user(s) for _ in range(self.users))), (seconds or 120.0) + 30)


def _metric(url: str, name: str) -> float:
    async def get() -> str:
        async with aiohttp.ClientSession() as s, s.get(url + "/metrics") as r:
            return await r.text()

    text = asyncio.run(get())
    values = [float(v) for v in re.findall(rf"^{name}{{[^}}]*}} (\S+)$", text, re.MULTILINE)]
    assert values, f"{name} not in /metrics"
    return sum(values)


def _wait(check: Callable[[], bool], timeout_s: float, what: str | Callable[[], str]) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, what if isinstance(what, str) else what()
        time.sleep(0.1)


def _signal(procs: list[psutil.Process], sig: int) -> None:
    """Signal each process still there (a backend of a connection just closed may have exited; psutil
    checks the process is the one listed, never a reused pid)."""
    for p in procs:
        with contextlib.suppress(psutil.NoSuchProcess):
            p.send_signal(sig)


def _pg_ids(dsn: str) -> list[str]:
    with psycopg.connect(dsn) as c:
        return [r[0] for r in c.execute("SELECT request_id FROM requests ORDER BY id")]


def _pg_gateway(servers: list[ServerProcess], postgres: PostgresServer, tmp_path: Path,
                **log: Any) -> tuple[ServerProcess, str]:
    """A gateway in front of the mock, logging to a fresh database of ``postgres``; and that database's DSN."""
    dsn = fresh_database(postgres)
    mock = start_mock(servers)
    cfg = {"targets": [{"name": "t", "url": mock.base_url, "model": "m"}],
           "virtual_models": [{"name": "vm", "targets": [{"target": "t"}]}],
           "request_log": {"backend": "postgres", "dsn_env": "LOADBENCH_LOG_DSN", "flush_ms": 100, "queue_rows": 300,
                           "path": str(tmp_path / "state.db"), **log}}
    gw, _ = start_gateway(servers, tmp_path, cfg, env={"LOADBENCH_LOG_DSN": dsn})
    return gw, dsn


@pytest.mark.slow
def test_mock_traffic_through_a_gateway_lands_in_postgres_and_ab_agrees_with_sqlite(
        servers: list[ServerProcess], postgres: PostgresServer, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    dsn = fresh_database(postgres)
    monkeypatch.setenv("LOADBENCH_LOG_DSN", dsn)  # loadbench ab reads the variable, as a user's shell has it
    mock = start_mock(servers)
    (tmp_path / "prices.yaml").write_text(PRICES)
    outs = {}
    for name, request_log in (("sqlite", {"path": str(tmp_path / "gw.db")}),
                              ("postgres", {"backend": "postgres", "dsn_env": "LOADBENCH_LOG_DSN",
                                            "path": str(tmp_path / "state.db")})):
        folder = tmp_path / name
        folder.mkdir()
        cfg = {"targets": [{"name": "inc", "url": mock.base_url, "model": "m"},
                           {"name": "cand", "url": mock.base_url, "model": "m"}],
               "virtual_models": [{"name": "vm", "targets": [{"target": "inc"}, {"target": "cand"}],
                                   "experiment": {"name": "exp1", "incumbent": "inc", "candidate": "cand",
                                                  "weight": 40, "assign_by": "metadata.user_id",
                                                  "success": {"min_requests": 40}}}],
               "request_log": {**request_log, "flush_ms": 100, "pricing": str(tmp_path / "prices.yaml")}}
        # two worker processes: two writers, each with its own connection, one log
        gw, _ = start_gateway(servers, folder, cfg, "--workers", "2", env={"LOADBENCH_LOG_DSN": dsn})
        load = Load(gw.url, 8, lambda i: {"user_id": f"u{i % 97}", "task": "qa" if i % 3 else "sum"})
        asyncio.run(load.run(requests=400))
        assert not load.failed and len(load.ok) == 400
        gw.stop()  # SIGTERM: each worker writes what it holds before it exits
        if name == "postgres":
            assert sorted(_pg_ids(dsn)) == sorted(load.ok)
            with psycopg.connect(dsn) as c:
                assert c.execute("SELECT count(DISTINCT worker) FROM requests").fetchone() == (2,)
        else:
            with sqlite3.connect(tmp_path / "gw.db") as c:
                assert c.execute("SELECT count(*) FROM requests").fetchone() == (400,)
        source = str(tmp_path / "gw.db") if name == "sqlite" else "LOADBENCH_LOG_DSN"
        result = run_loadbench("ab", source, "--experiment", "exp1", "--by", "task", "--out", str(folder / "ab"))
        assert (folder / "ab" / "ab.json").is_file(), result.stderr
        outs[name] = (result.returncode, json.loads((folder / "ab" / "ab.json").read_text()))
    with psycopg.connect(dsn) as c:
        rows = c.execute("SELECT target, status, outcome, output_tokens, tenant FROM requests").fetchall()
        assert c.execute("SELECT name, state FROM experiments").fetchall() == [("exp1", "running")]
    assert {r[1:] for r in rows} == {(200, "ok", 6, None)} and {r[0] for r in rows} == {"inc", "cand"}
    lite_conn = sqlite3.connect(tmp_path / "gw.db")
    lite = sorted(lite_conn.execute("SELECT metadata, arm, target, outcome, cost_usd FROM requests").fetchall())
    lite_conn.close()
    with psycopg.connect(dsn) as c:
        pg = sorted(c.execute("SELECT metadata, arm, target, outcome, cost_usd FROM requests").fetchall())
    assert pg == lite  # the same traffic: the same users in the same arms, at the same cost

    (lite_code, lite_ab), (pg_code, pg_ab) = outs["sqlite"], outs["postgres"]
    assert lite_code == pg_code == 1  # the candidate costs 3x: ROLLBACK on cost
    for key in ("overall", *(k for k in lite_ab if k != "overall")):
        a, b = lite_ab[key], pg_ab[key]
        if not isinstance(a, dict):
            continue
        assert (a["verdict"], a["reason"]) == (b["verdict"], b["reason"]), key
        # latencies were measured twice (two gateways); everything else is the same rows
        counts = [{k: v for k, v in arm.items() if k not in ("ttft", "e2e")} for arm in a["arms"]]
        assert counts == [{k: v for k, v in arm.items() if k not in ("ttft", "e2e")} for arm in b["arms"]]
    assert "cost" in pg_ab["overall"]["reason"]


@pytest.mark.slow
def test_postgres_killed_under_load_costs_no_request_and_writing_resumes(
        servers: list[ServerProcess], postgres: PostgresServer, tmp_path: Path) -> None:
    gw, dsn = _pg_gateway(servers, postgres, tmp_path, connect_timeout_s=1)
    before = Load(gw.url, 8)
    asyncio.run(before.run(seconds=2.0))
    _wait(lambda: len(_pg_ids(dsn)) == len(before.ok), 10, "the first phase committed")

    during = Load(gw.url, 8)

    async def kill_and_restart() -> None:
        task = asyncio.ensure_future(during.run(seconds=60))
        await asyncio.sleep(0.5)
        await asyncio.to_thread(postgres.stop, "immediate")  # as a crash: no shutdown checkpoint
        await asyncio.sleep(3.0)
        await asyncio.to_thread(postgres.start)
        await asyncio.sleep(3.0)
        during.stop = True
        await task

    asyncio.run(kill_and_restart())
    assert not during.failed, during.failed[:5]
    assert len(during.ok) > 300
    # the writer tries again within RETRY_MAX_S of the database's return and writes what waited
    _wait(lambda: _metric(gw.url, "loadbench_gateway_requestlog_waiting_rows") == 0, 10, "the waiting rows written")
    assert _metric(gw.url, "loadbench_gateway_requestlog_backend_up") == 1
    dropped = _metric(gw.url, "loadbench_gateway_requestlog_dropped_total")
    assert dropped > 0
    after = Load(gw.url, 4)
    asyncio.run(after.run(requests=50))
    assert not after.failed
    served = before.ok + during.ok + after.ok
    _wait(lambda: len(_pg_ids(dsn)) == len(served) - dropped, 20,
          lambda: f"{len(served)} served, {dropped} dropped, {len(_pg_ids(dsn))} rows")
    ids = set(_pg_ids(dsn))
    assert set(before.ok) <= ids  # committed before the kill: intact after the crash and recovery
    assert set(after.ok) <= ids  # writing resumed
    assert _metric(gw.url, "loadbench_gateway_requestlog_lost_total") == 0
    assert _metric(gw.url, "loadbench_gateway_requestlog_backend_up") == 1


@pytest.mark.slow
def test_postgres_frozen_under_load_delays_no_request(
        servers: list[ServerProcess], postgres: PostgresServer, tmp_path: Path) -> None:
    """SIGSTOP: the server accepts nothing and answers nothing, the slowest way a database fails."""
    gw, dsn = _pg_gateway(servers, postgres, tmp_path)
    warm = Load(gw.url, 4)
    asyncio.run(warm.run(requests=100))
    _wait(lambda: len(_pg_ids(dsn)) == 100, 10, "the first requests committed")
    baseline_s = warm.slowest_s
    assert postgres.proc is not None
    frozen = [psutil.Process(postgres.proc.pid), *psutil.Process(postgres.proc.pid).children(recursive=True)]
    during = Load(gw.url, 8)
    _signal(frozen, signal.SIGSTOP)
    try:
        asyncio.run(during.run(seconds=4.0))
    finally:
        _signal(frozen, signal.SIGCONT)
    assert not during.failed and len(during.ok) > 300
    # a request never waits for the log: nothing near the 4 s the database stood still (the bound leaves
    # room for a loaded machine; a request that waited on the writer would take the whole 4 s)
    assert during.slowest_s < max(2.0, 5 * baseline_s)
    dropped = _metric(gw.url, "loadbench_gateway_requestlog_dropped_total")
    assert dropped > 0
    _wait(lambda: len(_pg_ids(dsn)) == 100 + len(during.ok) - dropped, 20, "the waiting rows written after")
