"""code_tests: generated code runs against the case's tests in a limited subprocess, only with
--allow-code-execution; pass@k over repeats."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from loadbench.eval.codeexec import run_tests
from loadbench.eval.stats import pass_at_k
from tests.conftest import run_loadbench
from tests.eval.conftest import FAST, only_scorecard, write_suite

SOLUTION = "```python\ndef add(a, b):\n    return a + b\n```"
TESTS = "assert add(2, 3) == 5\nassert add(-1, 1) == 0"


def test_code_runs_with_limits() -> None:
    assert run_tests("def add(a, b):\n    return a + b", TESTS).passed
    assert "AssertionError" in run_tests("def add(a, b):\n    return a - b", TESTS).detail
    assert run_tests("while True:\n    pass", "", timeout_s=2).detail.startswith(("timed out", "exit"))
    hog = run_tests("x = bytearray(2 * 1024 ** 3)", "")
    assert not hog.passed and "MemoryError" in hog.detail


@pytest.mark.slow
def test_code_tests_score_and_pass_at_k(tmp_path: Path, mock_factory) -> None:
    data = tmp_path / "code.jsonl"
    with data.open("w") as fh:
        for i in range(30):
            fh.write(json.dumps({"id": f"k{i}", "prompt": f"Write add(a, b) #{i}", "answer": SOLUTION,
                                 "tests": TESTS}) + "\n")
    mock = mock_factory("--answers", str(data), "--accuracy", "0.5", "--consistency", "0", *FAST)
    suite = write_suite(tmp_path, data, [{"name": "coder", "url": mock.base_url, "model": "mock-model"}],
                        criteria=[{"name": "tests", "type": "code_tests", "k": 2}], repeats=3)
    proc = run_loadbench("eval", str(suite), "--out", str(tmp_path / "out"), "--allow-code-execution")
    assert proc.returncode == 0, proc.stderr
    folder, sc = only_scorecard(tmp_path / "out")
    card = sc.target("coder").quality.criteria[0]
    rows = [json.loads(x) for x in (folder / "outputs.jsonl").read_text().splitlines()]
    passes: dict[str, int] = {}
    for r in rows:
        passes[r["case_id"]] = passes.get(r["case_id"], 0) + r["scores"]["tests"]["passed"]
        assert r["scores"]["tests"]["passed"] == (r["text"] == SOLUTION)
    assert card.pass_at_k == pytest.approx(sum(pass_at_k(3, c, 2) for c in passes.values()) / 30)
    assert card.pass_rate.contains(0.5)
