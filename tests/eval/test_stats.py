"""Intervals tested by simulation against known truth, estimators against brute force."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from loadbench.eval.stats import bootstrap_mean, bootstrap_ratio, pass_at_k, pass_hat_k, wilson

SIMULATIONS = 400


@pytest.mark.parametrize(("p", "n"), [(0.8, 100), (0.95, 60), (0.5, 30)])
def test_wilson_covers_the_true_proportion_about_95_percent(p: float, n: int) -> None:
    rng = np.random.default_rng(7)
    hits = sum(wilson(int(rng.binomial(n, p)), n).contains(p) for _ in range(SIMULATIONS))
    # 400 simulations: the binomial sd of the coverage is ~1.1 points; Wilson is near nominal
    assert 0.91 <= hits / SIMULATIONS <= 0.99


@pytest.mark.parametrize(("p", "n"), [(0.8, 100), (0.6, 60)])
def test_case_bootstrap_covers_the_true_mean_about_95_percent(p: float, n: int) -> None:
    rng = np.random.default_rng(11)
    hits = 0
    for i in range(SIMULATIONS):
        # 3 repeats per case, case-level success probability varies (clustered data)
        case_p = rng.beta(p * 4, (1 - p) * 4, size=n)
        per_case = rng.binomial(3, case_p) / 3
        hits += bootstrap_mean(per_case.tolist(), seed=i).contains(p)
    # the percentile bootstrap under-covers slightly at small n; allow 90-99%
    assert 0.90 <= hits / SIMULATIONS <= 0.99


def test_bootstrap_ratio_covers_a_known_cost_per_success() -> None:
    rng = np.random.default_rng(3)
    truth = 2.0 / 0.8  # spend 2 per case, 0.8 successes per case on average
    hits = 0
    for i in range(200):
        acc = rng.binomial(1, 0.8, size=80).astype(float)
        spend = rng.normal(2.0, 0.3, size=80)
        hits += bootstrap_ratio(spend.tolist(), acc.tolist(), seed=i).contains(truth)
    assert 0.90 <= hits / 200 <= 0.99


def test_pass_estimators_equal_brute_force_over_all_k_subsets() -> None:
    for n in range(1, 7):
        for c in range(n + 1):
            outcomes = [True] * c + [False] * (n - c)
            for k in range(1, n + 1):
                subsets = list(itertools.combinations(outcomes, k))
                assert pass_at_k(n, c, k) == pytest.approx(sum(any(s) for s in subsets) / len(subsets))
                assert pass_hat_k(n, c, k) == pytest.approx(sum(all(s) for s in subsets) / len(subsets))
    assert math.isnan(pass_hat_k(2, 2, 3))


def test_wilson_edges() -> None:
    w = wilson(0, 10)
    assert w.low == 0.0 and 0.25 < w.high < 0.35
    assert wilson(10, 10).high == pytest.approx(1.0)
    assert math.isnan(wilson(0, 0).value)
