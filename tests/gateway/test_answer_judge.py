"""Sampled judging of experiment answers: the mock judge grades the sampled fraction of both arms'
answers off the request path, blind, its grade is the request's quality signal, the client's answer is
unchanged, and judge spend stops at the daily budget."""

from __future__ import annotations

import asyncio
import contextlib
import math
import re
import sqlite3
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
from aiohttp import web

from loadbench.errors import ConfigError
from loadbench.gateway.config import compile_model, parse_model
from loadbench.procs import start_server
from tests.conftest import run_loadbench
from tests.gateway.harness import CHAT, WHOLE, Upstream, ok, post, upstream
from tests.gateway.test_requestlog import ENV, logged

Behave = Callable[[Upstream, web.Request, dict[str, Any]], Awaitable[web.StreamResponse]]
KEY = {"Authorization": "Bearer sk-client-secret-1"}
RUBRIC = [{"name": "helpful", "description": "answers the question"}]


def config(inc: str, cand: str, judge: str, db: Path, **judge_cfg: Any) -> dict[str, Any]:
    return {
        "targets": [{"name": "inc", "url": inc, "model": "m-inc"}, {"name": "cand", "url": cand, "model": "m-cand"}],
        "virtual_models": [{"name": "vm", "targets": [{"target": "inc"}, {"target": "cand"}],
                            "experiment": {"name": "exp1", "incumbent": "inc", "candidate": "cand", "weight": 50,
                                           "quality": {"judge": {"url": judge, "model": "jm", "rubric": RUBRIC,
                                                                 **judge_cfg}}}}],
        "request_log": {"path": str(db), "flush_ms": 20},
        "auth": {"api_keys_env": "CLIENT_KEYS"},
    }


def judged(db: Path) -> list[tuple[str, float, str | None]]:
    conn = sqlite3.connect(db)
    try:
        return conn.execute("SELECT f.request_id, f.score, r.arm FROM feedback f JOIN requests r"
                            " ON r.request_id = f.request_id WHERE f.outcome = 'judge'").fetchall()
    finally:
        conn.close()


def spend(db: Path) -> tuple[int, float]:
    conn = sqlite3.connect(db)
    try:
        n, total = conn.execute("SELECT COUNT(*), SUM(cost_usd) FROM judge_spend").fetchone()
        return int(n), float(total or 0.0)
    finally:
        conn.close()


@pytest.fixture
def judge_mock():
    server = start_server(["mock", "--port", "0", "--judge", "--ttft-ms", "0", "--itl-ms", "0"])
    yield server
    server.stop()


def traffic(judge_url: str | Upstream, db: Path, n: int, pause_s: float, arm: Behave = ok,
            **judge_cfg: Any) -> tuple[list[bytes], str]:
    """n requests through a gateway whose experiment has a judge (a URL, or a scripted upstream started
    here); (client answers, /metrics at the end)."""
    bodies: list[bytes] = []

    async def run_all() -> str:
        async with contextlib.AsyncExitStack() as stack:
            a = await stack.enter_async_context(upstream(Upstream(arm)))
            b = await stack.enter_async_context(upstream(Upstream(arm)))
            judge = (await stack.enter_async_context(upstream(judge_url)) if isinstance(judge_url, Upstream)
                     else judge_url)
            url, gw = await stack.enter_async_context(logged(config(a, b, judge, db, **judge_cfg)))
            s = await stack.enter_async_context(aiohttp.ClientSession())
            for _ in range(n):
                status, _, body = await post(s, url, CHAT, headers=KEY)
                assert status == 200
                bodies.append(body)
                await asyncio.sleep(pause_s)
            await asyncio.sleep(0.5)  # the last grades land
            async with s.get(url + "/metrics", headers=KEY) as resp:
                text = await resp.text()
            await gw.close()
            return text

    return bodies, asyncio.run(asyncio.wait_for(run_all(), 60))


N = 200
FRACTION = 0.3


def test_the_sampled_fraction_of_both_arms_is_graded_and_the_client_answer_is_unchanged(
        tmp_path: Path, judge_mock) -> None:
    db = tmp_path / "gw.db"
    bodies, metrics = traffic(judge_mock.base_url, db, N, 0.0, fraction=FRACTION, max_concurrency=64)
    assert all(b == WHOLE for b in bodies)  # the upstream's answer, byte for byte
    rows = judged(db)
    # the sampled share: within 4 standard errors of the configured fraction
    se = math.sqrt(FRACTION * (1 - FRACTION) / N)
    assert abs(len(rows) / N - FRACTION) < 4 * se, len(rows)
    assert {arm for _, _, arm in rows} == {"incumbent", "candidate"}
    assert all(0.0 <= score <= 1.0 for _, score, _ in rows)
    assert 'loadbench_gateway_judge_total{experiment="exp1",result="judged"' in metrics
    assert spend(db)[0] == len(rows)


