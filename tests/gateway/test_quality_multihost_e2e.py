"""``min_quality`` and the answer judge across ``loadbench gateway`` replicas (separate processes, own ports, no
shared file) with the state in one real ``redis-server`` and the request log in one real PostgreSQL: feedback
posted to whichever replica the client reaches (never the one that served) trips a quality rollback that
no replica's own share could, on both replicas; the judge's grades and spend land in the PostgreSQL log;
``loadbench ab`` on that log names the quality guardrail and counts the judge's calls."""

from __future__ import annotations

import asyncio
import json
import re
import time
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import psycopg
import pytest

from loadbench.procs import ServerProcess, start_server
from tests.conftest import run_loadbench
from tests.gateway.harness import start_mock
from tests.gateway.test_multihost_e2e import replicas_of
from tests.postgres import PostgresServer, fresh_database, postgres
from tests.redis_server import RedisServer

__all__ = ["postgres"]
ADMIN = {"Authorization": "Bearer adm-secret"}
MIN_REQUESTS = 16  # rated candidate requests before min_quality judges: each replica receives half
RATED_EACH = 8
JUDGED = 6
CHECKED = 4


def _config(inc: ServerProcess, cand: ServerProcess, judge: ServerProcess) -> dict[str, Any]:
    arms = {"incumbent": "inc", "candidate": "cand"}
    return {
        "targets": [{"name": "inc", "url": inc.base_url, "model": "m"}, {"name": "cand", "url": cand.base_url,
                                                                        "model": "m"}],
        "virtual_models": [
            {"name": "vm", "targets": [{"target": "inc"}, {"target": "cand"}],
             "experiment": {"name": "rated", **arms, "weight": 50,
                            "rollback": {"window_s": 60, "min_requests": MIN_REQUESTS, "min_quality": 0.5,
                                         "failed_checks": 1, "interval_s": 0.25}}},
            {"name": "jm", "targets": [{"target": "inc"}, {"target": "cand"}],
             "experiment": {"name": "judged", **arms, "weight": 50,
                            "quality": {"judge": {"url": judge.base_url, "model": "judge", "fraction": 1.0,
                                                  "input_per_mtok": 1.0, "output_per_mtok": 1.0,
                                                  "rubric": [{"name": "helpful", "description": "answers it"}]}}}},
            {"name": "cm", "targets": [{"target": "inc"}, {"target": "cand"}],
             "experiment": {"name": "checked", **arms, "weight": 50, "quality": {"check_regex": "tok"}}}]}


async def _state(s: aiohttp.ClientSession, gw: ServerProcess, experiment: str) -> str:
    async with s.get(gw.url + "/metrics") as r:
        found = re.search(rf'loadbench_gateway_experiment_state\{{experiment="{experiment}",state="(\w+)"',
                          await r.text())
    return found.group(1) if found else ""


async def _ask(s: aiohttp.ClientSession, gw: ServerProcess, model: str) -> tuple[str, str]:
    """(request id, target) of one answered chat request."""
    body = {"model": model, "messages": [{"role": "user", "content": "hi"}]}
    async with s.post(gw.url + "/v1/chat/completions", data=orjson.dumps(body)) as r:
        await r.read()
        assert r.status == 200
        return r.headers["x-request-id"], r.headers["x-loadbench-target"]


