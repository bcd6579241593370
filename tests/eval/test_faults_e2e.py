"""A broken target fails its calls (counted, never acceptable) without breaking the evaluation."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import run_loadbench
from tests.eval.conftest import FAST, label_dataset, only_scorecard, write_suite

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("fault", ["html-200", "garbage-200", "no-done", "html-502"])
def test_a_broken_target_is_scored_as_failed_calls(tmp_path: Path, mock_factory, fault: str) -> None:
    data = label_dataset(tmp_path / "d.jsonl", 4)
    broken = mock_factory("--answers", str(data), "--fault", fault, *FAST)
    suite = write_suite(tmp_path, data, [{"name": "broken", "url": broken.base_url, "model": "mock-model"}],
                        timeout_s=5)
    proc = run_loadbench("eval", str(suite), "--out", str(tmp_path / "out"))
    assert proc.returncode == 0, proc.stderr
    folder, sc = only_scorecard(tmp_path / "out")
    card = sc.target("broken")
    assert (card.calls, card.errors) == (4, 4) and card.quality.acceptable.value == 0.0
    errors = {json.loads(x)["error"] for x in (folder / "outputs.jsonl").read_text().splitlines()}
    assert all(e for e in errors), errors
