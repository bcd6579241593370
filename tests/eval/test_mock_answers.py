"""The mock's answer book without a server: the seeded draws have the configured rates."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from loadbench.eval.dataset import load_dataset
from loadbench.mock.answers import AnswerBook, cut_reply
from loadbench.mock.judge import similarity
from loadbench.mock.request import GenerationRequest
from loadbench.mock.settings import MockSettings, problems
from tests.eval.conftest import LABELS, label_dataset

N = 2000


def book(tmp_path: Path, **kw: object) -> AnswerBook:
    cases = load_dataset(label_dataset(tmp_path / "d.jsonl", N)).cases
    return AnswerBook(cases, replace(MockSettings(), **kw))


def test_accuracy_is_the_share_of_correct_answers(tmp_path: Path) -> None:
    b = book(tmp_path, accuracy=0.7, seed=3)
    correct = sum(b.answer(c) == c.label for c in b.by_text.values())
    assert correct / N == pytest.approx(0.7, abs=0.03)  # binomial sd at n=2000 is 0.010


def test_wrong_labels_are_other_labels_uniformly(tmp_path: Path) -> None:
    b = book(tmp_path, accuracy=0.0)
    wrong = [b.answer(c) for c in b.by_text.values()]
    assert all(w in LABELS for w in wrong)
    assert all(w != c.label for w, c in zip(wrong, b.by_text.values(), strict=True))


def test_repeats_all_pass_with_the_documented_probability(tmp_path: Path) -> None:
    a, c, k = 0.8, 0.4, 3
    b = book(tmp_path, accuracy=a, consistency=c, seed=9)
    cases = list(b.by_text.values())
    all_pass = sum(all(b.answer(x) == x.label for _ in range(k)) for x in cases) / N
    expected = a * (c + (1 - c) * a) ** k + (1 - a) * ((1 - c) * a) ** k
    assert all_pass == pytest.approx(expected, abs=0.035)


def test_format_errors_are_a_share_of_wrong_json_answers(tmp_path: Path) -> None:
    path = tmp_path / "j.jsonl"
    path.write_text("".join(f'{{"id": "j{i}", "prompt": "order {i}", "fields": {{"n": {i}}}}}\n' for i in range(N)))
    b = AnswerBook(load_dataset(path).cases, replace(MockSettings(), accuracy=0.5, format_error_rate=0.4))
    import orjson

    outs = [b.answer(x) for x in b.by_text.values()]
    malformed = 0
    for out in outs:
        try:
            orjson.loads(out)
        except orjson.JSONDecodeError:
            malformed += 1
    assert malformed / N == pytest.approx(0.5 * 0.4, abs=0.03)


def test_verbosity_bills_hidden_reasoning_and_max_tokens_cuts() -> None:
    g = GenerationRequest(model="m", prompt_tokens=10, output_tokens=3, stream=True, include_usage=True)
    r = cut_reply("one two three four five", g, replace(MockSettings(), verbosity=100))
    assert (r.text, r.finish_reason, r.completion_tokens, r.reasoning_tokens) == ("one two three", "length", 103, 100)
    t = cut_reply("x", g, replace(MockSettings(), context_window=4))
    assert t.prompt_tokens == 4  # truncate mode reports the cut prompt


def test_settings_reject_out_of_range_answer_options() -> None:
    assert ("accuracy", "must be between 0 and 1, got 1.5") in problems(replace(MockSettings(), accuracy=1.5))
    assert any(f == "overflow" for f, _ in problems(replace(MockSettings(), overflow="drop")))


def test_judge_similarity() -> None:
    assert similarity("the cat sat", "The cat sat.") == 1.0
    assert similarity("dogs bark", "the cat sat") == 0.0
    assert 0 < similarity("the cat", "the cat sat on the mat") < 1
