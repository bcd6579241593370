"""Length distributions: bounds always hold, moments match the configured ones."""

from __future__ import annotations

import random
import statistics

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from loadbench.config import LengthDist
from loadbench.workload.lengths import make_sampler, sample_length

N = 4000


def draws(dist: LengthDist, seed: int, n: int = N) -> list[int]:
    sampler, rng = make_sampler(dist), random.Random(seed)
    return [sampler(rng) for _ in range(n)]


dists = st.one_of(
    st.builds(lambda v: LengthDist(kind="fixed", value=v), st.integers(1, 10_000)),
    st.builds(
        lambda a, w: LengthDist(kind="uniform", min=a, max=a + w), st.integers(1, 5000), st.integers(0, 5000)
    ),
    st.builds(
        lambda m, s: LengthDist(kind="normal", mean=m, stdev=s), st.floats(1, 5000), st.floats(0, 2000)
    ),
    st.builds(
        lambda m, s: LengthDist(kind="lognormal", mean=m, stdev=s), st.floats(1, 5000), st.floats(0, 5000)
    ),
    st.builds(lambda m: LengthDist(kind="exponential", mean=m), st.floats(0.5, 5000)),
)


@settings(deadline=None)
@given(dists, st.integers(1, 50), st.integers(0, 200), st.integers(0, 2**32))
def test_draws_are_ints_within_clip_bounds(dist: LengthDist, lo: int, width: int, seed: int) -> None:
    clipped = dist.model_copy(update={"clip_min": lo, "clip_max": lo + width})
    for n in draws(clipped, seed, 200):
        assert isinstance(n, int) and lo <= n <= lo + width
    for n in draws(dist, seed, 200):
        assert n >= 1


@settings(deadline=None)
@given(dists, st.integers(0, 2**32))
def test_same_seed_same_draws(dist: LengthDist, seed: int) -> None:
    assert draws(dist, seed, 50) == draws(dist, seed, 50)


@settings(max_examples=25, deadline=None)
@given(st.floats(200, 5000), st.floats(0.05, 0.3), st.integers(0, 2**32))
def test_normal_moments(mean: float, cv: float, seed: int) -> None:
    xs = draws(LengthDist(kind="normal", mean=mean, stdev=mean * cv), seed)
    # clipping at 1 is > 3 stdev away here, so the moments are the configured ones
    assert statistics.fmean(xs) == pytest.approx(mean, rel=6 * cv / N**0.5 + 0.002)
    assert statistics.pstdev(xs) == pytest.approx(mean * cv, rel=0.08, abs=1)


@settings(max_examples=25, deadline=None)
@given(st.floats(100, 5000), st.floats(0.1, 1.0), st.integers(0, 2**32))
def test_lognormal_mean_and_stdev_are_of_the_lengths(mean: float, cv: float, seed: int) -> None:
    xs = draws(LengthDist(kind="lognormal", mean=mean, stdev=mean * cv), seed, 8000)
    assert statistics.fmean(xs) == pytest.approx(mean, rel=8 * cv / 8000**0.5 + 0.005)
    assert statistics.pstdev(xs) == pytest.approx(mean * cv, rel=0.25)
    assert statistics.median(xs) < statistics.fmean(xs) + 1  # right-skewed


@settings(max_examples=25, deadline=None)
@given(st.floats(50, 5000), st.integers(0, 2**32))
def test_exponential_mean(mean: float, seed: int) -> None:
    xs = draws(LengthDist(kind="exponential", mean=mean), seed)
    assert statistics.fmean(xs) == pytest.approx(mean, rel=6 / N**0.5 + 0.01)


@settings(max_examples=25, deadline=None)
@given(st.integers(1, 1000), st.integers(0, 1000), st.integers(0, 2**32))
def test_uniform_is_inclusive_and_centered(lo: int, width: int, seed: int) -> None:
    xs = draws(LengthDist(kind="uniform", min=lo, max=lo + width), seed)
    assert min(xs) >= lo and max(xs) <= lo + width
    assert statistics.fmean(xs) == pytest.approx(lo + width / 2, abs=6 * (width + 1) / 3.4 / N**0.5 + 0.5)
    if width <= 10:
        assert set(xs) == set(range(lo, lo + width + 1))


def test_fixed_and_clipped_fixed() -> None:
    assert sample_length(LengthDist(kind="fixed", value=7), random.Random(0)) == 7
    assert sample_length(LengthDist(kind="fixed", value=7, clip_max=5), random.Random(0)) == 5


def test_int_shorthand_is_fixed() -> None:
    assert LengthDist.model_validate(12) == LengthDist(kind="fixed", value=12)
