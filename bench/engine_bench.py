"""Against a real engine (llama.cpp's server, random-weight model, bench/engine.py): capacity sweeps for
two slot counts with the engine's own queue figures, the generator's CPU per request, and the
agreement of loadbench with the reference client on one open-loop schedule.

The engine runs pinned to the last CPU, loadbench on the others. The first run on a machine builds
the engine (minutes; the build time is reported from its record).

    .venv/bin/python -m bench.engine_bench [--slots 2,4] [--skip-agreement]
Writes bench/out/engine.json.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.engine import MODEL_NAME, EngineConfig, binary_path, ensure_built, start_engine
from bench.engine_agreement import agreement
from bench.engine_sweep import REPO, SWEEP_SCENARIO, sweep_engine

OUT = Path(__file__).resolve().parent / "out" / "engine.json"


def generator_cost(engine_url: str, users: int, seconds: float, workdir: Path, cpu: int | None) -> dict[str, Any]:
    """loadbench's worker CPU per request and per content chunk against the engine (closed loop)."""
    scenario = workdir / "cost-scenario.yaml"
    scenario.write_text(SWEEP_SCENARIO)
    out = workdir / "cost"
    pin = ["taskset", "-c", str(cpu)] if cpu is not None else []
    proc = subprocess.run([*pin, sys.executable, "-m", "loadbench", "run", "--target", engine_url, "--model",
                           MODEL_NAME, "--scenario", str(scenario), "--users", str(users), "--ramp-up", "0",
                           "--duration", str(seconds), "--workers", "1", "--no-calibrate", "--out", str(out)],
                          capture_output=True, text=True, timeout=seconds + 180, cwd=REPO)
    if proc.returncode not in (0, 3):
        raise RuntimeError(f"loadbench run exited {proc.returncode}: {proc.stdout[-2000:]}{proc.stderr[-2000:]}")
    run = next(p for p in out.iterdir() if p.is_dir())
    s = json.loads((run / "summary.json").read_text())
    cpu_s = s["generator"]["cpu_s"]
    finished = s["requests"]["total"] + s["requests"]["excluded"]
    chunks = s["metrics"]["itl_ms"]["count"] + s["requests"]["ok"]
    return {"users": users, "seconds": seconds, "requests_ok": s["requests"]["ok"], "chunks": chunks,
            "worker_cpu_s": cpu_s, "cpu_ms_per_request": round(1000 * cpu_s / finished, 3) if finished else None,
            "cpu_us_per_chunk": round(1e6 * cpu_s / chunks, 1) if chunks else None,
            "requests_per_s": s["throughput"]["requests_per_s"], "ttft_p50_ms": s["metrics"]["ttft_ms"]["p50"],
            "itl_p50_ms": s["metrics"]["itl_ms"]["p50"], "itl_p99_ms": s["metrics"]["itl_ms"]["p99"]}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--slots", default="2,4", help="slot counts to sweep")
    ap.add_argument("--skip-agreement", action="store_true")
    args = ap.parse_args(argv)
    t0 = time.monotonic()
    ensure_built()
    build = json.loads((binary_path().parent / "build.json").read_text())
    cpus = sorted(os.sched_getaffinity(0))
    engine_cpu, client_cpu = cpus[-1], (cpus[0] if len(cpus) > 1 else None)
    doc: dict[str, Any] = {"engine": {"build": build, "pinned_cpu": engine_cpu, "threads": 1},
                           "load_average_start": os.getloadavg(), "sweeps": []}
    with tempfile.TemporaryDirectory(prefix="engine-bench-") as tmp:
        work = Path(tmp)
        for slots in (int(x) for x in args.slots.split(",")):
            engine = start_engine(EngineConfig(slots=slots, cpu=engine_cpu), work / "logs")
            try:
                result = sweep_engine(engine, slots, work)
            finally:
                engine.stop()
            doc["sweeps"].append(result.to_json())
            print(f"slots {slots}: capacity {result.capacity} users; " + "; ".join(
                f"{s.users}: ttft p95 {s.ttft_p95_ms} ms, deferred max {s.queue.deferred_max:g}"
                for s in result.steps), flush=True)
        engine = start_engine(EngineConfig(slots=4, cpu=engine_cpu), work / "logs")
        try:
            doc["generator_cost"] = generator_cost(engine.base_url, 4, 15.0, work, client_cpu)
            print(f"generator cost: {doc['generator_cost']}", flush=True)
            if not args.skip_agreement:
                doc["agreement"] = agreement(engine.base_url, 3.0, 20.0, 3.0, work, client_cpu)
                print(f"agreement: {doc['agreement']}", flush=True)
        finally:
            engine.stop()
    doc["load_average_end"] = os.getloadavg()
    doc["wall_s"] = round(time.monotonic() - t0, 1)
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(doc, indent=2) + "\n")
    print(f"wrote {OUT}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
