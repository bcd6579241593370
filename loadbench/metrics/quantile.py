"""Percentiles of a small set of exact values (a request log's window, an A/B arm): nearest rank.

    nearest_rank(values, p) = the ceil(p/100 · n)-th smallest value (1-based), p in (0, 100]

No interpolation and no bucketing: the figure is always one of the values, so a guardrail's ceiling
and ``loadbench ab``'s table, computed from the same rows, agree to the digit. (A run's latencies,
millions of them, go through HDR histograms instead: ``metrics.histogram``.)
"""

from __future__ import annotations

import math
from collections.abc import Sequence


def nearest_rank(values: Sequence[float], percent: float) -> float | None:
    """The ``percent``-th percentile of ``values`` by nearest rank (None for no values)."""
    if not values:
        return None
    if not 0 < percent <= 100:
        raise ValueError(f"percent must be in (0, 100], not {percent}")
    ordered = sorted(values)
    return ordered[max(0, math.ceil(percent / 100 * len(ordered)) - 1)]
