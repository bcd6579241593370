"""The generator's own delay against the accuracy promise: the bound, the threshold, and the verdict
a summary gives for loop-lag histograms of known P99."""

from __future__ import annotations

import pytest

from loadbench.metrics import histogram as hg
from loadbench.metrics.client_delay import (
    LAG_TO_DELAY,
    TTFT_P99_PROMISE_MS,
    beyond_promise,
    client_delay_ms,
    delay_reason,
)
from loadbench.metrics.recorder import LOOP_LAG_TAG, SCHEDULE_LAG_TAG
from loadbench.metrics.records import Generator
from loadbench.metrics.summarize import RunWindow, summarize
from tests.metrics.test_summarize import START_S, Interval, _facts, _plan, _run


def test_bound_is_the_lag_factor_times_loop_lag_plus_schedule_lag() -> None:
    assert client_delay_ms(None) is None
    assert client_delay_ms(1.5) == pytest.approx(LAG_TO_DELAY * 1.5)
    assert client_delay_ms(2.0, 3.0) == pytest.approx(LAG_TO_DELAY * 2.0 + 3.0)
    assert client_delay_ms(2.0, None) == client_delay_ms(2.0, 0.0)


def test_threshold_is_the_ttft_promise() -> None:
    assert not beyond_promise(None)
    assert not beyond_promise(TTFT_P99_PROMISE_MS)
    assert beyond_promise(TTFT_P99_PROMISE_MS + 0.1)


def test_reason_states_the_size_and_its_sources() -> None:
    text = delay_reason(8.4, 4.2, None)
    assert text.startswith("P99 figures may include up to 8.4 ms of client-side delay (loop-lag P99 4.2 ms;")
    assert "schedule-lag" not in text
    assert "schedule-lag P99 3.0 ms" in delay_reason(9.0, 3.0, 3.0)


def _lag_interval(tag: str, value_us: int, n: int = 200) -> Interval:
    h = hg.new_histogram()
    for _ in range(n):
        hg.record(h, value_us)
    return Interval(tag, 15.0, 2.0, h)


def _generator(*intervals: Interval) -> Generator:
    s = summarize(samples=_run(), intervals=list(intervals), plan=_plan(),
                  window=RunWindow(START_S, START_S + 30.0), facts=_facts())
    return s.generator


def test_summary_flags_a_run_whose_loop_lag_can_break_the_promise() -> None:
    g = _generator(_lag_interval(LOOP_LAG_TAG, 4_000))
    assert g.loop_lag_p99_ms == pytest.approx(4.0, abs=0.01)
    assert g.client_delay_ms == pytest.approx(LAG_TO_DELAY * 4.0, abs=0.1)
    assert g.saturated
    assert any(r.startswith(f"P99 figures may include up to {LAG_TO_DELAY * 4.0:.1f} ms") for r in g.reasons)


def test_summary_states_the_size_but_passes_a_run_inside_the_promise() -> None:
    g = _generator(_lag_interval(LOOP_LAG_TAG, 1_000))
    assert g.client_delay_ms == pytest.approx(LAG_TO_DELAY * 1.0, abs=0.1)
    assert not g.saturated and g.reasons == ()


def test_schedule_lag_adds_to_the_bound() -> None:
    g = _generator(_lag_interval(LOOP_LAG_TAG, 1_000), _lag_interval(SCHEDULE_LAG_TAG, 4_000))
    assert g.client_delay_ms == pytest.approx(LAG_TO_DELAY * 1.0 + 4.0, abs=0.1)
    assert g.saturated


def test_generator_record_round_trips_the_bound() -> None:
    g = Generator(loop_lag_p99_ms=1.2, client_delay_ms=2.4)
    assert Generator.from_json(g.to_json()) == g
    assert Generator.from_json({"loop_lag_p99_ms": 1.2}).client_delay_ms is None  # folders written before
