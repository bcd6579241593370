"""Sweeps: which load a sweep names as its capacity. (The SLO verdict is ``loadbench.metrics.slo``; the
sweep's steps are ``loadbench.plan.load.sweep_steps``.)"""

from __future__ import annotations

from collections.abc import Sequence


def max_passing_load(results: Sequence[tuple[float, bool]]) -> float | None:
    """The highest load of the leading run of passing steps (a sweep stops counting at the first
    failure: a later pass after a failure is noise, not capacity)."""
    best: float | None = None
    for value, met in results:
        if not met:
            break
        best = value
    return best
