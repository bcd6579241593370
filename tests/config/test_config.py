"""Config edge: loading, defaults, and errors that name file, field and fix."""

from __future__ import annotations

from pathlib import Path

import pytest

from loadbench.config import Profile, Scenario, load_profile, load_scenario, profile_from_dict
from loadbench.errors import ConfigError, ExitCode

ROOT = Path(__file__).resolve().parents[2]


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def profile_error(tmp_path: Path, text: str) -> ConfigError:
    path = write(tmp_path, "p.yaml", text)
    with pytest.raises(ConfigError) as info:
        load_profile(path)
    assert str(path) in str(info.value)
    assert info.value.exit_code == ExitCode.BAD_INPUT
    return info.value


def scenario_error(tmp_path: Path, text: str) -> ConfigError:
    path = write(tmp_path, "s.yaml", text)
    with pytest.raises(ConfigError) as info:
        load_scenario(path)
    return info.value


def test_builtin_defaults_match_shipped_default_files() -> None:
    shipped, builtin = load_profile(ROOT / "profiles/default.yaml"), load_profile(None)
    for field in ("users", "ramp_up_s", "total_duration_s", "seed", "stream", "include_usage", "mode"):
        assert getattr(shipped, field) == getattr(builtin, field), field
    assert (builtin.users, builtin.ramp_up_s, builtin.total_duration_s) == (20, 2.0, 20.0)
    s_shipped, s_builtin = load_scenario(ROOT / "scenarios/default.yaml"), load_scenario(None)
    assert s_shipped.prompt_tokens == s_builtin.prompt_tokens
    assert s_shipped.output_tokens == s_builtin.output_tokens
    assert s_builtin.prompt_tokens.value == 128 and s_builtin.output_tokens.value == 64


def test_models_are_frozen_and_dump_to_json() -> None:
    p = load_profile(None)
    with pytest.raises(Exception):  # noqa: B017 - pydantic raises ValidationError on frozen assignment
        p.users = 3  # type: ignore[misc]
    dumped = p.model_dump(mode="json")
    assert dumped["users"] == 20
    assert Profile.model_validate(dumped) == p
    assert Scenario.model_validate(load_scenario(None).model_dump(mode="json")) == load_scenario(None)


def test_yaml_syntax_error_names_line(tmp_path: Path) -> None:
    err = profile_error(tmp_path, "users: 3\nramp_up_s: [1, 2\n")
    assert err.field.startswith("line ")
    assert "YAML syntax" in err.problem


def test_duplicate_key_rejected(tmp_path: Path) -> None:
    err = profile_error(tmp_path, "users: 3\nusers: 4\n")
    assert err.field == "line 2" and "duplicate key 'users'" in err.problem


def test_top_level_must_be_mapping(tmp_path: Path) -> None:
    err = profile_error(tmp_path, "- users: 3\n")
    assert "mapping" in err.fix


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="file not found"):
        load_profile(tmp_path / "nope.yaml")


def test_unknown_key_lists_allowed_keys(tmp_path: Path) -> None:
    err = profile_error(tmp_path, "users: 3\nuzers: 4\n")
    assert err.field == "uzers"
    assert "unknown key" in err.problem
    assert "did you mean 'users'?" in err.fix and "ramp_up_s" in err.fix


def test_unknown_nested_key(tmp_path: Path) -> None:
    err = profile_error(
        tmp_path, "stages:\n  - {duration_s: 5, users: 2}\n  - {duration_s: 5, users: 2, rampup: 1}\n"
    )
    assert err.field == "stages[1].rampup"
    assert "ramp_up_s" in err.fix


def test_stage_without_duration(tmp_path: Path) -> None:
    err = profile_error(tmp_path, "stages:\n  - {duration_s: 5, users: 2}\n  - {users: 4}\n")
    assert err.field == "stages[1].duration_s"
    assert "missing" in err.problem and "duration_s" in err.fix
    assert f"{err.path}: stages[1].duration_s: " in str(err)


def test_wrong_type_is_not_coerced(tmp_path: Path) -> None:
    err = profile_error(tmp_path, 'users: "20"\n')
    assert err.field == "users" and "wrong type" in err.problem and "integer" in err.fix
    assert "remove the quotes" in err.fix


def test_negative_rate(tmp_path: Path) -> None:
    err = profile_error(tmp_path, "arrival: {kind: poisson, rps: -2}\nduration_s: 5\n")
    assert err.field == "arrival.rps" and "-2" in err.problem and "> 0" in err.fix


def test_unknown_distribution_kind(tmp_path: Path) -> None:
    err = scenario_error(tmp_path, "prompt_tokens: {kind: zipf, mean: 3}\n")
    assert err.field == "prompt_tokens.kind"
    assert "'zipf'" in err.problem and "lognormal" in err.fix


def test_distribution_missing_parameter(tmp_path: Path) -> None:
    err = scenario_error(tmp_path, "output_tokens: {kind: normal, mean: 30}\n")
    assert err.field == "output_tokens.stdev" and "stdev" in err.fix


def test_distribution_parameter_that_does_not_apply(tmp_path: Path) -> None:
    err = scenario_error(tmp_path, "output_tokens: {kind: normal, mean: 30, stdev: 3, max: 40}\n")
    assert err.field == "output_tokens.max" and "clip_max" in err.fix


def test_overrides_apply_only_non_none() -> None:
    p = load_profile(None).apply_overrides(users=5, duration_s=3, seed=None, stream=False, model="m")
    assert (p.users, p.total_duration_s, p.seed, p.stream, p.model) == (5, 3.0, 0, False, "m")


def test_override_is_validated() -> None:
    with pytest.raises(ConfigError) as info:
        load_profile(None).apply_overrides(users=0)
    assert info.value.field == "users" and "command line" in info.value.path


def test_override_users_conflicts_with_stages(tmp_path: Path) -> None:
    p = load_profile(write(tmp_path, "p.yaml", "stages: [{duration_s: 5, users: 2}]\n"))
    with pytest.raises(ConfigError, match="conflicts"):
        p.apply_overrides(users=3)


def test_profile_round_trips_through_a_run_plan_dict() -> None:
    p = load_profile(ROOT / "profiles/default.yaml")
    assert profile_from_dict(p.model_dump(mode="json")) == p
    with pytest.raises(ConfigError) as info:
        profile_from_dict({"users": -1}, source="run plan")
    assert info.value.path == "run plan" and info.value.field == "users"
