"""Open-loop arrival schedules: exact constant spacing, rates, ramps, worker split."""

from __future__ import annotations

import itertools
import random
import statistics

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from loadbench.config import Profile
from loadbench.plan.load import RateSegment, integrated_rate
from loadbench.workload.arrivals import arrival_offsets_ns, plan_arrivals_ns

NS = 1_000_000_000


def flat(rps: float, duration_s: float) -> list[RateSegment]:
    return [RateSegment(0.0, duration_s, rps, rps, "main")]


def ramp(r0: float, r1: float, ramp_s: float, hold_s: float) -> list[RateSegment]:
    return [RateSegment(0.0, ramp_s, r0, r1, "ramp"), RateSegment(ramp_s, hold_s, r1, r1, "main")]


def offsets(segments: list[RateSegment], kind: str = "constant", seed: int = 0, **kw: object) -> list[int]:
    return list(arrival_offsets_ns(segments, kind=kind, rng=random.Random(seed), **kw))  # type: ignore[arg-type]


@settings(deadline=None)
@given(st.floats(0.1, 2000), st.floats(0.5, 30))
def test_constant_kth_arrival_is_exactly_k_over_rps(rps: float, duration_s: float) -> None:
    xs = offsets(flat(rps, duration_s))
    assert xs == [round(k / rps * NS) for k in range(len(xs))]
    # bounded by the duration: every arrival before it, and the next one would not be
    assert xs[-1] < duration_s * NS + 1
    assert len(xs) == pytest.approx(rps * duration_s, abs=1.0001)


@settings(max_examples=20, deadline=None)
@given(st.sampled_from(["poisson", "gamma"]), st.floats(5, 200), st.floats(0.2, 4), st.integers(0, 2**32))
def test_random_kinds_achieve_the_mean_rate(kind: str, rps: float, burstiness: float, seed: int) -> None:
    duration_s = 4000 / rps  # about 4000 arrivals
    b = burstiness if kind == "gamma" else 1.0
    xs = offsets(flat(rps, duration_s), kind, seed, burstiness=b)
    expected = rps * duration_s
    # count of a renewal process: variance ~ expected * cv^2 (cv^2 = burstiness)
    assert len(xs) == pytest.approx(expected, abs=6 * (expected * b) ** 0.5 + 2)
    assert xs == sorted(xs)


def test_burstiness_is_the_squared_cv_of_gaps() -> None:
    for b in (0.25, 1.0, 4.0):
        xs = offsets(flat(100, 200), "gamma", 3, burstiness=b)
        gaps = [y - x for x, y in itertools.pairwise(xs)]
        cv2 = (statistics.pstdev(gaps) / statistics.fmean(gaps)) ** 2
        assert cv2 == pytest.approx(b, rel=0.15)


@settings(deadline=None)
@given(st.floats(0, 50), st.floats(0.5, 50), st.floats(0.5, 20), st.floats(0, 10))
def test_constant_ramp_places_kth_arrival_where_integral_is_k(
    r0: float, r1: float, ramp_s: float, hold_s: float
) -> None:
    segments = ramp(r0, r1, ramp_s, hold_s)
    xs = offsets(segments)
    for k, t_ns in enumerate(xs):
        assert integrated_rate(segments, t_ns / NS) == pytest.approx(k, abs=1e-6)
    total = integrated_rate(segments, ramp_s + hold_s)
    assert len(xs) == pytest.approx(total, abs=1.0001)


def test_poisson_ramp_follows_the_rate() -> None:
    segments = ramp(0, 200, 20, 0.0001)
    xs = offsets(segments, "poisson", 11)
    first_half = sum(1 for x in xs if x < 10 * NS)
    # integral 0..10 s of 10 t dt = 500; 10..20 s = 1500
    assert first_half == pytest.approx(500, abs=6 * 500**0.5)
    assert len(xs) - first_half == pytest.approx(1500, abs=6 * 1500**0.5)


@settings(deadline=None)
@given(st.integers(1, 6), st.sampled_from(["constant", "poisson", "gamma"]), st.integers(0, 1000))
def test_workers_interleave_one_global_schedule(workers: int, kind: str, seed: int) -> None:
    segments = flat(50, 3)
    whole = offsets(segments, kind, seed, burstiness=1.0)
    parts = [offsets(segments, kind, seed, worker_index=w, worker_count=workers) for w in range(workers)]
    assert sorted(x for p in parts for x in p) == whole
    for w, part in enumerate(parts):
        assert part == whole[w::workers]


def test_max_count_is_global() -> None:
    assert len(offsets(flat(100, 10), max_count=25)) == 25
    parts = [offsets(flat(100, 10), max_count=25, worker_index=w, worker_count=4) for w in range(4)]
    assert sum(len(p) for p in parts) == 25


def test_zero_rate_gives_nothing_and_bad_worker_index_is_refused() -> None:
    assert offsets([RateSegment(0, 5, 0, 0, "idle")]) == []
    with pytest.raises(ValueError):
        offsets(flat(1, 1), worker_index=2, worker_count=2)


def test_profile_schedule_is_seeded_and_bounded() -> None:
    p = Profile.model_validate({"arrival": {"kind": "poisson", "rps": 20}, "duration_s": 5, "seed": 4})
    a, b = list(plan_arrivals_ns(p.load_plan(), p.seed)), list(plan_arrivals_ns(p.load_plan(), p.seed))
    assert a == b and all(0 <= x < 5 * NS for x in a)
    assert a != list(plan_arrivals_ns(p.load_plan(), 5))
    closed = Profile()
    assert list(plan_arrivals_ns(closed.load_plan(), closed.seed)) == []


def test_peak_rps_profile_rates() -> None:
    p = Profile.model_validate({"peak": {"rps": 4, "ramp_s": 2, "hold_s": 5}, "warmup_s": 3})
    segs = p.load_plan().segments
    assert [s.label for s in segs] == [
        "warmup", "ramp-to-peak", "peak", "ramp-to-2x-peak", "2x-peak", "ramp-to-recovery", "recovery"
    ]  # fmt: skip
    assert [(s.rps_start, s.rps_end) for s in segs] == [
        (2, 2),
        (2, 4),
        (4, 4),
        (4, 8),
        (8, 8),
        (8, 4),
        (4, 4),
    ]
    assert segs[-1].end_s == p.total_duration_s == 3 + 3 * 7
    # expected arrivals: warmup 6 + ramps 6 + 12 + 12 + holds 20 + 40 + 20
    assert integrated_rate(segs, p.total_duration_s) == pytest.approx(116)
