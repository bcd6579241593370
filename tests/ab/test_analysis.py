"""Arms, criteria and verdicts from logged requests with known truth."""

from __future__ import annotations

import random

from loadbench.ab.analysis import LoggedRequest, analyze, summarize_arm
from loadbench.ab.criteria import Criteria

CRITERIA = Criteria(error_rate_margin=0.01, cost_ratio_max=1.10, quality_ratio_min=0.97, alpha=0.05,
                    min_requests=100)


def arm(name: str, n: int, rng: random.Random, error_rate: float = 0.02, cost: float = 0.001,
        quality: float | None = None) -> list[LoggedRequest]:
    out = []
    for i in range(n):
        bad = rng.random() < error_rate
        q = None if quality is None else float(rng.random() < quality)
        out.append(LoggedRequest(name, i, "error" if bad else "ok", None if bad else 20 + rng.random() * 10,
                                 None if bad else 200 + rng.random() * 50, cost * (0.5 + rng.random()), q))
    return out


def test_a_candidate_as_good_as_the_incumbent_continues_early_and_is_promoted_with_enough_data() -> None:
    rng = random.Random(4)
    early = analyze("e", arm("incumbent", 60, rng) + arm("candidate", 60, rng), CRITERIA)
    assert early.verdict == "CONTINUE" and "of the 100 requests needed" in early.reason
    assert early.more_requests == 80  # both arms at 60 of 100, split evenly: 2 x 40 more
    middle = analyze("e", arm("incumbent", 400, rng) + arm("candidate", 400, rng), CRITERIA)
    assert middle.verdict == "CONTINUE" and "errors" in middle.reason
    assert middle.more_requests is not None and middle.more_requests > 0
    late = analyze("e", arm("incumbent", 12_000, rng) + arm("candidate", 12_000, rng), CRITERIA)
    assert late.verdict == "PROMOTE", late.criteria
    assert {c.name: c.status for c in late.criteria} == {"errors": "pass", "cost": "pass", "quality": "not measured"}


def test_a_candidate_20_percent_above_the_cost_ratio_is_rolled_back_naming_cost() -> None:
    rng = random.Random(5)
    requests = arm("incumbent", 600, rng) + arm("candidate", 600, rng, cost=0.001 * 1.10 * 1.2)
    result = analyze("e", requests, CRITERIA)
    assert result.verdict == "ROLLBACK" and result.reason.startswith("cost:")


def test_a_worse_error_rate_and_a_lower_quality_are_rolled_back() -> None:
    rng = random.Random(6)
    errors = analyze("e", arm("incumbent", 3000, rng, 0.01) + arm("candidate", 3000, rng, 0.08), CRITERIA)
    assert errors.verdict == "ROLLBACK" and errors.reason.startswith("errors:")
    worse = analyze("e", arm("incumbent", 3000, rng, 0.0, quality=0.9) + arm("candidate", 3000, rng, 0.0,
                                                                             quality=0.7), CRITERIA)
    assert worse.verdict == "ROLLBACK" and worse.reason.startswith("quality:")


def test_a_tripped_guardrail_is_the_verdict() -> None:
    rng = random.Random(7)
    result = analyze("e", arm("incumbent", 10, rng) + arm("candidate", 10, rng), CRITERIA, tripped="error rate 20%")
    assert result.verdict == "ROLLBACK" and result.reason == "guardrail tripped: error rate 20%"


def test_arm_figures_against_hand_counts() -> None:
    rows = [LoggedRequest("candidate", i, "ok", float(i), float(10 * i), 0.01, None) for i in range(1, 101)]
    rows += [LoggedRequest("candidate", 0, "error", None, 5.0, 0.02, None),
             LoggedRequest("candidate", 0, "client_gone", None, 1.0, 0.5, None)]
    a = summarize_arm("candidate", rows)
    assert (a.requests, a.errors) == (101, 1)
    assert abs(a.cost_per_request - (100 * 0.01 + 0.02) / 101) < 1e-12  # type: ignore[operator]
    assert abs(a.cost_per_acceptable - (100 * 0.01 + 0.02) / 100) < 1e-12  # type: ignore[operator]
    # HDR histograms keep 3 significant digits
    assert abs(a.ttft.p50_ms - 50) <= 0.05 and abs(a.ttft.p99_ms - 99) <= 0.1  # type: ignore[operator]
    assert abs(a.e2e.p95_ms - 950) <= 1  # type: ignore[operator]
