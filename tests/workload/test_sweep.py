"""Sweep planning, SLO checks and per-request goodput."""

from __future__ import annotations

import itertools

from hypothesis import given, settings
from hypothesis import strategies as st

from loadbench.config import Profile, Slo, Sweep
from loadbench.workload.sweep import (
    max_passing_load,
    request_is_good,
    request_limits_ms,
    slo_met,
    sweep_steps,
)


@settings(deadline=None)
@given(st.integers(1, 50), st.integers(1, 20), st.integers(0, 200))
def test_sweep_values_cover_start_to_max_by_step(start: int, step: int, extra: int) -> None:
    sweep = Sweep(variable="users", start=start, step=step, max=start + extra, hold_s=10)
    values = sweep.values()
    assert values[0] == start and values[-1] <= start + extra < values[-1] + step
    assert all(b - a == step for a, b in itertools.pairwise(values))


def test_float_rps_sweep_does_not_drift() -> None:
    assert Sweep(variable="rps", start=0.1, step=0.1, max=1.0, hold_s=1).values()[-1] == 0.1 + 9 * 0.1


def test_sweep_steps_match_the_load_shape() -> None:
    p = Profile.model_validate(
        {"sweep": {"variable": "users", "start": 2, "step": 2, "max": 6, "hold_s": 10}}
    )
    steps = sweep_steps(p.sweep)  # type: ignore[arg-type]
    shape = p.load_plan()
    assert [(s.value, s.start_s, s.end_s) for s in steps] == [(2, 0, 10), (4, 10, 20), (6, 20, 30)]
    for s in steps:
        assert shape.step_at(s.start_s) == s.index
        assert shape.users_at(s.start_s + 1) == s.value


SLO = Slo(ttft_ms={"p50": 200, "p95": 500}, tpot_ms={"p95": 50}, error_rate=0.01)


def test_slo_met_and_reasons() -> None:
    good = {"ttft_ms": {"p50": 150, "p95": 480}, "tpot_ms": {"p95": 20}, "error_rate": 0.0}
    assert slo_met(good, SLO) == (True, [])
    bad = {"ttft_ms": {"p50": 150, "p95": 520}, "error_rate": 0.05}
    met, reasons = slo_met(bad, SLO)
    assert not met
    assert reasons == ["ttft_ms.p95 = 520 > 500", "tpot_ms.p95: no data", "error_rate = 0.05 > 0.01"]


def test_request_goodput_uses_the_loosest_limit() -> None:
    limits = request_limits_ms(SLO)
    assert limits == {"ttft_ms": 500, "tpot_ms": 50}
    assert request_is_good(limits, ok=True, ttft_ms=499, tpot_ms=50, e2e_ms=99999)
    assert not request_is_good(limits, ok=True, ttft_ms=501, tpot_ms=10)
    assert not request_is_good(limits, ok=False, ttft_ms=1, tpot_ms=1)
    assert request_is_good(limits, ok=True, ttft_ms=100, tpot_ms=None)  # one output token: no tpot


def test_max_passing_load_stops_at_first_failure() -> None:
    assert max_passing_load([(4, True), (8, True), (12, False), (16, True)]) == 8
    assert max_passing_load([(4, False)]) is None
    assert max_passing_load([]) is None
