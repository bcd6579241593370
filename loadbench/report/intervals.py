"""Per-interval figures: counters from timeline.jsonl joined with percentiles from the hlog.

Exported as ``intervals.csv`` (one row per interval; latencies in ms, empty where the interval has no
sample) and drawn by the over-time plot.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from loadbench.report.runfolder import RunFolder

INTERVAL_METRICS = ("ttft", "itl", "tpot", "e2e")
INTERVAL_PERCENTILES: tuple[tuple[str, float], ...] = (("p50", 50.0), ("p90", 90.0), ("p99", 99.0))


@dataclass(slots=True)
class IntervalRow:
    t_start_s: float
    t_end_s: float
    phase: str = "measure"
    stage: str | None = None  # the contract says an index; `loadbench run` writes a stage name
    users: float | None = None
    target_rps: float | None = None
    requests: int = 0
    ok: int = 0
    failed: int = 0
    output_tokens: int = 0
    latency_ms: dict[str, dict[str, float | None]] = field(default_factory=dict)  # metric -> pXX -> ms
    counts: dict[str, int] = field(default_factory=dict)

    @property
    def length_s(self) -> float:
        return max(1e-9, self.t_end_s - self.t_start_s)


def interval_rows(run: RunFolder) -> list[IntervalRow]:
    """One row per timeline interval (or per hlog interval when there is no timeline)."""
    rows: list[IntervalRow] = []
    for t in run.timeline:
        rows.append(IntervalRow(t_start_s=t.t_start_s, t_end_s=t.t_end_s, phase=t.phase, stage=t.stage, users=t.users,
                                target_rps=t.target_rps, requests=t.requests, ok=t.ok, failed=t.failed,
                                output_tokens=t.output_tokens))
    hlog = run.hlog.intervals
    if not rows:
        rows = [IntervalRow(iv.start_s, iv.end_s) for iv in hlog]
    for iv in hlog:
        row = _nearest(rows, iv.start_s)
        if row is None:
            continue
        for metric in INTERVAL_METRICS:
            dist = iv.dists.get(metric)
            if dist is None or dist.total == 0:
                continue
            row.counts[metric] = dist.total
            row.latency_ms[metric] = {name: dist.percentile_ms(p) for name, p in INTERVAL_PERCENTILES}
    return rows


def _nearest(rows: list[IntervalRow], start_s: float) -> IntervalRow | None:
    best = min(rows, key=lambda r: abs(r.t_start_s - start_s), default=None)
    if best is None or abs(best.t_start_s - start_s) > best.length_s / 2:
        return None
    return best


def csv_header() -> list[str]:
    head = ["t_start_s", "t_end_s", "phase", "stage", "users", "target_rps", "requests", "ok", "failed",
            "requests_per_s", "output_tokens_per_s"]
    for m in INTERVAL_METRICS:
        head.append(f"{m}_count")
        head += [f"{m}_{name}_ms" for name, _ in INTERVAL_PERCENTILES]
    return head


def write_intervals_csv(rows: list[IntervalRow], path: Path) -> Path:
    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(csv_header())
        for r in rows:
            line: list[Any] = [f"{r.t_start_s:.3f}", f"{r.t_end_s:.3f}", r.phase, _blank(r.stage),
                               _blank(r.users), _blank(r.target_rps), r.requests, r.ok, r.failed,
                               f"{r.ok / r.length_s:.3f}", f"{r.output_tokens / r.length_s:.1f}"]
            for m in INTERVAL_METRICS:
                line.append(r.counts.get(m, 0))
                lat = r.latency_ms.get(m, {})
                line += [_blank(lat.get(name)) for name, _ in INTERVAL_PERCENTILES]
            w.writerow(line)
    return path


def _blank(v: float | int | str | None) -> str:
    if v is None:
        return ""
    return f"{v:g}" if isinstance(v, float) else str(v)
