"""The over-saturation test: slopes with their margin of error, and the detector's rules."""

from __future__ import annotations

import math
import random

import pytest

from loadbench.metrics.saturation import OVER_SATURATED, Detector, slope_test, t_quantile
from loadbench.plan.run import SaturationRule


def test_t_quantile_is_close_to_the_exact_values() -> None:
    # exact two-sided 95% points of Student's t
    for dof, exact in ((5, 2.5706), (10, 2.2281), (30, 2.0423), (1000, 1.9623)):
        assert t_quantile(0.975, dof) == pytest.approx(exact, rel=0.01)


def test_a_clean_rise_is_rising_and_flat_noise_is_not() -> None:
    xs = [float(i) for i in range(20)]
    rise = slope_test(xs, [2.0 * x + 1.0 for x in xs], confidence=0.95, moe=2.0)
    assert rise is not None and rise.slope == pytest.approx(2.0) and rise.moe == pytest.approx(0.0, abs=1e-6)
    assert rise.rising
    rng = random.Random(1)
    flat = slope_test(xs, [5.0 + rng.gauss(0, 1) for _ in xs], confidence=0.95, moe=2.0)
    assert flat is not None and not flat.rising
    falling = slope_test(xs, [-x for x in xs], confidence=0.95, moe=2.0)
    assert falling is not None and not falling.rising and math.isinf(falling.moe)
    assert slope_test([1.0, 2.0], [1.0, 2.0], confidence=0.95, moe=2.0) is None
    assert slope_test([1.0, 1.0, 1.0], [1.0, 2.0, 3.0], confidence=0.95, moe=2.0) is None


def feed(detector: Detector, seconds: int, in_flight: float, ttft_s: float, growth: float) -> None:
    """One point of each series every 0.25 s, both growing by ``growth`` per second (plus noise)."""
    rng = random.Random(2)
    for i in range(seconds * 4):
        t = i / 4
        detector.add_in_flight(t, round(in_flight + growth * t + rng.uniform(-1, 1)))
        detector.add_ttft(t, ttft_s + growth * t * 0.05 + rng.uniform(-0.01, 0.01))


def test_a_growing_queue_is_over_saturated_once_old_enough() -> None:
    rule = SaturationRule(min_s=5, window_s=30, min_ttft_ms=300)
    d = Detector(rule)
    feed(d, 10, in_flight=5, ttft_s=0.4, growth=4.0)
    early = d.check(4.0)
    assert not early.saturated  # younger than min_s
    late = d.check(10.0)
    assert late.saturated and late.reason().startswith(OVER_SATURATED)
    assert late.in_flight is not None and late.in_flight.slope == pytest.approx(4.0, rel=0.1)


def test_a_steady_or_fast_target_is_not_over_saturated() -> None:
    rule = SaturationRule(min_s=5, window_s=30, min_ttft_ms=300)
    steady = Detector(rule)
    feed(steady, 10, in_flight=5, ttft_s=0.4, growth=0.0)
    assert not steady.check(10.0).saturated
    fast = Detector(rule)  # rising, but every TTFT far under min_ttft_ms: not in trouble
    feed(fast, 10, in_flight=5, ttft_s=0.01, growth=0.1)
    assert not fast.check(10.0).saturated


def test_old_points_leave_the_window() -> None:
    def fed() -> Detector:
        d = Detector(SaturationRule(min_s=0, window_s=4, min_ttft_ms=0, min_points=3))
        for i in range(40):  # a rise that stops at 5 s
            t = i / 4
            d.add_in_flight(t, min(t, 5.0) + 0.01 * (i % 3))
            d.add_ttft(t, 0.1 * min(t, 5.0) + 0.001 * (i % 2))
        return d

    rising = Detector(SaturationRule(min_s=0, window_s=4, min_ttft_ms=0, min_points=3))
    for i in range(20):
        rising.add_in_flight(i / 4, i / 4 + 0.01 * (i % 3))
        rising.add_ttft(i / 4, 0.1 * i / 4 + 0.001 * (i % 2))
    assert rising.check(4.75).saturated
    assert not fed().check(9.75).saturated  # the window holds only the flat part
