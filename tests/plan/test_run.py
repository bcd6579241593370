"""The run plan: typed pieces built once from the validated profile and scenario, on the wire and in
plan.json through one versioned reader that also reads the plans written before the schema key."""

from __future__ import annotations

from typing import Any

import msgpack
import pytest

from loadbench.config import Profile, Scenario, load_scenario
from loadbench.errors import ConfigError
from loadbench.plan.load import LoadPlan
from loadbench.plan.run import REDACTED, SCHEMA, AbortRule, ProfileSettings, RunPlan, TargetSpec, Workload
from tests.conftest import REPO

PROFILE = Profile.model_validate({
    "users": 3, "duration_s": 7, "stream": False, "timeout_s": 12.5, "stall_ms": 90, "seed": 4, "interval_s": 1.5,
    "abort_on": {"error_rate": 0.5, "after_requests": 30}})
TARGET = TargetSpec(url="http://127.0.0.1:9/v1", model="m", headers={"X-Team": "a", "X-Token": "s3cret"},
                    secret_headers=["X-Token"])


def _plan() -> RunPlan:
    scenario = load_scenario(REPO / "scenarios/chat-mix.yaml")
    return RunPlan.build("r1", TARGET, PROFILE, scenario, workers=2, prompt_scale=1.25,
                         prompt_overhead={"chat": 7})


def test_the_pieces_are_read_from_the_validated_profile_and_scenario() -> None:
    plan = _plan()
    assert plan.settings == ProfileSettings(stream=False, timeout_s=12.5, stall_ms=90.0, late="drop",
                                            abort_on=AbortRule(error_rate=0.5, after_requests=30))
    assert plan.load == PROFILE.load_plan()
    assert (plan.seed, plan.interval_s, plan.workers) == (4, 1.5, 2)
    assert plan.workload.scenario == load_scenario(REPO / "scenarios/chat-mix.yaml").model_dump(mode="json")
    assert (plan.workload.prompt_scale, dict(plan.workload.prompt_overhead)) == (1.25, {"chat": 7})


def test_the_wire_round_trip_keeps_every_piece() -> None:
    plan = _plan()
    wire = msgpack.unpackb(msgpack.packb(plan.to_json()))  # what a worker receives
    assert wire["schema"] == SCHEMA
    assert RunPlan.from_json(wire) == plan


def test_the_record_redacts_secret_header_values_and_the_wire_keeps_them() -> None:
    plan = _plan()
    assert plan.to_record()["target"]["headers"] == {"X-Team": "a", "X-Token": REDACTED}
    assert plan.to_json()["target"]["headers"]["X-Token"] == "s3cret"
    assert plan.target.headers["X-Token"] == "s3cret"  # the record did not change the plan


def _v1(profile: Profile, *, with_load_plan: bool) -> dict[str, Any]:
    """plan.json as written before the schema key (RunPlan.to_dict of that version)."""
    return {"run_id": "old", "target": {"url": "http://127.0.0.1:9/v1", "model": "m", "name": "default",
                                        "api_key_env": None, "include_usage": True, "headers": {},
                                        "secret_headers": []},
            "profile": profile.dump_for_record(), "scenario": Scenario().model_dump(mode="json"),
            "load_plan": profile.load_plan().to_json() if with_load_plan else {}, "seed": profile.seed,
            "interval_s": profile.interval_s, "workers": 3, "start_unix_ns": 0,
            "extra": {"prompt_scale": 0.8, "prompt_overhead": {"chat": 5}}}


@pytest.mark.parametrize("with_load_plan", [True, False])
def test_a_version_1_plan_is_read(with_load_plan: bool) -> None:
    profile = Profile.model_validate({"users": 2, "duration_s": 5, "late": "send", "stall_ms": 300,
                                      "arrival": {"rps": 4}})
    plan = RunPlan.from_json(_v1(profile, with_load_plan=with_load_plan))
    assert plan.load == profile.load_plan() and plan.load.mode == "open"
    assert plan.settings == ProfileSettings(stream=True, timeout_s=600.0, stall_ms=300.0, late="send")
    assert plan.workload == Workload(Scenario().model_dump(mode="json"), 0.8, {"chat": 5})
    assert (plan.run_id, plan.workers, plan.seed) == ("old", 3, 0)
    # read again in today's version, it is the same plan
    assert RunPlan.from_json(plan.to_json()) == plan


def test_a_plan_of_an_unknown_version_is_refused_with_the_fix() -> None:
    with pytest.raises(ConfigError) as err:
        RunPlan.from_json({**_plan().to_json(), "schema": "loadbench.run_plan/9"})
    assert "schema" in str(err.value) and "loadbench.run_plan/9" in str(err.value)
    assert "version that wrote it" in str(err.value)


def test_the_plan_carries_no_profile_or_load_dicts() -> None:
    plan = _plan()
    assert isinstance(plan.load, LoadPlan) and isinstance(plan.settings, ProfileSettings)
    assert not {"profile", "load_plan", "extra"} & set(plan.to_json())
