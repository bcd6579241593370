"""The gateway's CPU cost against the bare relay, measured at the same time on the same core.

``bench/gateway_bench.py`` measures the two servers one after the other. On a shared machine the
other jobs on the core differ from round to round, and requests per CPU-second move with them
(a busier core makes a server handle more requests per wake-up: measured 790 vs 960 streamed
req/CPU-s for the same gateway at 5 % and 50 % foreign load). Here the gateway and the bare relay
(``bench/bare_relay.py``) are both pinned to CPU 1 and loaded at once, each by its own closed loop
of ``--concurrency`` users, so whatever else runs there costs both alike. The mock (TTFT 50 ms,
ITL 5 ms, 64 tokens) and this generator share CPU 0. Streamed then non-streamed, ``--rounds``
each; the figure is the median over rounds of (gateway req/CPU-s) / (bare relay req/CPU-s).

    .venv/bin/python -m bench.gateway_paired [--seconds 15] [--concurrency 40] [--json-concurrency 200] [--rounds 3]
                                             [--request-log]
``--request-log`` gives the gateway a request log (SQLite in a temporary folder), as a deployment that
records its traffic runs it. Writes bench/out/gateway_paired.json (``gateway_paired_requestlog.json``
with ``--request-log``). Asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
from pathlib import Path

import aiohttp
import psutil
import yaml

from bench.gateway_bench import bare_relay
from loadbench.procs import ServerProcess, start_server

OUT = Path(__file__).resolve().parent / "out" / "gateway_paired.json"
TTFT_MS, ITL_MS, TOKENS = 50, 5, 64
WARM_S = 3.0


def _gateway_config(mock: ServerProcess, request_log: bool) -> str:
    cfg: dict[str, object] = {"targets": [{"name": "mock", "url": mock.base_url, "model": "mock-model"}],
                              "virtual_models": [{"name": "vm", "targets": [{"target": "mock"}]}]}
    folder = Path(tempfile.mkdtemp(prefix="gwpaired-"))
    if request_log:
        cfg["request_log"] = {"path": str(folder / "requests.db")}
    path = folder / "gateway.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return str(path)


def _cpu_s(pid: int) -> float:
    times = psutil.Process(pid).cpu_times()
    return float(times.user + times.system)


async def _round(servers: dict[str, tuple[str, int]], stream: bool, seconds: float, users: int) -> dict[str, dict]:
    """``servers``: name -> (url, pid)."""
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
        cpu0 = {n: _cpu_s(pid) for n, (_, pid) in servers.items()}
        end = time.monotonic() + seconds
        await asyncio.gather(*(user(n, url, end) for n, (url, _) in servers.items() for _ in range(users)))
        cpu1 = {n: _cpu_s(pid) for n, (_, pid) in servers.items()}
    return {n: {"completed": done[n], "errors": errors[n], "cpu_s": round(cpu1[n] - cpu0[n], 3),
                "req_per_cpu_s": round(done[n] / max(1e-9, cpu1[n] - cpu0[n]), 1)} for n in servers}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seconds", type=float, default=15.0, help="measured length of each round")
    p.add_argument("--concurrency", type=int, default=40, help="closed-loop users per server, streamed")
    p.add_argument("--json-concurrency", type=int, default=200,
                   help="closed-loop users per server, non-streamed (cheaper requests: more of them)")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--request-log", action="store_true", help="the gateway writes a request log")
    args = p.parse_args(argv)
    started: list[ServerProcess] = []
    rows: list[dict] = []
    try:
        mock = start_server(["mock", "--port", "0", "--ttft-ms", str(TTFT_MS), "--itl-ms", str(ITL_MS),
                             "--output-tokens", str(TOKENS)], cpu=0)
        started.append(mock)
        gateway = start_server(["gateway", "--config", _gateway_config(mock, args.request_log), "--port", "0"], cpu=1)
        started.append(gateway)
        with bare_relay(mock.url) as (relay_url, relay_proc):
            rows = _rounds(args, {"bare_relay": (relay_url, relay_proc.pid),
                                  "gateway": (gateway.url, gateway.proc.pid)})
    finally:
        for server in reversed(started):
            server.stop()
    summary = {kind: round(statistics.median(r["ratio"] for r in rows if r["stream"] == (kind == "stream")), 3)
               for kind in ("stream", "nonstream")}
    out = {"bench": "gateway_paired", "seconds": args.seconds, "concurrency": args.concurrency,
           "json_concurrency": args.json_concurrency, "request_log": args.request_log,
           "mock": {"ttft_ms": TTFT_MS, "itl_ms": ITL_MS, "tokens": TOKENS},
           "ratio_to_bare_relay": summary, "rounds": rows}
    path = OUT.with_name("gateway_paired_requestlog.json") if args.request_log else OUT
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, indent=2) + "\n")
    print(json.dumps({"ratio_to_bare_relay": summary}))
    return 0


def _rounds(args: argparse.Namespace, servers: dict[str, tuple[str, int]]) -> list[dict]:
    rows = []
    for stream in (True, False):
        for i in range(args.rounds):
            users = args.concurrency if stream else args.json_concurrency
            result = asyncio.run(_round(servers, stream, args.seconds, users))
            ratio = result["gateway"]["req_per_cpu_s"] / max(1e-9, result["bare_relay"]["req_per_cpu_s"])
            row = {"stream": stream, "round": i, **result, "ratio": round(ratio, 3)}
            rows.append(row)
            print(json.dumps(row), flush=True)
    return rows


if __name__ == "__main__":
    raise SystemExit(main())
