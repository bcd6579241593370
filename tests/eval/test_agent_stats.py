"""The agent figures' estimators and intervals, checked by simulation against known truth: pass^k is
unbiased (its mean over simulated suites is p^k), and the 95% bootstrap intervals over tasks of pass@1
and pass^4 cover the truth about 95% of the time (50 tasks, 4 repeats, p = 0.8: the issue's set-up)."""

from __future__ import annotations

import random

import pytest

from loadbench.eval.agentstats import agent_card
from loadbench.eval.criteria import Score
from loadbench.eval.dataset import Case
from loadbench.eval.records import AgentTrial, CallRecord
from loadbench.eval.stats import pass_hat_k
from loadbench.pricing import Usage

CASES = {f"t{i}": Case(f"t{i}", "representative", (), (("user", "g"),), None) for i in range(50)}


def _trials(rng: random.Random, p: float, repeats: int, cost: float = 0.0) -> list[tuple[CallRecord, bool]]:
    out = []
    for repeat in range(repeats):
        for cid in CASES:
            ok = rng.random() < p
            agent = AgentTrial(f"{cid}-{repeat}", "answer", 3, 2, 0, 0, 2, 2 if ok else 1, (10.0, 12.0), 300)
            out.append((CallRecord("m", cid, repeat, 0, True, "", "stop", Usage(100, 10), cost=cost, e2e_ms=5.0,
                                   scores={"task_success": Score(float(ok), ok)}, agent=agent), ok))
    return out


def test_the_intervals_cover_the_truth_about_95_percent_of_the_time() -> None:
    p, repeats, sims = 0.8, 4, 300
    rng = random.Random(2024)
    cover_1 = cover_k = 0
    for sim in range(sims):
        card = agent_card(_trials(rng, p, repeats), CASES, repeats, seed=sim)
        cover_1 += card.pass_at_1.contains(p)
        cover_k += card.pass_hat_k.contains(p**repeats)
    # the percentile bootstrap over 50 clusters under-covers a little; a broken interval (e.g. one that
    # treated the 200 trials as independent, or a biased estimator) falls far below
    assert 0.90 <= cover_1 / sims <= 0.99, cover_1 / sims
    assert 0.90 <= cover_k / sims <= 0.99, cover_k / sims


def test_pass_hat_k_is_unbiased_with_more_repeats_than_k() -> None:
    p, n, k, sims = 0.7, 6, 4, 20000
    rng = random.Random(7)
    mean = sum(pass_hat_k(n, sum(rng.random() < p for _ in range(n)), k) for _ in range(sims)) / sims
    se = (p**k * (1 - p**k) / sims) ** 0.5 * 2  # generous: the estimator's variance is below twice this
    assert abs(mean - p**k) < 4 * se, (mean, p**k)
    # the naive plug-in (c/n)^k is biased high (x^k is convex): the unbiased estimator is what the card reports
    naive = sum((sum(rng.random() < p for _ in range(n)) / n) ** k for _ in range(sims)) / sims
    assert naive > p**k + 4 * se


def test_cost_per_success_is_all_spend_over_successes_and_diagnostics_add_up() -> None:
    trials = _trials(random.Random(3), 0.5, 4, cost=0.37)
    card = agent_card(trials, CASES, 4, seed=0)
    successes = sum(ok for _, ok in trials)
    assert card.successes == successes and card.spend == pytest.approx(0.37 * 200)
    assert round(card.cost_per_success, 2) == round(0.37 * 200 / successes, 2)
    assert card.tool_recall == pytest.approx((successes * 2 + (200 - successes)) / 400)
    assert card.ttft_step_ms.n == 400 and card.mean_steps == 3 and card.stops == {"answer": 200}
    assert list(card.pass_hat) == ["1", "2", "3", "4"] and card.pass_hat["1"] == pytest.approx(card.pass_at_1.value)
