"""Three ``loadbench gateway`` replicas (separate processes, own ports, own request logs, no shared file:
as on three hosts) sharing their state through a real ``redis-server``, over real mocks: a rollback
tripped on the three replicas' traffic together reaches all three, a cooldown reaches the others, and
Redis killed under load costs no client request."""

from __future__ import annotations

import asyncio
import re
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
import yaml

from loadbench.procs import ServerProcess
from tests.gateway.harness import CHAT, start_gateway, start_mock
from tests.redis_server import RedisServer

ADMIN = {"Authorization": "Bearer adm-secret"}
MIN_REQUESTS = 30


def _replicas(servers: list[ServerProcess], tmp_path: Path, redis: RedisServer, config: dict[str, Any],
              n: int = 3, env: dict[str, str] | None = None) -> list[ServerProcess]:
    started = []
    for i in range(n):
        folder = tmp_path / f"replica{i}"
        folder.mkdir()
        own = {**config, "request_log": {"path": str(folder / "gw.db"), "flush_ms": 100},
               "state": {"backend": "redis", "url_env": "GW_REDIS_URL", "prefix": "e2e:"},
               "admin": {"api_keys_env": "ADMIN_KEYS"}}
        gw, _ = start_gateway(servers, folder, own,
                              env={"GW_REDIS_URL": redis.url, "ADMIN_KEYS": "adm-secret", **(env or {})})
        started.append(gw)
    return started


def _experiment_config(inc: ServerProcess, cand: ServerProcess, weight: float,
                       rollback: dict[str, Any]) -> dict[str, Any]:
    return {
        "targets": [{"name": "inc", "url": inc.base_url, "model": "m"},
                    {"name": "cand", "url": cand.base_url, "model": "m",
                     "failure_tolerance": {"allowed_failures_per_minute": 10_000}}],
        "virtual_models": [{"name": "vm", "targets": [{"target": "inc"}, {"target": "cand"}],
                            "experiment": {"name": "canary", "incumbent": "inc", "candidate": "cand",
                                           "weight": weight, "rollback": rollback}}],
    }


def _failing_canary(servers: list[ServerProcess], tmp_path: Path, redis: RedisServer, *, error_rate: float,
                    weight: float, min_requests: int, max_error_rate: float) -> list[ServerProcess]:
    """Three replicas of an experiment whose candidate fails ``error_rate`` of its requests; one failed
    check (every 0.25 s, over a minute) trips the rollback."""
    inc = start_mock(servers)
    cand = start_mock(servers, "--error-rate", str(error_rate), "--seed", "5")
    rollback = {"window_s": 60, "min_requests": min_requests, "max_error_rate": max_error_rate, "failed_checks": 1,
                "interval_s": 0.25}
    return _replicas(servers, tmp_path, redis, _experiment_config(inc, cand, weight, rollback))


def _metric(text: str, name: str, **labels: str) -> str | None:
    """The value of the first sample of ``name`` whose labels include ``labels``."""
    for line in text.splitlines():
        if line.startswith(name + "{") and all(f'{k}="{v}"' in line for k, v in labels.items()):
            return line.rsplit(" ", 1)[1]
    return None


async def _metrics(s: aiohttp.ClientSession, gw: ServerProcess) -> str:
    async with s.get(gw.url + "/metrics") as r:
        return await r.text()


async def _state_of(s: aiohttp.ClientSession, gw: ServerProcess) -> tuple[str, str]:
    """(weight, state) of the experiment in a replica's /metrics."""
    text = await _metrics(s, gw)
    weight = _metric(text, "loadbench_gateway_experiment_weight", experiment="canary")
    state = re.search(r'loadbench_gateway_experiment_state\{experiment="canary",state="(\w+)"', text)
    return str(weight), state.group(1) if state else ""


class Load:
    """Users that send chat requests round-robin over the replicas until stopped; every status kept."""

    def __init__(self, replicas: list[ServerProcess], users: int, headers: dict[str, str] | None = None) -> None:
        self.replicas = replicas
        self.users = users
        self.headers = headers or {}
        self.statuses: list[int] = []
        self.retry_after: list[str] = []  # of each 429
        self.first_s = self.last_s = 0.0
        self.failures: list[str] = []
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    async def _user(self, s: aiohttp.ClientSession, first: int) -> None:
        i = first
        while not self._stop.is_set():
            gw = self.replicas[i % len(self.replicas)]
            i += 1
            try:
                self.first_s = self.first_s or time.monotonic()
                async with s.post(gw.url + "/v1/chat/completions", data=orjson.dumps(CHAT),
                                  headers=self.headers) as r:
                    await r.read()
                    self.statuses.append(r.status)
                    if r.status == 429:
                        self.retry_after.append(r.headers.get("Retry-After", ""))
                self.last_s = time.monotonic()
            except (aiohttp.ClientError, TimeoutError) as exc:
                self.failures.append(type(exc).__name__)

    def start(self, s: aiohttp.ClientSession) -> None:
        self._tasks = [asyncio.ensure_future(self._user(s, k)) for k in range(self.users)]

    async def stop(self) -> None:
        self._stop.set()
        await asyncio.gather(*self._tasks)


