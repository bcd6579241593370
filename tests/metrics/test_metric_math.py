"""Metric math against hand-computed values (formulas in the README)."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from loadbench.metrics import histogram as hg
from loadbench.metrics.timing import RequestTiming, derive, gaps_us
from loadbench.protocol.openai import OPENAI
from tests.conftest import event_decoded

MS = 1_000_000


def test_derive_closed_loop_stream() -> None:
    # sent at 0; first token 50 ms; 64 tokens 10 ms apart; end 1 ms after the last token
    tokens = [50 * MS + k * 10 * MS for k in range(64)]
    t = RequestTiming(intended_ns=0, sent_ns=0, first_byte_ns=2 * MS, first_token_ns=tokens[0],
                      last_token_ns=tokens[-1], end_ns=tokens[-1] + MS)
    d = derive(t, 64)
    assert d.queue_us == 0
    assert d.ttft_us == 50_000
    assert d.service_ttft_us == 50_000
    assert d.tpot_us == 10_000  # (680 - 50) ms / 63
    assert d.e2e_us == 681_000
    assert d.first_byte_us == 2_000
    assert gaps_us(tokens) == [10_000] * 63


def test_derive_open_loop_separates_queue_from_service() -> None:
    t = RequestTiming(intended_ns=0, sent_ns=30 * MS, first_byte_ns=None, first_token_ns=80 * MS,
                      last_token_ns=80 * MS, end_ns=81 * MS)
    d = derive(t, 1)
    assert d.queue_us == 30_000
    assert d.ttft_us == 80_000  # corrected for coordinated omission: from the intended start
    assert d.service_ttft_us == 50_000
    assert d.tpot_us is None  # one token: no decode interval
    assert d.e2e_us == 81_000


def test_several_tokens_a_chunk_give_tpot_per_token_from_the_usage() -> None:
    # 64 tokens in 16 chunks of 4, 8 ms apart: ITL is per chunk (8 ms), TPOT per token (2 ms)
    chunks = [80 * MS + k * 8 * MS for k in range(16)]
    t = RequestTiming(0, 0, MS, chunks[0], chunks[-1], chunks[-1], first_answer_ns=chunks[0], chunks=16)
    d = derive(t, 64)
    assert d.tpot_us == 2_000  # 120 ms / (64 - 64 / 16)
    assert gaps_us(chunks) == [8_000] * 15
    one_a_chunk = RequestTiming(0, 0, MS, chunks[0], chunks[-1], chunks[-1], chunks=16)
    assert derive(one_a_chunk, 16).tpot_us == 8_000  # as before: / (output_tokens - 1)


def test_ttft_counts_thinking_and_ttft_answer_waits_for_the_answer() -> None:
    # 10 thinking chunks from 80 ms, 8 ms apart, then the answer
    t = RequestTiming(0, 0, MS, 80 * MS, 300 * MS, 301 * MS, first_answer_ns=160 * MS, chunks=20)
    d = derive(t, 20)
    assert (d.ttft_us, d.ttft_answer_us) == (80_000, 160_000)
    assert derive(RequestTiming(0, 0, MS, 80 * MS, 300 * MS, 301 * MS), 20).ttft_answer_us is None


def test_no_token_means_no_ttft() -> None:
    d = derive(RequestTiming(0, 0, None, None, None, 5 * MS), None)
    assert d.ttft_us is None and d.tpot_us is None and d.e2e_us == 5_000


def test_role_only_and_empty_deltas_are_not_tokens() -> None:
    role = b'{"choices":[{"index":0,"delta":{"role":"assistant","content":""}}]}'
    empty = b'{"choices":[{"index":0,"delta":{}}]}'
    text = b'{"choices":[{"index":0,"delta":{"content":" tok1"}}]}'
    completion = b'{"choices":[{"index":0,"text":" a"}]}'
    usage = b'{"choices":[],"usage":{"prompt_tokens":12,"completion_tokens":64,"total_tokens":76}}'
    assert not event_decoded(role).content
    assert not event_decoded(empty).content
    assert event_decoded(text).content
    assert event_decoded(completion).content
    u = event_decoded(usage)
    assert not u.content and u.usage is not None and u.usage.prompt_tokens == 12 and u.usage.completion_tokens == 64
    boom = event_decoded(b'{"error":{"message":"boom"}}').error
    assert boom is not None and boom.message == "boom"
    assert event_decoded(b"not json").error is not None


def test_a_whole_body_decodes_to_its_text_and_usage() -> None:
    b = OPENAI.decode(b'{"choices":[{"message":{"content":"hi there"}}],"usage":{"prompt_tokens":3,'
                      b'"completion_tokens":2}}')
    assert b.usage is not None and (len(b.text), b.usage.prompt_tokens, b.usage.completion_tokens) == (8, 3, 2)


def test_histogram_precision_three_digits() -> None:
    h = hg.new_histogram()
    for v in (50_000, 50_010, 123_456, 9_999):
        hg.record(h, v)
    for v in (50_000, 50_010, 123_456, 9_999):
        # 3 significant digits: equivalent-value range is within 0.1% of the value
        assert abs(h.get_highest_equivalent_value(v) - v) <= v * 0.001 + 1
    stats = hg.stats_ms(h)
    assert stats["count"] == 4
    assert stats["min"] == pytest.approx(9.999, abs=0.01)
    assert stats["max"] == pytest.approx(123.456, rel=0.001)


def test_empty_histogram_stats_are_null() -> None:
    s = hg.stats_ms(hg.new_histogram())
    assert s["count"] == 0 and s["p50"] is None


@settings(max_examples=50, deadline=None)
@given(st.lists(st.integers(1, 10_000_000), min_size=1, max_size=400), st.integers(1, 6), st.integers(0, 99))
def test_merged_histograms_equal_one_histogram(values: list[int], parts: int, seed: int) -> None:
    rng = random.Random(seed)
    shards = [hg.new_histogram() for _ in range(parts)]
    whole = hg.new_histogram()
    for v in values:
        hg.record(whole, v)
        hg.record(shards[rng.randrange(parts)], v)
    # across a process boundary: encode, decode, merge
    merged = hg.merge(hg.decode(hg.encode(s)) for s in shards if s.get_total_count())
    assert hg.stats_ms(merged) == hg.stats_ms(whole)
    for p in (50.0, 90.0, 99.0, 99.9, 100.0):
        assert merged.get_value_at_percentile(p) == whole.get_value_at_percentile(p)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(1, 50_000_000), min_size=1, max_size=300))
def test_fast_stats_equal_hdrh_own_answers(values: list[int]) -> None:
    h = hg.new_histogram()
    for v in values:
        hg.record(h, v)
    s = hg.stats_ms(h)
    for key, p in hg.PERCENTILES:
        assert s[key] == round(h.get_value_at_percentile(p) / 1000.0, 4)
    assert s["mean"] == pytest.approx(round(h.get_mean_value() / 1000.0, 4), abs=2e-4)
    assert s["stdev"] == pytest.approx(round(h.get_stddev() / 1000.0, 4), abs=2e-4)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(-5, 5_000_000_000), min_size=0, max_size=200))
def test_vector_record_and_sparse_wire_equal_one_by_one(values: list[int]) -> None:
    one = hg.new_histogram()
    for v in values:
        hg.record(one, v)
    many = hg.new_histogram()
    hg.record_many(many, values)
    assert hg.to_sparse(many) == hg.to_sparse(one)
    assert many.get_total_count() == one.get_total_count()
    shipped = hg.new_histogram()
    hg.add_sparse(shipped, hg.to_sparse(one))
    assert hg.stats_ms(shipped) == hg.stats_ms(one)
    assert hg.encode(shipped) == hg.encode(one) or not values
    assert hg.sparse_of(values) == hg.to_sparse(one)
