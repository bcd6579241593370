"""The load generator's own cost and accuracy: CPU-seconds per 1,000 streamed requests and per
100,000 chunks, at 200 and 1,000 concurrent streams on ONE worker core, against the mock.

The mock runs pinned to CPU 0, loadbench (master + one worker) pinned to CPU 1. Each level is one real
``loadbench run``; the worker's user+sys CPU time comes from its final report (summary
``generator.cpu_s``). Accuracy is read back against the mock's settings (TTFT, ITL, TPOT).

At 1,000 streams the mock's ITL is raised (default 50 ms) so the mock, on one core, can still keep its
schedule; the per-chunk cost is what matters there, and it is reported per 100,000 chunks.

    .venv/bin/python -m bench.generator_bench [--levels 200:10,1000:50] [--seconds 30] [--tokens 128]
Writes bench/out/generator.json.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from loadbench.metrics.client_delay import TTFT_P99_PROMISE_MS
from loadbench.procs import start_server

OUT = Path(__file__).resolve().parent / "out" / "generator.json"
TTFT_MS = 50.0


def run_level(streams: int, itl_ms: float, seconds: float, tokens: int, workdir: Path) -> dict[str, Any]:
    scenario = workdir / "scenario.yaml"
    scenario.write_text(f"name: bench\nprompt_tokens: 64\noutput_tokens: {tokens}\n")
    mock = start_server(["mock", "--port", "0", "--ttft-ms", str(TTFT_MS), "--itl-ms", str(itl_ms)], cpu=0)
    try:
        out = workdir / f"results-{streams}"
        ramp = max(2.0, streams / 200)
        cmd = ["taskset", "-c", "1", sys.executable, "-m", "loadbench", "run", "--target", mock.base_url,
               "--scenario", str(scenario), "--users", str(streams), "--ramp-up", str(ramp),
               "--duration", str(seconds), "--out", str(out), "--name", f"gen{streams}"]
        t0 = time.monotonic()
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds * 4 + 120)
        wall = time.monotonic() - t0
    finally:
        mock.stop()
    if proc.returncode not in (0, 3):
        raise SystemExit(f"loadbench run failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    run = next(p for p in out.iterdir() if p.is_dir())
    s = json.loads((run / "summary.json").read_text())
    cpu_s = s["generator"]["cpu_s"]
    finished = s["requests"]["total"] + s["requests"]["excluded"]
    chunks = s["metrics"]["itl_ms"]["count"] + s["requests"]["ok"]
    m = s["metrics"]
    return {
        "streams": streams, "mock_ttft_ms": TTFT_MS, "mock_itl_ms": itl_ms, "output_tokens": tokens,
        "duration_s": seconds, "wall_s": round(wall, 1), "requests_ok": s["requests"]["ok"],
        "chunks": chunks, "worker_cpu_s": cpu_s,
        "cpu_s_per_1000_requests": round(1000 * cpu_s / finished, 3) if finished else None,
        "cpu_ms_per_request": round(1000 * cpu_s / finished, 3) if finished else None,
        "cpu_s_per_100k_chunks": round(100_000 * cpu_s / chunks, 3) if chunks else None,
        "ttft_p50_error_ms": round(m["ttft_ms"]["p50"] - TTFT_MS, 3),
        "ttft_p99_error_ms": round(m["ttft_ms"]["p99"] - TTFT_MS, 3),
        "itl_p50_error_ms": round(m["itl_ms"]["p50"] - itl_ms, 3),
        "tpot_mean_error_ms": round(m["tpot_ms"]["mean"] - itl_ms, 3),
        "accuracy_holds": (abs(m["ttft_ms"]["p50"] - TTFT_MS) <= 2
                           and abs(m["ttft_ms"]["p99"] - TTFT_MS) <= TTFT_P99_PROMISE_MS
                           and abs(m["itl_ms"]["p50"] - itl_ms) <= 1 and abs(m["tpot_ms"]["mean"] - itl_ms) <= 0.5),
        "generator": s["generator"],
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--levels", default="200:10,1000:50", help="streams:itl_ms pairs")
    ap.add_argument("--seconds", type=float, default=30.0)
    ap.add_argument("--tokens", type=int, default=128)
    args = ap.parse_args(argv)
    results = []
    with tempfile.TemporaryDirectory(prefix="lb-genbench-") as tmp:
        for level in args.levels.split(","):
            streams, itl = level.split(":")
            r = run_level(int(streams), float(itl), args.seconds, args.tokens, Path(tmp))
            results.append(r)
            print(json.dumps({k: v for k, v in r.items() if k != "generator"}), flush=True)
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps({"bench": "generator", "levels": results}, indent=2) + "\n")
    print(f"wrote {OUT}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