@pytest.mark.slow
def test_quality_is_judged_on_every_replicas_feedback_and_the_judge_writes_to_the_postgres_log(
        servers: list[ServerProcess], tmp_path: Path, redis_server: RedisServer, postgres: PostgresServer,
        monkeypatch: pytest.MonkeyPatch) -> None:
    dsn = fresh_database(postgres)
    monkeypatch.setenv("LOADBENCH_LOG_DSN", dsn)
    judge = start_server(["mock", "--port", "0", "--judge", "--ttft-ms", "0", "--itl-ms", "0"])
    servers.append(judge)
    config = _config(start_mock(servers), start_mock(servers), judge)
    replicas = replicas_of(servers, tmp_path, config, redis_server, dsn, 2)

    async def main() -> tuple[list[int], float, str]:
        received = [0, 0]  # candidate feedback each replica received
        async with aiohttp.ClientSession() as s:
            for i in range(400):  # until each replica has received RATED_EACH candidate ratings (bounded)
                if min(received) >= RATED_EACH:
                    break
                served = i % 2
                request_id, target = await _ask(s, replicas[served], "vm")
                if target == "cand" and received[1 - served] >= RATED_EACH:
                    continue
                other = 1 - served  # the feedback reaches a replica that did not serve the request
                async with s.post(replicas[other].url + "/v1/feedback", data=orjson.dumps(
                        {"request_id": request_id, "score": 0.0 if target == "cand" else 1.0})) as r:
                    assert r.status == 200, await r.text()
                if target == "cand":
                    received[other] += 1
            rated_s = time.monotonic()
            states = ["", ""]
            while time.monotonic() - rated_s < 10 and states != ["rolled_back"] * 2:
                states = [await _state(s, gw, "rated") for gw in replicas]
                await asyncio.sleep(0.05)
            took_s = time.monotonic() - rated_s
            assert states == ["rolled_back"] * 2, states
            async with s.get(replicas[0].url + "/admin/experiments", headers=ADMIN) as r:
                trip = next(e for e in (await r.json())["events"] if e["action"] == "trip"
                            and e["experiment"] == "rated")
            for i in range(JUDGED):
                await _ask(s, replicas[i % 2], "jm")
            for i in range(CHECKED):
                await _ask(s, replicas[i % 2], "cm")
        return received, took_s, str(trip["reason"])

    received, took_s, reason = asyncio.run(main())
    print(f"\nrolled back on both replicas {took_s * 1000:.0f} ms after the last rating: {reason}")
    assert received == [RATED_EACH, RATED_EACH] and all(n < MIN_REQUESTS for n in received)
    assert reason.startswith("quality 0.000 < min_quality 0.5 over"), reason

    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:  # the judge grades after the answers went out
        with psycopg.connect(dsn) as c:
            (graded,) = c.execute("SELECT count(*) FROM feedback WHERE outcome = 'judge'").fetchone()
            (paid,) = c.execute("SELECT count(*) FROM judge_spend WHERE experiment = 'judged'").fetchone()
        if graded >= JUDGED and paid >= JUDGED:
            break
        time.sleep(0.1)
    assert (graded, paid) == (JUDGED, JUDGED)
    # the judge's grades and the inline checks are ratings in the one window min_quality reads
    client = redis_server.client()

    def rated(experiment: str) -> int:
        return sum(int(client.zcard(f"mh:rated:{experiment}:{arm}")) for arm in ("incumbent", "candidate"))

    while time.monotonic() < deadline and (rated("judged"), rated("checked")) != (JUDGED, CHECKED):
        time.sleep(0.1)
    assert (rated("judged"), rated("checked")) == (JUDGED, CHECKED)
    time.sleep(1.5)  # the experiment records reach PostgreSQL
    out = tmp_path / "ab"
    result = run_loadbench("ab", "LOADBENCH_LOG_DSN", "--experiment", "rated", "--out", str(out))
    assert (out / "ab.json").is_file(), result.stderr
    overall = json.loads((out / "ab.json").read_text())["overall"]
    assert overall["verdict"] == "ROLLBACK" and "min_quality" in overall["reason"], overall
    judged_out = tmp_path / "ab-judged"
    result = run_loadbench("ab", "LOADBENCH_LOG_DSN", "--experiment", "judged", "--out", str(judged_out))
    assert (judged_out / "ab.json").is_file(), result.stderr
    text = (judged_out / "ab.json").read_text()
    calls = [int(n) for n in re.findall(r'"judge_calls":\s*(\d+)', text)]
    assert calls and max(calls) == JUDGED, text[:2000]
