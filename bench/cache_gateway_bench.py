"""The cache through the gateway: CPU per streamed MISS with the cache on vs off, and hit latency.

Layout as bench/gateway_bench.py (2 cores): the gateway pinned to CPU 1, the mock (TTFT 50 ms,
ITL 5 ms, 64 tokens) and this generator to CPU 0. One gateway serves two virtual models on the
same mock: ``cached`` (cache: semantic, built-in embedder) and ``plain`` (cache: false).

1. miss cost: closed loop, streamed, every prompt unique and cacheable (temperature 0), so every
   request is a lookup miss + upstream relay + capture + store; interleaved rounds of ``plain``
   and ``cached``; gateway CPU seconds (user+sys) per completed request, medians;
2. hit latency: ``--fill`` distinct questions stored first, then an open loop at ``--rate`` of
   exact repeats and rewordings (semantic hits), half streamed; latency from each request's
   intended start to its complete body (client side, the whole answer), and the gateway's own
   ``x-loadbench-overhead-ms``.

    .venv/bin/python -m bench.cache_gateway_bench [--seconds 5] [--rounds 3] [--rate 200] [--fill 2000]
Writes bench/out/cache-gateway.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
import psutil

from bench.gateway_bench import FOREIGN, ITL_MS, TOKENS, TTFT_MS, measure
from loadbench.procs import start_server

OUT = Path(__file__).resolve().parent / "out" / "cache-gateway.json"
BARS = {"miss_stream_req_per_cpu_s": 350, "hit_p99_ms": 3.0}
_WORDS = ("apple", "river", "engine", "garden", "python", "network", "matrix", "violin", "castle", "desert",
          "rocket", "harbor", "pencil", "thunder", "glacier", "market", "silver", "forest", "lantern", "bridge")


def question(i: int) -> str:
    rng = random.Random(i)
    return f"How does the {rng.choice(_WORDS)} {rng.choice(_WORDS)} affect the {rng.choice(_WORDS)} number {i}?"


def body(model: str, text: str, stream: bool) -> dict[str, Any]:
    b: dict[str, Any] = {"model": model, "temperature": 0, "max_tokens": TOKENS, "stream": stream,
                         "messages": [{"role": "user", "content": text}]}
    if stream:
        b["stream_options"] = {"include_usage": True}
    return b


class Tally:
    def __init__(self) -> None:
        self.ok = 0
        self.errors = 0
        self.latency_ms: list[float] = []  # from the intended start (includes the generator's lag)
        self.from_send_ms: list[float] = []  # from the moment the request was handed to aiohttp
        self.overhead_ms: list[float] = []
        self.outcomes: dict[str, int] = {}


async def send(s: aiohttp.ClientSession, url: str, b: dict[str, Any], intended_ns: int, tally: Tally) -> None:
    sent = time.perf_counter_ns()
    try:
        async with s.post(url + "/v1/chat/completions", json=b) as resp:
            data = await resp.read()
            end = time.perf_counter_ns()
            outcome = resp.headers.get("x-loadbench-cache", "none")
            tally.outcomes[outcome] = tally.outcomes.get(outcome, 0) + 1
            if resp.status == 200 and (b"[DONE]" in data[-64:] if b["stream"] else b'"choices"' in data):
                tally.ok += 1
                tally.latency_ms.append((end - intended_ns) / 1e6)
                tally.from_send_ms.append((end - sent) / 1e6)
                tally.overhead_ms.append(float(resp.headers.get("x-loadbench-overhead-ms", "nan")))
            else:
                tally.errors += 1
    except (aiohttp.ClientError, TimeoutError):
        tally.errors += 1


def session(limit: int) -> aiohttp.ClientSession:
    return aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=limit, limit_per_host=limit),
                                 timeout=aiohttp.ClientTimeout(total=60))


_counter = [10_000_000]  # unique prompt numbers for misses, never reused across rounds


async def misses(url: str, model: str, concurrency: int, seconds: float) -> Tally:
    tally = Tally()
    deadline = time.monotonic() + seconds
    async with session(concurrency) as s:
        async def user() -> None:
            while time.monotonic() < deadline and tally.ok + tally.errors < 50_000:
                _counter[0] += 1
                await send(s, url, body(model, question(_counter[0]), True), time.perf_counter_ns(), tally)
        await asyncio.gather(*(user() for _ in range(concurrency)))
    return tally


async def fill(url: str, n: int) -> Tally:
    tally = Tally()
    sem = asyncio.Semaphore(64)
    async with session(64) as s:
        async def one(i: int) -> None:
            async with sem:
                await send(s, url, body("cached", question(i), False), time.perf_counter_ns(), tally)
        await asyncio.wait_for(asyncio.gather(*(one(i) for i in range(n))), 300)
    return tally


async def sequential_hits(url: str, n_stored: int, count: int) -> Tally:
    """One request at a time: the hit's latency with no queueing anywhere."""
    tally = Tally()
    rng = random.Random(6)
    async with session(4) as s:
        for k in range(count):
            i = rng.randrange(n_stored)
            text = question(i) if k % 2 == 0 else question(i).lower().rstrip("?") + ", please?"
            await send(s, url, body("cached", text, k % 4 < 2), time.perf_counter_ns(), tally)
    return tally


