"""Over-saturation: the target takes requests in faster than it answers them, so they pile up.

The test follows GuideLLM's over-saturation detection (``scheduler/constraints/saturation.py``): two
series over the run clock, the requests in flight and each request's TTFT, each fitted by a least
squares line over a sliding window. A series is *rising* when its slope is positive and the slope's
margin of error (the half-width of its confidence interval, ``t x standard error``, relative to the
slope) is below ``moe``: the rise is larger than its own noise. The target is over-saturated when
both rise together, the run is older than ``min_s``, each window holds ``min_points`` points and at
least half of the window's TTFTs exceed ``min_ttft_ms`` (a fast target whose TTFT creeps up by a
millisecond is not in trouble). As in GuideLLM, points of the same second are correlated, so the
sample size the t quantile uses is capped at the window's length in seconds.

Pure: the caller feeds points with their run-clock times and asks at a time of its choosing.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from statistics import NormalDist

from loadbench.plan.run import SaturationRule

OVER_SATURATED = "over-saturated"  # the start of the verdict (a run's stop reason) a sweep looks for


@dataclass(frozen=True, slots=True)
class Slope:
    slope: float
    moe: float  # margin of error / slope (inf when the slope is not positive)
    rising: bool


@dataclass(frozen=True, slots=True)
class SaturationCheck:
    saturated: bool
    at_s: float
    in_flight: Slope | None
    ttft: Slope | None

    def reason(self) -> str:
        """The verdict's words."""
        parts = []
        if self.in_flight is not None:
            parts.append(f"in-flight requests rising {self.in_flight.slope:.2f}/s (margin of error "
                         f"{self.in_flight.moe:.2f} of the slope)")
        if self.ttft is not None:
            parts.append(f"TTFT rising {self.ttft.slope * 1000:.0f} ms/s (margin of error {self.ttft.moe:.2f})")
        return f"{OVER_SATURATED} after {self.at_s:.1f} s: " + " and ".join(parts)


def t_quantile(p: float, dof: float) -> float:
    """Student's t quantile: the normal quantile corrected by the first two Cornish-Fisher terms
    (within 1% of the exact value from 5 degrees of freedom on, which is all a margin test needs)."""
    z = NormalDist().inv_cdf(p)
    g1 = (z ** 3 + z) / 4.0
    g2 = (5 * z ** 5 + 16 * z ** 3 + 3 * z) / 96.0
    return z + g1 / dof + g2 / dof ** 2


def slope_test(xs: Sequence[float], ys: Sequence[float], *, confidence: float, moe: float,
               effective_n: float | None = None) -> Slope | None:
    """The least squares slope of ``ys`` on ``xs`` and whether it rises beyond its noise (None: fewer
    than 3 points or no spread in x)."""
    n = len(xs)
    eff = min(n, effective_n) if effective_n is not None else n
    if n < 3 or eff < 3:
        return None
    mx, my = sum(xs) / n, sum(ys) / n
    sxx = sum((x - mx) ** 2 for x in xs)
    if sxx <= 0:
        return None
    sxy = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True))
    syy = sum((y - my) ** 2 for y in ys)
    slope = sxy / sxx
    rss = max(0.0, syy - sxy * sxy / sxx)
    dof = eff - 2
    if dof <= 0:
        return None
    stderr = math.sqrt(rss / dof / sxx)
    margin = t_quantile(1 - (1 - confidence) / 2, dof) * stderr
    relative = margin / slope if slope > 0 else math.inf
    return Slope(slope=slope, moe=relative, rising=slope > 0 and relative < moe)


class Detector:
    """The two windows of one run and the test on them."""

    def __init__(self, rule: SaturationRule) -> None:
        self.rule = rule
        self._in_flight: deque[tuple[float, float]] = deque()
        self._ttft: deque[tuple[float, float]] = deque()

    def add_in_flight(self, t_s: float, requests: int) -> None:
        self._in_flight.append((t_s, float(requests)))

    def add_ttft(self, t_s: float, ttft_s: float) -> None:
        self._ttft.append((t_s, ttft_s))

    def check(self, now_s: float) -> SaturationCheck:
        rule = self.rule
        for window in (self._in_flight, self._ttft):
            while window and now_s - window[0][0] > rule.window_s:
                window.popleft()
        no = SaturationCheck(False, now_s, None, None)
        if now_s < rule.min_s or len(self._in_flight) < rule.min_points or len(self._ttft) < rule.min_points:
            return no
        slow = sum(ttft * 1000.0 > rule.min_ttft_ms for _, ttft in self._ttft)
        if 2 * slow < len(self._ttft):
            return no
        span_s = min(now_s, rule.window_s)
        flight = slope_test([t for t, _ in self._in_flight], [v for _, v in self._in_flight],
                            confidence=rule.confidence, moe=rule.moe, effective_n=span_s)
        ttft = slope_test([t for t, _ in self._ttft], [v for _, v in self._ttft],
                          confidence=rule.confidence, moe=rule.moe, effective_n=span_s)
        rising = flight is not None and flight.rising and ttft is not None and ttft.rising
        return SaturationCheck(rising, now_s, flight, ttft)
