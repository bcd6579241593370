"""Always-valid confidence sequences for a difference of means: looking every day costs nothing. Pure.

The normal-mixture boundary (Robbins 1970; the mSPRT of Johari, Koomen, Pekelis & Walsh, "Always
valid inference", Operations Research 2022; in confidence-sequence form Howard, Ramdas, McAuliffe &
Sekhon, "Time-uniform, nonparametric, nonasymptotic confidence sequences", Annals of Statistics 2021):
for an estimate D̂ with variance v and a mixing variance τ² the mixture likelihood ratio against
θ is

    Λ(θ) = sqrt(v / (v + τ²)) · exp(τ² (D̂ − θ)² / (2 v (v + τ²)))

and {θ : Λ(θ) < 1/α} is

    D̂ ± h,   h = sqrt( 2 v (v + τ²) / τ² · ( ln(1/α) + ½ ln((v + τ²) / v) ) ).

Λ is a nonnegative martingale under θ, so by Ville's inequality the chance that the interval ever
excludes the true θ, at any of arbitrarily many looks, is at most α. v is the plug-in variance of
the estimate (per-request variances over the arm sizes), which makes the guarantee asymptotic, as in
Waudby-Smith et al., "Time-uniform central limit theory and asymptotic confidence sequences" (2021);
``tests/ab/test_sequential.py`` measures the error rate under continuous monitoring by simulation.
τ² is set to the square of the effect the criterion cares about (its margin), where the boundary
is tightest.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

MIN_VARIANCE_FRACTION = 1e-12  # of τ²: a variance of exactly 0 (all requests equal) stays finite


@dataclass(frozen=True, slots=True)
class Bound:
    estimate: float
    low: float
    high: float


def half_width(v: float, tau2: float, alpha: float) -> float:
    v = max(v, tau2 * MIN_VARIANCE_FRACTION)
    return math.sqrt(2 * v * (v + tau2) / tau2 * (math.log(1 / alpha) + 0.5 * math.log((v + tau2) / v)))


def sequence(estimate: float, v: float, tau2: float, alpha: float) -> Bound:
    h = half_width(v, tau2, alpha)
    return Bound(estimate, estimate - h, estimate + h)


def growth_needed(estimate: float, v: float, tau2: float, alpha: float, cap: float = 1e6) -> float | None:
    """How many times the current sample the interval needs to exclude 0, if the estimate and the
    per-request variance stay as they are (v shrinks as 1/n); None beyond ``cap`` or at an estimate of 0."""
    if estimate == 0:
        return None
    if half_width(v, tau2, alpha) < abs(estimate):
        return 1.0
    lo, hi = 1.0, 2.0
    while half_width(v / hi, tau2, alpha) >= abs(estimate):
        lo, hi = hi, hi * 2
        if hi > cap:
            return None
    for _ in range(40):
        mid = (lo + hi) / 2
        if half_width(v / mid, tau2, alpha) < abs(estimate):
            hi = mid
        else:
            lo = mid
    return hi


def bernoulli_variance(successes: int, n: int) -> float:
    """Variance of one observation, from a smoothed rate (+½ / +1) so that 0 of n is not certainty."""
    p = (successes + 0.5) / (n + 1)
    return p * (1 - p)
