"""Points 1 and 4 of issue 12 end to end: `loadbench eval` against real mocks of known accuracy
and consistency (subprocesses on 127.0.0.1, port 0) measures what was configured."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from tests.conftest import run_loadbench
from tests.eval.conftest import FAST, LABELS, label_dataset, only_scorecard, write_suite

pytestmark = pytest.mark.slow
CASES = 200


def test_measured_accuracy_ci_contains_the_configured_accuracy(tmp_path: Path, mock_factory) -> None:
    data = label_dataset(tmp_path / "cases.jsonl", CASES)
    truth = {"low": 0.7, "high": 0.9}
    mocks = {name: mock_factory("--answers", str(data), "--accuracy", str(a), "--seed", "5", *FAST)
             for name, a in truth.items()}
    suite = write_suite(tmp_path, data, [{"name": n, "url": m.base_url, "model": "mock-model"}
                                         for n, m in mocks.items()])
    proc = run_loadbench("eval", str(suite), "--out", str(tmp_path / "out"))
    assert proc.returncode == 0, proc.stderr
    _, sc = only_scorecard(tmp_path / "out")
    for name, accuracy in truth.items():
        card = sc.target(name)
        assert card.calls == CASES and card.errors == 0
        assert card.quality.acceptable.contains(accuracy), (name, card.quality.acceptable)
        # the classification report counts the same outputs
        assert card.quality.classification is not None
        assert card.quality.classification.accuracy == pytest.approx(card.quality.acceptable.value)
        assert {c.label for c in card.quality.classification.classes} == set(LABELS)
    assert sc.target("high").quality.acceptable.value > sc.target("low").quality.acceptable.value


def expected_pass_hat_k(a: float, c: float, k: int) -> float:
    return a * (c + (1 - c) * a) ** k + (1 - a) * ((1 - c) * a) ** k


def expected_pair_agreement(a: float, c: float, labels: int) -> float:
    same = a * a + (1 - a) ** 2 / (labels - 1)  # two independent draws give the same label
    return c * c + (1 - c * c) * same


def test_lower_consistency_lowers_pass_hat_k_and_agreement_by_the_expected_amount(tmp_path: Path,
                                                                                  mock_factory) -> None:
    data = label_dataset(tmp_path / "cases.jsonl", CASES)
    a, k = 0.8, 4
    settings = {"steady": 1.0, "flaky": 0.3}
    mocks = {n: mock_factory("--answers", str(data), "--accuracy", str(a), "--consistency", str(c), "--seed", "2",
                             *FAST) for n, c in settings.items()}
    suite = write_suite(tmp_path, data, [{"name": n, "url": m.base_url, "model": "mock-model"}
                                         for n, m in mocks.items()], repeats=k)
    proc = run_loadbench("eval", str(suite), "--out", str(tmp_path / "out"))
    assert proc.returncode == 0, proc.stderr
    _, sc = only_scorecard(tmp_path / "out")
    for name, c in settings.items():
        cons = sc.target(name).consistency
        assert cons.k == k
        assert cons.pass_hat_k.contains(expected_pass_hat_k(a, c, k)), (name, cons.pass_hat_k)
        assert cons.pair_agreement.contains(expected_pair_agreement(a, c, len(LABELS))), (name, cons.pair_agreement)
        # accuracy per call does not depend on consistency
        assert sc.target(name).quality.acceptable.contains(a)
    steady, flaky = sc.target("steady").consistency, sc.target("flaky").consistency
    assert steady.flip_rate == 0.0 and flaky.flip_rate > 0.3
    assert flaky.pass_hat_k.high < steady.pass_hat_k.low
    assert math.isclose(steady.pair_agreement.value, 1.0)
    assert sc.least_consistent and all(x.target == "flaky" for x in sc.least_consistent)
