"""How many timed chunks one mock process emits, and how exact its timing stays while doing it.

Starts ``loadbench mock`` (one worker, pinned to CPU 0) and drives it from this process (pinned
to CPU 1, uvloop). Each level ``STREAMSxITL_MS`` sets the mock's itl through ``/mock/config``,
opens its connections, resets ``/mock/stats``, then keeps STREAMS concurrent streams of
``--tokens`` chunks each for ``--seconds`` (users start spread over ``--ramp-s``, as a load
generator's spawn would). Per level it reports chunks/s received, the mock's CPU use and chunks
per mock CPU-second, the client-side error of the first content chunk against ttft and of each
gap against itl (p50/p99/max, ms), and the mock's own count of chunks it wrote more than 2 ms
late (``late_fraction``, the ruler's accuracy). Client-side figures include the client's own
delays, so they are an upper bound on the mock's error.

    .venv/bin/python -m bench.mock_bench [--levels 200x10,1000x50,1000x10] [--seconds 8]
    .venv/bin/python -m bench.mock_bench --url http://127.0.0.1:8001 --pid PID   # a running mock
Writes bench/out/mock_bench.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import time
from pathlib import Path
from typing import Any

import aiohttp
import psutil

from loadbench.procs import start_server

TTFT_MS = 50.0
ITL_MS = 10.0
_MARK = b'"content":" tok'


async def _one_stream(session: aiohttp.ClientSession, url: str, tokens: int, itl_ms: float,
                      ttft_err: list[float], gaps: list[float]) -> int:
    """One stream; appends the first chunk's error vs ttft and each gap's error vs itl (ms)."""
    body = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "stream": True,
            "max_tokens": tokens}
    sent = time.perf_counter_ns()
    seen = 0
    last = 0
    async with session.post(url + "/v1/chat/completions", json=body) as resp:
        async for piece in resp.content.iter_any():
            now = time.perf_counter_ns()
            n = piece.count(_MARK)
            if not n:
                continue
            if seen == 0:
                ttft_err.append((now - sent) / 1e6 - TTFT_MS)
            else:
                gaps.append((now - last) / 1e6 - itl_ms)
            # chunks that arrived together: their gaps are unobservable, count them as 0 ms apart
            gaps.extend([-itl_ms] * (n - 1))
            seen += n
            last = now
    return seen


def _pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 3)


async def _level(url: str, server_proc: psutil.Process, streams: int, itl_ms: float, tokens: int,
                 seconds: float, ramp_s: float) -> dict[str, object]:
    ttft_err: list[float] = []
    gaps: list[float] = []
    conn = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=conn) as session:
        async with session.post(url + "/mock/config", json={"itl_ms": itl_ms}) as r:
            assert r.status == 200, await r.text()
        # Open every connection first: connecting is not part of the mock's timing.
        warm = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 1}
        await asyncio.gather(*(_read(session.post(url + "/v1/chat/completions", json=warm,
                                                  headers={"X-Mock-TTFT-Ms": "0"}))
                               for _ in range(streams)))
        await _read(session.delete(url + "/mock/stats"))
        deadline = time.monotonic() + ramp_s + seconds

        async def user(i: int) -> int:
            await asyncio.sleep(ramp_s * i / streams)
            total = 0
            while time.monotonic() < deadline:
                total += await _one_stream(session, url, tokens, itl_ms, ttft_err, gaps)
            return total

        cpu_before = sum(server_proc.cpu_times()[:2])
        wait_before = _runqueue_wait_s(server_proc.pid)
        started = time.perf_counter()
        chunks = sum(await asyncio.gather(*(user(i) for i in range(streams))))
        elapsed = time.perf_counter() - started
        cpu_s = sum(server_proc.cpu_times()[:2]) - cpu_before
        wait_s = _runqueue_wait_s(server_proc.pid) - wait_before
        async with session.get(url + "/mock/stats") as r:
            stats = await r.json()
    server_chunks = stats["chunks"]
    return {
        "streams": streams, "itl_ms": itl_ms, "chunks": chunks,
        "chunks_per_s": round(chunks / elapsed), "load_avg_1m": round(os.getloadavg()[0], 2),
        "mock_cpu_percent": round(100 * cpu_s / elapsed, 1),
        # time the mock was runnable but another process had its CPU: lateness it cannot help
        "mock_runqueue_wait_percent": round(100 * wait_s / elapsed, 1),
        "chunks_per_mock_cpu_s": round(server_chunks / cpu_s) if cpu_s > 0 else None,
        "late_fraction": round(stats["late_chunks"] / server_chunks, 4) if server_chunks else None,
        "ttft_err_ms": {"p50": _pct(ttft_err, 0.5), "p99": _pct(ttft_err, 0.99),
                        "max": _pct(ttft_err, 1.0), "n": len(ttft_err)},
        "itl_err_ms": {"p50": _pct(gaps, 0.5), "p99": _pct(gaps, 0.99), "max": _pct(gaps, 1.0),
                       "mean": round(statistics.fmean(gaps), 3) if gaps else None, "n": len(gaps)},
        "server_late_chunks_over_2ms": stats["late_chunks"],
        "server_max_lateness_ms": stats["max_lateness_ms"],
        "server_chunks": server_chunks,
    }


def _runqueue_wait_s(pid: int) -> float:
    """Seconds ``pid`` has spent runnable but waiting for a CPU (Linux schedstat; 0 elsewhere)."""
    try:
        with open(f"/proc/{pid}/schedstat") as f:
            return int(f.read().split()[1]) / 1e9
    except (OSError, IndexError, ValueError):
        return 0.0


async def _read(request: Any) -> None:
    async with request as resp:
        await resp.read()


def _levels(spec: str) -> list[tuple[int, float]]:
    """``"200x10,1000x50"`` -> [(200, 10.0), (1000, 50.0)] (streams x itl ms)."""
    out = []
    for item in spec.split(","):
        streams, _, itl = item.partition("x")
        out.append((int(streams), float(itl or ITL_MS)))
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--levels", default="200x10,1000x50,1000x10", help="STREAMSxITL_MS,...")
    parser.add_argument("--tokens", type=int, default=128)
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--ramp-s", type=float, default=0.1)
    parser.add_argument("--url", help="use this running mock instead of starting one")
    parser.add_argument("--pid", type=int, help="the running mock's pid (with --url)")
    args = parser.parse_args()
    with_taskset = os.path.exists("/usr/bin/taskset")
    server = None
    if args.url:
        url, pid = args.url, args.pid
    else:
        server = start_server(["mock", "--port", "0", "--ttft-ms", str(TTFT_MS)],
                              cpu=0 if with_taskset else None)
        url, pid = server.url, server.proc.pid
    if with_taskset:
        os.sched_setaffinity(0, {1})
    try:
        import uvloop

        proc = psutil.Process(pid)
        assert "python" in proc.name()  # taskset execs python, so the pid is the mock's
        levels = [uvloop.run(_level(url, proc, streams, itl, args.tokens, args.seconds, args.ramp_s))
                  for streams, itl in _levels(args.levels)]
    finally:
        if server is not None:
            server.stop()
    result = {"bench": "mock_bench", "ttft_ms": TTFT_MS, "tokens": args.tokens,
              "seconds": args.seconds, "ramp_s": args.ramp_s, "cpus": os.cpu_count(),
              "levels": levels}
    out = Path(__file__).parent / "out" / "mock_bench.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
