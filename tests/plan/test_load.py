"""The load plan: stages, rate levels, phases and the measurement window as pure functions of the run clock."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from loadbench.config import Profile, load_profile
from loadbench.plan.load import INSTANT_S, MAX_REQUESTS_CAP_S, LoadPlan, from_profile_dict

ROOT = Path(__file__).resolve().parents[2]


def plan_of(profile: Profile) -> LoadPlan:
    return LoadPlan.from_profile(profile)


def shape(data: dict[str, object]) -> LoadPlan:
    return plan_of(Profile.model_validate(data))


def test_flat_default() -> None:
    s = plan_of(Profile())
    assert s.spawn_at(0) == (20, 10.0)  # 20 users over 2 s
    assert s.spawn_at(19.99) == (20, 10.0)
    assert s.spawn_at(20) is None
    assert s.step_at(5) == 0 and s.step_at(20) is None and s.step_at(-1) is None
    assert s.phase_at(0) == "measure"


def test_phases_are_carved_from_the_run() -> None:
    s = shape({"duration_s": 30, "warmup_s": 5, "cooldown_s": 3})
    assert [s.phase_at(t) for t in (0, 4.99, 5, 26.99, 27, 29.9)] == [
        "warmup", "warmup", "measure", "measure", "cooldown", "cooldown"
    ]  # fmt: skip


def test_stages_spawn_rates_follow_the_ramp_from_the_previous_level() -> None:
    s = shape(
        {
            "stages": [
                {"duration_s": 10, "users": 10, "ramp_up_s": 5},
                {"duration_s": 10, "users": 4, "ramp_up_s": 2},
                {"duration_s": 5, "users": 4},
            ]
        }
    )
    assert s.total_s == 25
    assert s.spawn_at(1) == (10, 2.0)
    assert s.spawn_at(10) == (4, 3.0)
    assert s.spawn_at(20) == (4, 1 / INSTANT_S)
    assert s.spawn_at(25) is None


@settings(deadline=None)
@given(
    st.lists(st.tuples(st.floats(0.5, 100), st.integers(0, 500)), min_size=1, max_size=8), st.floats(0, 400)
)
def test_stage_plan_covers_the_run_without_gaps(stages: list[tuple[float, int]], t: float) -> None:
    s = shape({"stages": [{"duration_s": d, "users": u} for d, u in stages]})
    assert s.total_s == pytest.approx(sum(d for d, _ in stages))
    for a, b in zip(s.stages, s.stages[1:], strict=False):
        assert a.end_s == pytest.approx(b.start_s)
    got = s.spawn_at(t)
    if t >= s.total_s:
        assert got is None
    else:
        i = s.step_at(t)
        assert i is not None and s.stages[i].start_s <= t < s.stages[i].end_s + 1e-9
        assert got is not None and got[0] == stages[i][1] and got[1] > 0


def test_duration_caps_a_staged_plan() -> None:
    s = shape({"stages": [{"duration_s": 10, "users": 1}, {"duration_s": 10, "users": 2}], "duration_s": 15})
    assert s.total_s == 15 and s.stages[-1].end_s == 15 and s.spawn_at(15) is None


def test_shipped_2x_peak_profile() -> None:
    p = load_profile(ROOT / "profiles/2x-peak.yaml")
    s = plan_of(p)
    assert [(st.label, st.users) for st in s.stages] == [
        ("warmup", 5),
        ("peak", 10),
        ("2x-peak", 20),
        ("recovery", 10),
    ]
    assert 90 <= s.total_s <= 130  # runs against the mock in about two minutes
    assert s.phase_at(5) == "warmup" and s.phase_at(p.warmup_s) == "measure"
    assert s.spawn_at(p.warmup_s) == (10, 1.0)  # 5 -> 10 users over peak.ramp_s = 5 s


def test_open_loop_holds_max_in_flight_slots() -> None:
    s = shape({"arrival": {"rps": 5}, "duration_s": 10, "max_in_flight": 32})
    assert s.users_at(0) == 32
    assert s.spawn_at(10) is None
    peak = shape({"peak": {"rps": 4, "ramp_s": 2, "hold_s": 5}, "warmup_s": 3})
    assert [st.label for st in peak.steps()] == ["warmup", "peak", "2x-peak", "recovery"]
    assert peak.label_at(11) == "2x-peak"  # ramp to 2x starts at 3 + 7 = 10 s


PROFILES = [
    {},
    {"users": 3, "ramp_up_s": 1, "duration_s": 9, "warmup_s": 2, "cooldown_s": 1},
    {"stages": [{"duration_s": 4, "users": 2, "ramp_up_s": 1}, {"duration_s": 3, "users": 5}]},
    {"peak": {"users": 6, "ramp_s": 1, "hold_s": 2}, "warmup_s": 2},
    {"peak": {"rps": 4, "ramp_s": 2, "hold_s": 5}, "warmup_s": 3, "duration_s": 17},
    {"arrival": {"kind": "gamma", "burstiness": 2, "rps_start": 1, "rps_end": 9, "ramp_up_s": 4}, "duration_s": 10},
    {"sweep": {"variable": "users", "start": 2, "step": 2, "max": 6, "hold_s": 10}},
    {"sweep": {"variable": "rps", "start": 1, "step": 1, "max": 3, "hold_s": 5}, "arrival": {"kind": "constant"}},
]


@pytest.mark.parametrize("data", PROFILES)
def test_plan_survives_json_and_an_old_manifest_gives_the_same_plan(data: dict[str, object]) -> None:
    p = Profile.model_validate(data)
    plan = plan_of(p)
    assert LoadPlan.from_json(plan.to_json()) == plan
    assert LoadPlan.from_legacy_profile(p.model_dump(mode="json")) == plan
    assert plan.total_s == p.total_duration_s and plan.mode == p.mode


def test_an_old_profile_dict_is_read_without_today_s_schema() -> None:
    """A manifest from an older version may lack fields or carry ones the schema has since dropped."""
    old = {"users": 4, "duration_s": 6, "warmup_s": 1, "retired_field": True}
    plan = from_profile_dict(old)
    assert (plan.mode, plan.total_s, plan.users_at(2), plan.measure_window()) == ("closed", 6, 4, (1, 6))


def test_one_phase_rule_and_window() -> None:
    s = shape({"duration_s": 30, "warmup_s": 5, "cooldown_s": 3})
    assert s.measure_window() == (5, 27)
    assert s.phase_at(31) == "cooldown"  # sent after the plan: still the cool-down
    no_cooldown = shape({"duration_s": 30, "warmup_s": 5})
    assert no_cooldown.phase_at(30) == "measure" and no_cooldown.phase_at(-0.1) == "warmup"
    assert no_cooldown.measure_window() == (5, 30)


def test_an_rps_sweep_is_an_open_loop_plan() -> None:
    s = shape({"sweep": {"variable": "rps", "start": 2, "step": 2, "max": 6, "hold_s": 10}})
    assert s.mode == "open" and s.users_at(0) == 512  # request slots, not users
    assert [(st.label, st.start_s, st.end_s) for st in s.steps()] == [
        ("step-0", 0, 10), ("step-1", 10, 20), ("step-2", 20, 30)
    ]  # fmt: skip
    assert s.rate_at(15) == 4 and s.rate_at(30) is None
    assert s.offered_arrivals(5, 25) == pytest.approx(5 * 2 + 10 * 4 + 5 * 6)
    assert s.peak_load() == 6


def test_rate_follows_a_ramp_and_closed_loop_has_no_rate() -> None:
    s = shape({"arrival": {"rps_start": 2, "rps_end": 10, "ramp_up_s": 4}, "duration_s": 8})
    assert [s.rate_at(t) for t in (0, 2, 4, 7.9)] == [2, 6, 10, 10]
    assert s.offered_arrivals(0, 8) == pytest.approx((2 + 10) / 2 * 4 + 10 * 4)
    closed = shape({"users": 5, "duration_s": 4})
    assert closed.rate_at(1) is None and closed.offered_arrivals(0, 4) == 0 and closed.peak_load() == 5


def test_open_loop_bounded_by_max_requests_plans_arrivals_as_long_as_the_run() -> None:
    """Without duration_s a request-bounded run lasts up to the cap; its arrivals must too (they
    stopped at 20 s while the run waited for max_requests until the cap)."""
    s = shape({"arrival": {"rps": 2}, "max_requests": 100})
    assert s.segments[-1].end_s == s.total_s == MAX_REQUESTS_CAP_S
