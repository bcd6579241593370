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
