"""The Redis state backend against a real ``redis-server``: several ``RedisState`` clients (as several
replicas) share experiment records, guardrail windows, spend and cooldowns; the config's ``state:``
block; and what a replica does while Redis is away and when it returns."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from loadbench.errors import ConfigError
from loadbench.gateway import logdb
from loadbench.gateway.abconfig import ExperimentSpec
from loadbench.gateway.config import StateSpec, compile_model, parse_model
from loadbench.gateway.experiments import CANDIDATE
from loadbench.gateway.redisstate import RETRY_S, RedisState
from loadbench.gateway.sharedstate import SqliteState, StateUnavailable
from loadbench.units import utc_day, utc_day_start_ms
from tests.redis_server import RedisServer

TIMEOUT_S = 0.2


def _spec(name: str = "canary", weight: float = 10.0) -> ExperimentSpec:
    config = {"targets": [{"name": "inc", "url": "http://127.0.0.1:1/v1", "model": "m"},
                          {"name": "cand", "url": "http://127.0.0.1:2/v1", "model": "m"}],
              "virtual_models": [{"name": "vm", "targets": [{"target": "inc"}, {"target": "cand"}],
                                  "experiment": {"name": name, "incumbent": "inc", "candidate": "cand",
                                                 "weight": weight}}],
              "request_log": {"path": "x.db"}}
    exp = compile_model(parse_model(config, "gw.yaml"), "gw.yaml", env={}).routes["vm"].experiment
    assert exp is not None
    return exp


def _state(server: RedisServer, tmp_path: Path, name: str, prefix: str = "t:") -> RedisState:
    db = tmp_path / f"{name}.db"
    logdb.create(str(db)).close()
    return RedisState(StateSpec("redis", server.url, prefix, TIMEOUT_S), SqliteState(str(db)), window_ttl_s=120)


def _row(ts_ms: int, outcome: str = "ok", ttft_ms: float = 10.0, *, experiment: str | None = "canary",
         arm: str = CANDIDATE, role: str = "primary", cost: float | None = None) -> tuple[object, ...]:
    values: dict[str, object] = {c: logdb.NULL for c in logdb.COLUMNS}
    values.update(ts_ms=ts_ms, request_id=f"r{ts_ms}", worker=1, experiment=experiment or logdb.NULL,
                  arm=arm if experiment else logdb.NULL, status=200 if outcome == "ok" else 502, outcome=outcome,
                  ttft_ms=ttft_ms, e2e_ms=ttft_ms * 2, cost_usd=logdb.NULL if cost is None else cost, attempts=1,
                  role=role)
    return tuple(values[c] for c in logdb.COLUMNS)


@pytest.fixture
def replicas(redis_server: RedisServer, tmp_path: Path) -> list[RedisState]:
    states = [_state(redis_server, tmp_path, f"r{i}") for i in range(3)]
    yield states  # type: ignore[misc]
    for s in states:
        s.close()


# ---------------------------------------------------------------- config


BASE = {"targets": [{"name": "a", "url": "http://127.0.0.1:1/v1", "model": "m"}],
        "virtual_models": [{"name": "vm", "targets": [{"target": "a"}]}], "request_log": {"path": "gw.db"}}


@pytest.mark.parametrize(("state", "env", "field", "words"), [
    ({"backend": "redis"}, {}, "state.url_env", "needs the variable"),
    ({"backend": "redis", "url_env": "GW_REDIS"}, {}, "state.url_env", "GW_REDIS is not set"),
    ({"backend": "redis", "url_env": "GW_REDIS"}, {"GW_REDIS": "http://h:1"}, "state.url_env", "not hold a Redis URL"),
    ({"backend": "local", "url_env": "GW_REDIS"}, {}, "state.url_env", "only to backend: redis"),
    ({"backend": "memcached"}, {}, "state.backend", "local"),
    ({"backend": "redis", "url_env": "GW_REDIS", "prefix": "a b"}, {"GW_REDIS": "redis://h:1"}, "state.prefix",
     "pattern"),
])
def test_the_state_block_errors_name_the_field_and_the_fix(state: dict[str, object], env: dict[str, str],
                                                          field: str, words: str) -> None:
    with pytest.raises(ConfigError) as err:
        compile_model(parse_model({**BASE, "state": state}, "gw.yaml"), "gw.yaml", env=env)
    assert err.value.field == field and words in str(err.value), str(err.value)


def test_redis_needs_the_request_log_and_keeps_the_url_out_of_reprs_and_errors() -> None:
    no_log = {k: v for k, v in BASE.items() if k != "request_log"}
    secret = "redis://user:hunter2@127.0.0.1:6390/0"
    with pytest.raises(ConfigError) as err:
        compile_model(parse_model({**no_log, "state": {"backend": "redis", "url_env": "R"}}, "g.yaml"), "g.yaml",
                      env={"R": secret})
    assert err.value.field == "state.backend" and "request_log" in str(err.value)
    spec = compile_model(parse_model({**BASE, "state": {"backend": "redis", "url_env": "R"}}, "g.yaml"), "g.yaml",
                         env={"R": secret})
    assert spec.state.url == secret and spec.state.prefix == "loadbench:"
    assert "hunter2" not in repr(spec.state) and "hunter2" not in repr(spec)
    with pytest.raises(ConfigError) as err:
        compile_model(parse_model({**BASE, "state": {"backend": "redis", "url_env": "R"}}, "g.yaml"), "g.yaml",
                      env={"R": "http://user:hunter2@h"})
    assert "hunter2" not in str(err.value)
    assert compile_model(parse_model(BASE, "g.yaml"), "g.yaml", env={}).state.backend == "local"


# ---------------------------------------------------------------- experiments


def test_one_record_for_every_replica_and_a_restart_keeps_a_rollback(replicas: list[RedisState],
                                                                    redis_server: RedisServer,
                                                                    tmp_path: Path) -> None:
    a, b, c = replicas
    for i, s in enumerate(replicas):
        s.register_experiments([_spec()], 1000 + i, worker=i)
    assert a.experiments()["canary"] == logdb.ExperimentRow("canary", 10.0, "running", "", 1000)
    assert [e["action"] for e in a.experiment_events()] == ["start"]  # registered once, not three times
    assert b.change_experiment("canary", "trip", 0.0, "error rate 25%", 2000, worker=1)
    assert not c.change_experiment("canary", "trip", 0.0, "again", 2001, worker=2)  # already tripped
    assert not a.change_experiment("nope", "rollback", None, "", 2002, worker=0)
    row = c.experiments()["canary"]
    assert (row.state, row.weight, row.reason, row.updated_ms) == ("rolled_back", 0.0, "error rate 25%", 2000)
    restarted = _state(redis_server, tmp_path, "r9")
    restarted.register_experiments([_spec(weight=50.0)], 3000, worker=9)
    assert restarted.experiments()["canary"].state == "rolled_back"  # a restart never undoes a rollback
    assert a.change_experiment("canary", "set_weight", 25.0, "admin", 4000, worker=0)
    assert b.experiments()["canary"] == logdb.ExperimentRow("canary", 25.0, "running", "admin", 4000)
    assert [e["action"] for e in restarted.experiment_events()] == ["set_weight", "trip", "start"]
    restarted.close()


def test_a_change_wakes_every_listening_replica(replicas: list[RedisState]) -> None:
    a, b, c = replicas
    a.register_experiments([_spec()], 1000, worker=0)
    woken = {id(s): threading.Event() for s in (b, c)}
    subscribed = [threading.Event(), threading.Event()]
    for s, ready in zip((b, c), subscribed, strict=True):
        # the first call is the (re)subscription's own wake-up; the next ones are notifications
        calls: list[int] = []

        def hear(s: RedisState = s, calls: list[int] = calls, ready: threading.Event = ready) -> None:
            calls.append(1)
            (woken[id(s)] if len(calls) > 1 else ready).set()

        s.listen(hear, lambda: None)
    assert all(e.wait(5.0) for e in subscribed)
    t0 = time.monotonic()
    assert a.change_experiment("canary", "pause", None, "admin pause", 2000, worker=0)
    assert all(e.wait(1.0) for e in woken.values())
    assert time.monotonic() - t0 < 1.0
    assert c.experiments()["canary"].state == "paused"


# ---------------------------------------------------------------- windows and spend


def test_a_window_counts_every_replicas_requests(replicas: list[RedisState]) -> None:
    now_ms = round(time.time() * 1000)
    for i, s in enumerate(replicas):
        # 8 requests each, 2 of them failed: 25%; a client that went away is not judged
        rows = [_row(now_ms - 100 * k, "ok" if k % 4 else "http_error", ttft_ms=10.0 + i * 8 + k) for k in range(8)]
        rows += [_row(now_ms, "client_gone"), _row(now_ms, experiment=None), _row(now_ms, role="shadow")]
        s.observe(rows)
        local = s.view.window("canary", CANDIDATE, now_ms - 10_000)
        assert (local.requests, local.errors) == (8, 2)  # each replica alone: below a min_requests of 20
    shared = replicas[0].window("canary", CANDIDATE, now_ms - 10_000)
    assert (shared.requests, shared.errors) == (24, 6)
    ttfts = sorted(10.0 + i * 8 + k for i in range(3) for k in range(8) if k % 4)
    assert shared.p95_ttft_ms == ttfts[-1] and shared.p95_e2e_ms == 2 * ttfts[-1]  # nearest rank of 18
    assert replicas[1].window("canary", "incumbent", now_ms - 10_000).requests == 0
    assert replicas[2].window("canary", CANDIDATE, now_ms + 5_000).requests == 0


def test_shadow_and_judge_spend_are_one_figure(replicas: list[RedisState]) -> None:
    now_ms = round(time.time() * 1000)
    day_ms = utc_day_start_ms(utc_day(now_ms / 1000))
    for s in replicas:
        s.observe([_row(now_ms, role="shadow", experiment=None, cost=0.25), _row(now_ms, cost=9.0)])
    assert all(s.shadow_spend_usd(day_ms) == pytest.approx(0.75) for s in replicas)
    assert replicas[0].add_judge_grade(now_ms, "canary", "r1", None, 1.0, 0.5, day_ms) == pytest.approx(0.5)
    assert replicas[1].add_judge_grade(now_ms, "canary", "r2", None, None, 0.25, day_ms) == pytest.approx(0.75)
    assert replicas[2].judge_spend_usd("canary", day_ms) == pytest.approx(0.75)
    assert replicas[2].judge_spend_usd("other", day_ms) == 0.0
    # the grade's feedback row is in the grading replica's own log, where loadbench ab reads it
    conn = logdb.connect(replicas[0].local.path)
    assert conn.execute("SELECT request_id, score, outcome FROM feedback").fetchall() == [("r1", 1.0, "judge")]


# ---------------------------------------------------------------- cooldowns


def test_a_cooldown_is_seen_by_every_replica_and_ends_with_its_key(replicas: list[RedisState]) -> None:
    a, b, c = replicas
    now_ms = round(time.time() * 1000)
    a.publish_cooldown("t1", now_ms + 600, "cooled")
    b.publish_cooldown("t1", now_ms + 300, "earlier")  # never shortens a shared cooldown
    b.publish_cooldown("t2", now_ms + 60_000, "cooled")
    assert c.cooldowns(now_ms) == {"t1": now_ms + 600, "t2": now_ms + 60_000}
    time.sleep(0.7)
    assert c.cooldowns(round(time.time() * 1000)) == {"t2": now_ms + 60_000}


# ---------------------------------------------------------------- Redis away, and back


def test_while_redis_is_away_a_replica_trips_alone_and_the_durable_record_wins_on_return(
        durable_redis_server: RedisServer, tmp_path: Path) -> None:
    a, b = (_state(durable_redis_server, tmp_path, f"r{i}") for i in range(2))
    a.register_experiments([_spec(), _spec("other")], 1000, worker=0)
    a.experiments(), b.experiments()  # both have read the records
    now_ms = round(time.time() * 1000)
    a.observe([_row(now_ms - k, "http_error") for k in range(3)])
    durable_redis_server.kill()
    t0 = time.monotonic()
    with pytest.raises(StateUnavailable):
        a.experiment_events()
    assert time.monotonic() - t0 < TIMEOUT_S + 0.5 and not a.up
    t0 = time.monotonic()
    with pytest.raises(StateUnavailable):  # within RETRY_S: at once, no socket
        a.cooldowns(now_ms)
    assert time.monotonic() - t0 < 0.05
    assert 'loadbench_gateway_state_backend_up{backend="redis",worker="w"} 0' in a.render("w")
    # the guardrail reads this replica's own window and trips here
    assert a.window("canary", CANDIDATE, now_ms - 1000).errors == 3
    a.observe([_row(now_ms, "ok")])  # returns at once, counted in the local view
    assert a.view.window("canary", CANDIDATE, now_ms - 1000).requests == 4
    assert a.change_experiment("canary", "trip", 0.0, "error rate 100%", now_ms, worker=0)
    assert a.experiments()["canary"].state == "rolled_back"
    with pytest.raises(StateUnavailable):
        a.change_experiment("other", "promote", None, "admin", now_ms, worker=0)  # an admin action needs Redis
    assert a.change_experiment("other", "trip", 0.0, "p95", now_ms, worker=0)
    durable_redis_server.start()
    # meanwhile someone paused "other" through another replica: that record changed, the trip is dropped
    time.sleep(RETRY_S)
    assert b.change_experiment("other", "pause", None, "admin pause", now_ms + 1, worker=1)
    time.sleep(RETRY_S)
    rows = a.experiments()  # the first call that answers writes back the trips made in the dark
    assert a.up and 'loadbench_gateway_state_backend_up{backend="redis",worker="w"} 1' in a.render("w")
    assert rows == b.experiments()
    assert (rows["canary"].state, rows["canary"].reason) == ("rolled_back", "error rate 100%")
    assert rows["other"].state == "paused"
    a.close()
    b.close()


def test_a_store_that_lost_its_records_gets_them_back_as_the_replicas_last_read_them(
        replicas: list[RedisState], redis_server: RedisServer) -> None:
    a, b, _ = replicas
    a.register_experiments([_spec()], 1000, worker=0)
    assert a.change_experiment("canary", "trip", 0.0, "error rate 30%", 2000, worker=0)
    assert b.experiments()["canary"].state == "rolled_back"
    redis_server.client().flushall()  # a restart without persistence
    assert b.experiments() == {}
    b.register_experiments([_spec()], 3000, worker=1)
    row = a.experiments()["canary"]
    assert (row.state, row.weight, row.reason) == ("rolled_back", 0.0, "error rate 30%")
    assert [e["action"] for e in a.experiment_events()] == ["restore"]


def test_a_redis_that_does_not_answer_costs_each_caller_one_timeout_at_most(
        replicas: list[RedisState], redis_server: RedisServer) -> None:
    a, b, _ = replicas
    a.register_experiments([_spec()], 1000, worker=0)
    assert b.experiments()["canary"].state == "running"
    now_ms = round(time.time() * 1000)
    redis_server.pause()
    try:
        for call in (lambda: b.experiments(), lambda: b.observe([_row(now_ms)]),
                     lambda: b.window("canary", CANDIDATE, now_ms - 1000)):
            t0 = time.monotonic()
            call()  # answered from the view, after one timeout at most
            assert time.monotonic() - t0 < TIMEOUT_S + 0.3
        assert not b.up and b.experiments()["canary"].state == "running"
        t0 = time.monotonic()
        with pytest.raises(StateUnavailable):
            a.publish_cooldown("t1", now_ms + 60_000, "cooled")
        assert time.monotonic() - t0 < TIMEOUT_S + 0.3
    finally:
        redis_server.resume()
    time.sleep(RETRY_S)
    assert b.cooldowns(round(time.time() * 1000)) == {} and b.up


def test_a_redis_that_stays_away_is_logged_once_a_minute(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    from bench.redis_server import free_port

    db = tmp_path / "r.db"
    logdb.create(str(db)).close()
    now = [1000.0]
    state = RedisState(StateSpec("redis", f"redis://127.0.0.1:{free_port()}/0", "t:", TIMEOUT_S), SqliteState(str(db)),
                       window_ttl_s=120, monotonic=lambda: now[0])
    caplog.set_level("WARNING", logger="loadbench.gateway")
    for step_s in (0, 2, 30, 20, 9.5, 1, 2):  # failures at 1000, 1002, 1032, 1052, 1061.5, 1062.5, 1064.5 s
        now[0] += step_s
        with pytest.raises(StateUnavailable):
            state.experiment_events()
    lines = [r.getMessage() for r in caplog.records if "state backend redis unavailable" in r.getMessage()]
    assert len(lines) == 2 and not state.up and state.errors == 7, lines
    assert "t:" not in lines[0] and "redis://" not in lines[0]
    state.close()


def test_both_backends_apply_every_action_alike(redis_server: RedisServer, tmp_path: Path) -> None:
    """One map of actions to states (``logdb.TRANSITIONS``), read by the SQLite and the Redis backend."""
    for i, action in enumerate(logdb.TRANSITIONS):
        db = tmp_path / f"lite{i}.db"
        logdb.create(str(db)).close()
        lite, redis_state = SqliteState(str(db)), _state(redis_server, tmp_path, f"r{i}", prefix=f"t{i}:")
        try:
            records = []
            for state in (lite, redis_state):
                state.register_experiments([_spec()], 1000, worker=0)
                if action == "resume":
                    assert state.change_experiment("canary", "pause", None, "first", 1500, worker=0)
                assert state.change_experiment("canary", action, 40.0, "admin", 2000, worker=0)
                row = state.experiments()["canary"]
                records.append((row.state, row.weight, row.reason))
            state_to, weight_to = logdb.transition(action, 40.0)
            assert records[0] == records[1] == (state_to, 10.0 if weight_to is None else weight_to, "admin"), action
        finally:
            lite.close()
            redis_state.close()
