"""Nearest-rank percentiles, and the gateway's P95 guardrail and ``loadbench ab`` agreeing on one log's rows."""

from __future__ import annotations

import random

import numpy as np
import pytest

from loadbench.ab.analysis import LoggedRequest, summarize_arm
from loadbench.gateway.experiments import WindowStats
from loadbench.metrics.quantile import nearest_rank


def test_nearest_rank_is_numpys_inverted_cdf_on_random_samples() -> None:
    rng = random.Random(7)
    for _ in range(300):
        values = [rng.lognormvariate(4, 1) for _ in range(rng.randint(1, 400))]
        for q in (50, 95, 99, 100):
            assert nearest_rank(values, q) == float(np.percentile(values, q, method="inverted_cdf"))


def test_nearest_rank_of_a_known_set() -> None:
    values = [float(v) for v in range(1, 101)]  # 1..100 ms
    assert (nearest_rank(values, 50), nearest_rank(values, 95), nearest_rank(values, 99)) == (50.0, 95.0, 99.0)
    assert nearest_rank([], 95) is None
    assert nearest_rank([3.0], 95) == 3.0
    with pytest.raises(ValueError):
        nearest_rank(values, 0)


def test_the_guardrail_and_ab_compute_the_same_p95_from_the_same_rows() -> None:
    rng = random.Random(11)
    rows = []
    for i in range(500):
        outcome = rng.choice(["ok"] * 8 + ["error", "client_gone"])
        ttft, e2e = rng.uniform(20, 900), rng.uniform(200, 9000)
        rows.append((200 if outcome == "ok" else 502, outcome, ttft, e2e, None, i))
    guard = WindowStats.of([r[:5] for r in rows])
    arm = summarize_arm("candidate", [LoggedRequest("candidate", r[5], r[1], r[2], r[3], 0.0) for r in rows])
    assert guard.p95_ttft_ms is not None and guard.p95_ttft_ms == arm.ttft.p95_ms
    assert guard.p95_e2e_ms is not None and guard.p95_e2e_ms == arm.e2e.p95_ms
