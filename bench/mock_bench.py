"""How many timed chunks one mock process emits, and how exact its timing stays while doing it.

Starts ``loadbench mock`` (one worker, pinned to CPU 0) and drives it from this process (pinned
to CPU 1, uvloop) with ``--streams`` concurrent streams of ``--tokens`` chunks each, for at most
``--seconds``. Reports chunks/s received and, per concurrency level, the client-side error of
the first content chunk against ttft and of each gap against itl (p50/p99/max, ms), plus the
mock's own count of chunks it wrote more than 2 ms late. Client-side figures include the
client's own delays, so they are an upper bound on the mock's error.

    .venv/bin/python -m bench.mock_bench [--streams 50,200,400] [--seconds 6]
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

import aiohttp
import psutil

from loadbench.procs import start_server

TTFT_MS = 50.0
ITL_MS = 10.0
_MARK = b'"content":" tok'


async def _one_stream(session: aiohttp.ClientSession, url: str, tokens: int,
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
                gaps.append((now - last) / 1e6 - ITL_MS)
            # chunks that arrived together: their gaps are unobservable, count them as 0 ms apart
            gaps.extend([-ITL_MS] * (n - 1))
            seen += n
            last = now
    return seen


def _pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 3)


async def _level(url: str, server_proc: psutil.Process, streams: int, tokens: int,
                 seconds: float) -> dict[str, object]:
    ttft_err: list[float] = []
    gaps: list[float] = []
    deadline = time.monotonic() + seconds
    chunks = 0
    conn = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=conn) as session:
        async with session.delete(url + "/mock/stats") as r:
            await r.read()

        async def user() -> int:
            # The first stream of each user opens its connection: not part of the mock's timing.
            await _one_stream(session, url, tokens, [], [])
            total = 0
            while time.monotonic() < deadline:
                total += await _one_stream(session, url, tokens, ttft_err, gaps)
            return total

        cpu_before = sum(server_proc.cpu_times()[:2])
        started = time.perf_counter()
        chunks = sum(await asyncio.gather(*(user() for _ in range(streams))))
        elapsed = time.perf_counter() - started
        cpu_s = sum(server_proc.cpu_times()[:2]) - cpu_before
        async with session.get(url + "/mock/stats") as r:
            stats = await r.json()
    return {
        "streams": streams, "chunks": chunks, "chunks_per_s": round(chunks / elapsed),
        "mock_cpu_percent": round(100 * cpu_s / elapsed, 1),
        "chunks_per_mock_cpu_s": round(stats["chunks"] / cpu_s) if cpu_s > 0 else None,
        "ttft_err_ms": {"p50": _pct(ttft_err, 0.5), "p99": _pct(ttft_err, 0.99),
                        "max": _pct(ttft_err, 1.0), "n": len(ttft_err)},
        "itl_err_ms": {"p50": _pct(gaps, 0.5), "p99": _pct(gaps, 0.99), "max": _pct(gaps, 1.0),
                       "mean": round(statistics.fmean(gaps), 3) if gaps else None, "n": len(gaps)},
        "server_late_chunks_over_2ms": stats["late_chunks"],
        "server_max_lateness_ms": stats["max_lateness_ms"],
        "server_chunks": stats["chunks"],
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--streams", default="50,200,400")
    parser.add_argument("--tokens", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=6.0)
    args = parser.parse_args()
    with_taskset = os.path.exists("/usr/bin/taskset")
    server = start_server(["mock", "--port", "0", "--ttft-ms", str(TTFT_MS), "--itl-ms", str(ITL_MS)],
                          cpu=0 if with_taskset else None)
    if with_taskset:
        os.sched_setaffinity(0, {1})
    try:
        import uvloop

        proc = psutil.Process(server.proc.pid)
        if with_taskset:  # taskset execs python, so the pid is the mock's
            assert "python" in proc.name()
        levels = [uvloop.run(_level(server.url, proc, int(s), args.tokens, args.seconds))
                  for s in args.streams.split(",")]
    finally:
        server.stop()
    result = {"bench": "mock_bench", "ttft_ms": TTFT_MS, "itl_ms": ITL_MS, "tokens": args.tokens,
              "cpus": os.cpu_count(), "levels": levels}
    out = Path(__file__).parent / "out" / "mock_bench.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
