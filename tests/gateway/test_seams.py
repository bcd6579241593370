"""The gateway's seams: the exchange and the request log know nothing of the subsystems around them
(read from the imports), a route policy and an event listener added from outside work through a real
gateway, and the SQLite shared state is one state for several connections and processes."""

from __future__ import annotations

import ast
import asyncio
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml
from aiohttp import web

from loadbench.errors import ConfigError
from loadbench.gateway import logdb
from loadbench.gateway.abconfig import ExperimentSpec
from loadbench.gateway.config import compile_model, parse_model
from loadbench.gateway.context import RequestContext
from loadbench.gateway.experiments import CANDIDATE
from loadbench.gateway.poller import Poller
from loadbench.gateway.sharedstate import SqliteState
from tests.gateway import toy_policy
from tests.gateway.harness import CHAT, Upstream, failing, gateway, ok, post, run, two_targets, upstream

GATEWAY = Path(__file__).resolve().parents[2] / "loadbench" / "gateway"
PEERS = ("experiments", "guardrails", "shadow", "answer_judge", "estimates", "costroute", "breakdown",
         "sharedstate", "policies", "state")


def _imports(name: str) -> set[str]:
    """Every module ``loadbench/gateway/<name>.py`` imports (lazy imports included)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse((GATEWAY / f"{name}.py").read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            found |= {f"{node.module}.{a.name}" for a in node.names}
    return found


def _attributes(name: str) -> set[str]:
    return {node.attr for node in ast.walk(ast.parse((GATEWAY / f"{name}.py").read_text()))
            if isinstance(node, ast.Attribute)}


def test_the_exchange_does_not_know_the_request_log_and_the_log_knows_no_peer() -> None:
    exchange = _imports("exchange")
    assert not any("requestlog" in m or "logdb" in m for m in exchange), exchange
    assert not any(m.endswith(("experiments", "costroute", "shadow", "answer_judge", "routing")) for m in exchange)
    assert not _attributes("exchange") & {"requestlog", "shadows", "judges", "estimates", "experiments"}
    log = _imports("requestlog")
    assert not [m for m in log if any(m == f"loadbench.gateway.{p}" for p in PEERS)], log
    # the imports were read (an empty set would pass the check above)
    assert "loadbench.gateway.logdb" in log and "loadbench.gateway.logrecord" in log


def test_a_policy_registered_from_outside_routes_a_real_request() -> None:
    async def main() -> None:
        async with upstream(Upstream(ok)) as a_url, upstream(Upstream(failing(503))) as b_url:
            cfg = two_targets(("a", a_url), ("b", b_url), [{"target": "a"}, {"target": "b"}],
                              routing="last_first")
            async with gateway(cfg) as (url, gw), aiohttp.ClientSession() as s:
                status, headers, _ = await post(s, url, CHAT)
                # b first (503, a fallback status), then a serves: the toy's order, not weight routing's
                assert status == 200 and headers["x-loadbench-target"] == "a"
                assert headers["x-loadbench-attempts"] == "2"
                policy = gw.policies["last_first"]
                assert isinstance(policy, toy_policy.LastFirst) and policy.asked == 1

    run(main())


def test_an_unknown_routing_names_the_registered_policies() -> None:
    cfg = two_targets(("a", "http://127.0.0.1:1/v1"), ("b", "http://127.0.0.1:2/v1"),
                      [{"target": "a"}, {"target": "b"}], routing="fastest")
    with pytest.raises(ConfigError, match="last_first") as info:
        compile_model(parse_model(cfg, "g.yaml"), "g.yaml", env={})
    assert info.value.field == "virtual_models[0].routing"


def test_a_raising_listener_is_counted_and_the_client_still_gets_its_answer() -> None:
    heard: list[tuple[str, int]] = []
    changes: list[tuple[str, bool, str]] = []

    def broken(ctx: RequestContext, status: int) -> None:
        raise RuntimeError("a listener's bug")

    async def fails_once(up: Upstream, request: web.Request, body: dict[str, Any]) -> web.StreamResponse:
        return await (failing(500) if len(up.bodies) == 1 else ok)(up, request, body)

    async def main() -> None:
        async with upstream(Upstream(ok)) as a_url, upstream(Upstream(fails_once)) as b_url:
            cfg = two_targets(("a", a_url), ("b", b_url), [{"target": "b", "priority": 0},
                                                           {"target": "a", "priority": 1}], routing="priority")
            cfg["targets"][1]["failure_tolerance"] = {"allowed_failures_per_minute": 0, "cooldown_period_s": 0.2}
            async with gateway(cfg) as (url, gw), aiohttp.ClientSession() as s:
                gw.events.exchange_finished.add_listener(broken)
                gw.events.exchange_finished.add_listener(lambda ctx, status: heard.append((ctx.target, status)))
                gw.events.target_health_changed.add_listener(lambda *args: changes.append(args))
                status, _, body = await post(s, url, CHAT)  # b fails and cools down, a answers
                assert status == 200 and b'"ok"' in body
                await asyncio.sleep(0.3)  # b's cooldown is over: on probation, its success brings it back
                status, _, body = await post(s, url, CHAT)
                assert status == 200 and b'"ok"' in body
                assert gw.events.exchange_finished.errors == 2
                assert heard == [("a", 200), ("b", 200)]  # the listener after the broken one still ran
                assert changes == [("b", False, "cooled down for 0.2 s"), ("b", True, "probation passed")]
                async with s.get(url + "/metrics") as r:
                    text = await r.text()
                assert (f'loadbench_gateway_event_listener_errors_total{{event="exchange_finished",'
                        f'worker="{gw.metrics.worker}"}} 2') in text

    run(main())


def _spec(name: str) -> ExperimentSpec:
    cfg: dict[str, Any] = {
        "targets": [{"name": "a", "url": "http://127.0.0.1:1/v1", "model": "m"},
                    {"name": "b", "url": "http://127.0.0.1:2/v1", "model": "m"}],
        "virtual_models": [{"name": "vm", "targets": [{"target": "a"}, {"target": "b"}],
                            "experiment": {"name": name, "incumbent": "a", "candidate": "b", "weight": 20}}],
        "request_log": {"path": "unused.db"}}
    spec = compile_model(parse_model(cfg, "g.yaml"), "g.yaml", env={}).routes["vm"].experiment
    assert spec is not None
    return spec


_OTHER_PROCESS = """
import sys
from loadbench.gateway.sharedstate import SqliteState
state = SqliteState(sys.argv[1])
print(state.add_judge_grade(int(sys.argv[2]), "exp", "r-other", None, 0.5, 0.25, 0))
print(state.change_experiment("exp", "set_weight", 35.0, "from the other process", int(sys.argv[2]), 2))
state.close()
"""


def test_the_sqlite_state_is_one_state_for_two_connections_and_two_processes(tmp_path: Path) -> None:
    db = str(tmp_path / "gw.db")
    logdb.create(db).close()
    one, two = SqliteState(db), SqliteState(db)  # two connections, as two workers hold them
    now_ms = round(time.time() * 1000)
    try:
        one.register_experiments([_spec("exp")], now_ms, 1)
        two.register_experiments([_spec("exp")], now_ms + 5, 2)  # a second registration keeps the first record
        assert two.experiments()["exp"].weight == 20 and two.experiments()["exp"].state == "running"
        assert [e["action"] for e in one.experiment_events()] == ["start"]

        # the window counts both workers' candidate requests
        base = dict.fromkeys(logdb.COLUMNS)
        rows = [tuple({**base, "ts_ms": now_ms, "request_id": f"r{i}", "worker": 1 + i % 2, "model": "vm",
                       "experiment": "exp", "arm": CANDIDATE, "target": "b", "status": 200 if i % 4 else 502,
                       "outcome": "ok" if i % 4 else "error", "ttft_ms": 10.0, "e2e_ms": 20.0, "attempts": 1,
                       "role": "primary"}.values()) for i in range(8)]
        logdb.write(logdb.connect(db), rows)
        stats = two.window("exp", CANDIDATE, now_ms - 1000)
        assert (stats.requests, stats.errors) == (8, 2)

        # a budget is one figure: grades stored by either connection and by another process add up
        assert one.add_judge_grade(now_ms, "exp", "r1", None, 1.0, 0.5, 0) == pytest.approx(0.5)
        out = subprocess.run([sys.executable, "-c", _OTHER_PROCESS, db, str(now_ms)], capture_output=True,
                             text=True, timeout=60, check=True).stdout.split()
        assert out == ["0.75", "True"]
        assert two.judge_spend_usd("exp", 0) == pytest.approx(0.75)
        assert one.experiments()["exp"].weight == 35.0  # the other process's change, read here

        # a trip is taken once: the second process to trip finds the experiment no longer running
        assert two.change_experiment("exp", "trip", 0.0, "error rate", now_ms, 2)
        assert not one.change_experiment("exp", "trip", 0.0, "error rate", now_ms, 1)
        assert one.experiments()["exp"].state == "rolled_back"
        assert [e["action"] for e in two.experiment_events()] == ["trip", "set_weight", "start"]
    finally:
        one.close()
        two.close()


def test_the_poller_runs_each_job_on_its_interval_and_a_failing_job_again() -> None:
    runs: dict[str, int] = {"slow": 0, "broken": 0}

    def broken(now: float) -> None:
        runs["broken"] += 1
        raise RuntimeError("a job's bug")

    poller = Poller()
    poller.add("slow", 60.0, lambda now: runs.__setitem__("slow", runs["slow"] + 1))
    poller.add("broken", 0.01, broken)
    poller.start()
    try:
        deadline = time.monotonic() + 10.0
        while runs["broken"] < 3 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert runs["broken"] >= 3 and poller.errors >= 3  # counted, and run again at its next turn
        assert runs["slow"] == 1  # its first turn at start, the next one a minute later
        poller.wake("slow")  # ... unless woken
        while runs["slow"] < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert runs["slow"] == 2
    finally:
        poller.stop()
    assert not poller._thread.is_alive()


def test_a_reload_is_announced_with_the_old_and_the_new_config(tmp_path: Path) -> None:
    heard: list[tuple[list[str], list[str]]] = []

    async def main() -> None:
        async with upstream(Upstream(ok)) as a_url:
            cfg = two_targets(("a", a_url), ("b", a_url), [{"target": "a"}, {"target": "b"}])
            path = tmp_path / "gw.yaml"
            path.write_text(yaml.safe_dump(cfg))
            async with gateway(cfg) as (url, gw), aiohttp.ClientSession() as s:
                gw.config_path = str(path)
                gw.events.config_reloaded.add_listener(lambda old, new: heard.append((list(old.routes),
                                                                                       list(new.routes))))
                cfg["virtual_models"].append({"name": "vm2", "targets": [{"target": "b"}]})
                path.write_text(yaml.safe_dump(cfg))
                assert gw.reload()
                assert heard == [(["vm"], ["vm", "vm2"])]
                status, headers, _ = await post(s, url, {**CHAT, "model": "vm2"})
                assert status == 200 and headers["x-loadbench-target"] == "b"

    run(main())
