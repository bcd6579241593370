"""Near-miss guard: pure feature extraction and comparison."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from loadbench.cache.guard import analyse, disagreement


@pytest.mark.parametrize(("a", "b"), [
    ("Convert 1,000 yen", "convert 1000 yen"),
    ("Add two eggs", "add 2 eggs"),
    ("It costs 3.50", "it costs 3.5"),
    ("How do I reset my password?", "how can i reset my password"),
    ("How do I fix a flat tire?", "How do I repair a flat tire?"),
    ("How do I get from the airport to downtown?", "How do I get to downtown from the airport?"),
    ("Explain how a bill becomes law in the US.", "Can you explain how a bill becomes law in the US?"),
])
def test_rewordings_agree(a: str, b: str) -> None:
    assert disagreement(analyse(a), analyse(b)) is None


@pytest.mark.parametrize(("a", "b", "reason"), [
    ("What is the first law?", "What is the second law?", "number"),
    ("Which planets have rings?", "Which planets have no rings?", "negation"),
    ("Why can my phone connect?", "Why can't my phone connect?", "negation"),
    ("What is the GDP of Brazil?", "What is the GDP of Argentina?", "entity"),
    ("What's the population of the US?", "What's the population of us?", "content"),
    ("How do I bake bread?", "How do I bake gluten-free bread?", "content"),
    ("Flights to Paris", "Flights from Paris", "order"),
    ("Is Java faster than Go?", "Is Go faster than Java?", "order"),
])
def test_near_misses_disagree_for_the_right_reason(a: str, b: str, reason: str) -> None:
    assert disagreement(analyse(a), analyse(b)) == reason


_words = st.lists(st.sampled_from(["what", "is", "the", "Paris", "not", "to", "from", "3", "two", "cat",
                                   "dog", "don't", "bigger", "than", "?", "."]), max_size=12)


@given(a=_words, b=_words)
def test_guard_is_symmetric_and_reflexive(a: list[str], b: list[str]) -> None:
    fa, fb = analyse(" ".join(a)), analyse(" ".join(b))
    assert disagreement(fa, fa) is None
    assert (disagreement(fa, fb) is None) == (disagreement(fb, fa) is None)
