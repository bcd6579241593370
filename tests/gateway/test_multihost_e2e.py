"""The whole multi-host deployment at once: three ``loadbench gateway`` replicas (separate processes, own
ports, no shared file), their state in one real ``redis-server`` and their request log in one real
PostgreSQL. A candidate failing thinly on all three is rolled back on all three, and ``loadbench ab`` on
the one PostgreSQL log sees the three replicas' rows together and names the guardrail that tripped."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import aiohttp
import psycopg
import pytest

from loadbench.procs import ServerProcess
from tests.conftest import run_loadbench
from tests.gateway.harness import start_gateway, start_mock
from tests.gateway.test_redis_e2e import ADMIN, MIN_REQUESTS, Load, _experiment_config, _state_of, _targets
from tests.postgres import PostgresServer, fresh_database, postgres
from tests.redis_server import RedisServer

__all__ = ["postgres"]


def replicas_of(servers: list[ServerProcess], tmp_path: Path, config: dict[str, Any], redis: RedisServer, dsn: str,
                n: int) -> list[ServerProcess]:
    """``n`` replicas of ``config``, each with its own folder and port, the state in ``redis`` and the log in
    the PostgreSQL database ``dsn`` (through the variable LOADBENCH_LOG_DSN, as on a host)."""
    replicas = []
    for i in range(n):
        folder = tmp_path / f"replica{i}"
        folder.mkdir()
        own = {**config,
               "request_log": {"backend": "postgres", "dsn_env": "LOADBENCH_LOG_DSN",
                               "path": str(folder / "state.db"), "flush_ms": 100},
               "state": {"backend": "redis", "url_env": "GW_REDIS_URL", "prefix": "mh:"},
               "admin": {"api_keys_env": "ADMIN_KEYS"}}
        gw, _ = start_gateway(servers, folder, own, env={"GW_REDIS_URL": redis.url,
                                                         "ADMIN_KEYS": "adm-secret", "LOADBENCH_LOG_DSN": dsn})
        replicas.append(gw)
    return replicas


@pytest.mark.slow
@pytest.mark.alone
def test_three_replicas_roll_back_together_and_ab_on_the_one_postgres_log_names_the_guardrail(
        servers: list[ServerProcess], tmp_path: Path, redis_server: RedisServer, postgres: PostgresServer,
        monkeypatch: pytest.MonkeyPatch) -> None:
    dsn = fresh_database(postgres)
    monkeypatch.setenv("LOADBENCH_LOG_DSN", dsn)  # loadbench ab reads the variable, as a user's shell has it
    inc = start_mock(servers)
    cand = start_mock(servers, "--error-rate", "0.25", "--seed", "5")
    rollback = {"window_s": 60, "min_requests": MIN_REQUESTS, "max_error_rate": 0.05, "failed_checks": 1,
                "interval_s": 0.25}
    replicas = replicas_of(servers, tmp_path, _experiment_config(inc, cand, 10, rollback), redis_server, dsn, 3)

    async def main() -> tuple[set[int], list[int], int]:
        rolled: set[int] = set()
        async with aiohttp.ClientSession() as s:
            load = Load(replicas, users=9)
            load.start(s)
            try:
                deadline = time.monotonic() + 90
                while len(rolled) < 3 and time.monotonic() < deadline:
                    for i, gw in enumerate(replicas):
                        if i not in rolled and (await _state_of(s, gw))[1] == "rolled_back":
                            rolled.add(i)
                    await asyncio.sleep(0.02)
            finally:
                await load.stop()
            async with s.get(replicas[0].url + "/admin/experiments", headers=ADMIN) as r:
                trip = next(e for e in (await r.json())["events"] if e["action"] == "trip")
        return rolled, load.statuses, trip["ts_ms"]

    rolled, statuses, trip_ms = asyncio.run(main())
    assert rolled == {0, 1, 2}
    assert statuses and set(statuses) <= {200, 503}  # the candidate's injected 503s, never the gateway's own
    assert asyncio.run(_targets(replicas, 60)) == {"inc"}
    time.sleep(1.5)  # the last batches and the experiment records reach PostgreSQL
    with psycopg.connect(dsn) as c:
        per_replica = c.execute("SELECT worker, count(*) FROM requests WHERE arm = 'candidate' AND ts_ms <= %s"
                                " AND outcome != 'client_gone' GROUP BY worker", (trip_ms,)).fetchall()
        (state,) = c.execute("SELECT state FROM experiments WHERE name = 'canary'").fetchone()
    # the one log holds every replica's rows; no replica alone had enough to judge, together they had
    counts = [n for _, n in per_replica]
    assert len(counts) == 3 and all(n < MIN_REQUESTS for n in counts) and sum(counts) >= MIN_REQUESTS, counts
    assert state == "rolled_back"
    out = tmp_path / "ab"
    result = run_loadbench("ab", "LOADBENCH_LOG_DSN", "--experiment", "canary", "--out", str(out))
    assert (out / "ab.json").is_file(), result.stderr
    overall = json.loads((out / "ab.json").read_text())["overall"]
    assert overall["verdict"] == "ROLLBACK" and overall["reason"].startswith("guardrail tripped:"), overall
    assert "error rate" in overall["reason"]
    assert dsn not in (out / "ab.md").read_text() + result.stdout + result.stderr  # the DSN is never echoed
