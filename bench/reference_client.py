"""An independent reference client: N concurrent closed-loop streams against an OpenAI-compatible
endpoint (asyncio + uvloop + aiohttp), timed by loadbench's definitions, recorded in HDR histograms.

It shares no code with loadbench's worker (not its SSE decoder, chunk parser or recorder), so its
figures are the yardstick the generator matrix compares loadbench's against, on the same mock in the
same run. The definitions are the README's:

- ``ttft``: first content token - send time (closed loop: the intended start is the send time). The
  first token is the first event whose ``choices[0].delta.content`` (or ``text``) is non-empty.
- ``itl``: every gap between consecutive content events.
- every event completed by one socket read carries the time that read returned.

Only requests sent at or after ``--warmup`` seconds (by send time) and before ``--duration`` enter the
histograms, as in a loadbench run with ``--warmup``; requests in flight at the end are allowed to
finish. It measures its own event-loop lag (a 10 ms probe) so a disturbed reference is visible.

    python -m bench.reference_client --url http://127.0.0.1:PORT/v1 --streams 10 --duration 30 \
        --warmup 5 --max-tokens 64 [--out FILE]
Prints (or writes) one JSON object: counts and P50/P90/P99/max in ms of ttft, itl, e2e and loop lag.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import orjson
from hdrh.histogram import HdrHistogram

PERCENTILES = (("p50", 50.0), ("p90", 90.0), ("p99", 99.0))
LAG_PROBE_S = 0.01
MAX_REQUESTS_PER_STREAM = 100_000  # every loop bounded in count as well as time


def new_histogram() -> HdrHistogram:
    return HdrHistogram(1, 3_600_000_000, 3)  # 1 us .. 1 h, 3 significant digits (as loadbench)


def stats_ms(hist: HdrHistogram) -> dict[str, float | int | None]:
    count = hist.get_total_count()
    out: dict[str, float | int | None] = {"count": count}
    for key, p in PERCENTILES:
        out[key] = round(hist.get_value_at_percentile(p) / 1000.0, 4) if count else None
    out["max"] = round(hist.get_max_value() / 1000.0, 4) if count else None
    out["mean"] = round(hist.get_mean_value() / 1000.0, 4) if count else None
    return out


@dataclass(slots=True)
class Recorder:
    ttft: HdrHistogram = field(default_factory=new_histogram)
    itl: HdrHistogram = field(default_factory=new_histogram)
    e2e: HdrHistogram = field(default_factory=new_histogram)
    lag: HdrHistogram = field(default_factory=new_histogram)
    ok: int = 0
    failed: int = 0
    excluded: int = 0
    chunks: int = 0
    errors: dict[str, int] = field(default_factory=dict)


def content_of(event: bytes) -> bool:
    """Whether one SSE ``data:`` payload is a chunk that carries text."""
    try:
        obj = orjson.loads(event)
    except orjson.JSONDecodeError:
        return False
    choices = obj.get("choices") if isinstance(obj, dict) else None
    if not choices:
        return False
    first = choices[0]
    delta = first.get("delta")
    text = delta.get("content") if isinstance(delta, dict) else first.get("text")
    return bool(text)


def split_events(buf: bytearray) -> list[bytes]:
    """Take every complete SSE event out of ``buf`` and return their ``data`` payloads."""
    payloads = []
    while True:
        end = buf.find(b"\n\n")
        if end < 0:
            return payloads
        block = bytes(buf[:end])
        del buf[: end + 2]
        data = [line[5:].lstrip(b" ") for line in block.replace(b"\r\n", b"\n").split(b"\n")
                if line.startswith(b"data:")]
        if data:
            payloads.append(b"\n".join(data))


async def one_request(session: aiohttp.ClientSession, url: str, body: bytes) -> tuple[int, list[int], int]:
    """Send one streamed request; return (send ns, content event times ns, end ns)."""
    times: list[int] = []
    sent = time.perf_counter_ns()
    async with session.post(url, data=body, headers={"Content-Type": "application/json"}) as resp:
        if resp.status != 200:
            await resp.read()
            raise RuntimeError(f"HTTP {resp.status}")
        buf = bytearray()
        done = False
        async for data in resp.content.iter_any():
            now = time.perf_counter_ns()
            buf += data
            for payload in split_events(buf):
                if payload == b"[DONE]":
                    done = True
                elif content_of(payload):
                    times.append(now)
        if not done:
            raise RuntimeError("stream ended without [DONE]")
    return sent, times, time.perf_counter_ns()


async def stream_loop(session: aiohttp.ClientSession, url: str, body: bytes, rec: Recorder,
                      t0_ns: int, warmup_ns: int, end_ns: int) -> None:
    for _ in range(MAX_REQUESTS_PER_STREAM):
        if time.perf_counter_ns() >= end_ns:
            return
        try:
            sent, times, end = await one_request(session, url, body)
        except (TimeoutError, aiohttp.ClientError, RuntimeError) as exc:
            rec.failed += 1
            key = type(exc).__name__
            rec.errors[key] = rec.errors.get(key, 0) + 1
            await asyncio.sleep(0.1)
            continue
        if sent - t0_ns < warmup_ns or not times:
            rec.excluded += 1
            continue
        rec.ok += 1
        rec.chunks += len(times)
        rec.ttft.record_value(max(1, (times[0] - sent + 500) // 1000))
        rec.e2e.record_value(max(1, (end - sent + 500) // 1000))
        for a, b in itertools.pairwise(times):
            rec.itl.record_value(max(1, (b - a + 500) // 1000))


async def lag_probe(rec: Recorder, end_ns: int) -> None:
    while time.perf_counter_ns() < end_ns:
        t = time.perf_counter_ns()
        await asyncio.sleep(LAG_PROBE_S)
        rec.lag.record_value(max(1, (time.perf_counter_ns() - t) // 1000 - int(LAG_PROBE_S * 1e6)))


async def run(url: str, model: str, streams: int, duration_s: float, warmup_s: float, max_tokens: int,
              timeout_s: float) -> dict[str, Any]:
    body = orjson.dumps({"model": model, "stream": True, "max_tokens": max_tokens,
                         "messages": [{"role": "user", "content": "reference " * 16}]})
    rec = Recorder()
    connector = aiohttp.TCPConnector(limit=streams, force_close=False)
    timeout = aiohttp.ClientTimeout(total=timeout_s)
    t0 = time.perf_counter_ns()
    end = t0 + int(duration_s * 1e9)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        probe = asyncio.ensure_future(lag_probe(rec, end))
        await asyncio.gather(*(stream_loop(session, url.rstrip("/") + "/chat/completions", body, rec, t0,
                                           int(warmup_s * 1e9), end) for _ in range(streams)))
        probe.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await probe
    return {"client": "reference", "streams": streams, "duration_s": duration_s, "warmup_s": warmup_s,
            "max_tokens": max_tokens, "ok": rec.ok, "failed": rec.failed, "excluded": rec.excluded,
            "chunks": rec.chunks, "errors": rec.errors,
            "ttft_ms": stats_ms(rec.ttft), "itl_ms": stats_ms(rec.itl), "e2e_ms": stats_ms(rec.e2e),
            "loop_lag_ms": stats_ms(rec.lag)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--url", required=True, help="OpenAI base URL, e.g. http://127.0.0.1:8001/v1 (127.0.0.1 only)")
    ap.add_argument("--model", default="mock-model")
    ap.add_argument("--streams", type=int, default=10)
    ap.add_argument("--duration", type=float, default=30.0, help="seconds to keep sending")
    ap.add_argument("--warmup", type=float, default=5.0, help="requests sent before this are not recorded")
    ap.add_argument("--max-tokens", type=int, default=64)
    ap.add_argument("--timeout", type=float, default=120.0, help="per-request deadline (s)")
    ap.add_argument("--out", type=Path, help="write the JSON here instead of stdout")
    args = ap.parse_args(argv)
    if not args.url.startswith(("http://127.0.0.1", "http://localhost")):
        print("reference_client: --url must be on 127.0.0.1", file=sys.stderr)
        return 2
    import uvloop

    result = uvloop.run(run(args.url, args.model, max(1, args.streams), args.duration, args.warmup,
                            args.max_tokens, args.timeout))
    text = orjson.dumps(result, option=orjson.OPT_INDENT_2).decode()
    if args.out:
        args.out.write_text(text + "\n")
    else:
        print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
