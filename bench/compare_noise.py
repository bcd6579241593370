"""False alarms of ``loadbench compare`` between runs of identical settings.

Runs ``--baseline-runs`` + ``--comparisons`` short ``loadbench run``s against one embedded mock
(same profile, same seed, one worker), then compares each of the last ``--comparisons`` runs with the
default gates against (a) a baseline of the first ``--baseline-runs`` runs and (b) the first run alone.
A false alarm is a comparison that would exit 1 (a gate failed) although nothing changed; figures
called significant (with one baseline run: "beyond within-run noise") are counted too, and so are
runs not valid to judge (exit 3) with their reasons.

    .venv/bin/python -m bench.compare_noise [--baseline-runs 3] [--comparisons 10] [--seconds 8] [--users 8]
Writes bench/out/compare_noise.json.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

OUT = Path(__file__).resolve().parent / "out" / "compare_noise.json"
GATES = ("ttft.p50 > +10%", "ttft.p95 > +10%", "itl.p99 > +10%", "e2e.p95 > +10%", "error_rate > 1%",
         "throughput.rps < -10%")


def _run(out: Path, name: str, seconds: float, users: int) -> Path:
    cmd = [sys.executable, "-m", "loadbench", "run", "--name", name, "--duration", str(seconds), "--users",
           str(users), "--ramp-up", "1", "--workers", "1", "--out", str(out)]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 120)
    if r.returncode != 0:
        raise RuntimeError(f"{name}: loadbench run exited {r.returncode}: {r.stderr[-2000:]}")
    return next(p for p in out.iterdir() if p.name.endswith(f"-{name}"))


def _compare(baselines: list[Path], run: Path) -> dict[str, Any]:
    from loadbench.report.compare import compare_runs
    from loadbench.report.gates import parse_exprs

    c = compare_runs(baselines, run, parse_exprs(GATES))
    return {"run": run.name, "exit": 3 if not c.valid else (1 if not c.verdict.passed else 0),
            "invalid": {k: v for k, v in c.invalid.items() if v},
            "gates_failed": [r.expr.text for r in c.verdict.failures],
            "flagged": [d.figure.key for d in c.deltas if d.significant]}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--baseline-runs", type=int, default=3)
    ap.add_argument("--comparisons", type=int, default=10)
    ap.add_argument("--seconds", type=float, default=8.0)
    ap.add_argument("--users", type=int, default=8)
    ap.add_argument("--workdir", help="keep the runs here (default: a temporary folder)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="loadbench-noise-") as tmp:
        root = Path(args.workdir or tmp)
        runs = [_run(root / "runs", f"r{i}", args.seconds, args.users)
                for i in range(args.baseline_runs + args.comparisons)]
        bases, news = runs[: args.baseline_runs], runs[args.baseline_runs:]
        several = [_compare(bases, r) for r in news]
        single = [_compare(bases[:1], r) for r in news]
    result = {
        "conditions": {"cpus": os.cpu_count(), "baseline_runs": args.baseline_runs, "comparisons": args.comparisons,
                       "seconds": args.seconds, "users": args.users, "gates": list(GATES),
                       "target": "embedded mock (default settings), one worker, unpinned"},
        "several_baseline": {"false_alarms": sum(c["exit"] == 1 for c in several),
                             "gate_failures_ignoring_validity": sum(bool(c["gates_failed"]) for c in several),
                             "figures_flagged": sum(len(c["flagged"]) for c in several), "comparisons": several},
        "single_baseline": {"false_alarms": sum(c["exit"] == 1 for c in single),
                            "gate_failures_ignoring_validity": sum(bool(c["gates_failed"]) for c in single),
                            "figures_flagged": sum(len(c["flagged"]) for c in single), "comparisons": single},
    }
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: {kk: vv for kk, vv in v.items() if kk != "comparisons"} if isinstance(v, dict) else v
                      for k, v in result.items()}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
