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
from loadbench.metrics.records import Generator, Summary
from loadbench.metrics.summarize import RunWindow, summarize
from loadbench.report.validity import check_valid
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


def _summary(*intervals: Interval) -> Summary:
    return summarize(samples=_run(), intervals=list(intervals), plan=_plan(),
                     window=RunWindow(START_S, START_S + 30.0), facts=_facts())


def test_summary_flags_a_run_whose_loop_lag_can_break_the_promise() -> None:
    s = _summary(_lag_interval(LOOP_LAG_TAG, 4_000))
    g = s.generator
    assert g.loop_lag_p99_ms == pytest.approx(4.0, abs=0.01)
    assert g.client_delay_ms == pytest.approx(LAG_TO_DELAY * 4.0, abs=0.1)
    # a caveat with its size, not saturation: the generator kept up, its P99s may carry 8 ms
    assert g.beyond_promise and not g.saturated
    assert any(w.startswith(f"P99 figures may include up to {LAG_TO_DELAY * 4.0:.1f} ms") for w in s.warnings)
    assert check_valid(s, min_samples=0) == []
    strict = check_valid(s, min_samples=0, strict=True)
    assert len(strict) == 1 and f"up to {LAG_TO_DELAY * 4.0:g} ms" in strict[0]


def test_summary_states_the_size_but_passes_a_run_inside_the_promise() -> None:
    s = _summary(_lag_interval(LOOP_LAG_TAG, 1_000))
    g = s.generator
    assert g.client_delay_ms == pytest.approx(LAG_TO_DELAY * 1.0, abs=0.1)
    assert not g.saturated and not g.beyond_promise and g.reasons == ()
    assert check_valid(s, min_samples=0, strict=True) == []


def test_schedule_lag_adds_to_the_bound() -> None:
    g = _generator(_lag_interval(LOOP_LAG_TAG, 1_000), _lag_interval(SCHEDULE_LAG_TAG, 4_000))
    assert g.client_delay_ms == pytest.approx(LAG_TO_DELAY * 1.0 + 4.0, abs=0.1)
    assert g.beyond_promise and not g.saturated


def test_a_generator_that_cannot_keep_up_is_saturated() -> None:
    s = _summary(_lag_interval(LOOP_LAG_TAG, 20_000))
    assert s.generator.saturated and s.generator.beyond_promise
    assert "event-loop lag P99 was 20.0 ms" in s.generator.reasons[0]
    assert any("saturated" in r for r in check_valid(s, min_samples=0))
    late = _summary(_lag_interval(LOOP_LAG_TAG, 1_000), _lag_interval(SCHEDULE_LAG_TAG, 30_000))
    assert late.generator.saturated and "schedule lag P99 was 30.0 ms" in late.generator.reasons[0]


def test_generator_record_round_trips_the_bound() -> None:
    g = Generator(loop_lag_p99_ms=1.2, client_delay_ms=2.4)
    assert Generator.from_json(g.to_json()) == g
    flagged = Generator(loop_lag_p99_ms=4.0, client_delay_ms=8.0, beyond_promise=True)
    assert Generator.from_json(flagged.to_json()) == flagged
    assert Generator.from_json({"loop_lag_p99_ms": 1.2}).client_delay_ms is None  # folders written before