async def hits(url: str, n_stored: int, rate: float, seconds: float) -> Tally:
    tally = Tally()
    n = int(rate * seconds)
    rng = random.Random(5)
    async with session(256) as s:
        await asyncio.gather(*(send(s, url, body("cached", question(i), False), time.perf_counter_ns(), Tally())
                               for i in range(32)))  # warm the pool
        start = time.perf_counter_ns() + 20_000_000
        tasks = []
        for k in range(n):
            i = rng.randrange(n_stored)
            text = question(i) if k % 2 == 0 else question(i).lower().rstrip("?") + ", please?"
            intended = start + round(k * 1e9 / rate)
            delay = (intended - time.perf_counter_ns()) / 1e9
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.ensure_future(send(s, url, body("cached", text, k % 4 < 2), intended, tally)))
        await asyncio.wait_for(asyncio.gather(*tasks), 120)
    return tally


def pct(values: list[float]) -> dict[str, float]:
    v = sorted(values)
    if not v:
        return {}
    return {"n": len(v), **{f"p{q}": round(v[min(len(v) - 1, int(q / 100 * len(v)))], 3) for q in (50, 90, 99)},
            "max": round(v[-1], 3)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--concurrency", type=int, default=160)
    ap.add_argument("--rate", type=float, default=200.0)
    ap.add_argument("--fill", type=int, default=2000)
    args = ap.parse_args(argv)
    os.sched_setaffinity(0, {0})
    cfg = Path(tempfile.mkdtemp(prefix="cachebench-")) / "gateway.yaml"
    mock = start_server(["mock", "--port", "0", "--ttft-ms", str(TTFT_MS), "--itl-ms", str(ITL_MS),
                         "--jitter-ms", "0", "--output-tokens", str(TOKENS)], cpu=0)
    cfg.write_text(f"""targets:
  - {{name: mock, url: {mock.base_url}, model: mock-model, max_connections: 1024}}
virtual_models:
  - {{name: cached, targets: [{{target: mock}}]}}
  - {{name: plain, targets: [{{target: mock}}], cache: false}}
cache: {{mode: semantic}}
""")
    gw = start_server(["gateway", "--config", str(cfg), "--port", "0"], cpu=1)
    proc = psutil.Process(gw.proc.pid)
    result: dict[str, Any] = {"bench": "cache-gateway", "mock": {"ttft_ms": TTFT_MS, "itl_ms": ITL_MS,
                                                                   "tokens": TOKENS}, "bars": BARS}
    try:
        rows = []
        for r in range(args.rounds):
            for model in (("plain", "cached") if r % 2 == 0 else ("cached", "plain")):
                asyncio.run(misses(gw.url, model, 16, 0.5))  # warm-up
                tally, server_cpu, gen_cpu, wall = measure(
                    proc, lambda m=model: misses(gw.url, m, args.concurrency, args.seconds))
                row = {"model": model, "completed": tally.ok, "errors": tally.errors, "outcomes": tally.outcomes,
                       "rps": round(tally.ok / wall, 1), "gateway_cpu_util": round(server_cpu / wall, 3),
                       "req_per_cpu_s": round(tally.ok / server_cpu, 1) if server_cpu else None,
                       "cpu1_used_by_others": round(FOREIGN[-1], 2), "generator_cpu_util": round(gen_cpu / wall, 3)}
                rows.append(row)
                print(json.dumps(row), flush=True)
        medians = {m: statistics.median(r["req_per_cpu_s"] for r in rows if r["model"] == m and r["req_per_cpu_s"])
                   for m in ("plain", "cached")}
        result["miss_cost"] = {"rounds": rows, "median_req_per_cpu_s": medians,
                               "cached_over_plain_cpu": round(medians["plain"] / medians["cached"], 3)}
        filled = asyncio.run(fill(gw.url, args.fill))
        seq = asyncio.run(sequential_hits(gw.url, args.fill, 1000))
        tally = asyncio.run(hits(gw.url, args.fill, args.rate, args.seconds))
        result["hits"] = {
            "filled": filled.ok,
            "sequential": {"outcomes": seq.outcomes, "errors": seq.errors,
                           "client_latency_ms": pct(seq.from_send_ms), "gateway_overhead_ms": pct(seq.overhead_ms)},
            "open_loop": {"rate": args.rate, "outcomes": tally.outcomes, "errors": tally.errors,
                          "client_latency_from_intended_ms": pct(tally.latency_ms),
                          "client_latency_from_send_ms": pct(tally.from_send_ms),
                          "gateway_overhead_ms": pct(tally.overhead_ms)}}
    finally:
        gw.stop()
        mock.stop()
    result["load_average_1m_at_end"] = os.getloadavg()[0]
    OUT.parent.mkdir(exist_ok=True)
    OUT.write_text(json.dumps(result, indent=2))
    print(json.dumps({k: v for k, v in result.items() if k != "miss_cost"} | {
        "miss_cost": {k: v for k, v in result["miss_cost"].items() if k != "rounds"}}, indent=2))
    print(f"wrote {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
