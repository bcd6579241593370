"""Intervals and estimators. Pure; the RNG is a seed.

Wilson score interval (Wilson 1927; Brown, Cai & DasGupta 2001 recommend it over the Wald
interval for small n or p near 0/1), for a proportion of independent trials::

    centre = (p + z²/2n) / (1 + z²/n),  half = z·sqrt(p(1-p)/n + z²/4n²) / (1 + z²/n)

Bootstrap over cases (Efron & Tibshirani 1993, percentile method): repeats of one case are not
independent, so intervals resample whole cases (a cluster bootstrap), B resamples, the 2.5th and
97.5th percentiles of the statistic. Paired statistics (a candidate against the incumbent on the
same cases) resample the same case indices for both.

pass@k (Chen et al. 2021, unbiased): 1 - C(n-c, k) / C(n, k); pass^k (Yao et al. 2024, τ-bench):
C(c, k) / C(n, k), the chance that k repeats drawn from the n all pass.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

Z95 = 1.959963984540054
BOOTSTRAP_RESAMPLES = 2000

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class Interval:
    value: float
    low: float
    high: float

    def contains(self, x: float) -> bool:
        return self.low <= x <= self.high

    def to_json(self) -> list[float]:
        return [sig(self.value), sig(self.low), sig(self.high)]

    @classmethod
    def from_json(cls, obj: Sequence[float]) -> Interval:
        return cls(*(math.nan if x is None else float(x) for x in obj[:3]))  # JSON null is NaN


def sig(x: float) -> float:
    """``x`` to 12 significant digits for JSON (costs per call are 1e-6-sized: no fixed decimals)."""
    return float(f"{x:.12g}") if math.isfinite(x) else x


NAN_INTERVAL = Interval(math.nan, math.nan, math.nan)


def wilson(successes: int, n: int, z: float = Z95) -> Interval:
    if n <= 0:
        return NAN_INTERVAL
    p = successes / n
    denom = 1.0 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return Interval(p, max(0.0, centre - half), min(1.0, centre + half))


def bootstrap_indices(n: int, seed: int, resamples: int = BOOTSTRAP_RESAMPLES) -> npt.NDArray[np.int64]:
    """Case indices of every resample, shape (resamples, n): share them to pair statistics."""
    return np.random.default_rng(seed).integers(0, n, size=(resamples, n))


def percentile_interval(point: float, draws: FloatArray) -> Interval:
    finite = draws[np.isfinite(draws)]
    if finite.size == 0 or not math.isfinite(point):
        return Interval(point, math.nan, math.nan)
    low, high = np.percentile(finite, [2.5, 97.5])
    return Interval(point, float(low), float(high))


def bootstrap_mean(values: Sequence[float], seed: int = 0, weights: Sequence[float] | None = None) -> Interval:
    """Weighted mean of per-case values with a case-bootstrap interval."""
    if not values:
        return NAN_INTERVAL
    x = np.asarray(values, dtype=np.float64)
    w = np.ones_like(x) if weights is None else np.asarray(weights, dtype=np.float64)
    idx = bootstrap_indices(len(x), seed)
    draws = (x[idx] * w[idx]).sum(axis=1) / w[idx].sum(axis=1)
    return percentile_interval(float((x * w).sum() / w.sum()), draws)


def bootstrap_ratio(num: Sequence[float], den: Sequence[float], seed: int = 0) -> Interval:
    """Σnum / Σden over cases (e.g. spend / acceptable outputs), resampling cases."""
    if not num:
        return NAN_INTERVAL
    a = np.asarray(num, dtype=np.float64)
    b = np.asarray(den, dtype=np.float64)
    idx = bootstrap_indices(len(a), seed)
    with np.errstate(divide="ignore", invalid="ignore"):
        draws = a[idx].sum(axis=1) / b[idx].sum(axis=1)
        point = float(a.sum() / b.sum()) if b.sum() > 0 else math.inf
    draws = np.where(np.isfinite(draws), draws, np.inf)
    if not math.isfinite(point):
        return Interval(point, math.nan, math.nan)
    low, high = np.percentile(draws, [2.5, 97.5])
    return Interval(point, float(low), float(high))


PairedStat = Callable[[npt.NDArray[np.int64]], FloatArray]


def paired_bootstrap(stat: PairedStat, n: int, seed: int = 0) -> Interval:
    """``stat`` maps an index array (resamples, n) -> one value per resample; row 0 of the
    point estimate is the identity resample."""
    if n == 0:
        return NAN_INTERVAL
    point = float(stat(np.arange(n, dtype=np.int64)[None, :])[0])
    return percentile_interval(point, stat(bootstrap_indices(n, seed)))


def pass_at_k(n: int, c: int, k: int) -> float:
    """Chance that at least one of k repeats drawn from n (c passing) passes."""
    if n - c < k:
        return 1.0
    return 1.0 - math.comb(n - c, k) / math.comb(n, k)


def pass_hat_k(n: int, c: int, k: int) -> float:
    """Chance that all k repeats drawn from n (c passing) pass."""
    if k > n:
        return math.nan
    return math.comb(c, k) / math.comb(n, k)


def quantile(values: Sequence[float], q: float) -> float:
    if not values:
        return math.nan
    return float(np.quantile(np.asarray(values, dtype=np.float64), q, method="higher"))
