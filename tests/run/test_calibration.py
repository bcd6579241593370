"""Prompt calibration sizes only the synthetic text (not datasets, not the system prompt)."""

from __future__ import annotations

from pathlib import Path

import pytest

from loadbench.config import load_scenario
from loadbench.protocol.dialect import LLMRequest, Message
from loadbench.run.calibration import _synthetic_types, _without_text
from tests.conftest import REPO, only_run, read_json, run_loadbench


def test_only_synthetic_request_types_are_calibrated() -> None:
    assert _synthetic_types(load_scenario(REPO / "scenarios/cache-mix.yaml")) == {"unique"}
    assert _synthetic_types(load_scenario(None)) == {"default"}
    assert _synthetic_types(load_scenario(REPO / "scenarios/dataset-fables.yaml")) == set()


def test_the_overhead_request_keeps_everything_but_the_text() -> None:
    chat = LLMRequest(model="m", messages=(Message("system", "Be brief."), Message("user", "a b c")),
                      max_tokens=1)
    assert _without_text(chat).messages == (Message("system", "Be brief."), Message("user", ""))
    assert chat.messages[1].content == "a b c"  # the original is untouched
    assert _without_text(LLMRequest(model="m", prompt="Be brief.\n\na b c")).prompt == "Be brief.\n\n"
    assert _without_text(LLMRequest(model="m", prompt="a b c")).prompt == ""


@pytest.mark.slow
def test_a_mixed_scenario_with_a_system_prompt_calibrates_to_the_mock_s_exact_word_count(mock_factory,
                                                                                          tmp_path: Path) -> None:
    """The mock counts one token per word, so the right scale is 1 (it came out at 0.652: the
    system prompt and the dataset requests were counted as if they were synthetic text)."""
    mock = mock_factory()
    out = tmp_path / "results"
    r = run_loadbench("run", "--target", mock.base_url, "--scenario", str(REPO / "scenarios/cache-mix.yaml"),
                      "--users", "1", "--duration", "1", "--out", str(out), timeout_s=120)
    assert r.returncode in (0, 3), r.stdout + r.stderr
    assert read_json(only_run(out) / "manifest.json")["prompt_scale"] == pytest.approx(1.0, abs=0.02)
    assert "over the synthetic text" in r.stdout
