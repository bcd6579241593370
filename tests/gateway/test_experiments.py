"""Experiments: sticky assignment, guardrail counting, the admin API and persistence across restarts."""

from __future__ import annotations

import random
import sqlite3
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest

from loadbench.ab.criteria import Criteria
from loadbench.errors import ConfigError
from loadbench.gateway.abconfig import ExperimentSpec, Guardrails
from loadbench.gateway.config import compile_model, parse_model
from loadbench.gateway.experiments import WindowStats, advance, assign, bucket, failed_check
from tests.gateway.harness import CHAT, Upstream, ok, post, run, upstream
from tests.gateway.test_requestlog import ENV, logged, rows

GUARD = Guardrails(window_s=30, min_requests=20, max_error_rate=0.05, max_p95_ttft_ms=100, max_p95_e2e_ms=None,
                   failed_checks=2, interval_s=1)


def spec(weight: float = 10, key: str | None = "user_id") -> ExperimentSpec:
    return ExperimentSpec("exp", "inc", "cand", weight, key, Criteria(0.01, 1.1, 0.97, 0.05, 100), GUARD)


def test_assignment_by_key_is_sticky_monotone_and_close_to_the_weight() -> None:
    rng = random.Random(0)
    users = [f"u{i}" for i in range(5000)]
    at10 = {u for u in users if assign(spec(), {"user_id": u}, 10, rng) == "candidate"}
    again = {u for u in users if assign(spec(), {"user_id": u}, 10, random.Random(99)) == "candidate"}
    assert at10 == again  # no randomness in a keyed assignment
    assert 0.08 < len(at10) / len(users) < 0.12
    at30 = {u for u in users if assign(spec(), {"user_id": u}, 30, rng) == "candidate"}
    assert at10 <= at30  # raising the weight never moves a candidate user back
    assert assign(spec(), {}, 50, rng) == "incumbent"  # no key: the incumbent
    assert bucket("exp", "u1") != bucket("other", "u1") or bucket("exp", "u2") != bucket("other", "u2")


def test_random_assignment_follows_the_weight() -> None:
    rng = random.Random(1)
    arms = [assign(spec(key=None), {}, 20, rng) for _ in range(10_000)]
    assert 0.18 < arms.count("candidate") / len(arms) < 0.22
    assert assign(spec(key=None), {}, 0, rng) == "incumbent" and assign(spec(key=None), {}, 100, rng) == "candidate"


def test_guardrails_trip_after_consecutive_failed_checks_only() -> None:
    bad = WindowStats(requests=50, errors=10, p95_ttft_ms=20, p95_e2e_ms=50)
    good = WindowStats(requests=50, errors=1, p95_ttft_ms=20, p95_e2e_ms=50)
    few = WindowStats(requests=19, errors=19, p95_ttft_ms=20, p95_e2e_ms=50)
    assert failed_check(few, GUARD) is None  # below min_requests nothing is judged
    streak, reason = advance(0, bad, GUARD)
    assert (streak, reason) == (1, None)
    streak, reason = advance(streak, good, GUARD)  # a pass resets the count
    assert (streak, reason) == (0, None)
    streak, _ = advance(advance(0, bad, GUARD)[0], few, GUARD)  # too few requests: the count stays
    assert streak == 1
    streak, reason = advance(streak, bad, GUARD)
    assert streak == 2 and reason is not None and "error rate 20.0% > max_error_rate 5.0%" in reason
    slow = WindowStats(requests=50, errors=0, p95_ttft_ms=150, p95_e2e_ms=200)
    assert "P95 TTFT 150.0 ms > max_p95_ttft_ms 100" in str(failed_check(slow, GUARD))


def test_window_stats_leave_client_disconnects_out() -> None:
    got = WindowStats.of([(200, "ok", 10.0, 20.0, 1.0), (503, "error", None, 1.0, None),
                          (499, "client_gone", None, 5.0, 0.0), (200, "stream_break", 5.0, 9.0, 0.5)])
    assert (got.requests, got.errors, got.p95_ttft_ms, got.p95_e2e_ms) == (3, 2, 10.0, 20.0)
    assert (got.quality_n, got.quality_mean) == (2, 0.75)


