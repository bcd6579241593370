"""TTFT through the gateway with its state in SQLite and in Redis, measured at the same time.

Three gateways, each with a request log and an experiment (both arms the same mock, weight 50, so the
guardrails read their windows and the records are polled), are pinned to CPU 1 and loaded at once by
their own closed loop of ``--users`` streaming users: ``local`` (``state: {backend: local}``),
``redis`` (``state: {backend: redis}``) and ``redis_limits`` (Redis plus a per-key rate limit high
enough never to refuse: one Lua call per request on the request path). The mock (TTFT 50 ms, ITL 5 ms,
64 tokens), a real ``redis-server`` and this generator share CPU 0. TTFT is taken by the client (send
to the first content chunk); the figure is each gateway's P50 and P99 per round and the median over
``--rounds`` of the P50 differences to ``local``.

    .venv/bin/python -m bench.redis_state_bench [--seconds 10] [--users 10] [--rounds 3]

Writes bench/out/redis_state.json. Asserts nothing.
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

from bench.redis_server import RedisServer
from loadbench.metrics.quantile import nearest_rank
from loadbench.procs import ServerProcess, start_server

OUT = Path(__file__).resolve().parent / "out" / "redis_state.json"
TTFT_MS, ITL_MS, TOKENS = 50, 5, 64
WARM_S = 2.0
KEY = "bench-key"


def _config(mock: ServerProcess, folder: Path, redis: bool, limits: bool) -> str:
    cfg: dict[str, object] = {
        "targets": [{"name": "a", "url": mock.base_url, "model": "mock-model"},
                    {"name": "b", "url": mock.base_url, "model": "mock-model"}],
        "virtual_models": [{"name": "vm", "targets": [{"target": "a"}, {"target": "b"}],
                            "experiment": {"name": "e", "incumbent": "a", "candidate": "b", "weight": 50,
                                           "rollback": {"max_error_rate": 0.5, "interval_s": 1}}}],
        "request_log": {"path": str(folder / "requests.db")},
        "auth": {"api_keys_env": "BENCH_KEYS"},
    }
    if redis:
        cfg["state"] = {"backend": "redis", "url_env": "BENCH_REDIS_URL", "prefix": f"{folder.name}:"}
    if limits:
        cfg["rate_limits"] = {"per_key": {"requests_per_minute": 10_000_000}}
    path = folder / "gateway.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return str(path)


async def _round(urls: dict[str, str], seconds: float, users: int) -> dict[str, list[float]]:
    ttfts: dict[str, list[float]] = {name: [] for name in urls}
    errors = dict.fromkeys(urls, 0)
    body = {"model": "vm", "messages": [{"role": "user", "content": "hi"}], "stream": True, "max_tokens": TOKENS}
    headers = {"Authorization": f"Bearer {KEY}"}
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:

        async def user(name: str, url: str, start: float, end: float) -> None:
            while time.monotonic() < end:
                t0 = time.perf_counter_ns()
                first = 0
                try:
                    async with session.post(url + "/v1/chat/completions", json=body, headers=headers) as r:
                        async for chunk in r.content.iter_any():
                            if not first and b'"content":"' in chunk and b'"content":""' not in chunk:
                                first = time.perf_counter_ns()
                        ok = r.status == 200 and first > 0
                except aiohttp.ClientError:
                    ok = False
                if not ok:
                    errors[name] += 1
                elif t0 / 1e9 >= start:
                    ttfts[name].append((first - t0) / 1e6)

        begin = time.monotonic()
        measured_from = time.perf_counter_ns() / 1e9 + WARM_S
        await asyncio.gather(*(user(n, url, measured_from, begin + WARM_S + seconds)
                               for n, url in urls.items() for _ in range(users)))
    return {**ttfts, "errors": [float(errors[n]) for n in urls]}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seconds", type=float, default=10.0, help="measured length of each round")
    p.add_argument("--users", type=int, default=10, help="closed-loop streaming users per gateway")
    p.add_argument("--rounds", type=int, default=3)
    args = p.parse_args(argv)
    folder = Path(tempfile.mkdtemp(prefix="redisbench-"))
    (folder / "redis-server").mkdir()
    redis = RedisServer(folder / "redis-server")
    started: list[ServerProcess] = []
    rows: list[dict[str, object]] = []
    try:
        redis.start(cpu=0)
        env = {**os.environ, "BENCH_REDIS_URL": redis.url, "BENCH_KEYS": KEY}
        mock = start_server(["mock", "--port", "0", "--ttft-ms", str(TTFT_MS), "--itl-ms", str(ITL_MS),
                             "--output-tokens", str(TOKENS)], cpu=0)
        started.append(mock)
        urls: dict[str, str] = {}
        for name, on_redis, limits in (("local", False, False), ("redis", True, False), ("redis_limits", True, True)):
            own = folder / name
            own.mkdir()
            gw = start_server(["gateway", "--config", _config(mock, own, on_redis, limits), "--port", "0"],
                              cpu=1, env=env)
            started.append(gw)
            urls[name] = gw.url
        for i in range(args.rounds):
            result = asyncio.run(_round(urls, args.seconds, args.users))
            errors = dict(zip(urls, result.pop("errors"), strict=True))
            row: dict[str, object] = {"round": i}
            for name, values in result.items():
                row[name] = {"requests": len(values), "errors": int(errors[name]),
                             "ttft_p50_ms": round(nearest_rank(values, 50) or 0.0, 3),
                             "ttft_p99_ms": round(nearest_rank(values, 99) or 0.0, 3)}
            rows.append(row)
            print(json.dumps(row), flush=True)
    finally:
        for server in reversed(started):
            server.stop()
        redis.stop()

    def p50(row: dict[str, object], name: str) -> float:
        return float(row[name]["ttft_p50_ms"])  # type: ignore[index]

    summary = {f"{name}_minus_local_ttft_p50_ms":
               round(statistics.median(p50(r, name) - p50(r, "local") for r in rows), 3)
               for name in ("redis", "redis_limits")}
    out = {"bench": "redis_state", "seconds": args.seconds, "users": args.users, "load_average": os.getloadavg(),
           "mock": {"ttft_ms": TTFT_MS, "itl_ms": ITL_MS, "tokens": TOKENS}, **summary, "rounds": rows}
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(out, indent=2) + "\n")
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
