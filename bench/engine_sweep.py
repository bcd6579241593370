"""A capacity sweep against the real engine, with the engine's own queue figures beside each step.

``loadbench sweep`` steps closed-loop users 1, 2, ... up to two above the engine's slots under a TTFT
SLO. While the users fit in the slots, each request is prefilled at once (batched with the streams
already decoding); one user more and a request waits in the engine for a slot to free, a whole
reply's time, which the TTFT P95 shows. The engine's ``requests_deferred`` gauge, scraped during each
step, shows that queue from the server's side. Shared by tests/real/test_sweep_real.py and
bench/engine_bench.py.
"""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.engine import MODEL_NAME, QueueFigures, QueueWatch
from loadbench.procs import ServerProcess

REPO = Path(__file__).resolve().parent.parent
PROMPT_TOKENS = 32
OUTPUT_TOKENS = 128
HOLD_S = 6
# Between a prefill batched with decoding streams (tens of ms on one core) and the wait for a slot
# (a share of a whole reply: OUTPUT_TOKENS decode steps of all the slots' streams).
TTFT_P95_SLO_MS = 250
SWEEP_SCENARIO = f"name: engine-sweep\napi: chat\nprompt_tokens: {PROMPT_TOKENS}\noutput_tokens: {OUTPUT_TOKENS}\n"


def sweep_profile(slots: int, hold_s: int = HOLD_S, ttft_p95_ms: float = TTFT_P95_SLO_MS) -> str:
    return (f"name: engine-sweep-{slots}\nsweep: {{variable: users, start: 1, step: 1, max: {slots + 2}, "
            f"hold_s: {hold_s}}}\nramp_up_s: 0\nwarmup_s: 1\nslo:\n  ttft_ms: {{p95: {ttft_p95_ms}}}\n"
            "  error_rate: 0.01\n")


@dataclass(frozen=True, slots=True)
class SweepStep:
    users: int
    slo_met: bool
    requests_ok: int
    requests_failed: int
    ttft_p50_ms: float | None
    ttft_p95_ms: float | None
    itl_p50_ms: float | None
    itl_p99_ms: float | None
    queue: QueueFigures  # the engine's own gauges during the step

    def to_json(self) -> dict[str, Any]:
        return {"users": self.users, "slo_met": self.slo_met, "requests_ok": self.requests_ok,
                "requests_failed": self.requests_failed, "ttft_p50_ms": self.ttft_p50_ms,
                "ttft_p95_ms": self.ttft_p95_ms, "itl_p50_ms": self.itl_p50_ms, "itl_p99_ms": self.itl_p99_ms,
                "engine": self.queue.to_json()}


@dataclass(frozen=True, slots=True)
class SweepResult:
    slots: int
    exit_code: int
    capacity: int | None
    steps: tuple[SweepStep, ...]
    console: str

    def to_json(self) -> dict[str, Any]:
        return {"slots": self.slots, "exit_code": self.exit_code, "capacity_users": self.capacity,
                "ttft_p95_slo_ms": TTFT_P95_SLO_MS, "prompt_tokens": PROMPT_TOKENS, "output_tokens": OUTPUT_TOKENS,
                "steps": [s.to_json() for s in self.steps]}


def _read(path: Path) -> dict[str, Any]:
    return dict(json.loads(path.read_text()))


def sweep_engine(engine: ServerProcess, slots: int, workdir: Path, timeout_s: float = 280.0) -> SweepResult:
    """Run ``loadbench sweep`` against ``engine`` (started with ``slots``) while scraping its queue."""
    profile = workdir / f"sweep-{slots}.yaml"
    profile.write_text(sweep_profile(slots))
    scenario = workdir / "sweep-scenario.yaml"
    scenario.write_text(SWEEP_SCENARIO)
    out = workdir / f"sweep-{slots}"
    with QueueWatch(engine.url) as watch:
        proc = subprocess.run([sys.executable, "-m", "loadbench", "sweep", "--profile", str(profile), "--scenario",
                               str(scenario), "--target", engine.base_url, "--model", MODEL_NAME, "--out", str(out)],
                              capture_output=True, text=True, timeout=timeout_s, cwd=REPO)
    folders = [p for p in out.iterdir() if p.is_dir()] if out.exists() else []
    if not folders:
        return SweepResult(slots, proc.returncode, None, (), proc.stdout + proc.stderr)
    doc = _read(folders[0] / "sweep.json")
    steps = []
    for st in doc["steps"]:
        step_dir = folders[0] / st["dir"]
        status, summary = _read(step_dir / "status.json"), _read(step_dir / "summary.json")
        m = summary["metrics"]
        steps.append(SweepStep(users=int(st["load"]), slo_met=bool(st["slo_met"]),
                               requests_ok=summary["requests"]["ok"], requests_failed=summary["requests"]["failed"],
                               ttft_p50_ms=m["ttft_ms"]["p50"], ttft_p95_ms=m["ttft_ms"]["p95"],
                               itl_p50_ms=m["itl_ms"]["p50"], itl_p99_ms=m["itl_ms"]["p99"],
                               queue=watch.between(status["load_start_unix_s"], status["end_unix_s"])))
    capacity = (doc.get("capacity") or {}).get("load")
    return SweepResult(slots, proc.returncode, None if capacity is None else int(capacity), tuple(steps),
                       proc.stdout + proc.stderr)
