"""The seeded request stream: bodies, determinism, mixes, datasets, calibration."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from loadbench.config import Scenario, load_scenario
from loadbench.workload import RequestFactory, calibrate
from loadbench.workload.prompts import VOCABULARY

ROOT = Path(__file__).resolve().parents[2]


def factory(scenario: Scenario | None = None, **kw: object) -> RequestFactory:
    args: dict[str, object] = {"model": "m", "stream": True, "include_usage": True, "seed": 7}
    args.update(kw)
    return RequestFactory(scenario or load_scenario(None), **args)  # type: ignore[arg-type]


def test_default_body_shape() -> None:
    spec = factory().next()
    body = orjson.loads(spec.body)
    assert spec.path == "/chat/completions"
    assert body["model"] == "m" and body["stream"] is True
    assert body["stream_options"] == {"include_usage": True}
    assert body["max_tokens"] == 64 == spec.output_tokens_requested
    assert [m["role"] for m in body["messages"]] == ["user"]
    words = body["messages"][0]["content"].split()
    assert len(words) == 128 == spec.prompt_tokens_requested
    assert len(set(words)) > 20  # varied, not one repeated word
    assert set(words) <= set(VOCABULARY)
    assert spec.request_type == "default" and spec.metadata == {}


def test_no_stream_options_without_streaming_or_usage() -> None:
    assert "stream_options" not in orjson.loads(factory(stream=False).next().body)
    assert "stream_options" not in orjson.loads(factory(include_usage=False).next().body)


def test_same_seed_same_sequence_other_stream_differs() -> None:
    a, b, c = factory(), factory(), factory(stream_index=1, stream_count=2)
    seq_a = [a.next().body for _ in range(20)]
    assert seq_a == [b.next().body for _ in range(20)]
    assert seq_a != [c.next().body for _ in range(20)]
    assert seq_a != [factory(seed=8).next().body for _ in range(20)]


def test_completions_api_and_sampling_and_extra_body() -> None:
    s = Scenario.model_validate(
        {
            "api": "completions",
            "system_prompt": "Be brief.",
            "sampling": {"temperature": 0.0, "top_p": 0.9},
            "extra_body": {"ignore_eos": True},
        }
    )
    spec = factory(s).next()
    body = orjson.loads(spec.body)
    assert spec.path == "/completions"
    assert body["prompt"].startswith("Be brief.\n\n")
    assert (body["temperature"], body["top_p"], body["ignore_eos"]) == (0.0, 0.9, True)


@settings(deadline=None)
@given(st.floats(min_value=0.25, max_value=4.0))
def test_prompt_scale_scales_word_count(scale: float) -> None:
    spec = factory(prompt_scale=scale).next()
    content = orjson.loads(spec.body)["messages"][0]["content"]
    assert len(content.split()) == max(1, round(128 * scale))
    assert spec.prompt_tokens_requested == 128


@settings(deadline=None)
@given(st.lists(st.integers(1, 5000), min_size=1, max_size=20), st.floats(0.5, 2.0))
def test_calibration_inverts_a_proportional_tokenizer(requested: list[int], ratio: float) -> None:
    reported = [max(1, round(q * ratio)) for q in requested]
    scale = calibrate(requested, reported)
    assert scale == pytest.approx(sum(requested) / sum(reported))
    assert calibrate(requested, [0] * len(requested), current_scale=1.3) == 1.3


def test_calibration_composes_with_current_scale() -> None:
    assert calibrate([100], [125], current_scale=0.8) == pytest.approx(0.64)
    with pytest.raises(ValueError):
        calibrate([1, 2], [1])


def test_prompt_overhead_counts_in_the_requested_figure_not_in_the_text() -> None:
    scenario = Scenario.model_validate({"system_prompt": "Be brief.", "prompt_tokens": 40})
    plain = RequestFactory(scenario, model="m", stream=False, include_usage=False, seed=1).next()
    with_overhead = RequestFactory(scenario, model="m", stream=False, include_usage=False, seed=1,
                                   prompt_overhead={"default": 7}).next()
    assert with_overhead.body == plain.body  # the same 40-word text
    assert (plain.prompt_tokens_requested, with_overhead.prompt_tokens_requested) == (40, 47)