def test_judge_spend_stops_at_the_daily_budget_and_is_reported(tmp_path: Path, judge_mock) -> None:
    db = tmp_path / "gw.db"
    budget = 0.05
    # a price that makes one judge call cost about a cent
    _, metrics = traffic(judge_mock.base_url, db, 40, 0.05, fraction=1.0, max_concurrency=1, input_per_mtok=100.0,
                         output_per_mtok=100.0, budget_usd_per_day=budget)
    calls, total = spend(db)
    per_call = total / calls
    assert 0.001 < per_call < budget
    # it stops at the budget: at most one call in flight when it was reached (max_concurrency 1)
    assert budget <= total <= budget + per_call * 1.01
    assert calls < 40
    assert 'result="over_budget"' in metrics and "loadbench_gateway_judge_spend_today_usd" in metrics
    report = run_loadbench("ab", str(db), "--experiment", "exp1")
    assert f"Judge: {calls} sampled answers graded, spend {total:.6f} USD" in report.stdout, report.stdout


def test_the_budget_is_the_gateways_spend_today_not_one_workers(tmp_path: Path, judge_mock) -> None:
    """Spend another worker (or this gateway before a restart) stored today counts; yesterday's does not."""
    from loadbench.gateway import logdb

    db = tmp_path / "gw.db"
    budget = 0.05
    conn = logdb.create(str(db))
    now_ms = round(time.time() * 1000)
    logdb.judge_record(conn, now_ms - 86_400_000, "exp1", "yesterday", None, None, 1.0)  # over budget, yesterday
    conn.close()
    prices = {"fraction": 1.0, "max_concurrency": 1, "input_per_mtok": 100.0, "output_per_mtok": 100.0,
              "budget_usd_per_day": budget}
    _, metrics = traffic(judge_mock.base_url, db, 3, 0.05, **prices)
    assert spend(db)[0] == 1 + 3  # yesterday's spend did not stop today's grades
    conn = logdb.connect(str(db))
    logdb.judge_record(conn, now_ms, "exp1", "other-worker", None, None, budget)  # today, by another worker
    conn.close()
    _, metrics = traffic(judge_mock.base_url, db, 5, 0.05, **prices)
    assert spend(db)[0] == 1 + 3 + 1, "a gateway that starts after the budget was spent today judges nothing"
    assert re.search(r'result="over_budget",worker="\d+"\} 5\n', metrics), metrics


def test_a_judge_without_a_rubric_or_with_a_missing_key_is_a_config_error(tmp_path: Path) -> None:
    cfg = config("http://127.0.0.1:1/v1", "http://127.0.0.1:2/v1", "http://127.0.0.1:3/v1", tmp_path / "gw.db")
    cfg["virtual_models"][0]["experiment"]["quality"]["judge"]["rubric"] = []
    with pytest.raises(ConfigError, match=r"experiment.quality.judge.rubric"):
        compile_model(parse_model(cfg, "g.yaml"), "g.yaml", env=ENV)
    cfg = config("http://127.0.0.1:1/v1", "http://127.0.0.1:2/v1", "http://127.0.0.1:3/v1", tmp_path / "gw.db",
                 api_key_env="NO_SUCH_JUDGE_KEY")
    with pytest.raises(ConfigError, match="NO_SUCH_JUDGE_KEY is not set"):
        compile_model(parse_model(cfg, "g.yaml"), "g.yaml", env=ENV)


async def signed(up: Upstream, request: web.Request, body: dict[str, Any]) -> web.StreamResponse:
    """An answer that names its own target and model, as a self-introduction would."""
    text = "As m-cand (the cand target, by Acme), I think: yes."
    return web.Response(body=orjson.dumps({"choices": [{"message": {"content": text}}],
                                           "usage": {"prompt_tokens": 3, "completion_tokens": 9}}),
                        content_type="application/json")


async def grader(up: Upstream, request: web.Request, body: dict[str, Any]) -> web.StreamResponse:
    return web.Response(body=orjson.dumps({"choices": [{"message": {"content": '{"helpful": 4}'}}],
                                           "usage": {"prompt_tokens": 100, "completion_tokens": 5}}),
                        content_type="application/json")


def test_the_judge_never_sees_a_target_model_or_listed_name_and_its_grade_is_stored(tmp_path: Path) -> None:
    db = tmp_path / "gw.db"
    judge = Upstream(grader)
    bodies, _ = traffic(judge, db, 20, 0.0, arm=signed, fraction=1.0, max_concurrency=64, strip_names=["Acme"])
    assert all(b"m-cand" in b for b in bodies)  # the client's answer keeps the names
    assert len(judge.bodies) == 20 and {b["model"] for b in judge.bodies} == {"jm"}
    for body in judge.bodies:
        prompt = body["messages"][0]["content"]
        assert "[model]" in prompt and "I think: yes." in prompt
        for name in ("m-cand", "m-inc", "Acme", "cand target"):
            assert name not in prompt
    # grade 4 of 5 is (4 - 1) / 4
    assert sorted({score for _, score, _ in judged(db)}) == [0.75] and len(judged(db)) == 20
