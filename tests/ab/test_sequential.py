"""The confidence sequence: its formula against the mixture likelihood ratio, and its error rate under
continuous monitoring measured by simulation (and the fixed-sample interval's, which it must beat)."""

from __future__ import annotations

import math

import numpy as np

from loadbench.ab.sequential import bernoulli_variance, growth_needed, half_width, sequence

ALPHA = 0.05


def test_the_boundary_is_where_the_mixture_likelihood_ratio_reaches_one_over_alpha() -> None:
    v, tau2 = 0.0004, 0.0001
    h = half_width(v, tau2, ALPHA)
    ratio = math.sqrt(v / (v + tau2)) * math.exp(tau2 * h * h / (2 * v * (v + tau2)))
    assert math.isclose(ratio, 1 / ALPHA, rel_tol=1e-9)
    b = sequence(0.3, v, tau2, ALPHA)
    assert math.isclose(b.high - b.low, 2 * h) and b.estimate == 0.3
    assert half_width(v / 4, tau2, ALPHA) < h  # more data, a narrower interval


def test_growth_needed_is_the_sample_where_the_interval_first_excludes_zero() -> None:
    v, tau2, d = 0.0004, 0.0001, 0.02
    g = growth_needed(d, v, tau2, ALPHA)
    assert g is not None and g > 1
    assert half_width(v / g, tau2, ALPHA) < d <= half_width(v / (g * 0.99), tau2, ALPHA)
    assert growth_needed(0.0, v, tau2, ALPHA) is None
    assert growth_needed(1.0, v, tau2, ALPHA) == 1.0


def _ever_rejects(runs: int, looks: int, step: int, p_inc: float, margin: float, always_valid: bool,
                  seed: int) -> float:
    """Share of simulated experiments, looked at every ``step`` requests per arm, in which a candidate
    whose error rate is exactly incumbent + margin is ever declared non-inferior (a false PROMOTE)."""
    rng = np.random.default_rng(seed)
    n = np.arange(1, looks + 1) * step
    false = 0
    for _ in range(runs):
        e_i = np.cumsum(rng.random(looks * step) < p_inc)[n - 1]
        e_c = np.cumsum(rng.random(looks * step) < p_inc + margin)[n - 1]
        for k in range(looks):
            d = e_c[k] / n[k] - e_i[k] / n[k] - margin
            v = (bernoulli_variance(int(e_c[k]), int(n[k])) + bernoulli_variance(int(e_i[k]), int(n[k]))) / n[k]
            high = d + (half_width(v, margin * margin, ALPHA) if always_valid else 1.645 * math.sqrt(v))
            if high < 0:
                false += 1
                break
    return false / runs


def test_false_promotions_under_continuous_monitoring_stay_below_alpha() -> None:
    # 400 experiments, each looked at 100 times (every 40 requests per arm, up to 4,000): the
    # always-valid interval's error rate stays at or below α; a fixed-sample one-sided 95% interval
    # looked at as often is far above it (which is why the sequential method is needed at all).
    sequential = _ever_rejects(400, 100, 40, 0.05, 0.02, always_valid=True, seed=1)
    naive = _ever_rejects(400, 100, 40, 0.05, 0.02, always_valid=False, seed=1)
    # 400 runs: a binomial standard error of about 1.1 points at α = 5%
    assert sequential <= ALPHA + 0.02, sequential
    assert naive > 2 * ALPHA, naive
