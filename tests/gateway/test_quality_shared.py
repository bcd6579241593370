"""``min_quality`` and the answer judge with the state in a real ``redis-server`` and the request log in a real
PostgreSQL: ratings given on any replica (feedback, judge grades, inline checks) make one quality window, a
judge's grade and spend land in the PostgreSQL log's ``feedback`` / ``judge_spend`` tables, and the config
allows what the two now see together (cost routing stays refused)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from loadbench.errors import ConfigError
from loadbench.gateway import logdb
from loadbench.gateway.abconfig import RequestLogSpec
from loadbench.gateway.config import StateSpec
from loadbench.gateway.experiments import CANDIDATE, INCUMBENT
from loadbench.gateway.logstore import PostgresStore, RatedRequest, SqliteStore, prepare
from loadbench.gateway.redisstate import RedisState
from loadbench.gateway.sharedstate import Rating, SqliteState, inline_ratings
from loadbench.units import utc_day, utc_day_start_ms
from tests.gateway.test_pglog import pg_log, spec_of
from tests.gateway.test_redisstate import _row
from tests.postgres import PostgresServer, fresh_database, postgres
from tests.redis_server import RedisServer

__all__ = ["postgres"]


def _log_spec(dsn: str, folder: Path) -> RequestLogSpec:
    return RequestLogSpec(str(folder / "state.db"), 10, 0.1, 100, None, None, "none", 0.0, (), None,
                          backend="postgres", dsn=dsn, dsn_name="test")


@pytest.fixture
def dsn(postgres: PostgresServer) -> Iterator[str]:
    yield fresh_database(postgres)


def _replica(redis: RedisServer, folder: Path, name: str, grades: PostgresStore | None = None) -> RedisState:
    db = folder / f"{name}.db"
    logdb.create(str(db)).close()
    return RedisState(StateSpec("redis", redis.url, "q:", 0.5), SqliteState(str(db)), window_ttl_s=120,
                      grades=grades)


def test_ratings_given_on_any_replica_make_one_quality_window(redis_server: RedisServer, tmp_path: Path) -> None:
    a, b = _replica(redis_server, tmp_path, "a"), _replica(redis_server, tmp_path, "b")
    try:
        now_ms = round(time.time() * 1000)
        # six rated candidate requests, three rated on each replica: each alone has half the window
        a.rate([Rating("canary", CANDIDATE, now_ms - k, f"r{k}", 0.0) for k in range(3)])
        b.rate([Rating("canary", CANDIDATE, now_ms - k, f"r{k}", 1.0) for k in range(3, 6)])
        window = a.window("canary", CANDIDATE, now_ms - 10_000)
        assert (window.quality_n, window.quality_mean) == (6, pytest.approx(0.5))
        b.rate([Rating("canary", CANDIDATE, now_ms - 1, "r1", 1.0)])  # a newer rating of r1 replaces its first
        assert b.window("canary", CANDIDATE, now_ms - 10_000).quality_mean == pytest.approx(4 / 6)
        # the window is the requests' time, not the ratings': an old request rated now is outside it
        a.rate([Rating("canary", CANDIDATE, now_ms - 60_000, "old", 0.0)])
        assert b.window("canary", CANDIDATE, now_ms - 10_000).quality_n == 6
        assert b.window("canary", CANDIDATE, now_ms - 90_000).quality_n == 7
        assert a.window("canary", INCUMBENT, now_ms - 10_000).quality_n == 0
        assert a.window("other", CANDIDATE, now_ms - 10_000).quality_mean is None
    finally:
        a.close()
        b.close()


def test_the_inline_checks_of_a_batch_are_ratings_of_its_own_requests() -> None:
    now_ms = 1_700_000_000_000
    rows = [_row(now_ms), _row(now_ms + 1, experiment=None)]
    feedback: list[tuple[object, ...]] = [(now_ms + 5, f"r{now_ms}", None, 1.0, "inline_check"),
                                          (now_ms + 5, f"r{now_ms + 1}", None, 0.0, "inline_check"),
                                          (now_ms + 5, "elsewhere", None, 0.0, "inline_check")]
    assert inline_ratings(rows, feedback) == [Rating("canary", CANDIDATE, now_ms, f"r{now_ms}", 1.0)]
    assert inline_ratings(rows, []) == []


def test_a_judge_grade_lands_in_the_postgres_log_and_its_spend_is_one_figure(
        redis_server: RedisServer, dsn: str, tmp_path: Path) -> None:
    spec = _log_spec(dsn, tmp_path)
    prepare(spec)  # the schema, as a replica's start creates it
    a = _replica(redis_server, tmp_path, "a", PostgresStore(spec, creates=False))
    b = _replica(redis_server, tmp_path, "b", PostgresStore(spec, creates=False))
    try:
        now_ms = round(time.time() * 1000)
        day_ms = utc_day_start_ms(utc_day(now_ms / 1000))
        assert a.add_judge_grade(now_ms, "canary", "r1", "ab" * 32, 0.75, 0.5, day_ms) == pytest.approx(0.5)
        assert b.add_judge_grade(now_ms, "canary", "r2", None, None, 0.25, day_ms) == pytest.approx(0.75)
        with psycopg.connect(dsn) as conn:
            assert conn.execute("SELECT request_id, tenant, score, outcome FROM feedback").fetchall() == [
                ("r1", "ab" * 32, 0.75, "judge")]
            assert conn.execute("SELECT experiment, request_id, cost_usd FROM judge_spend ORDER BY id").fetchall() \
                == [("canary", "r1", 0.5), ("canary", "r2", 0.25)]
        # nothing in either replica's own SQLite file: the log is PostgreSQL
        assert logdb.connect(a.local.path).execute("SELECT COUNT(*) FROM judge_spend").fetchone() == (0,)
    finally:
        a.close()
        b.close()


def test_feedback_names_the_request_it_rated(dsn: str, tmp_path: Path) -> None:
    spec = _log_spec(dsn, tmp_path)
    prepare(spec)
    now_ms = round(time.time() * 1000)
    rows = [_row(now_ms), _row(now_ms + 1, experiment=None)]
    pg = PostgresStore(spec)
    logdb.create(str(tmp_path / "s.db")).close()
    lite = SqliteStore(str(tmp_path / "s.db"))
    try:
        for store in (pg, lite):
            store.write(rows, [])
            assert store.add_feedback(now_ms + 9, f"r{now_ms}", None, 0.5, "") == \
                RatedRequest("canary", CANDIDATE, now_ms)
            assert store.add_feedback(now_ms + 9, f"r{now_ms + 1}", None, 0.5, "") == RatedRequest(None, None,
                                                                                                    now_ms + 1)
            assert store.add_feedback(now_ms + 9, "unknown", None, 0.5, "") is None
            assert store.add_feedback(now_ms + 9, f"r{now_ms}", "another tenant", 0.5, "") is None
    finally:
        pg.close()
        lite.close()


def _experiment_cfg(**extra: Any) -> dict[str, Any]:
    return {"targets": [{"name": "a", "url": "http://127.0.0.1:9/v1", "model": "m"},
                        {"name": "b", "url": "http://127.0.0.1:9/v1", "model": "m"}],
            "virtual_models": [{"name": "vm", "targets": [{"target": "a"}, {"target": "b"}],
                                "experiment": {"name": "e", "incumbent": "a", "candidate": "b",
                                               "rollback": {"min_quality": 0.7},
                                               "quality": {"judge": {"url": "http://127.0.0.1:9/v1", "model": "j",
                                                                     "rubric": [{"name": "ok", "description": "ok"}]}}},
                                **extra}],
            "request_log": pg_log()}


def test_min_quality_and_the_judge_are_allowed_with_redis_and_postgres_and_cost_routing_is_not() -> None:
    env = {"LOG_DSN": "postgresql://x@127.0.0.1/db", "R": "redis://127.0.0.1:1/0"}
    redis = {"state": {"backend": "redis", "url_env": "R"}}
    route = spec_of({**_experiment_cfg(), **redis}, env).routes["vm"]
    assert route.experiment is not None and route.experiment.guardrails.min_quality == 0.7
    assert route.experiment.judge is not None
    with pytest.raises(ConfigError, match=r"virtual_models\[0\].experiment.rollback: rollback guardrails"):
        spec_of(_experiment_cfg(), env)  # the local state still cannot see a PostgreSQL log
    cost = _experiment_cfg(routing="cost", cost_routing={"quality_floor": 0.9})
    del cost["virtual_models"][0]["experiment"]
    with pytest.raises(ConfigError, match=r"virtual_models\[0\].routing: cost routing reads live cost"):
        spec_of({**cost, **redis}, env)
