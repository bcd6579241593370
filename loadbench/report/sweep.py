"""Read a sweep folder. The shape (written by ``loadbench sweep``, read here)::

    <sweep>/sweep.json
    <sweep>/steps/<k>-<load>/        a normal run folder per step (summary.json, histograms.hlog, ...)

``sweep.json``, schema ``loadbench.sweep/1``::

    {"schema": "loadbench.sweep/1", "name": "demo-sweep",
     "load_unit": "users" | "rps",                  # what "load" counts (closed loop: users)
     "slo": {"ttft_ms": {"p99": 500}, "error_rate": 0.01},  # the profile's slo: block
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
from loadbench.metrics.records import stat_key, stat_label
from loadbench.metrics.slo import SloSpec
from loadbench.report.runfolder import RunFolder, load_run
from loadbench.report.tables import FAIL, MISSING, PASS, fmt, latency_cell, objective_value
from loadbench.report.validity import check_valid
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
    over_saturated: str | None = None  # the verdict that stopped this step early (metrics.saturation)


@dataclass(slots=True)
class Sweep:
    name: str
    load_unit: str
    slo: dict[str, Any]
    steps: list[SweepStep]
    capacity: dict[str, Any] | None
    raw: dict[str, Any]



def load_sweep(path: Path) -> Sweep:
    where = path / rd.SWEEP
    raw = rd.read_json(where)
    if not isinstance(raw, dict) or raw.get("schema") != rd.SWEEP_SCHEMA:
        got = raw.get("schema") if isinstance(raw, dict) else None
        raise InputError(f"{where}: schema {got!r} is not supported (this loadbench reads {rd.SWEEP_SCHEMA!r})")
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
        thr = run.summary.throughput
        steps.append(SweepStep(
            index=int(st.get("index", i)), load=load, run=run,
            throughput_rps=st.get("throughput_rps", thr.requests_per_s),
            goodput_rps=st.get("goodput_rps", thr.goodput_rps),
            output_tokens_per_s=st.get("output_tokens_per_s", thr.output_tokens_per_s),
            slo_met=st.get("slo_met"), over_saturated=st.get("over_saturated")))
    steps.sort(key=lambda s: s.load)
    return Sweep(name=str(raw.get("name") or path.name), load_unit=str(raw.get("load_unit") or "users"),
                 slo=dict(raw.get("slo") or {}), steps=steps, capacity=raw.get("capacity"), raw=raw)


def sweep_rows(sweep: Sweep, spec: SloSpec | None) -> tuple[list[str], list[list[str]]]:
    """The sweep table: the statistics the SLO judges (a P95 SLO shows P95), throughput and goodput."""
    judged = sweep_statistics(spec)
    headers = ["step", f"load ({sweep.load_unit})", "req/s", "goodput/s", "output tok/s",
               *[f"{m} {stat_label(st)} (ms)" for m, st in judged], "errors", "SLO", "valid"]
    rows = []
    for step in sweep.steps:
        s = step.run.summary
        rows.append([str(step.index), f"{step.load:g}", fmt(step.throughput_rps), fmt(step.goodput_rps),
                     fmt(step.output_tokens_per_s), *[latency_cell(s.latency(m), st) for m, st in judged],
                     fmt(s.requests.error_rate, "%"),
                     {True: f"{PASS} met", False: f"{FAIL} missed", None: MISSING}[step.slo_met]
                     + (" (over-saturated: stopped early)" if step.over_saturated else ""),
                     "yes" if not check_valid(s) else "no"])
    return headers, rows


def sweep_statistics(spec: SloSpec | None) -> list[tuple[str, str]]:
    """(metric, statistic) pairs the SLO judges; without an SLO the usual TTFT P50/P99, ITL P99, E2E P99."""
    if spec is not None and spec.latency:
        return [(m, stat_key(st)) for m, st, _ in spec.latency]
    return [("ttft", "p50"), ("ttft", "p99"), ("itl", "p99"), ("e2e", "p99")]


def capacity_text(sweep: Sweep) -> str:
    text = _capacity_text(sweep)
    knee = next((st for st in sweep.steps if st.over_saturated), None)
    if knee is not None:
        text += (f". Over-saturated at {knee.load:g} {sweep.load_unit}: the step was stopped early and the sweep "
                 f"there ({knee.over_saturated})")
    return text


def _capacity_text(sweep: Sweep) -> str:
    cap = sweep.capacity
    unit = sweep.load_unit
    if not cap or cap.get("load") is None:
        first = sweep.steps[0] if sweep.steps else None
        why = "; ".join(first.run.summary.slo.reasons) if first and first.run.summary.slo else ""
        return "Capacity: no step met the SLO" + (f" (first step: {why})" if why else "")
    load = float(cap["load"])
    figures = (f"{fmt(_opt(cap.get('throughput_rps')), 'requests/s')}, "
               f"goodput {fmt(_opt(cap.get('goodput_rps')), 'requests/s')}")
    if load >= max(st.load for st in sweep.steps) and all(st.slo_met for st in sweep.steps):
        return (f"The SLO never broke: capacity is at least {load:g} {unit}, the sweep's maximum "
                f"({figures}); raise sweep.max to find the limit")
    broke = next((st for st in sweep.steps if st.slo_met is False and not st.over_saturated), None)
    why = ""
    if broke is not None:
        why = f"; the SLO broke at {broke.load:g} {unit}"
        slo = broke.run.summary.slo
        failed = [o for o in slo.objectives if not o.passed] if slo else []
        if failed:
            why += ": " + "; ".join(f"{o.label} failed (measured {objective_value(o)})" for o in failed)
        elif slo and slo.reasons:
            why += ": " + "; ".join(slo.reasons)
    return f"Capacity: {load:g} {unit}, the highest load meeting the SLO ({figures}){why}"


def _opt(v: Any) -> float | None:
    return None if v is None else float(v)
