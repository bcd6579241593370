"""The web start form turned into a run's inputs, with the CLI's messages for bad values (no Locust here)."""

from __future__ import annotations

import pytest

from loadbench.errors import InputError
from loadbench.workers.web_form import WebDefaults, prepare
from tests.conftest import REPO

DEFAULTS = WebDefaults(target_url="http://127.0.0.1:9/v1", model="mock-model", profile="",
                       scenario=str(REPO / "scenarios/default.yaml"), out_dir="results", name="web")


def _form(**fields: str) -> dict[str, str]:
    return {"user_count": "20", "spawn_rate": "10", "scenario": DEFAULTS.scenario, **fields}


def test_users_ramp_and_duration_become_the_profile() -> None:
    p = prepare(_form(run_time="1m30s"), DEFAULTS)
    assert (p.profile.users, p.profile.ramp_up_s, p.profile.duration_s) == (20, 2.0, 90.0)
    assert p.target.url == "http://127.0.0.1:9/v1" and p.target.model == "mock-model"


@pytest.mark.parametrize(("fields", "message"), [
    ({"user_count": "0"}, "--users: 0 is not in the range x>=1"),
    ({"user_count": "-5"}, "--users: -5 is not in the range x>=1"),
    ({"user_count": "many"}, "--users: 'many' is not an integer"),
    ({"spawn_rate": "0"}, "ramp up (users/s): 0 is not in the range x>0"),
    ({"run_time": "soon"}, "--duration: 'soon' is not a duration"),
    ({"scenario": "scenarios/nope.yaml"}, "scenarios/nope.yaml: (file): file not found"),
    ({"load_profile": "profiles/nope.yaml"}, "profiles/nope.yaml: (file): file not found"),
    ({"host": "127.0.0.1:8000"}, "--target: '127.0.0.1:8000' is not an http(s) URL"),
    ({"prompt_dist": "uniform", "prompt_params": "min=5"}, "prompt_tokens.max: kind 'uniform' needs min, max"),
    ({"output_params": "mean"}, "output_params: 'mean' is not name=value"),
    ({"max_tokens": "-1"}, "max output tokens: -1 is not in the range x>=1"),
])
def test_bad_values_get_the_cli_messages(fields: dict[str, str], message: str) -> None:
    with pytest.raises(InputError) as err:
        prepare(_form(**fields), DEFAULTS)
    assert message in str(err.value)


def test_distributions_and_max_tokens_replace_the_scenario_lengths() -> None:
    p = prepare(_form(prompt_dist="lognormal", prompt_params="mean=512 stdev=100", max_tokens="64",
                      stream="false"), DEFAULTS)
    assert (p.scenario.prompt_tokens.kind, p.scenario.prompt_tokens.mean) == ("lognormal", 512.0)
    assert p.scenario.output_tokens.clip_max == 64
    assert p.profile.stream is False


def test_a_staged_profile_keeps_its_own_load() -> None:
    p = prepare(_form(load_profile=str(REPO / "profiles/2x-peak.yaml")), DEFAULTS)
    assert p.profile.stages or p.profile.peak


def test_the_name_given_on_the_command_line_names_every_run() -> None:
    named = WebDefaults(**{**DEFAULTS.to_json(), "name": "nightly"})
    assert prepare(_form(), named).name == "nightly"
    assert prepare(_form(load_profile=str(REPO / "profiles/2x-peak.yaml")), named).name == "nightly"


def test_without_a_name_each_run_is_named_after_its_profile() -> None:
    unnamed = WebDefaults(**{**DEFAULTS.to_json(), "name": None})
    assert prepare(_form(), unnamed).name == "default"
    peak = prepare(_form(load_profile=str(REPO / "profiles/2x-peak.yaml")), unnamed)
    assert peak.name == peak.profile.name != "default"


def test_runs_from_the_form_keep_the_target_protocol() -> None:
    bedrock = WebDefaults(**{**DEFAULTS.to_json(), "protocol": "bedrock", "region": "eu-west-1", "auth": "aws"})
    assert WebDefaults.from_json(bedrock.to_json()) == bedrock
    target = prepare(_form(), bedrock).target
    assert (target.protocol, target.region, target.auth) == ("bedrock", "eu-west-1", "aws")
