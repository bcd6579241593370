"""Closed-loop load shapes, phases and stages as pure functions of the run clock."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from loadbench.config import Profile, load_profile
from loadbench.workload.shapes import INSTANT_S, LoadShape

ROOT = Path(__file__).resolve().parents[2]


def shape(data: dict[str, object]) -> LoadShape:
    return LoadShape.from_profile(Profile.model_validate(data))


def test_flat_default() -> None:
    s = LoadShape.from_profile(Profile())
    assert s.users_at(0) == (20, 10.0)  # 20 users over 2 s
    assert s.users_at(19.99) == (20, 10.0)
    assert s.users_at(20) is None
    assert s.stage_at(5) == 0 and s.stage_at(20) is None and s.stage_at(-1) is None
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
    assert s.users_at(1) == (10, 2.0)
    assert s.users_at(10) == (4, 3.0)
    assert s.users_at(20) == (4, 1 / INSTANT_S)
    assert s.users_at(25) is None


@settings(deadline=None)
@given(
    st.lists(st.tuples(st.floats(0.5, 100), st.integers(0, 500)), min_size=1, max_size=8), st.floats(0, 400)
)
def test_stage_plan_covers_the_run_without_gaps(stages: list[tuple[float, int]], t: float) -> None:
    s = shape({"stages": [{"duration_s": d, "users": u} for d, u in stages]})
    assert s.total_s == pytest.approx(sum(d for d, _ in stages))
    for a, b in zip(s.stages, s.stages[1:], strict=False):
        assert a.end_s == pytest.approx(b.start_s)
    got = s.users_at(t)
    if t >= s.total_s:
        assert got is None
    else:
        i = s.stage_at(t)
        assert i is not None and s.stages[i].start_s <= t < s.stages[i].end_s + 1e-9
        assert got is not None and got[0] == stages[i][1] and got[1] > 0


def test_duration_caps_a_staged_plan() -> None:
    s = shape({"stages": [{"duration_s": 10, "users": 1}, {"duration_s": 10, "users": 2}], "duration_s": 15})
    assert s.total_s == 15 and s.stages[-1].end_s == 15 and s.users_at(15) is None


def test_shipped_2x_peak_profile() -> None:
    p = load_profile(ROOT / "profiles/2x-peak.yaml")
    s = LoadShape.from_profile(p)
    assert [(st.label, st.users) for st in s.stages] == [
        ("warmup", 5),
        ("peak", 10),
        ("2x-peak", 20),
        ("recovery", 10),
    ]
    assert 90 <= s.total_s <= 130  # runs against the mock in about two minutes
    assert s.phase_at(5) == "warmup" and s.phase_at(p.warmup_s) == "measure"
    assert s.users_at(p.warmup_s) == (10, 1.0)  # 5 -> 10 users over peak.ramp_s = 5 s


def test_open_loop_holds_max_in_flight_slots() -> None:
    s = shape({"arrival": {"rps": 5}, "duration_s": 10, "max_in_flight": 32})
    assert s.users_at(0) is not None and s.users_at(0)[0] == 32  # type: ignore[index]
    assert s.users_at(10) is None
    peak = shape({"peak": {"rps": 4, "ramp_s": 2, "hold_s": 5}, "warmup_s": 3})
    assert [st.label for st in peak.stages] == ["warmup", "peak", "2x-peak", "recovery"]
    assert peak.label_at(11) == "2x-peak"  # ramp to 2x starts at 3 + 7 = 10 s
