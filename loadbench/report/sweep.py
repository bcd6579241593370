"""Read a sweep folder. The shape (written by ``loadbench sweep``, read here)::

    <sweep>/sweep.json
    <sweep>/steps/<k>-<load>/        a normal run folder per step (summary.json, histograms.hlog, ...)

``sweep.json``, schema ``loadbench.sweep/1``::

    {"schema": "loadbench.sweep/1", "name": "demo-sweep",
     "load_unit": "users" | "rps",                  # what "load" counts (closed loop: users)
     "slo": {"ttft_ms.p99": 500, "itl_ms.p99": 50}, # the SLO goodput is judged by (free-form keys)
     "steps": [{"index": 0, "load": 10, "dir": "steps/0-10",
                "throughput_rps": 19.8, "output_tokens_per_s": 1260.0,
                "goodput_rps": 19.5, "slo_met": true, "valid": true}, ...],
     "capacity": {"load": 40, "throughput_rps": 75.1, "goodput_rps": 74.0} | null}

``capacity`` is the highest load whose step met the SLO (null when none did). A step's ``dir`` is
relative to the sweep folder; latencies are read from the step's own summary.json.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from loadbench.errors import InputError
from loadbench.report.runfolder import SWEEP_SCHEMA, RunFolder, load_run
from loadbench.results import run_dir as rd


@dataclass(slots=True)
class SweepStep:
    index: int
    load: float
    run: RunFolder
    throughput_rps: float | None
    goodput_rps: float | None
    output_tokens_per_s: float | None
    slo_met: bool | None


@dataclass(slots=True)
class Sweep:
    name: str
    load_unit: str
    slo: dict[str, Any]
    steps: list[SweepStep]
    capacity: dict[str, Any] | None
    raw: dict[str, Any]

    def plot_steps(self) -> list[dict[str, Any]]:
        out = []
        for s in self.steps:
            metrics = s.run.summary.get("metrics") or {}
            out.append({"load": s.load, "throughput_rps": s.throughput_rps, "goodput_rps": s.goodput_rps,
                        "slo_met": s.slo_met,
                        "latency": {m: metrics.get(f"{m}_ms") or {} for m in ("ttft", "itl", "tpot", "e2e")}})
        return out


def load_sweep(path: Path) -> Sweep:
    raw = rd.read_json(path / "sweep.json")
    where = path / "sweep.json"
    if not isinstance(raw, dict) or raw.get("schema") != SWEEP_SCHEMA:
        got = raw.get("schema") if isinstance(raw, dict) else None
        raise InputError(f"{where}: schema {got!r} is not supported (this loadbench reads {SWEEP_SCHEMA!r})")
    steps_raw = raw.get("steps")
    if not isinstance(steps_raw, list) or not steps_raw:
        raise InputError(f"{where}: no steps")
    steps: list[SweepStep] = []
    for i, st in enumerate(steps_raw):
        try:
            run = load_run(path / str(st["dir"]))
            load = float(st["load"])
        except (KeyError, TypeError, ValueError) as exc:
            raise InputError(f"{where}: steps[{i}] needs 'dir' and a numeric 'load' ({exc})") from exc
        thr = run.summary.get("throughput") or {}
        steps.append(SweepStep(
            index=int(st.get("index", i)), load=load, run=run,
            throughput_rps=st.get("throughput_rps", thr.get("requests_per_s")),
            goodput_rps=st.get("goodput_rps", thr.get("goodput_rps")),
            output_tokens_per_s=st.get("output_tokens_per_s", thr.get("output_tokens_per_s")),
            slo_met=st.get("slo_met")))
    steps.sort(key=lambda s: s.load)
    return Sweep(name=str(raw.get("name") or path.name), load_unit=str(raw.get("load_unit") or "users"),
                 slo=dict(raw.get("slo") or {}), steps=steps, capacity=raw.get("capacity"), raw=raw)