def test_the_quality_floor_needs_min_requests_rated() -> None:
    g = Guardrails(30, 20, None, None, None, 2, 1, min_quality=0.8)
    assert failed_check(WindowStats(50, 0, None, None, 19, 0.1), g) is None  # 19 rated: not judged
    reason = failed_check(WindowStats(50, 0, None, None, 20, 0.7), g)
    assert reason is not None and reason.startswith("quality 0.700 < min_quality 0.8 over 20 rated")
    assert failed_check(WindowStats(50, 0, None, None, 20, 0.8), g) is None


def config(inc_url: str, cand_url: str, db: Path, weight: float = 50, **exp: Any) -> dict[str, Any]:
    return {
        "targets": [{"name": "inc", "url": inc_url, "model": "m"}, {"name": "cand", "url": cand_url, "model": "m"}],
        "virtual_models": [{"name": "vm", "targets": [{"target": "inc"}, {"target": "cand"}],
                            "experiment": {"name": "exp1", "incumbent": "inc", "candidate": "cand", "weight": weight,
                                           "assign_by": "metadata.user_id", **exp}}],
        "request_log": {"path": str(db), "flush_ms": 20},
        "admin": {"api_keys_env": "ADMIN_KEYS"},
    }


async def arms(url: str, s: aiohttp.ClientSession, users: list[str]) -> dict[str, str]:
    out = {}
    for u in users:
        status, headers, _ = await post(s, url, CHAT, headers={"X-Loadbench-Metadata": orjson.dumps({"user_id": u})
                                                                .decode()})
        assert status == 200
        out[u] = {k.lower(): v for k, v in headers.items()}["x-loadbench-target"]
    return out


def test_sticky_across_restarts_and_admin_changes_persist(tmp_path: Path) -> None:
    db = tmp_path / "gw.db"
    users = [f"user-{i}" for i in range(60)]
    admin = {"Authorization": "Bearer adm-secret"}

    async def main() -> None:
        async with upstream(Upstream(ok)) as a, upstream(Upstream(ok)) as b, aiohttp.ClientSession() as s:
            async with logged(config(a, b, db)) as (url, gw):
                first = await arms(url, s, users)
                again = await arms(url, s, users)
                async with s.post(url + "/admin/experiments/exp1", json={"action": "set_weight", "weight": 0}) as r:
                    assert r.status == 401  # no admin key
                async with s.post(url + "/admin/experiments/nope", json={"action": "pause"}, headers=admin) as r:
                    assert r.status == 404
                async with s.post(url + "/admin/experiments/exp1", json={"action": "boom"}, headers=admin) as r:
                    assert r.status == 400
                await gw.close()
            assert first == again and {"inc", "cand"} == set(first.values())
            async with logged(config(a, b, db), seed=7) as (url, gw):  # a restart, another RNG seed
                assert await arms(url, s, users) == first
                async with s.post(url + "/admin/experiments/exp1", json={"action": "set_weight", "weight": 0},
                                  headers=admin) as r:
                    assert r.status == 200 and (await r.json())["weight"] == 0
                assert set((await arms(url, s, users)).values()) == {"inc"}
                await gw.close()
            async with logged(config(a, b, db)) as (url, gw):  # the admin's weight outlives the restart
                assert set((await arms(url, s, users)).values()) == {"inc"}
                async with s.get(url + "/admin/experiments", headers=admin) as r:
                    listing = await r.json()
                assert listing["experiments"][0]["weight"] == 0
                assert [e["action"] for e in listing["events"]][:2] == ["set_weight", "start"]
                async with s.post(url + "/admin/experiments/exp1", json={"action": "promote"}, headers=admin) as r:
                    assert r.status == 200
                assert set((await arms(url, s, users[:10])).values()) == {"cand"}
                await gw.close()
        logged_rows = rows(db, "experiment = 'exp1'")
        assert len(logged_rows) == 5 * len(users) + 10
        assert {(r["arm"], r["target"]) for r in logged_rows} == {("incumbent", "inc"), ("candidate", "cand")}

    run(main())


