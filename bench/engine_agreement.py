"""loadbench and the independent reference client on the same open-loop schedule against a real engine.

Both send the same request (one fixed chat prompt, prompt cache off, so every request costs the engine
the same prefill) at the same constant rate over the same window, interleaved: the reference's
arrivals sit half a period after loadbench's, so the engine sees one stream of requests and both
clients sample the same conditions. Each measures TTFT from the intended start and ITL between
content chunks its own way (the reference shares no measuring code with loadbench: its reading,
decoding and recording are ``bench/reference_client.py``'s); the difference of their percentiles is
loadbench's error plus sampling noise, which the promise bounds (P99 TTFT within 5 ms, P99 ITL within
2 ms, ``loadbench.metrics.client_delay``).

    .venv/bin/python -m bench.engine_agreement [--rps 3] [--seconds 20]   # builds the engine if needed
Writes bench/out/engine_agreement.json.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
import orjson

from bench.engine import MODEL_NAME, EngineConfig, start_engine
from bench.reference_client import Recorder, lag_probe, one_request, stats_ms
from loadbench.metrics.client_delay import ITL_P99_PROMISE_MS, TTFT_P99_PROMISE_MS

OUT = Path(__file__).resolve().parent / "out" / "engine_agreement.json"
REPO = Path(__file__).resolve().parent.parent
PROMPT = ("Tell me the story of the fox and the crow, the hare and the tortoise, the ant and the grasshopper, "
          "the lion and the mouse, and the wolf in sheep's clothing, one after another, with the moral of each "
          "told in a single plain sentence at the end of every story, so that a child could remember them.")
MAX_TOKENS = 32
MAX_ARRIVALS = 100_000


def request_body(model: str = MODEL_NAME) -> dict[str, Any]:
    return {"model": model, "stream": True, "max_tokens": MAX_TOKENS,
            "messages": [{"role": "user", "content": PROMPT}]}


async def open_loop(url: str, body: bytes, rps: float, start_unix_s: float, duration_s: float,
                    warmup_s: float, timeout_s: float) -> dict[str, Any]:
    """Arrival k at start + k / rps (wall clock), each sent at once on its own connection slot;
    TTFT counts from the arrival (the intended start), as loadbench's open loop does."""
    rec = Recorder()
    offset_ns = time.time_ns() - time.perf_counter_ns()  # unix = perf + offset
    start_ns = int(start_unix_s * 1e9) - offset_ns
    end_ns = start_ns + int(duration_s * 1e9)
    warm_ns = start_ns + int(warmup_s * 1e9)
    timeout = aiohttp.ClientTimeout(total=timeout_s)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=256), timeout=timeout) as session:
        probe = asyncio.ensure_future(lag_probe(rec, end_ns))

        async def one(intended_ns: int) -> None:
            try:
                _, times, end = await one_request(session, url.rstrip("/") + "/chat/completions", body)
            except (TimeoutError, aiohttp.ClientError, RuntimeError) as exc:
                rec.failed += 1
                rec.errors[type(exc).__name__] = rec.errors.get(type(exc).__name__, 0) + 1
                return
            if intended_ns < warm_ns or not times:
                rec.excluded += 1
                return
            rec.ok += 1
            rec.chunks += len(times)
            rec.ttft.record_value(max(1, (times[0] - intended_ns + 500) // 1000))
            rec.e2e.record_value(max(1, (end - intended_ns + 500) // 1000))
            for a, b in itertools.pairwise(times):
                rec.itl.record_value(max(1, (b - a + 500) // 1000))

        tasks = []
        for k in range(MAX_ARRIVALS):
            intended = start_ns + int(k * 1e9 / rps)
            if intended >= end_ns:
                break
            await asyncio.sleep(max(0.0, (intended - time.perf_counter_ns()) / 1e9))
            tasks.append(asyncio.ensure_future(one(intended)))
        await asyncio.gather(*tasks)
        probe.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await probe
    return {"client": "reference", "rps": rps, "ok": rec.ok, "failed": rec.failed, "excluded": rec.excluded,
            "errors": rec.errors, "ttft_ms": stats_ms(rec.ttft), "itl_ms": stats_ms(rec.itl),
            "e2e_ms": stats_ms(rec.e2e), "loop_lag_ms": stats_ms(rec.lag)}


def _delta(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else round(a - b, 3)


def agreement(engine_url: str, rps: float, seconds: float, warmup_s: float, workdir: Path,
              client_cpu: int | None = None) -> dict[str, Any]:
    """One loadbench open-loop run and the reference on the interleaved schedule; both figures and
    their differences."""
    data = workdir / "prompt.jsonl"
    data.write_text(json.dumps({"messages": [{"role": "user", "content": PROMPT}]}) + "\n")
    scenario = workdir / "scenario.yaml"
    scenario.write_text(f"name: agreement\napi: chat\ndataset: {{path: {data}, order: replay}}\n"
                        f"output_tokens: {MAX_TOKENS}\n")
    profile = workdir / "profile.yaml"
    profile.write_text(f"name: agreement\narrival: {{kind: constant, rps: {rps}}}\nduration_s: {seconds}\n"
                       f"warmup_s: {warmup_s}\nmax_in_flight: 64\n")
    out = workdir / "results"
    pin = ["taskset", "-c", str(client_cpu)] if client_cpu is not None else []
    run = subprocess.Popen([*pin, sys.executable, "-m", "loadbench", "run", "--target", engine_url, "--model",
                            MODEL_NAME, "--profile", str(profile), "--scenario", str(scenario), "--no-calibrate",
                            "--workers", "1", "--out", str(out)],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=REPO)
    try:
        deadline = time.monotonic() + 120
        start_s = None
        while start_s is None and time.monotonic() < deadline and run.poll() is None:
            status = next(out.glob("*/status.json"), None)
            start_s = json.loads(status.read_text()).get("load_start_unix_s") if status else None
            time.sleep(0.05)
        if start_s is None:
            raise RuntimeError("loadbench never started its load: " + (run.communicate(timeout=30)[0] or "")[-2000:])
        ref_out = workdir / "reference.json"
        ref = subprocess.run([*pin, sys.executable, "-m", "bench.engine_agreement", "reference", "--url", engine_url,
                              "--rps", str(rps), "--start-unix", str(start_s + 0.5 / rps), "--seconds",
                              str(seconds), "--warmup", str(warmup_s), "--out", str(ref_out)],
                             capture_output=True, text=True, cwd=REPO, timeout=seconds + 120)
        console, _ = run.communicate(timeout=seconds + 180)
    finally:
        if run.poll() is None:
            run.kill()
    if ref.returncode != 0:
        raise RuntimeError(f"the reference client failed: {ref.stderr[-2000:]}")
    if run.returncode != 0:
        raise RuntimeError(f"loadbench run exited {run.returncode}: {console[-3000:]}")
    reference = json.loads(ref_out.read_text())
    folder = next(p for p in out.iterdir() if p.is_dir())
    summary = json.loads((folder / "summary.json").read_text())
    lb = summary["metrics"]
    row: dict[str, Any] = {"rps_each": rps, "seconds": seconds, "warmup_s": warmup_s,
                           "loadbench_ok": summary["requests"]["ok"], "loadbench_failed": summary["requests"]["failed"],
                           "reference_ok": reference["ok"], "reference_failed": reference["failed"],
                           "client_delay_bound_ms": summary["generator"].get("client_delay_ms"),
                           "reference_loop_lag_p99_ms": reference["loop_lag_ms"]["p99"]}
    for metric in ("ttft", "itl", "e2e"):
        for p in ("p50", "p90", "p99"):
            ours, theirs = lb[f"{metric}_ms"][p], reference[f"{metric}_ms"][p]
            row[f"loadbench_{metric}_{p}_ms"] = ours
            row[f"reference_{metric}_{p}_ms"] = theirs
            row[f"d_{metric}_{p}_ms"] = _delta(ours, theirs)
    d_ttft, d_itl = row["d_ttft_p99_ms"], row["d_itl_p99_ms"]
    row["within_promise"] = (d_ttft is not None and d_itl is not None and abs(d_ttft) <= TTFT_P99_PROMISE_MS
                             and abs(d_itl) <= ITL_P99_PROMISE_MS)
    return row


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd")
    r = sub.add_parser("reference", help="the reference's open loop alone (started by the agreement run)")
    r.add_argument("--url", required=True)
    r.add_argument("--rps", type=float, required=True)
    r.add_argument("--start-unix", type=float, required=True)
    r.add_argument("--seconds", type=float, required=True)
    r.add_argument("--warmup", type=float, default=2.0)
    r.add_argument("--out", type=Path, required=True)
    ap.add_argument("--rps", type=float, default=3.0, help="each client's rate (the engine sees twice this)")
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--warmup", type=float, default=3.0)
    ap.add_argument("--slots", type=int, default=4)
    args = ap.parse_args(argv)
    if args.cmd == "reference":
        if not args.url.startswith("http://127.0.0.1"):
            print("engine_agreement: --url must be on 127.0.0.1", file=sys.stderr)
            return 2
        import uvloop

        result = uvloop.run(open_loop(args.url, orjson.dumps(request_body()), args.rps, args.start_unix,
                                      args.seconds, args.warmup, timeout_s=60.0))
        args.out.write_text(json.dumps(result, indent=2) + "\n")
        return 0
    cpus = sorted(os.sched_getaffinity(0))
    with tempfile.TemporaryDirectory(prefix="engine-agreement-") as tmp:
        engine = start_engine(EngineConfig(slots=args.slots, cpu=cpus[-1]), Path(tmp) / "logs")
        try:
            row = agreement(engine.base_url, args.rps, args.seconds, args.warmup, Path(tmp),
                            client_cpu=cpus[0] if len(cpus) > 1 else None)
        finally:
            engine.stop()
    row["load_average"] = os.getloadavg()
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(row, indent=2) + "\n")
    print(json.dumps(row, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
