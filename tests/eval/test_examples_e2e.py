"""The three example suites under scenarios/eval run offline (embedded mocks, embedded judge) and
their scorecards are consistent with the files they were built from."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from loadbench.eval.suite import load_suite
from loadbench.eval.workflow import exit_code
from tests.conftest import REPO, run_loadbench
from tests.eval.conftest import only_scorecard

pytestmark = pytest.mark.slow
EXAMPLES = REPO / "scenarios/eval"


def _rows(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text().splitlines() if x.strip()]


@pytest.mark.parametrize("name", ["support-tickets", "extraction", "summaries"])
def test_example_suite_runs_offline(tmp_path: Path, name: str) -> None:
    suite_path = EXAMPLES / f"{name}.yaml"
    proc = run_loadbench("eval", str(suite_path), "--out", str(tmp_path))
    folder, sc = only_scorecard(tmp_path)
    assert proc.returncode == exit_code(sc), proc.stderr
    suite = load_suite(suite_path)
    assert sc.dataset_hash == suite.dataset_hash and sc.cases == len(suite.cases)
    assert [t.name for t in sc.targets] == ["current", "candidate"]
    outputs = _rows(folder / "outputs.jsonl")
    assert len(outputs) == 2 * len(suite.cases) * suite.repeats
    for t in sc.targets:
        assert t.cost is not None
        assert t.cost.spend == pytest.approx(sum(r["cost"] for r in outputs if r["target"] == t.name))
        assert {k for k in ("representative", "edge", "regression")} <= set(t.quality.by_kind)
    manifest = json.loads((folder / "manifest.json").read_text())
    assert "api_key" not in json.dumps(manifest)
    if name == "extraction":
        fields = sc.target("candidate").quality.criteria[2]
        assert set(fields.parts) == {"name", "email", "order_id", "amount", "items"}
    if name == "support-tickets":
        assert sc.target("current").probes and sc.decision is not None
    if name == "summaries":
        judgements = _rows(folder / "judgements.jsonl")
        assert sc.judge is not None and sc.judge.spend > 0
        assert sc.judge.spend == pytest.approx(sum(j["cost"] for j in judgements))
        assert sc.target("candidate").pairwise
        # another session: the same outputs make the same judge prompts, answered from the cache
        again = run_loadbench("eval", str(suite_path), "--append", str(folder))
        assert again.returncode in (0, 1, 3), again.stderr
        _, sc2 = only_scorecard(tmp_path)
        assert sc2.sessions == 2 and sc2.judge is not None
        assert sc2.judge.judges[0].cached > 0
