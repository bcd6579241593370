"""Agent evaluation measured against the mock's known competence, through the real command: the mock
plays an agent that follows the gold actions with probability P (per task and repeat) and otherwise
makes a configured mistake, so pass@1, pass^k, the cost per successful task and the counts of
malformed calls have known true values."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from loadbench.eval.workflow import exit_code
from tests.conftest import REPO, run_loadbench
from tests.eval.agent_fixtures import agent_suite, task_doc, write_tasks
from tests.eval.conftest import only_scorecard, pricing_file

pytestmark = pytest.mark.slow
FAST = {"ttft_ms": 0, "itl_ms": 0}
PRICE = {"input_per_mtok": 10_000.0, "output_per_mtok": 30_000.0}  # dollars per trial: cents are visible


def _rows(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text().splitlines() if x.strip()]


def test_pass_at_1_and_pass_hat_4_intervals_contain_the_truth_and_cost_per_success_is_exact(tmp_path: Path) -> None:
    p, tasks, repeats = 0.8, 50, 4
    pricing_file(tmp_path, {"agent-mock": PRICE})
    suite = agent_suite(tmp_path, write_tasks(tmp_path, tasks),
                        [{"name": "m", "model": "agent-mock", "mock": {"accuracy": p, "seed": 11, **FAST}}],
                        pricing="pricing.yaml", repeats=repeats)
    proc = run_loadbench("eval", str(suite), "--out", str(tmp_path / "out"))
    folder, sc = only_scorecard(tmp_path / "out")
    assert proc.returncode == exit_code(sc), proc.stderr
    a = sc.target("m").agent
    assert a is not None and (a.tasks, a.trials, a.k) == (tasks, tasks * repeats, 4)
    assert a.pass_at_1.contains(p), a.pass_at_1
    assert a.pass_hat_k.contains(p**4), a.pass_hat_k  # 0.41
    # every trial either followed the gold path to the end (then passed) or made one mistake and gave up
    outputs = _rows(folder / "outputs.jsonl")
    passed = [r for r in outputs if r["scores"]["task_success"]["passed"]]
    assert all(r["agent"]["matched_calls"] == 2 and r["agent"]["steps"] == 3 for r in passed)
    # cost per successful task: the spend of every trial, failed ones included, over the successes, to the cent;
    # the spend recomputed from the tokens each step of traces.jsonl reports, at the price per token
    steps = _rows(folder / "traces.jsonl")
    spend = sum(s["usage"]["prompt_tokens"] * PRICE["input_per_mtok"] / 1e6
                + s["usage"]["completion_tokens"] * PRICE["output_per_mtok"] / 1e6 for s in steps)
    assert round(a.spend, 2) == round(spend, 2) == round(sum(r["cost"] for r in outputs), 2)
    assert a.successes == len(passed) and round(a.cost_per_success, 2) == round(spend / len(passed), 2)
    cost = sc.target("m").cost
    assert cost is not None and math.isclose(cost.per_acceptable.value, a.cost_per_success)
    assert {t["trace_id"] for t in steps} == {r["agent"]["trace_id"] for r in outputs}
    md = (folder / "scorecard.md").read_text()
    assert "pass^4" in md and "failed: `" in md and a.failed and a.failed[0].trace


def test_a_malformed_call_is_recorded_returned_and_counted(tmp_path: Path) -> None:
    suite = agent_suite(tmp_path, write_tasks(tmp_path, 5), [{"name": "m", "model": "m", "mock": {
        "accuracy": 0.0, "agent_mistakes": "malformed", **FAST}}], repeats=1)
    run_loadbench("eval", str(suite), "--out", str(tmp_path / "out"))
    folder, sc = only_scorecard(tmp_path / "out")
    a = sc.target("m").agent
    assert a is not None and a.invalid_calls == a.trials == 5 and a.pass_at_1.value == 0.0
    steps = _rows(folder / "traces.jsonl")
    for trial in {s["trace_id"] for s in steps}:
        mine = sorted((s for s in steps if s["trace_id"] == trial), key=lambda s: s["step"])
        bad = [r for s in mine for r in s["results"] if r["error"] == "invalid"]
        assert len(bad) == 1 and "not valid JSON" in bad[0]["content"]
        # the error went back to the model: the next request carried it as the call's tool turn
        returned = [m for s in mine[1:] for m in s["request"]["messages_added"]
                    if m["role"] == "tool" and m["tool_call_id"] == bad[0]["id"]]
        assert [m["content"] for m in returned] == [bad[0]["content"]]
    assert "5 invalid" in (folder / "scorecard.md").read_text()


def test_two_candidates_of_different_competence_one_command_one_scorecard_with_a_decision(tmp_path: Path) -> None:
    proc = run_loadbench("eval", str(REPO / "scenarios/eval/support-agent.yaml"), "--out", str(tmp_path))
    _, sc = only_scorecard(tmp_path)
    assert proc.returncode == exit_code(sc) == 1, proc.stderr  # REJECT
    assert sc.decision is not None and sc.decision.verdict == "REJECT"
    (cd,) = sc.decision.candidates
    assert cd.candidate == "candidate" and "quality" in cd.reason
    current, candidate = sc.target("current").agent, sc.target("candidate").agent
    assert current is not None and candidate is not None and current.tasks == 22
    assert current.pass_at_1.contains(0.9) and candidate.pass_at_1.contains(0.55)
    assert current.pass_hat_k.value > candidate.pass_hat_k.value
    assert "decision: candidate vs current: REJECT" in proc.stdout


def test_a_wrong_end_state_scores_zero_whatever_the_judge_says(tmp_path: Path) -> None:
    """The mock judge grades by word overlap with the reference; the reference is the very answer the
    mock agent gives after its mistake, so the judge approves every trial with full marks."""
    from loadbench.mock.agent import GIVE_UP

    doc = task_doc(6)
    for t in doc["tasks"]:
        t["reference"] = GIVE_UP
    suite = agent_suite(tmp_path, write_tasks(tmp_path, doc=doc), [{"name": "m", "model": "m", "mock": {
        "accuracy": 0.0, "agent_mistakes": "wrong_argument", **FAST}}], repeats=1,
        criteria=[{"name": "rubric", "type": "judge", "cases": "with_truth",
                   "rubric": [{"name": "helpful", "description": "the answer helps the customer"}]}],
        judge={"judges": [{"name": "j", "model": "mock-judge", "mock": {"judge": True, **FAST}}]})
    proc = run_loadbench("eval", str(suite), "--out", str(tmp_path / "out"))
    folder, sc = only_scorecard(tmp_path / "out")
    verdicts = _rows(folder / "judgements.jsonl")
    assert len(verdicts) == 6 and all(v["score"]["passed"] and v["score"]["value"] == 1.0 for v in verdicts)
    outputs = _rows(folder / "outputs.jsonl")
    assert all(r["scores"]["task_success"]["parts"]["state"] == 0.0 for r in outputs)  # the end state is wrong
    t = sc.target("m")
    assert t.quality.acceptable.value == 0.0 and t.agent is not None and t.agent.successes == 0
    assert t.agent.pass_at_1.value == 0.0 and proc.returncode == exit_code(sc)
