"""The gateway's request log in a real PostgreSQL as a trace: traffic recorded by one gateway logging to
PostgreSQL, replayed at speed 2 from the database (named by the variable holding its URL, as the gateway
names it) through a second gateway, whose log then shows the same requests on half the time scale; the
URL's password appears nowhere in the run's records."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import psycopg
import pytest

from loadbench.procs import ServerProcess
from tests.conftest import read_json, run_loadbench
from tests.gateway.harness import start_gateway, start_mock
from tests.postgres import PostgresServer, fresh_database, postgres
from tests.replay.test_gateway_log_replay_e2e import (
    N,
    gateway_config,
    original_traffic,
    replay_through_a_second_gateway,
)

__all__ = ["postgres"]

SECRET = "pw-never-written"  # the server trusts 127.0.0.1, so any password connects: this one must stay unseen


def pg_logged(dsn: str, expect: int) -> list[tuple[int, str, str, int, int]]:
    """The primary rows of the PostgreSQL log (as ``logged`` reads SQLite), once ``expect`` are written."""
    deadline = time.monotonic() + 20
    while True:
        with psycopg.connect(dsn) as c:
            rows = [tuple(r) for r in c.execute(
                "SELECT ts_ms, model, metadata, prompt_tokens, output_tokens FROM requests"
                " WHERE role = 'primary' ORDER BY ts_ms, id")]
        if len(rows) >= expect or time.monotonic() > deadline:
            return rows  # type: ignore[return-value]
        time.sleep(0.2)


@pytest.mark.slow
@pytest.mark.alone
def test_a_postgres_gateway_log_replayed_at_speed_2_is_the_original_on_half_the_time(
        servers: list[ServerProcess], postgres: PostgresServer, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    dsn = fresh_database(postgres).replace("postgresql://loadbench@", f"postgresql://loadbench:{SECRET}@")
    mock = start_mock(servers)
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    cfg = gateway_config(tmp_path / "unused.db", mock.base_url)
    cfg["request_log"] = {"backend": "postgres", "dsn_env": "LOADBENCH_LOG_DSN", "flush_ms": 100,
                          "path": str(tmp_path / "a" / "state.db")}
    first, _ = start_gateway(servers, tmp_path / "a", cfg, env={"LOADBENCH_LOG_DSN": dsn})
    asyncio.run(original_traffic(first.url))
    original = pg_logged(dsn, N)
    assert len(original) == N
    monkeypatch.setenv("LOADBENCH_LOG_DSN", dsn)  # the replay reads the variable, as a user's shell has it
    run, r = replay_through_a_second_gateway(servers, mock.base_url, tmp_path, "LOADBENCH_LOG_DSN", original)
    s = read_json(run / "summary.json")
    assert (s["replay"]["format"], s["replay"]["trace"], s["replay"]["sent"], s["replay"]["dropped"]) == (
        "gateway", "LOADBENCH_LOG_DSN", N, 0)
    assert (run / "plots" / "replay.png").is_file()
    for f in [p for p in run.rglob("*") if p.is_file()]:
        assert SECRET.encode() not in f.read_bytes(), f
    assert SECRET not in r.stdout + r.stderr


def test_a_postgres_log_that_is_not_a_request_log_is_refused_before_any_request(
        postgres: PostgresServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    dsn = fresh_database(postgres).replace("postgresql://loadbench@", f"postgresql://loadbench:{SECRET}@")
    monkeypatch.setenv("EMPTY_LOG_DSN", dsn)
    r = run_loadbench("replay", "EMPTY_LOG_DSN", "--out", str(tmp_path / "results"), "--no-calibrate",
                      timeout_s=60)
    assert r.returncode == 2, r.stdout + r.stderr
    assert "not a loadbench request log" in r.stderr and "from EMPTY_LOG_DSN" in r.stderr, r.stderr
    assert SECRET not in r.stdout + r.stderr
    assert not (tmp_path / "results").exists() or not any((tmp_path / "results").iterdir())
