"""Sweep planning and the capacity a sweep names (SLO checks and goodput: tests/metrics/test_slo.py)."""

from __future__ import annotations

import itertools

from hypothesis import given, settings
from hypothesis import strategies as st

from loadbench.config import Profile, Sweep
from loadbench.workload.sweep import max_passing_load


@settings(deadline=None)
@given(st.integers(1, 50), st.integers(1, 20), st.integers(0, 200))
def test_sweep_values_cover_start_to_max_by_step(start: int, step: int, extra: int) -> None:
    sweep = Sweep(variable="users", start=start, step=step, max=start + extra, hold_s=10)
    values = sweep.values()
    assert values[0] == start and values[-1] <= start + extra < values[-1] + step
    assert all(b - a == step for a, b in itertools.pairwise(values))


def test_float_rps_sweep_does_not_drift() -> None:
    assert Sweep(variable="rps", start=0.1, step=0.1, max=1.0, hold_s=1).values()[-1] == 0.1 + 9 * 0.1


def test_sweep_steps_are_held_back_to_back_in_the_plan() -> None:
    p = Profile.model_validate(
        {"sweep": {"variable": "users", "start": 2, "step": 2, "max": 6, "hold_s": 10}}
    )
    shape = p.load_plan()
    assert shape.total_s == 30
    for index, (start_s, users) in enumerate([(0, 2), (10, 4), (20, 6)]):
        assert shape.step_at(start_s) == index
        assert shape.users_at(start_s + 1) == users


def test_max_passing_load_stops_at_first_failure() -> None:
    assert max_passing_load([(4, True), (8, True), (12, False), (16, True)]) == 8
    assert max_passing_load([(4, False)]) is None
    assert max_passing_load([]) is None
