"""The one cost formula: a call's usage, a load test's mean tokens and a rates-only price all price
tokens the same way, and the module sits below everything that prices (it imports only errors)."""

from __future__ import annotations

import datetime as dt

import pytest

from loadbench.pricing import Price, Usage, call_cost, model_cost, token_cost
from tests.test_layers import import_graph

PRICE = Price("m", input_per_mtok=2.0, output_per_mtok=8.0, cached_input_per_mtok=0.5, cache_write_per_mtok=2.5,
              embedding_per_mtok=0.1, source="s", as_of=dt.date(2026, 1, 1))


def test_token_cost_prices_each_bucket_at_its_rate() -> None:
    # 1000 prompt tokens: 600 cached, 100 written to the cache, 300 uncached; 500 output
    expected = (300 * 2.0 + 600 * 0.5 + 100 * 2.5 + 500 * 8.0) / 1e6
    assert token_cost(PRICE, 1000, 500, 600, 100) == pytest.approx(expected)
    u = Usage(prompt_tokens=1000, completion_tokens=500, cached_tokens=600, cache_write_tokens=100)
    assert model_cost(u, PRICE) == pytest.approx(expected)
    assert call_cost(u, PRICE, "miss") == pytest.approx((expected, expected))


def test_mean_tokens_are_priced_as_uncached_input() -> None:
    # a load test's budget line: 128.5 prompt and 64.25 output tokens per request on average
    assert token_cost(PRICE, 128.5, 64.25) == pytest.approx((128.5 * 2.0 + 64.25 * 8.0) / 1e6)


def test_more_cached_tokens_than_prompt_tokens_never_bill_negative_input() -> None:
    assert token_cost(PRICE, 10, 0, 20, 0) == pytest.approx(20 * 0.5 / 1e6)


def test_a_rates_only_price_bills_every_input_token_at_the_input_rate() -> None:
    judge = Price.of("judge", 3.0, 15.0)
    u = Usage(prompt_tokens=400, completion_tokens=20, cached_tokens=300, cache_write_tokens=50)
    assert model_cost(u, judge) == pytest.approx((400 * 3.0 + 20 * 15.0) / 1e6)
    assert (judge.embedding_per_mtok, judge.source) == (0.0, "")


def test_pricing_sits_below_everything_that_prices() -> None:
    graph = import_graph()
    # protocol: Usage, the token counts a dialect decodes, is priced here (and protocol never prices)
    assert graph.get("pricing", set()) <= {"errors", "units", "protocol"}
    assert "pricing" not in graph.get("protocol", set())