async def _targets(replicas: list[ServerProcess], n: int) -> set[str]:
    got = set()
    async with aiohttp.ClientSession() as s:
        for i in range(n):
            async with s.post(replicas[i % len(replicas)].url + "/v1/chat/completions", data=orjson.dumps(CHAT)) as r:
                await r.read()
                got.add(r.headers.get("x-loadbench-target", f"status {r.status}"))
    return got


def test_a_missing_redis_variable_fails_before_serving(tmp_path: Path) -> None:
    config = {"targets": [{"name": "a", "url": "http://127.0.0.1:9/v1", "model": "m"}],
              "virtual_models": [{"name": "vm", "targets": [{"target": "a"}]}],
              "request_log": {"path": str(tmp_path / "gw.db")},
              "state": {"backend": "redis", "url_env": "GW_REDIS_URL_UNSET"}}
    path = tmp_path / "gw.yaml"
    path.write_text(yaml.safe_dump(config))
    done = subprocess.run([sys.executable, "-m", "loadbench", "gateway", "--config", str(path), "--port", "0"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2, done.stdout + done.stderr
    assert "state.url_env" in done.stderr and "GW_REDIS_URL_UNSET is not set" in done.stderr
    assert "listening on" not in done.stdout + done.stderr


@pytest.mark.slow
@pytest.mark.alone
def test_a_candidate_failing_thinly_on_three_replicas_is_rolled_back_on_all_three(
        servers: list[ServerProcess], tmp_path: Path, redis_server: RedisServer) -> None:
    replicas = _failing_canary(servers, tmp_path, redis_server, error_rate=0.25, weight=10,
                               min_requests=MIN_REQUESTS, max_error_rate=0.05)

    async def main() -> tuple[dict[int, float], dict[str, Any]]:
        seen_ms: dict[int, float] = {}
        async with aiohttp.ClientSession() as s:
            load = Load(replicas, users=9)
            load.start(s)
            try:
                deadline = time.monotonic() + 90
                while len(seen_ms) < 3 and time.monotonic() < deadline:
                    for i, gw in enumerate(replicas):
                        if i not in seen_ms and (await _state_of(s, gw))[1] == "rolled_back":
                            seen_ms[i] = time.time() * 1000
                    await asyncio.sleep(0.02)
            finally:
                await load.stop()
            async with s.get(replicas[2].url + "/admin/experiments", headers=ADMIN) as r:
                listing = await r.json()
        return seen_ms, listing

    seen_ms, listing = asyncio.run(main())
    assert len(seen_ms) == 3, seen_ms
    trip = next(e for e in listing["events"] if e["action"] == "trip")
    assert "error rate" in trip["reason"]
    lag_ms = max(seen_ms.values()) - trip["ts_ms"]
    print(f"trip -> all three replicas: {lag_ms:.0f} ms (each: "
          + ", ".join(f"{v - trip['ts_ms']:.0f}" for v in seen_ms.values()) + " ms)")
    assert lag_ms <= 2000, (seen_ms, trip)
    time.sleep(0.5)  # the logs' last batches are written
    before = []
    for i in range(3):
        conn = sqlite3.connect(tmp_path / f"replica{i}" / "gw.db")
        before.append(conn.execute("SELECT COUNT(*) FROM requests WHERE arm = 'candidate' AND ts_ms <= ?"
                                   " AND outcome != 'client_gone'", (trip["ts_ms"],)).fetchone()[0])
        conn.close()
    # no replica alone had enough candidate requests to judge; together they had
    assert all(n < MIN_REQUESTS for n in before) and sum(before) >= MIN_REQUESTS, before
    assert asyncio.run(_targets(replicas, 60)) == {"inc"}


@pytest.mark.slow
@pytest.mark.alone
def test_a_target_cooled_on_one_replica_is_skipped_by_the_other_two_within_a_second(
        servers: list[ServerProcess], tmp_path: Path, redis_server: RedisServer) -> None:
    bad = start_mock(servers, "--error-rate", "1.0", "--error-status", "503")
    good = start_mock(servers)
    config = {"targets": [{"name": "a", "url": bad.base_url, "model": "m",
                           "failure_tolerance": {"allowed_failures_per_minute": 2, "cooldown_period_s": 30}},
                          {"name": "b", "url": good.base_url, "model": "m"}],
              "virtual_models": [{"name": "vm", "routing": "priority",
                                  "targets": [{"target": "a", "priority": 0}, {"target": "b", "priority": 1}]}]}
    r0, r1, r2 = _replicas(servers, tmp_path, redis_server, config)

    async def main() -> dict[int, float]:
        async with aiohttp.ClientSession() as s:
            for _ in range(3):  # the third failure on r0 cools a down there
                async with s.post(r0.url + "/v1/chat/completions", data=orjson.dumps(CHAT)) as r:
                    await r.read()
                    assert r.status == 200 and r.headers["x-loadbench-target"] == "b"
            t0 = time.monotonic()
            assert _metric(await _metrics(s, r0), "loadbench_gateway_target_healthy", target="a") == "0"
            lag_s: dict[int, float] = {}
            while len(lag_s) < 2 and time.monotonic() - t0 < 5:
                for i, gw in ((1, r1), (2, r2)):
                    if i not in lag_s and _metric(await _metrics(s, gw), "loadbench_gateway_target_healthy",
                                                  target="a") == "0":
                        lag_s[i] = time.monotonic() - t0
                await asyncio.sleep(0.01)
            for gw in (r1, r2):  # skipped: b answers at the first attempt
                async with s.post(gw.url + "/v1/chat/completions", data=orjson.dumps(CHAT)) as r:
                    await r.read()
                    assert (r.headers["x-loadbench-target"], r.headers["x-loadbench-attempts"]) == ("b", "1")
                assert _metric(await _metrics(s, gw), "loadbench_gateway_shared_cooldowns_adopted_total") == "1"
            return lag_s

    lag_s = asyncio.run(main())
    print("cooldown -> other replicas: " + ", ".join(f"{v * 1000:.0f} ms" for v in lag_s.values()))
    assert len(lag_s) == 2 and max(lag_s.values()) < 1.0, lag_s


@pytest.mark.slow
@pytest.mark.alone
def test_redis_killed_under_load_costs_no_request_and_the_replicas_agree_after_it_returns(
        servers: list[ServerProcess], tmp_path: Path, durable_redis_server: RedisServer) -> None:
    inc, cand = start_mock(servers), start_mock(servers)
    rollback = {"window_s": 30, "min_requests": 20, "max_error_rate": 0.05, "interval_s": 0.5}
    replicas = _replicas(servers, tmp_path, durable_redis_server, _experiment_config(inc, cand, 50, rollback))

    async def until_all(s: aiohttp.ClientSession, metric: str, value: str, limit_s: float) -> float:
        t0 = time.monotonic()
        while time.monotonic() - t0 < limit_s:
            if all(_metric(text, metric) == value for text in [await _metrics(s, gw) for gw in replicas]):
                return time.monotonic() - t0
            await asyncio.sleep(0.05)
        raise AssertionError(f"{metric} not {value} on every replica within {limit_s} s")

    async def main() -> Load:
        async with aiohttp.ClientSession() as s:
            load = Load(replicas, users=6)
            load.start(s)
            try:
                await asyncio.sleep(1.5)
                durable_redis_server.kill()
                await until_all(s, "loadbench_gateway_state_backend_up", "0", 5.0)
                async with s.post(replicas[0].url + "/admin/experiments/canary", headers=ADMIN,
                                  data=orjson.dumps({"action": "set_weight", "weight": 5})) as r:
                    assert r.status == 503  # an admin change needs the durable record
                served = len(load.statuses)
                await asyncio.sleep(2.0)
                assert len(load.statuses) > served + 50  # still serving, from the local view
                durable_redis_server.start()
                await until_all(s, "loadbench_gateway_state_backend_up", "1", 10.0)
                async with s.post(replicas[1].url + "/admin/experiments/canary", headers=ADMIN,
                                  data=orjson.dumps({"action": "set_weight", "weight": 20})) as r:
                    assert r.status == 200
                t0 = time.monotonic()
                while time.monotonic() - t0 < 1.0:
                    states = {await _state_of(s, gw) for gw in replicas}
                    if states == {("20", "running")}:
                        break
                    await asyncio.sleep(0.02)
                assert states == {("20", "running")}, states
                await asyncio.sleep(0.5)
            finally:
                await load.stop()
        return load

    load = asyncio.run(main())
    assert load.failures == [] and set(load.statuses) == {200}, (load.failures, set(load.statuses))
    assert len(load.statuses) > 300
    for gw in replicas:  # one line said so, not one per failed call
        assert sum("state backend redis unavailable" in line for line in gw.output) == 1, "\n".join(gw.output)
        assert any("state backend redis answers again" in line for line in gw.output)


@pytest.mark.slow
@pytest.mark.alone
def test_a_per_key_limit_holds_across_three_replicas(servers: list[ServerProcess], tmp_path: Path,
                                                     redis_server: RedisServer) -> None:
    per_minute = 120
    up = start_mock(servers)
    config = {"targets": [{"name": "a", "url": up.base_url, "model": "m"}],
              "virtual_models": [{"name": "vm", "targets": [{"target": "a"}]}],
              "auth": {"api_keys_env": "GW_KEYS"},
              "rate_limits": {"per_key": {"requests_per_minute": per_minute}}}
    replicas = _replicas(servers, tmp_path, redis_server, config, env={"GW_KEYS": "k1,k2"})

    async def main() -> tuple[Load, int]:
        async with aiohttp.ClientSession() as s:
            load = Load(replicas, users=6, headers={"Authorization": "Bearer k1"})
            load.start(s)
            await asyncio.sleep(6.0)
            await load.stop()
            async with s.post(replicas[0].url + "/v1/chat/completions", data=orjson.dumps(CHAT),
                              headers={"Authorization": "Bearer k2"}) as r:
                assert r.status == 200  # another key has its own bucket
            refused = 0
            for gw in replicas:
                text = await (await s.get(gw.url + "/metrics", headers={"Authorization": "Bearer k2"})).text()
                refused += int(_metric(text, "loadbench_gateway_rate_limited_total", limit="requests") or 0)
        return load, refused

    load, refused = asyncio.run(main())
    elapsed_s = load.last_s - load.first_s
    allowed = load.statuses.count(200)
    expected = per_minute + per_minute / 60 * elapsed_s  # a minute's worth at once, then the refill
    print(f"per-key limit {per_minute}/min over three replicas: {allowed} admitted in {elapsed_s:.2f} s,"
          f" {expected:.1f} expected ({(allowed - expected) / expected:+.1%}); {load.statuses.count(429)} refused")
    assert load.failures == [] and set(load.statuses) == {200, 429}
    assert abs(allowed - expected) <= 0.05 * expected
    assert refused == load.statuses.count(429) and all(v.isdigit() and int(v) >= 1 for v in load.retry_after)


@pytest.mark.slow
@pytest.mark.alone
def test_with_redis_away_each_replica_trips_alone_and_on_return_they_agree_on_the_first_trip(
        servers: list[ServerProcess], tmp_path: Path, durable_redis_server: RedisServer) -> None:
    replicas = _failing_canary(servers, tmp_path, durable_redis_server, error_rate=0.5, weight=50, min_requests=10,
                               max_error_rate=0.2)
    pattern = re.compile(r'loadbench_gateway_experiment_state\{experiment="canary",state="(\w+)",reason="([^"]*)"')

    async def states(s: aiohttp.ClientSession) -> list[tuple[str, str]]:
        found = [pattern.search(await _metrics(s, gw)) for gw in replicas]
        return [(m.group(1), m.group(2)) if m else ("", "") for m in found]

    async def main() -> list[tuple[str, str]]:
        async with aiohttp.ClientSession() as s:
            durable_redis_server.kill()
            load = Load(replicas, users=6)
            load.start(s)
            try:
                deadline = time.monotonic() + 60
                while time.monotonic() < deadline and {st for st, _ in await states(s)} != {"rolled_back"}:
                    await asyncio.sleep(0.1)
                assert {st for st, _ in await states(s)} == {"rolled_back"}  # each on its own window
            finally:
                await load.stop()
            durable_redis_server.start()
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                now = await states(s)
                up = [_metric(await _metrics(s, gw), "loadbench_gateway_state_backend_up") for gw in replicas]
                if up == ["1"] * 3 and len(set(now)) == 1:
                    return now
                await asyncio.sleep(0.1)
            raise AssertionError(await states(s))

    agreed = asyncio.run(main())

    async def events() -> dict[str, Any]:
        async with aiohttp.ClientSession() as s, s.get(replicas[0].url + "/admin/experiments", headers=ADMIN) as r:
            return await r.json()  # type: ignore[no-any-return]

    listing = asyncio.run(events())
    trips = [e for e in listing["events"] if e["action"] == "trip"]
    assert len(trips) == 1 and agreed[0] == ("rolled_back", trips[0]["reason"]), (trips, agreed)
    assert asyncio.run(_targets(replicas, 30)) == {"inc"}
    lines = [line for gw in replicas for line in gw.output if "trip made while Redis was away" in line]
    # the first replica back writes its trip; the two others find the record changed and take it
    assert sum("is now the shared record" in line for line in lines) == 1
    assert sum("is not written" in line for line in lines) == 2, lines
