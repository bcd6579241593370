"""The request log in a real PostgreSQL (started by the tests): config, COPY batches, day partitions and
retention, the tables beside the requests, feedback, and what the gateway does while it is down."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import psycopg
import pytest

from loadbench.errors import ConfigError
from loadbench.gateway import logdb, pglog
from loadbench.gateway.app import create_app
from loadbench.gateway.config import compile_model, parse_model
from loadbench.gateway.connections import GuardedRunner, RejectLog
from loadbench.gateway.logstore import LogUnavailable, PostgresStore, SqliteStore
from loadbench.gateway.state import Gateway
from tests.gateway.harness import CHAT, Upstream, ok, one_target, post, run, serve, upstream
from tests.postgres import PostgresServer, fresh_database, postgres

__all__ = ["postgres"]  # the fixture, imported for the tests below

KEY = "sk-client-secret-1"
AUTH = {"Authorization": f"Bearer {KEY}"}


def pg_log(dsn_var: str = "LOG_DSN", **log: Any) -> dict[str, Any]:
    return {"backend": "postgres", "dsn_env": dsn_var, "flush_ms": 20, **log}


def spec_of(cfg: dict[str, Any], env: dict[str, str]) -> Any:
    return compile_model(parse_model(cfg, "test.yaml"), "test.yaml", env={"CLIENT_KEYS": KEY, **env})


@contextlib.asynccontextmanager
async def gateway(cfg: dict[str, Any], env: dict[str, str]) -> AsyncIterator[tuple[str, Gateway]]:
    spec = spec_of({**cfg, "auth": {"api_keys_env": "CLIENT_KEYS"}}, env)
    gw = Gateway(spec, seed=1)
    app = create_app(gw)
    async with serve(app, GuardedRunner(app, spec.limits, RejectLog(), handler_cancellation=True)) as url:
        yield url, gw


def pg_rows(dsn: str, where: str = "true") -> list[dict[str, Any]]:
    with psycopg.connect(dsn) as conn:
        cur = conn.execute(f"SELECT * FROM requests WHERE {where} ORDER BY id")
        names = [d.name for d in cur.description or ()]
        return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]


@pytest.fixture
def dsn(postgres: PostgresServer) -> Iterator[str]:
    yield fresh_database(postgres)


# ---------------------------------------------------------------------------------------------- config


def test_the_dsn_comes_from_the_named_variable_only_and_is_never_shown(tmp_path: Path) -> None:
    cfg = one_target("http://127.0.0.1:9/v1")
    secret = "postgresql://app:pa55word@db.internal:5432/gw"
    with pytest.raises(ConfigError) as err:
        spec_of({**cfg, "request_log": pg_log()}, {})
    assert "request_log.dsn_env" in str(err.value) and "LOG_DSN is not set" in str(err.value)
    with pytest.raises(ConfigError, match="dsn_env: is required with backend: postgres"):
        spec_of({**cfg, "request_log": {"backend": "postgres"}}, {})
    with pytest.raises(ConfigError, match=r"request_log\.path: is required with backend: sqlite"):
        spec_of({**cfg, "request_log": {}}, {})
    with pytest.raises(ConfigError, match="dsn_env: only applies to backend: postgres"):
        spec_of({**cfg, "request_log": {"path": "x.db", "dsn_env": "LOG_DSN"}}, {})
    spec = spec_of({**cfg, "request_log": pg_log()}, {"LOG_DSN": secret})
    log = spec.request_log
    assert log.backend == "postgres" and log.dsn == secret
    assert log.dsn_name == "postgresql://db.internal:5432/gw (from LOG_DSN)"
    assert "pa55word" not in repr(spec) and "pa55word" not in log.dsn_name
    assert Path(log.path).name == "gateway-state.db"  # the local state's file, beside the config


def test_what_the_local_state_cannot_read_from_a_postgres_log_is_refused() -> None:
    cfg = {"targets": [{"name": "a", "url": "http://127.0.0.1:9/v1", "model": "m"},
                       {"name": "b", "url": "http://127.0.0.1:9/v1", "model": "m"}],
           "virtual_models": [{"name": "vm", "targets": [{"target": "a"}, {"target": "b"}],
                               "experiment": {"name": "e", "incumbent": "a", "candidate": "b",
                                              "rollback": {"max_error_rate": 0.1}}}],
           "request_log": pg_log()}
    with pytest.raises(ConfigError, match=r"virtual_models\[0\].experiment.rollback: rollback guardrails"):
        spec_of(cfg, {"LOG_DSN": "postgresql://x@127.0.0.1/db"})
    del cfg["virtual_models"][0]["experiment"]["rollback"]  # type: ignore[index]
    assert spec_of(cfg, {"LOG_DSN": "postgresql://x@127.0.0.1/db"}).routes["vm"].experiment is not None


# ---------------------------------------------------------------------------------------------- the store


def _row(ts_ms: int, rid: str, **over: Any) -> tuple[object, ...]:
    base = dict(zip(logdb.COLUMNS, (
        ts_ms, rid, 7, "vm", logdb.NULL, logdb.NULL, "t", 200, "ok", logdb.NULL, 12.5, 1.25, 40.0, 3, 9, logdb.NULL,
        0.0015, 1, '{"task": "qa"}', "ab" * 32, logdb.NULL, "primary", logdb.NULL, logdb.NULL), strict=True))
    base.update(over)
    return tuple(base[c] for c in logdb.COLUMNS)


def test_a_batch_reads_back_from_postgres_as_from_sqlite(dsn: str, tmp_path: Path) -> None:
    from loadbench.gateway.abconfig import RequestLogSpec

    now_ms = round(time.time() * 1000)
    batch = [_row(now_ms + i, f"r{i}") for i in range(5)]
    batch.append(_row(now_ms + 9, "r9", ttft_ms=logdb.NULL, cost_usd=logdb.NULL, metadata=logdb.NULL, status=502,
                      outcome="error", response_body="a\x00b", request_body='{"q": 1}'))
    spec = RequestLogSpec(str(tmp_path / "s.db"), 10, 0.1, 100, None, None, "none", 0.0, (), None,
                          backend="postgres", dsn=dsn, dsn_name="test")
    pg = PostgresStore(spec)
    pg.write(batch, [(now_ms, "r1", "ab" * 32, 0.5, "")])
    pg.close()
    logdb.create(str(tmp_path / "s.db")).close()
    lite = SqliteStore(str(tmp_path / "s.db"))
    lite.write(batch, [(now_ms, "r1", "ab" * 32, 0.5, "")])
    lite.close()
    import sqlite3
    conn = sqlite3.connect(tmp_path / "s.db")
    from_sqlite = [r[1:] for r in conn.execute("SELECT * FROM requests ORDER BY id")]
    feedback_sqlite = conn.execute("SELECT ts_ms, request_id, tenant, score, outcome FROM feedback").fetchall()
    conn.close()
    from_pg = [tuple(r.values())[1:] for r in pg_rows(dsn)]
    assert len(from_pg) == 6
    # the one difference: PostgreSQL text cannot hold NUL, so a body's NUL is stored as U+FFFD
    assert from_pg[5][logdb.COLUMNS.index("response_body")] == "a\ufffdb"
    assert [r[:-1] for r in from_pg] == [r[:-1] for r in from_sqlite]
    with psycopg.connect(dsn) as c:
        assert c.execute("SELECT ts_ms, request_id, tenant, score, outcome FROM feedback").fetchall() == \
            feedback_sqlite


def test_rows_go_to_day_partitions_and_retention_drops_whole_days(dsn: str, tmp_path: Path) -> None:
    from loadbench.gateway.abconfig import RequestLogSpec

    spec = RequestLogSpec(str(tmp_path / "s.db"), 10, 0.1, 100, None, None, "none", 0.0, (), None,
                          backend="postgres", dsn=dsn, dsn_name="test")
    day = pglog.DAY_MS
    now_ms = round(time.time() * 1000)
    today = now_ms // day
    store = PostgresStore(spec)
    store.write([_row((today - 3) * day + 5, "old1"), _row((today - 3) * day + 6, "old2"),
                 _row((today - 1) * day + 7, "yesterday"), _row(now_ms, "now")], [])
    with psycopg.connect(dsn) as c:
        parts = {r[0]: r[1] for r in c.execute(
            "SELECT tableoid::regclass::text, count(*) FROM requests GROUP BY 1").fetchall()}
    assert parts == {pglog.partition_name(today - 3): 2, pglog.partition_name(today - 1): 1,
                     pglog.partition_name(today): 1}
    # two days of retention: the day that ended more than two days ago goes, whole; nothing is deleted row by row
    store.prune(now_ms, 2 * 86400.0, max_rows=1)
    with psycopg.connect(dsn) as c:
        assert [r[0] for r in c.execute("SELECT request_id FROM requests ORDER BY id")] == ["yesterday", "now"]
        tables = {r[0] for r in c.execute("SELECT relname FROM pg_class WHERE relname LIKE 'requests_p%'")}
        assert c.execute("SELECT n_tup_del FROM pg_stat_user_tables WHERE relname = %s",
                         (pglog.partition_name(today),)).fetchone() in (None, (0,))
    assert pglog.partition_name(today - 3) not in tables
    assert pglog.partition_name(today + 1) in tables  # tomorrow's is made ahead, so midnight waits on no DDL
    store.close()


def test_replicas_creating_the_schema_at_once_do_not_race(dsn: str, tmp_path: Path) -> None:
    from concurrent.futures import ThreadPoolExecutor

    from loadbench.results.log_source import connect

    def create(_: int) -> None:
        with connect(dsn) as conn:
            pglog.create(conn)
            pglog.add_partitions(conn, [20_000, 20_001])

    with ThreadPoolExecutor(6) as pool:
        list(pool.map(create, range(6)))
    with psycopg.connect(dsn) as c:
        assert c.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone() == ("1",)


# ---------------------------------------------------------------------------------------------- the gateway


def test_the_gateway_logs_every_request_to_postgres_with_feedback_and_experiment_records(
        dsn: str, tmp_path: Path) -> None:
    async def main() -> None:
        cfg = {"targets": [{"name": "inc", "url": "", "model": "m"}, {"name": "cand", "url": "", "model": "m"}],
               "virtual_models": [{"name": "vm", "targets": [{"target": "inc"}, {"target": "cand"}],
                                   "experiment": {"name": "exp1", "incumbent": "inc", "candidate": "cand",
                                                  "weight": 50}}],
               "request_log": pg_log(path=str(tmp_path / "state.db"))}
        async with upstream(Upstream(ok)) as up_url:
            for t in cfg["targets"]:  # type: ignore[attr-defined]
                t["url"] = up_url
            async with gateway(cfg, {"LOG_DSN": dsn}) as (url, gw), aiohttp.ClientSession() as s:
                ids = []
                for i in range(12):
                    status, h, _ = await post(s, url, {**CHAT, "stream": i % 2 == 0, "model": "vm"},
                                              headers={**AUTH, "X-Loadbench-Metadata": f'{{"i": "{i}"}}'})
                    assert status == 200
                    ids.append({k.lower(): v for k, v in h.items()}["x-request-id"])
                async with s.post(url + "/v1/feedback", json={"request_id": ids[0], "accepted": True},
                                  headers=AUTH) as r:
                    assert r.status == 200, await r.text()
                async with s.post(url + "/v1/feedback", json={"request_id": ids[1], "score": 0.5},
                                  headers={"Authorization": "Bearer other"}) as r:
                    assert r.status == 401
                deadline = time.monotonic() + 10
                while time.monotonic() < deadline:
                    with psycopg.connect(dsn) as c:
                        if c.execute("SELECT count(*) FROM experiments").fetchone() == (1,):
                            break
                    await asyncio.sleep(0.1)
                await gw.close()
        got = pg_rows(dsn)
        assert [r["request_id"] for r in got] == ids
        assert {r["arm"] for r in got} == {"incumbent", "candidate"}
        first = got[0]
        assert first["status"] == 200 and first["outcome"] == "ok" and first["output_tokens"] == 3
        assert 0 < first["ttft_ms"] <= first["e2e_ms"]
        assert first["tenant"] == hashlib.sha256(KEY.encode()).hexdigest()
        assert first["metadata"] == '{"i":"0"}' and first["request_body"] is None
        with psycopg.connect(dsn) as c:
            assert c.execute("SELECT request_id, score FROM feedback").fetchall() == [(ids[0], 1.0)]
            name, state, criteria = c.execute("SELECT name, state, criteria FROM experiments").fetchone()
            assert (name, state) == ("exp1", "running") and '"alpha"' in criteria
            assert c.execute("SELECT experiment, action FROM events").fetchall() == [("exp1", "start")]
            dump = " ".join(str(r) for r in c.execute("SELECT * FROM requests").fetchall())
        assert KEY not in dump

    run(main())


def test_postgres_down_rows_wait_then_drop_and_count_and_writing_resumes(
        postgres: PostgresServer, tmp_path: Path) -> None:
    dsn = fresh_database(postgres)

    async def main() -> None:
        async with upstream(Upstream(ok)) as up_url:
            cfg = {**one_target(up_url), "request_log": pg_log(path=str(tmp_path / "state.db"), batch_rows=5,
                                                               queue_rows=40, connect_timeout_s=1)}
            async with gateway(cfg, {"LOG_DSN": dsn}) as (url, gw), aiohttp.ClientSession() as s:
                log = gw.requestlog
                assert log is not None
                for _ in range(10):
                    assert (await post(s, url, CHAT, headers=AUTH))[0] == 200
                await _until(lambda: log.written == 10)
                postgres.stop("immediate")
                try:
                    slowest = 0.0
                    for _ in range(70):
                        t0 = time.monotonic()
                        status, _, _ = await post(s, url, CHAT, headers=AUTH)
                        slowest = max(slowest, time.monotonic() - t0)
                        assert status == 200
                    # the writer waits on the database; the request path never does
                    assert slowest < 1.0
                    assert log.dropped == 30 and log.written == 10  # 40 wait, the rest is dropped and counted
                    await _until(lambda: not log.up)
                    async with s.get(url + "/metrics", headers=AUTH) as r:
                        text = await r.text()
                    worker = os.getpid()
                    assert f'loadbench_gateway_requestlog_dropped_total{{worker="{worker}"}} 30' in text
                    assert f'loadbench_gateway_requestlog_backend_up{{worker="{worker}"}} 0' in text
                finally:
                    postgres.start()
                await _until(lambda: log.written == 50, timeout_s=20)
                assert log.up and log.lost == 0
                for _ in range(5):
                    assert (await post(s, url, CHAT, headers=AUTH))[0] == 200
                await gw.close()
        assert len(pg_rows(dsn)) == 55

    run(main())


async def _until(check: Any, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)


def test_an_unreachable_database_is_unavailable_within_the_connect_timeout(tmp_path: Path) -> None:
    from loadbench.gateway.abconfig import RequestLogSpec
    from tests.postgres import free_port

    spec = RequestLogSpec(str(tmp_path / "s.db"), 10, 0.1, 100, None, None, "none", 0.0, (), None,
                          backend="postgres", dsn=f"postgresql://u:secret@127.0.0.1:{free_port()}/x", dsn_name="t",
                          connect_timeout_s=1)
    store = PostgresStore(spec)
    t0 = time.monotonic()
    with pytest.raises(LogUnavailable) as err:
        store.write([_row(0, "r")], [])
    assert time.monotonic() - t0 < 3
    assert "secret" not in str(err.value)


def test_a_gateway_starts_and_serves_while_postgres_is_unreachable(tmp_path: Path,
                                                                   caplog: pytest.LogCaptureFixture) -> None:
    from tests.postgres import free_port

    async def main() -> None:
        async with upstream(Upstream(ok)) as up_url:
            cfg = {**one_target(up_url), "request_log": pg_log(path=str(tmp_path / "state.db"), batch_rows=5,
                                                               queue_rows=20, connect_timeout_s=1)}
            dsn = f"postgresql://u:secret@127.0.0.1:{free_port()}/x"
            async with gateway(cfg, {"LOG_DSN": dsn}) as (url, gw), aiohttp.ClientSession() as s:
                for _ in range(30):
                    assert (await post(s, url, CHAT, headers=AUTH))[0] == 200
                log = gw.requestlog
                assert log is not None
                await _until(lambda: not log.up)
                assert log.dropped == 10 and log.written == 0
                await gw.close()

    caplog.set_level("INFO", logger="loadbench.gateway")
    run(main())
    assert "does not answer" in caplog.text and "20 records not written at shutdown" in caplog.text
    assert "secret" not in caplog.text  # the DSN's password is never logged
