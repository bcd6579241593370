"""A trace replay's arrival curves, read from a run folder: what the trace asked for, what was sent.

    original   the trace's own arrival times (only when the trace file can still be read), unscaled
    offered    every arrival the replay scheduled (its intended start: sent, dropped or cut), after speed
    sent       every send (intended start + its lag behind the schedule)

Each curve is the sorted times, in seconds from its first arrival, so a cumulative count plotted
against them shows the shape: at ``speed: 2`` the offered curve is the original squeezed to half its
length, and the sent curve lies on the offered one when the generator kept the schedule.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from loadbench.config.trace import load_trace
from loadbench.errors import InputError
from loadbench.plan.load import LoadPlan
from loadbench.results import run_dir as rd


@dataclass(frozen=True, slots=True)
class ReplayCurves:
    speed: float
    original_s: tuple[float, ...]  # empty: the trace file is gone or changed
    offered_s: tuple[float, ...]
    sent_s: tuple[float, ...]
    lag_ms: tuple[float, ...]  # each send's lag behind its scheduled time, sorted


def replay_curves(run_path: Path, plan: LoadPlan) -> ReplayCurves | None:
    """The curves of a trace replay (None for any other run)."""
    ref = plan.trace
    if ref is None:
        return None
    start_ns = None
    offered: list[int] = []
    sent: list[int] = []
    lags_us: list[int] = []
    for s in rd.iter_samples(run_path):
        intended = int(s["intended_unix_ns"])
        offered.append(intended)
        if s.get("queue_us") is not None:
            sent.append(intended + int(s["queue_us"]) * 1000)
            lags_us.append(int(s["queue_us"]))
    if offered:
        start_ns = min(offered)
    original: tuple[float, ...] = ()
    try:
        trace = load_trace(ref.path, ref.format)
        original = tuple(r.offset_ms / 1000.0 for r in trace.requests)
    except InputError:
        pass  # the plot then shows the replay alone
    base = start_ns or 0
    return ReplayCurves(speed=ref.speed, original_s=original,
                        offered_s=tuple(sorted((t - base) / 1e9 for t in offered)),
                        sent_s=tuple(sorted((t - base) / 1e9 for t in sent)),
                        lag_ms=tuple(lag / 1000.0 for lag in sorted(lags_us)))