def test_experiment_config_errors_name_the_field(tmp_path: Path) -> None:
    cfg = config("http://127.0.0.1:1/v1", "http://127.0.0.1:2/v1", tmp_path / "gw.db")
    cfg["virtual_models"][0]["experiment"]["candidate"] = "other"
    with pytest.raises(ConfigError, match=r"virtual_models\[0\].experiment.candidate"):
        compile_model(parse_model(cfg, "g.yaml"), "g.yaml", env=ENV)
    cfg = config("http://127.0.0.1:1/v1", "http://127.0.0.1:2/v1", tmp_path / "gw.db")
    del cfg["request_log"]
    with pytest.raises(ConfigError, match="experiments need the request log"):
        compile_model(parse_model(cfg, "g.yaml"), "g.yaml", env=ENV)
    cfg = config("http://127.0.0.1:1/v1", "http://127.0.0.1:2/v1", tmp_path / "gw.db", assign_by="user")
    with pytest.raises(ConfigError, match="assign_by"):
        compile_model(parse_model(cfg, "g.yaml"), "g.yaml", env=ENV)


def test_the_openai_client_works_unchanged_against_an_experiment(tmp_path: Path) -> None:
    openai = pytest.importorskip("openai")
    db = tmp_path / "gw.db"

    async def main() -> None:
        async with upstream(Upstream(ok)) as a, upstream(Upstream(ok)) as b, logged(config(a, b, db)) as (url, gw):
            client = openai.AsyncOpenAI(base_url=url + "/v1", api_key="unused")
            for user in ("alice", "bob", "carol"):
                chat = await client.chat.completions.create(
                    model="vm", messages=[{"role": "user", "content": "hi"}],
                    extra_headers={"X-Loadbench-Metadata": orjson.dumps({"user_id": user}).decode()})
                assert chat.choices[0].message.content == "ok"
                stream = await client.chat.completions.create(
                    model="vm", messages=[{"role": "user", "content": "hi"}], stream=True)
                text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
                assert text == "abc"
            await client.close()
            await gw.close()
        assert len(rows(db, "experiment = 'exp1'")) == 6

    run(main())


def test_the_example_experiment_config_is_valid() -> None:
    from loadbench.gateway.config import load_config

    spec = load_config(Path(__file__).resolve().parents[2] / "profiles/gateway/experiment.yaml",
                       env={"ADMIN_KEYS": "k"})
    route = spec.routes["chat"]
    assert route.experiment is not None and route.experiment.assign_key == "user_id"
    assert route.shadow is not None and route.shadow.targets == ("challenger",)
    assert spec.request_log is not None and spec.request_log.log_bodies == "experiments"


def test_an_inline_check_scores_both_arms_without_writing_bodies(tmp_path: Path) -> None:
    from aiohttp import web

    from loadbench.ab.workflow import load
    from loadbench.results.request_log import RequestLog

    db = tmp_path / "gw.db"

    async def json_answer(up: Upstream, request: web.Request, body: dict[str, Any]) -> web.StreamResponse:
        if not body.get("stream"):
            return web.Response(body=orjson.dumps({"choices": [{"message": {"content": '{"a": 1}'}}]}),
                                content_type="application/json")
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        for part in ('{"a"', ": 1}"):
            await resp.write(b"data: " + orjson.dumps({"choices": [{"delta": {"content": part}}]}) + b"\n\n")
        await resp.write(b"data: [DONE]\n\n")
        return resp

    async def main() -> None:
        async with upstream(Upstream(json_answer)) as a, upstream(Upstream(ok)) as b, aiohttp.ClientSession() as s:
            cfg = config(a, b, db, assign_by="random", quality={"check_json": True})
            async with logged(cfg) as (url, gw):
                for i in range(40):
                    status, _, _ = await post(s, url, {**CHAT, "stream": i % 2 == 0})
                    assert status == 200
                await gw.close()
        conn = sqlite3.connect(db)
        requests, _, _ = load(RequestLog(conn), "exp1", None, None)
        bodies = conn.execute("SELECT COUNT(*) FROM requests WHERE request_body IS NOT NULL"
                              " OR response_body IS NOT NULL").fetchone()[0]
        conn.close()
        by_arm = {arm: {r.quality for r in requests if r.arm == arm} for arm in ("incumbent", "candidate")}
        assert by_arm == {"incumbent": {1.0}, "candidate": {0.0}}  # "ok" is not JSON, '{"a": 1}' is
        assert bodies == 0  # log_bodies: none

    run(main())
