"""Synthetic prompts: exact word counts, shared prefixes, nonces."""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from loadbench.workload.prompts import VOCABULARY, PromptBuilder, text


def test_vocabulary_is_varied_single_words() -> None:
    assert len(VOCABULARY) > 200 and len(set(VOCABULARY)) == len(VOCABULARY)
    assert all(w.isalpha() and w.islower() for w in VOCABULARY)


@settings(deadline=None)
@given(st.integers(0, 5000), st.integers(0, 2**32))
def test_text_has_exact_word_count(n: int, seed: int) -> None:
    assert len(text(random.Random(seed), n).split()) == n


@settings(deadline=None)
@given(
    st.integers(0, 300), st.integers(1, 8), st.booleans(), st.integers(1, 1000), st.integers(0, 100),
    st.integers(0, 2**16),
)  # fmt: skip
def test_builder_word_count_and_prefix(
    prefix: int, groups: int, nonce: bool, total: int, request_no: int, seed: int
) -> None:
    b = PromptBuilder(seed=seed, prefix_words=prefix, prefix_groups=groups, nonce=nonce, stream_index=0)
    out = b.build(random.Random(request_no), total, request_no).split()
    assert len(out) == max(total, b.min_words)
    if prefix:
        # the prefix is one of `groups` texts fixed by the seed, shared by every worker
        other = PromptBuilder(
            seed=seed, prefix_words=prefix, prefix_groups=groups, nonce=False, stream_index=3
        )
        prefixes = {
            " ".join(other.build(random.Random(i), prefix + 1, i).split()[:prefix]) for i in range(64)
        }
        assert len(prefixes) <= groups
        assert " ".join(out[:prefix]) in prefixes


def test_nonce_is_unique_per_request_and_stream() -> None:
    words = set()
    for stream in range(3):
        b = PromptBuilder(seed=1, prefix_words=4, prefix_groups=1, nonce=True, stream_index=stream)
        for n in range(50):
            words.add(b.build(random.Random(0), 10, n).split()[4])
    assert len(words) == 150
