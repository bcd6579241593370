"""The gateway's CPU cost against the bare relay, measured at the same time on the same core.

``bench/gateway_bench.py`` measures the two servers one after the other. On a shared machine the
other jobs on the core differ from round to round, and requests per CPU-second move with them
(a busier core makes a server handle more requests per wake-up: measured 790 vs 960 streamed
req/CPU-s for the same gateway at 5 % and 50 % foreign load). Here the gateway and the bare relay
(``bench/bare_relay.py``) are both pinned to CPU 1 and loaded at once, each by its own closed loop
of ``--concurrency`` users, so whatever else runs there costs both alike. Each server runs in a
session of its own: with autogroup scheduling the kernel shares a core between sessions first, and a
server left in this generator's session would wait longer for the core than the others. The mock (TTFT 50 ms,
ITL 5 ms, 64 tokens) and this generator share CPU 0. Streamed then non-streamed, ``--rounds``
each; the figure is the median over rounds of (gateway req/CPU-s) / (bare relay req/CPU-s).

    .venv/bin/python -m bench.gateway_paired [--seconds 15] [--concurrency 40] [--json-concurrency 200] [--rounds 3]
                                             [--request-log] [--redis] [--only stream|nonstream]
``--request-log`` adds a third server on CPU 1, loaded at the same time: the same gateway with a request
log (SQLite in a temporary folder), as a deployment that records its traffic runs it. Each round then
gives both gateways' ratios to the bare relay and the logged gateway's ratio to the unlogged one, all
three under the same foreign load, and the CPU the log's writer thread spent per request (the threads
of the logged gateway other than its event loop's, from ``/proc/PID/task``). ``--redis`` (implies
``--request-log``) adds a fourth: the logged gateway with its shared state in a real ``redis-server``
(on CPU 0), as a replica of a multi-host deployment runs; its ratio to the bare relay and to the
SQLite-state gateway. Each server's row also counts, per completed request, its ``read`` and ``write``
system calls and its event loop's voluntary and involuntary context switches (``/proc/PID/io`` and
``status``): how many requests a wake-up serves and in how many reads a stream arrives, the conditions
its CPU per request depends on (a stream that reaches a relay in fewer, larger reads costs it less).
``--loop-delay`` runs each gateway's event-loop delay probe (``loadbench.gateway.looplag``) and gives,
per gateway and round, the P50 and P99 of how long ready work waited for its loop during the
measured window (read from the probe's histogram in ``/metrics`` before and after it: each figure is
the upper bound of the bucket it falls in) and the share of waits over 1 ms. Every server's row also
gives how long its event loop's thread waited, runnable, for the core (``loop_runnable_wait_ms_per_s``,
from ``schedstat``): the part of the loop's delay that is the shared core's, not the loop's own work.
Writes bench/out/gateway_paired.json (``gateway_paired_requestlog.json`` with
``--request-log``, ``gateway_paired_redis.json`` with ``--redis``). Asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

import aiohttp
import yaml

from bench.gateway_bench import bare_relay
from bench.loop_delay import loop_delay_counts, loop_delay_figures
from bench.redis_server import RedisServer
from loadbench.gateway import looplag
from loadbench.procs import ServerProcess, start_server

OUT = Path(__file__).resolve().parent / "out" / "gateway_paired.json"
TTFT_MS, ITL_MS, TOKENS = 50, 5, 64
WARM_S = 3.0
REDIS_URL_ENV = "GWPAIRED_REDIS_URL"


def _gateway_config(mock: ServerProcess, request_log: bool, redis: bool = False) -> str:
    cfg: dict[str, object] = {"targets": [{"name": "mock", "url": mock.base_url, "model": "mock-model"}],
                              "virtual_models": [{"name": "vm", "targets": [{"target": "mock"}]}]}
    folder = Path(tempfile.mkdtemp(prefix="gwpaired-"))
    if request_log:
        cfg["request_log"] = {"path": str(folder / "requests.db")}
    if redis:
        cfg["state"] = {"backend": "redis", "url_env": REDIS_URL_ENV}
    path = folder / "gateway.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return str(path)


def _thread_cpu_ns(pid: int) -> dict[int, int]:
    """Each thread's CPU time in ns (``/proc/PID/task/TID/schedstat``: the scheduler's own count). The
    ``utime``/``stime`` of ``/proc/PID/stat`` (psutil's) come in 10 ms clock ticks, about 1 % of a
    round's CPU per reading at these loads: more than the differences this bench is after. A thread
    that ends within a round would take its time with it; the servers' threads live as long as they do."""
    times = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            times[int(tid)] = int(Path(f"/proc/{pid}/task/{tid}/schedstat").read_text().split()[0])
        except FileNotFoundError:  # the thread ended between the listing and the read
            continue
    return times


def _runnable_wait_s(pid: int) -> float:
    """Seconds the main thread (the event loop's) has waited, runnable, for a CPU (schedstat's second
    field): ready work that waits for the loop while the loop waits for the core."""
    return int(Path(f"/proc/{pid}/task/{pid}/schedstat").read_text().split()[1]) / 1e9


def _cpu_s(pid: int) -> float:
    return sum(_thread_cpu_ns(pid).values()) / 1e9


def _side_cpu_s(pid: int) -> float:
    """CPU seconds of the process's threads other than the main one (the request log's writer)."""
    return sum(ns for tid, ns in _thread_cpu_ns(pid).items() if tid != pid) / 1e9


def _io_counts(pid: int) -> tuple[int, int, int, int]:
    """(read calls, write calls, voluntary and involuntary context switches of the event loop's thread).

    The calls are the process's ``read``/``write`` system calls (libuv reads and writes sockets with
    them): with the context switches they say how many requests a server handles per wake-up and in
    how many pieces a stream's bytes reach it, which its CPU per request depends on."""
    io = dict(line.split(": ") for line in Path(f"/proc/{pid}/io").read_text().splitlines())
    status = dict(line.split(":\t") for line in Path(f"/proc/{pid}/task/{pid}/status").read_text().splitlines()
                  if line.endswith(tuple("0123456789")) and ":\t" in line)
    return (int(io["syscr"]), int(io["syscw"]), int(status["voluntary_ctxt_switches"]),
            int(status["nonvoluntary_ctxt_switches"]))


async def _round(servers: dict[str, tuple[str, int]], stream: bool, seconds: float, users: int,
                 loop_delay: bool = False) -> dict[str, dict]:
    """``servers``: name -> (url, pid); ``loop_delay``: the gateways run the loop-delay probe."""
    done = dict.fromkeys(servers, 0)
    errors = dict.fromkeys(servers, 0)
    body = {"model": "vm", "messages": [{"role": "user", "content": "hi"}], "stream": stream, "max_tokens": TOKENS}
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:

        async def user(name: str, url: str, end: float) -> None:
            while time.monotonic() < end:
                try:
                    async with session.post(url + "/v1/chat/completions", json=body) as r:
                        await r.read()
                        ok = r.status == 200
                except aiohttp.ClientError:
                    ok = False
                done[name] += ok
                errors[name] += not ok

        warm = time.monotonic() + WARM_S
        await asyncio.gather(*(user(n, url, warm) for n, (url, _) in servers.items() for _ in range(users)))
        done.update(dict.fromkeys(servers, 0))
        probed = [n for n in servers if loop_delay and n.startswith("gateway")]
        lag0 = {n: await loop_delay_counts(session, servers[n][0]) for n in probed}
        cpu0 = {n: _cpu_s(pid) for n, (_, pid) in servers.items()}
        wait0 = {n: _runnable_wait_s(pid) for n, (_, pid) in servers.items()}
        side0 = {n: _side_cpu_s(pid) for n, (_, pid) in servers.items()}
        io0 = {n: _io_counts(pid) for n, (_, pid) in servers.items()}
        end = time.monotonic() + seconds
        await asyncio.gather(*(user(n, url, end) for n, (url, _) in servers.items() for _ in range(users)))
        cpu1 = {n: _cpu_s(pid) for n, (_, pid) in servers.items()}
        wait1 = {n: _runnable_wait_s(pid) for n, (_, pid) in servers.items()}
        side1 = {n: _side_cpu_s(pid) for n, (_, pid) in servers.items()}
        io1 = {n: _io_counts(pid) for n, (_, pid) in servers.items()}
        lag1 = {n: await loop_delay_counts(session, servers[n][0]) for n in probed}
    lags = {n: loop_delay_figures(lag0[n] or {}, lag1[n] or {}) for n in probed}
    return {n: {**lags.get(n, {}), "completed": done[n], "errors": errors[n], "cpu_s": round(cpu1[n] - cpu0[n], 3),
                "req_per_cpu_s": round(done[n] / max(1e-9, cpu1[n] - cpu0[n]), 1),
                "loop_runnable_wait_ms_per_s": round((wait1[n] - wait0[n]) / seconds * 1000, 1),
                "side_threads_us_per_req": round((side1[n] - side0[n]) / max(1, done[n]) * 1e6, 1),
                **{key: round((io1[n][i] - io0[n][i]) / max(1, done[n]), 2) for i, key in enumerate(
                    ("reads_per_req", "writes_per_req", "wakeups_per_req", "preempted_per_req"))}}
            for n in servers}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seconds", type=float, default=15.0, help="measured length of each round")
    p.add_argument("--concurrency", type=int, default=40, help="closed-loop users per server, streamed")
    p.add_argument("--json-concurrency", type=int, default=200,
                   help="closed-loop users per server, non-streamed (cheaper requests: more of them)")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--only", choices=("stream", "nonstream"), help="measure one kind of answer, not both")
    p.add_argument("--request-log", action="store_true", help="the gateway writes a request log")
    p.add_argument("--redis", action="store_true", help="also a logged gateway with its state in Redis")
    p.add_argument("--loop-delay", action="store_true", help="the gateways' event-loop delay per round (P50, P99)")
    args = p.parse_args(argv)
    args.request_log = args.request_log or args.redis
    started: list[ServerProcess] = []
    rows: list[dict] = []
    redis = RedisServer(Path(tempfile.mkdtemp(prefix="gwpaired-redis-"))) if args.redis else None
    try:
        mock = start_server(["mock", "--port", "0", "--ttft-ms", str(TTFT_MS), "--itl-ms", str(ITL_MS),
                             "--output-tokens", str(TOKENS)], cpu=0)
        started.append(mock)
        env = dict(os.environ)
        if args.loop_delay:
            env[looplag.ENV] = "1"
        if redis is not None:
            redis.start(cpu=0)
            env[REDIS_URL_ENV] = redis.url
        gateways = {"gateway": (False, False), **({"gateway_log": (True, False)} if args.request_log else {}),
                    **({"gateway_redis": (True, True)} if args.redis else {})}
        for logged, on_redis in gateways.values():
            started.append(start_server(["gateway", "--config", _gateway_config(mock, logged, on_redis), "--port", "0"],
                                        cpu=1, env=env))
        with bare_relay(mock.url) as (relay_url, relay_proc):
            rows = _rounds(args, {"bare_relay": (relay_url, relay_proc.pid),
                                  **{name: (g.url, g.proc.pid) for name, g in zip(gateways, started[1:], strict=True)}})
    finally:
        for server in reversed(started):
            server.stop()
        if redis is not None:
            redis.stop()
    figures = {key: {kind: round(statistics.median(r[key] for r in rows if r["stream"] == (kind == "stream")), 3)
                     for kind in ("stream", "nonstream") if any(r["stream"] == (kind == "stream") for r in rows)}
               for key in ("ratio", "ratio_log", "log_on_to_off", "ratio_redis", "redis_to_sqlite") if key in rows[0]}
    names = {"ratio": "ratio_to_bare_relay", "ratio_log": "ratio_to_bare_relay_with_request_log",
             "log_on_to_off": "request_log_on_to_off", "ratio_redis": "ratio_to_bare_relay_with_redis_state",
             "redis_to_sqlite": "redis_state_to_sqlite_state"}
    summary = {names[k]: v for k, v in figures.items()}
    if args.loop_delay:  # the worst round's P99 per gateway and kind: the promise holds in every round or not
        summary["loop_delay_p99_ms_worst_round"] = {
            name: {kind: max((r[name]["loop_delay_p99_ms"] or 0.0 for r in rows if r["stream"] == (kind == "stream")),
                             default=None) for kind in ("stream", "nonstream")}
            for name in gateways}
    out = {"bench": "gateway_paired", "seconds": args.seconds, "loop_delay": args.loop_delay,
           "concurrency": args.concurrency,
           "json_concurrency": args.json_concurrency, "request_log": args.request_log, "redis": args.redis,
           "mock": {"ttft_ms": TTFT_MS, "itl_ms": ITL_MS, "tokens": TOKENS}, "load_average": os.getloadavg(),
           **summary, "rounds": rows}
    path = (OUT.with_name("gateway_paired_redis.json") if args.redis
            else OUT.with_name("gateway_paired_requestlog.json") if args.request_log else OUT)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, indent=2) + "\n")
    print(json.dumps(summary))
    return 0


