"""Points 2 and 6 of issue 12 end to end: cost per acceptable outcome of a verbose accurate model
against a terse less accurate one, and the decision rule's three verdicts and exit codes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import run_loadbench
from tests.eval.conftest import FAST, label_dataset, only_scorecard, pricing_file, write_suite

pytestmark = pytest.mark.slow


def test_the_terse_88_percent_model_is_cheaper_per_acceptable_outcome(tmp_path: Path, mock_factory) -> None:
    data = label_dataset(tmp_path / "cases.jsonl", 200)
    # one visible word + hidden reasoning: 4,000 and 1,800 output tokens per answer
    verbose = mock_factory("--answers", str(data), "--accuracy", "0.95", "--verbosity", "3999", "--seed", "1", *FAST)
    terse = mock_factory("--answers", str(data), "--accuracy", "0.88", "--verbosity", "1799", "--seed", "1", *FAST)
    pricing_file(tmp_path, {"same-price": {"input_per_mtok": 1.0, "output_per_mtok": 10.0}})
    suite = write_suite(tmp_path, data, [
        {"name": "verbose", "url": verbose.base_url, "model": "mock-model", "price": "same-price"},
        {"name": "terse", "url": terse.base_url, "model": "mock-model", "price": "same-price"}],
        pricing="pricing.yaml", decide={"incumbent": "terse", "min_cases": 20})
    proc = run_loadbench("eval", str(suite), "--out", str(tmp_path / "out"))
    assert proc.returncode == 0, proc.stderr
    folder, sc = only_scorecard(tmp_path / "out")
    v, t = sc.target("verbose"), sc.target("terse")
    assert v.cost is not None and t.cost is not None
    assert v.cost.mean_output_tokens == pytest.approx(4000, abs=1)
    assert t.cost.mean_output_tokens == pytest.approx(1800, abs=1)
    assert v.quality.acceptable.contains(0.95) and t.quality.acceptable.contains(0.88)
    # cost per acceptable outcome = all spend / acceptable outputs
    accepted_v = round(v.quality.acceptable.value * v.calls)
    assert v.cost.per_acceptable.value == pytest.approx(v.cost.spend / accepted_v)
    assert t.cost.per_acceptable.value < v.cost.per_acceptable.value
    assert t.cost.per_acceptable.high < v.cost.per_acceptable.low  # apart beyond their intervals
    # the cost-to-quality ratio of the first: extra cost per request per quality point
    ratio = v.cost.cost_per_quality_point
    assert ratio is not None and ratio.value > 0
    dq = 100 * (v.quality.acceptable.value - t.quality.acceptable.value)
    assert ratio.value == pytest.approx((v.cost.per_request - t.cost.per_request) / dq, rel=1e-6)
    assert not v.cost.dominated  # it costs more but also scores higher
    text = (folder / "scorecard.md").read_text()
    assert "Cost-to-quality ratio vs the incumbent" in text
    assert (folder / "scorecard.html").read_text().count("data:image/png;base64,") == 1


def _decision_run(tmp_path: Path, mock_factory, incumbent: list[str], candidate: list[str], decide: dict,
                  cases: int = 40, extra: tuple[str, ...] = ()) -> tuple[int, str, object]:
    data = label_dataset(tmp_path / "cases.jsonl", cases)
    inc = mock_factory("--answers", str(data), *incumbent)
    cand = mock_factory("--answers", str(data), *candidate)
    pricing_file(tmp_path, {"p": {"input_per_mtok": 0.0, "output_per_mtok": 1.0}})
    suite = write_suite(tmp_path, data, [
        {"name": "current", "url": inc.base_url, "model": "mock-model", "price": "p"},
        {"name": "next", "url": cand.base_url, "model": "mock-model", "price": "p"}],
        pricing="pricing.yaml", repeats=2, decide={"incumbent": "current", **decide})
    proc = run_loadbench("eval", str(suite), "--out", str(tmp_path / "out"), *extra)
    _, sc = only_scorecard(tmp_path / "out")
    return proc.returncode, proc.stdout, sc


RULE = {"quality_ratio_min": 0.97, "cost_ratio_max": 1.10}


def test_a_candidate_better_on_every_criterion_is_accepted(tmp_path: Path, mock_factory) -> None:
    rc, out, sc = _decision_run(
        tmp_path, mock_factory,
        ["--accuracy", "0.8", "--verbosity", "50", "--ttft-ms", "40", "--itl-ms", "0"],
        ["--accuracy", "1.0", "--verbosity", "10", "--ttft-ms", "5", "--itl-ms", "0"],
        {**RULE, "p95_e2e_ratio_max": 1.0})
    assert rc == 0, out
    d = sc.decision.candidates[0]
    assert sc.decision.verdict == "ACCEPT" and {c.criterion: c.result for c in d.checks} == {
        "quality": "pass", "cost": "pass", "p95_e2e": "pass"}
    assert "decision: next vs current: ACCEPT: non-inferior on every criterion" in out


def test_a_candidate_ten_percent_dearer_than_allowed_is_rejected_naming_cost(tmp_path: Path, mock_factory) -> None:
    # output price only: 1 visible + 99 hidden tokens vs 1 + 120 -> cost ratio 1.21 = 1.10 x 1.10
    rc, out, sc = _decision_run(tmp_path, mock_factory, ["--verbosity", "99", *FAST], ["--verbosity", "120", *FAST],
                                RULE)
    assert rc == 1, out
    d = sc.decision.candidates[0]
    assert d.verdict == "REJECT" and d.reason == "fails cost"
    cost = next(c for c in d.checks if c.criterion == "cost")
    assert cost.ratio == pytest.approx(1.21)
    assert next(c for c in d.checks if c.criterion == "quality").result == "pass"


def test_too_few_cases_to_tell_is_inconclusive(tmp_path: Path, mock_factory) -> None:
    # equally good models on 8 cases: the quality interval straddles the 0.97 bound
    rc, out, sc = _decision_run(tmp_path, mock_factory, ["--accuracy", "0.7", "--seed", "1", *FAST],
                                ["--accuracy", "0.7", "--seed", "2", *FAST], {**RULE, "min_cases": 1},
                                extra=("--sample", "8"))
    assert rc == 3, out
    d = sc.decision.candidates[0]
    assert d.verdict == "INCONCLUSIVE" and d.cases == 8 and "quality" in d.reason


def test_all_spend_counts_failed_and_retried_attempts_and_old_prices_warn(tmp_path: Path, mock_factory) -> None:
    data = label_dataset(tmp_path / "cases.jsonl", 60)
    # a seeded 30% of calls stream half an answer and then reset the connection
    mock = mock_factory("--answers", str(data), "--fault", "cut-mid-stream", "--fault-rate", "0.3", *FAST)
    pricing_file(tmp_path, {"p": {"input_per_mtok": 1.0, "output_per_mtok": 4.0}}, as_of="2025-01-01")
    suite = write_suite(tmp_path, data, [{"name": "flaky", "url": mock.base_url, "model": "mock-model",
                                          "price": "p"}], pricing="pricing.yaml", retries=1)
    proc = run_loadbench("eval", str(suite), "--out", str(tmp_path / "out"))
    assert proc.returncode == 0, proc.stderr
    folder, sc = only_scorecard(tmp_path / "out")
    rows = [json.loads(x) for x in (folder / "outputs.jsonl").read_text().splitlines()]
    cost = sc.target("flaky").cost
    assert cost is not None and cost.spend == pytest.approx(sum(r["cost"] for r in rows))
    retried = [r for r in rows if r["attempts"] > 1]
    failed = [r for r in rows if not r["ok"]]
    assert retried and failed
    for r in retried:  # the cut attempt was paid on top of the one that answered
        u = r["usage"]
        assert r["cost"] > (u["prompt_tokens"] * 1.0 + u["completion_tokens"] * 4.0) / 1e6
    for r in failed:
        assert r["usage_estimated"] and r["cost"] > 0 and r["error"].startswith(("connection error", "stream cut"))
    accepted = round(sc.target("flaky").quality.acceptable.value * len(rows))
    assert cost.per_acceptable.value == pytest.approx(cost.spend / accepted)
    assert "WARNING: prices of 'p' are" in proc.stdout and "days old (as_of 2025-01-01)" in proc.stdout
