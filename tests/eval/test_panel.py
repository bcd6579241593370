"""Judge panel agreement: Fleiss' kappa against a published example, agreement from verdicts."""

from __future__ import annotations

import pytest

from loadbench.eval.aggregate import _fleiss_kappa


def test_fleiss_kappa_matches_the_textbook_example() -> None:
    # Fleiss (1971) as reproduced on Wikipedia: 10 subjects, 14 raters, 5 categories -> kappa 0.210
    table = [[0, 0, 0, 0, 14], [0, 2, 6, 4, 2], [0, 0, 3, 5, 6], [0, 3, 9, 2, 0], [2, 2, 8, 1, 1],
             [7, 7, 0, 0, 0], [3, 2, 6, 3, 0], [2, 5, 3, 2, 2], [6, 5, 2, 1, 0], [0, 2, 2, 3, 7]]
    assert _fleiss_kappa(table) == pytest.approx(0.210, abs=0.0005)


def test_fleiss_kappa_edges() -> None:
    assert _fleiss_kappa([[2, 0], [2, 0]]) == 1.0  # everyone always agrees on one category
    assert _fleiss_kappa([[1, 1], [1, 1]]) == pytest.approx(-1.0)  # two raters always disagree
    assert _fleiss_kappa([]) is None


def test_panel_agreement_and_kappa_from_judgements(tmp_path) -> None:
    from loadbench.eval.aggregate import _judge_card
    from loadbench.eval.criteria import Score
    from loadbench.eval.records import Judgement
    from loadbench.eval.suite import load_suite

    (tmp_path / "d.jsonl").write_text('{"id": "c", "prompt": "p", "reference": "r"}\n')
    (tmp_path / "s.yaml").write_text(
        "name: s\ndatasets: [d.jsonl]\ntargets: [{name: t, url: 'http://127.0.0.1:9/v1', model: m}]\n"
        "criteria: [{name: r, type: judge, rubric: [{name: ok, description: fine}]}]\n"
        "judge: {judges: [{name: a, url: 'http://127.0.0.1:9/v1', model: ja}, "
        "{name: b, url: 'http://127.0.0.1:9/v1', model: jb}]}\n")
    suite = load_suite(tmp_path / "s.yaml")
    verdicts = {"a": [True, True, False, False], "b": [True, False, False, False]}
    js = [Judgement("score", judge, "t", "c", i, "r", Score(1.0 if v else 0.0, v), cost=0.001)
          for judge, vs in verdicts.items() for i, v in enumerate(vs)]
    card = _judge_card(suite, js)
    assert card is not None
    assert card.panel_agreement == pytest.approx(3 / 4)
    # by hand: P̄ = 0.75, p_pass = 3/8, Pe = (3/8)² + (5/8)² = 34/64 -> κ = (0.75 − 34/64) / (1 − 34/64)
    assert card.panel_kappa == pytest.approx((0.75 - 34 / 64) / (1 - 34 / 64))
    assert [j.calls for j in card.judges] == [4, 4] and card.spend == pytest.approx(0.008)