def _rounds(args: argparse.Namespace, servers: dict[str, tuple[str, int]],
            ratio: tuple[str, str] = ("gateway", "bare_relay")) -> list[dict]:
    """Streamed then non-streamed rounds; each row's ``ratio`` is ratio[0]'s req/CPU-s over ratio[1]'s."""
    rows = []
    kinds = {"stream": (True,), "nonstream": (False,)}.get(getattr(args, "only", None) or "", (True, False))
    for stream in kinds:
        for i in range(args.rounds):
            users = args.concurrency if stream else args.json_concurrency
            result = asyncio.run(_round(servers, stream, args.seconds, users, getattr(args, "loop_delay", False)))
            rate = {name: r["req_per_cpu_s"] for name, r in result.items()}
            row = {"stream": stream, "round": i, **result,
                   "ratio": round(rate[ratio[0]] / max(1e-9, rate[ratio[1]]), 3)}
            if "gateway_log" in rate:
                row["ratio_log"] = round(rate["gateway_log"] / max(1e-9, rate["bare_relay"]), 3)
                row["log_on_to_off"] = round(rate["gateway_log"] / max(1e-9, rate["gateway"]), 3)
            if "gateway_redis" in rate:
                row["ratio_redis"] = round(rate["gateway_redis"] / max(1e-9, rate["bare_relay"]), 3)
                row["redis_to_sqlite"] = round(rate["gateway_redis"] / max(1e-9, rate["gateway_log"]), 3)
            rows.append(row)
            print(json.dumps(row), flush=True)
    return rows


if __name__ == "__main__":
    raise SystemExit(main())
