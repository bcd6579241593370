"""An experiment added, changed or removed by a config reload gets (or loses) its table row, its
guardrail checks and its ``/metrics`` rows at once: a failing candidate that a reload brought in is
rolled back without a restart, in-process and in a real ``loadbench gateway --workers 2`` on SIGHUP."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sqlite3
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
import yaml
from aiohttp import web

from loadbench.gateway.app import create_app
from loadbench.gateway.config import load_config
from loadbench.gateway.connections import GuardedRunner, RejectLog
from loadbench.gateway.state import Gateway
from loadbench.procs import ServerProcess, start_server
from tests.gateway.harness import CHAT, WHOLE, Upstream, ok, run, serve, start_gateway, start_mock, upstream
from tests.gateway.test_experiments_e2e import ADMIN, _check_rollback, _config

EVERY = 3  # the candidate fails every third request: 33 % errors


async def every_third_fails(up: Upstream, request: web.Request, body: dict[str, Any]) -> web.StreamResponse:
    if len(up.bodies) % EVERY == 0:
        return web.Response(status=500, body=b'{"error": {"message": "no"}}', content_type="application/json")
    return web.Response(body=WHOLE, content_type="application/json")


def base(inc: str, cand: str, db: Path) -> dict[str, Any]:
    """Two targets, a virtual model served by the incumbent alone, and the request log: no experiment."""
    return {
        "targets": [{"name": "inc", "url": inc, "model": "m"},
                    {"name": "cand", "url": cand, "model": "m",
                     "failure_tolerance": {"allowed_failures_per_minute": 10_000}}],
        "virtual_models": [{"name": "vm", "targets": [{"target": "inc"}]}],
        "request_log": {"path": str(db), "flush_ms": 20},
    }


def with_experiment(cfg: dict[str, Any], weight: float = 50) -> dict[str, Any]:
    rollback = {"window_s": 30, "min_requests": 10, "failed_checks": 2, "interval_s": 0.2, "max_error_rate": 0.05}
    vm = {"name": "vm", "targets": [{"target": "inc"}, {"target": "cand"}],
          "experiment": {"name": "late", "incumbent": "inc", "candidate": "cand", "weight": weight,
                         "rollback": rollback}}
    return {**cfg, "virtual_models": [vm]}


@dataclass
class Live:
    """A gateway in this process over an answering incumbent and a scripted candidate, that reloads
    its config file when told (as on SIGHUP); ``plain`` is the config without an experiment."""

    url: str
    gw: Gateway
    s: aiohttp.ClientSession
    path: Path
    plain: dict[str, Any]

    def reload(self, cfg: dict[str, Any]) -> bool:
        self.path.write_text(yaml.safe_dump(cfg))
        return self.gw.reload()


@contextlib.asynccontextmanager
async def live(tmp_path: Path, cand: Upstream, first: Callable[[dict[str, Any]], dict[str, Any]] = dict,
               ) -> AsyncIterator[Live]:
    path = tmp_path / "gateway.yaml"
    async with upstream(Upstream(ok)) as inc_url, upstream(cand) as cand_url, aiohttp.ClientSession() as s:
        plain = base(inc_url, cand_url, tmp_path / "gw.db")
        path.write_text(yaml.safe_dump(first(plain)))
        spec = load_config(path)
        gw = Gateway(spec, str(path), seed=1)
        app = create_app(gw)
        async with serve(app, GuardedRunner(app, spec.limits, RejectLog(), handler_cancellation=True)) as url:
            yield Live(url, gw, s, path, plain)


def table(db: Path, sql: str) -> list[tuple[Any, ...]]:
    conn = sqlite3.connect(db)
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


async def send(s: aiohttp.ClientSession, url: str, n: int) -> list[str]:
    """``n`` requests, four at a time; the target of each answer."""
    async def one() -> str:
        async with s.post(url + "/v1/chat/completions", data=orjson.dumps(CHAT)) as r:
            await r.read()
            return r.headers.get("x-loadbench-target", "")

    got: list[str] = []
    for _ in range(n // 4):
        got += await asyncio.gather(*(one() for _ in range(4)))
    return got


async def metrics_of(s: aiohttp.ClientSession, url: str) -> list[str]:
    async with s.get(url + "/metrics") as r:
        return [line for line in (await r.text()).splitlines() if 'experiment="late"' in line]


def test_an_experiment_added_by_a_reload_is_registered_checked_and_rolled_back(tmp_path: Path) -> None:
    db = tmp_path / "gw.db"

    async def main() -> None:
        async with live(tmp_path, Upstream(every_third_fails)) as g:
            assert set(await send(g.s, g.url, 8)) == {"inc"}
            assert table(db, "SELECT name FROM experiments") == []
            assert await metrics_of(g.s, g.url) == []
            assert g.reload(with_experiment(g.plain))
            # no restart: the experiment gets its row, its checks and its trip
            deadline = time.monotonic() + 20.0
            state: list[tuple[Any, ...]] = []
            while time.monotonic() < deadline:
                await send(g.s, g.url, 8)
                state = table(db, "SELECT state, weight, reason FROM experiments WHERE name = 'late'")
                if state and state[0][0] == "rolled_back":
                    break
            assert state and state[0][:2] == ("rolled_back", 0.0), state
            assert "error rate" in state[0][2] and "max_error_rate 5.0%" in state[0][2]
            events = table(db, "SELECT action, weight, reason FROM events WHERE experiment = 'late' ORDER BY id")
            assert [e[0] for e in events] == ["start", "trip"] and events[0][1] == 50.0
            assert events[1][2] == state[0][2]
            served = table(db, "SELECT COUNT(*), SUM(status != 200) FROM requests WHERE arm = 'candidate'")[0]
            assert served[0] >= 10 and served[1] >= 1  # the candidate was live, and failing
            for _ in range(100):  # the writer's read of the table reaches the loop
                lines = await metrics_of(g.s, g.url)
                if any('state="rolled_back"' in line for line in lines):
                    break
                await asyncio.sleep(0.05)
            assert set(await send(g.s, g.url, 40)) == {"inc"}
            assert any(line.startswith("loadbench_gateway_experiment_weight{") and line.endswith(" 0")
                       for line in lines), lines
            assert any('state="rolled_back"' in line and "error rate" in line for line in lines), lines

            # a reload that drops the experiment: no more checks, no /metrics rows; its table row stays
            assert g.reload(g.plain)
            assert g.gw.experiments is not None and g.gw.experiments.specs == {}
            assert await metrics_of(g.s, g.url) == []
            assert set(await send(g.s, g.url, 8)) == {"inc"}
            assert table(db, "SELECT state FROM experiments WHERE name = 'late'") == [("rolled_back",)]

    run(main())


def lenient(cfg: dict[str, Any]) -> dict[str, Any]:
    out = with_experiment(cfg)
    out["virtual_models"][0]["experiment"]["rollback"]["max_error_rate"] = 0.9
    return out


def test_a_reload_that_changes_the_guardrails_checks_with_the_new_ones(tmp_path: Path) -> None:
    db = tmp_path / "gw.db"

    async def main() -> None:
        async with live(tmp_path, Upstream(every_third_fails), lenient) as g:
            await send(g.s, g.url, 60)
            await asyncio.sleep(0.5)  # several checks: 33 % errors pass a 90 % ceiling
            assert table(db, "SELECT state FROM experiments") == [("running",)]
            assert g.reload(with_experiment(g.plain))
            deadline = time.monotonic() + 20.0
            while time.monotonic() < deadline and table(db, "SELECT state FROM experiments") != [("rolled_back",)]:
                await send(g.s, g.url, 8)
            reason = table(db, "SELECT state, reason FROM experiments")[0]
            assert reason[0] == "rolled_back" and "max_error_rate 5.0%" in reason[1]

    run(main())


def without_log(cfg: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in cfg.items() if k != "request_log"}


def test_a_reload_cannot_add_the_request_log(tmp_path: Path) -> None:
    async def main() -> None:
        async with live(tmp_path, Upstream(ok), without_log) as g:
            assert set(await send(g.s, g.url, 4)) == {"inc"}
            assert not g.reload(with_experiment(g.plain, weight=100))  # the arms would be plain targets, unguarded
            assert set(await send(g.s, g.url, 8)) == {"inc"}

    run(main())


@pytest.mark.slow
def test_sighup_adds_an_experiment_that_every_worker_rolls_back(servers: list[ServerProcess], tmp_path: Path) -> None:
    inc = start_mock(servers)
    cand = start_mock(servers, "--error-rate", "0.3", "--seed", "3")
    db = tmp_path / "gw.db"
    full = _config(inc, cand, db, {"max_error_rate": 0.05})
    plain = {**full, "virtual_models": [{"name": "vm", "targets": [{"target": "inc"}]}]}
    gw, path = start_gateway(servers, tmp_path, plain, "--workers", "2", env={"ADMIN_KEYS": "adm-secret"})

    async def listed() -> list[dict[str, Any]]:
        async with aiohttp.ClientSession() as s, s.get(gw.url + "/admin/experiments", headers=ADMIN) as r:
            return (await r.json())["experiments"]

    assert asyncio.run(listed()) == []
    path.write_text(yaml.safe_dump(full))
    gw.proc.send_signal(signal.SIGHUP)  # the parent forwards it to the other worker
    deadline = time.monotonic() + 10.0
    while time.monotonic() < deadline and not asyncio.run(listed()):
        time.sleep(0.1)
    assert [e["name"] for e in asyncio.run(listed())] == ["canary"]
    _check_rollback(gw, db, "error rate")


def test_a_judge_added_by_a_reload_grades_within_the_days_spend(servers: list[ServerProcess], tmp_path: Path) -> None:
    from loadbench.gateway import logdb

    judge = start_server(["mock", "--port", "0", "--judge", "--ttft-ms", "0", "--itl-ms", "0"])
    servers.append(judge)
    conn = logdb.create(str(tmp_path / "gw.db"))
    logdb.judge_record(conn, round(time.time() * 1000), "late", "earlier", None, None, 1.0)  # spent today, before
    conn.close()

    def judged(cfg: dict[str, Any], budget_usd: float) -> dict[str, Any]:
        cfg = with_experiment(cfg)
        cfg["virtual_models"][0]["experiment"]["quality"] = {"judge": {
            "url": judge.base_url, "model": "jm", "rubric": [{"name": "helpful", "description": "answers"}],
            "fraction": 1.0, "max_concurrency": 64, "budget_usd_per_day": budget_usd}}
        return cfg

    async def counts(s: aiohttp.ClientSession, url: str) -> tuple[dict[str, int], float | None]:
        results: dict[str, int] = {}
        spent = None
        for line in await metrics_of(s, url):
            if line.startswith("loadbench_gateway_judge_total{"):
                results[line.split('result="')[1].split('"')[0]] = int(line.rsplit(" ", 1)[1])
            elif line.startswith("loadbench_gateway_judge_spend_today_usd{"):
                spent = float(line.rsplit(" ", 1)[1])
        return results, spent

    async def main() -> None:
        async with live(tmp_path, Upstream(ok)) as g:
            await send(g.s, g.url, 4)
            assert await counts(g.s, g.url) == ({}, None)
            assert g.reload(judged(g.plain, budget_usd=0.5))
            for _ in range(100):  # the day's spend is read off the loop
                if (await counts(g.s, g.url))[1] == 1.0:
                    break
                await asyncio.sleep(0.02)
            assert (await counts(g.s, g.url))[1] == 1.0
            await asyncio.sleep(0.3)  # the experiment's row is in: both arms serve
            await send(g.s, g.url, 12)
            results, _ = await counts(g.s, g.url)
            assert results.get("over_budget", 0) == 12 and "judged" not in results, results
            assert g.reload(judged(g.plain, budget_usd=5.0))
            await send(g.s, g.url, 12)
            for _ in range(100):
                results, _ = await counts(g.s, g.url)
                if results.get("judged", 0) == 12:
                    break
                await asyncio.sleep(0.05)
            assert results.get("judged") == 12, results

    run(main())
