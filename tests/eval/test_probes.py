"""The failure-mode probes: pure outcome rules, and end to end against mocks that reject or
silently truncate an overflowing prompt."""

from __future__ import annotations

from pathlib import Path

import pytest

from loadbench.eval.probes import judge_probe, over_refusal_rate, probes
from loadbench.pricing import Usage
from tests.conftest import run_loadbench
from tests.eval.conftest import FAST, label_dataset, only_scorecard, write_suite


def by_name(window: int | None = 1000) -> dict:
    return {p.name: p for p in probes(window)}


def test_probe_outcomes() -> None:
    p = by_name()
    assert p["context-110"].sent_words == 1100 and "context-90" not in by_name(None)
    assert judge_probe(p["context-110"], False, 400, "too long", "", None, Usage()).outcome == "clean_error"
    assert judge_probe(p["context-110"], False, 400, "too long", "", None, Usage()).passed
    silent = judge_probe(p["context-110"], True, 200, None, "x", "stop", Usage(prompt_tokens=1000))
    assert (silent.outcome, silent.passed) == ("silent_truncation", False)
    assert not judge_probe(p["context-110"], True, 200, None, "x", "stop", Usage(prompt_tokens=1100)).passed
    assert judge_probe(p["context-100"], True, 200, None, "x", "stop", Usage(prompt_tokens=1000)).passed
    assert not judge_probe(p["context-100"], False, 500, "boom", "", None, Usage()).passed
    assert judge_probe(p["json-required"], True, 200, None, '{"city": "Paris"}', "stop", Usage()).passed
    assert not judge_probe(p["max-tokens"], True, 200, None, "a " * 20, "stop", Usage(completion_tokens=20)).passed
    assert judge_probe(p["max-tokens"], True, 200, None, "a b", "stop",
                       Usage(completion_tokens=50, reasoning_tokens=48)).passed
    refused = judge_probe(p["borderline-kill"], True, 200, None, "I'm sorry, but I can't help with that.", "stop",
                          Usage())
    answered = judge_probe(p["borderline-lock"], True, 200, None, "Turn each wheel until...", "stop", Usage())
    assert (refused.outcome, answered.outcome) == ("refused", "answered")
    assert over_refusal_rate([refused, answered]) == 0.5
    assert not judge_probe(p["empty-input"], False, 500, "boom", "", None, Usage()).passed


@pytest.mark.slow
def test_overflow_error_versus_silent_truncation_end_to_end(tmp_path: Path, mock_factory) -> None:
    data = label_dataset(tmp_path / "d.jsonl", 4)
    strict = mock_factory("--answers", str(data), "--context-window", "800", "--overflow", "error", *FAST)
    lenient = mock_factory("--answers", str(data), "--context-window", "800", "--overflow", "truncate", *FAST)
    suite = write_suite(tmp_path, data, [
        {"name": "strict", "url": strict.base_url, "model": "mock-model", "context_window": 800},
        {"name": "lenient", "url": lenient.base_url, "model": "mock-model", "context_window": 800}], probes=True)
    proc = run_loadbench("eval", str(suite), "--out", str(tmp_path / "out"))
    assert proc.returncode == 0, proc.stderr
    _, sc = only_scorecard(tmp_path / "out")
    outcome = {t: {p.probe: p.outcome for p in sc.target(t).probes} for t in ("strict", "lenient")}
    assert outcome["strict"]["context-110"] == "clean_error"
    assert outcome["lenient"]["context-110"] == "silent_truncation"
    assert outcome["strict"]["context-100"] == outcome["lenient"]["context-100"] == "accepted"
    assert outcome["strict"]["max-tokens"] == "honoured"
    assert "probes: lenient 10/12 pass (failed context-110: silent_truncation, json-required: not_json)" in proc.stdout
