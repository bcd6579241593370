"""The live feed: interval and run quantiles from HDR histograms, rates and errors from the timeline line."""

from __future__ import annotations

import pytest

from loadbench.metrics import histogram as hg
from loadbench.metrics.live import LiveFeed


def hist_of(values_us: list[int]):
    """An HDR histogram of these values (microseconds); shared with the exporter's tests."""
    h = hg.new_histogram()
    for v in values_us:
        hg.record(h, v)
    return h


def test_interval_and_run_quantiles_are_the_hdr_percentiles() -> None:
    feed = LiveFeed()
    first = [50_000] * 8 + [80_000] * 2  # P50 50 ms, P90 80 ms
    second = [100_000] * 10
    p1 = feed.add(0.0, 2.0, {"ttft": hist_of(first)}, {"ok": 10, "output_tokens": 640, "outcomes": {"ok": 10}})
    feed.add(2.0, 2.0, {"ttft": hist_of(second)}, {"ok": 10, "outcomes": {"ok": 10}})
    assert p1.latency["ttft"].count == 10
    assert p1.latency["ttft"].p50_ms == pytest.approx(50.0, rel=1e-3)
    assert p1.latency["ttft"].p90_ms == pytest.approx(80.0, rel=1e-3)
    assert p1.latency["itl"].count == 0 and p1.latency["itl"].p50_ms is None
    run = feed.run_quantiles("ttft")
    merged = hist_of(first + second)
    assert run.count == 20
    assert run.p50_ms == merged.get_value_at_percentile(50.0) / 1000.0  # 80 ms: the 10th of 20 values
    assert run.p99_ms == pytest.approx(100.0, rel=1e-3)
    assert p1.requests_per_s == 5.0 and p1.output_tokens_per_s == 320.0


def test_errors_by_outcome_leave_out_ok_and_run_totals_add_up() -> None:
    feed = LiveFeed()
    p = feed.add(0.0, 1.0, {}, {"ok": 3, "outcomes": {"ok": 3, "timeout": 2, "http_error": 1}})
    feed.add(1.0, 1.0, {}, {"ok": 1, "outcomes": {"ok": 1, "timeout": 1}})
    assert p.errors == {"timeout": 2, "http_error": 1}
    assert feed.outcomes == {"ok": 4, "timeout": 3, "http_error": 1}


def test_cache_states_are_kept_apart() -> None:
    feed = LiveFeed()
    p = feed.add(0.0, 1.0, {"ttft": hist_of([5_000, 6_000, 60_000]), "ttft:cache=hit-exact": hist_of([5_000]),
                            "ttft:cache=hit-semantic": hist_of([6_000]), "ttft:cache=miss": hist_of([60_000]),
                            "e2e:cache=miss": hist_of([90_000])}, {"ok": 3})
    assert set(p.cache_ttft) == {"hit-exact", "hit-semantic", "miss"}
    assert p.cache_ttft["hit-exact"].p50_ms == pytest.approx(5.0, rel=1e-3)
    assert p.cache_ttft["miss"].p50_ms == pytest.approx(60.0, rel=1e-3)
    feed.add(1.0, 1.0, {"ttft:cache=miss": hist_of([70_000])}, {"ok": 1})
    assert feed.run_cache_ttft()["miss"].count == 2
    assert feed.run_cache_ttft()["hit-semantic"].count == 1


def test_saturation_follows_the_summary_rule_on_cpu() -> None:
    feed = LiveFeed()
    for i in range(4):
        feed.add(float(i), 1.0, {}, {"ok": 1, "cpu_percent_max": 50.0})
    assert feed.saturation() == []
    for i in range(4, 8):
        feed.add(float(i), 1.0, {}, {"ok": 1, "cpu_percent_max": 99.0})
    assert feed.saturation() and "core" in feed.saturation()[0]


def test_rows_hold_the_last_interval_and_the_run() -> None:
    feed = LiveFeed()
    assert [r["name"] for r in feed.rows()] == ["ttft (ms)", "itl (ms)", "tpot (ms)", "e2e (ms)"]
    feed.add(0.0, 1.0, {"ttft": hist_of([50_000])}, {"ok": 1, "outcomes": {"ok": 1}})
    feed.add(1.0, 1.0, {"ttft": hist_of([70_000]), "ttft:cache=miss": hist_of([70_000])},
             {"ok": 1, "output_tokens": 8, "outcomes": {"ok": 1, "timeout": 1}})
    rows = {r["name"]: r for r in feed.rows()}
    assert rows["ttft (ms)"]["p50"] == pytest.approx(70.0, rel=1e-3)
    assert rows["ttft (ms)"]["run_count"] == 2
    assert rows["ttft, cache miss (ms)"]["run_count"] == 1
    assert rows["output tokens/s"]["p50"] == 8.0
    assert rows["errors: timeout"]["run_count"] == 1
    assert "errors: ok" not in rows


def test_quantiles_equal_hdrh_own_percentiles() -> None:
    import random

    from loadbench.metrics.live import Quantiles

    rng = random.Random(7)
    h = hist_of([int(rng.lognormvariate(10, 1)) + 1 for _ in range(5000)])
    q = Quantiles.of(h)
    assert (q.p50_ms, q.p90_ms, q.p99_ms) == tuple(h.get_value_at_percentile(p) / 1000.0 for p in (50, 90, 99))
