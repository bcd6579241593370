"""The web start form turned into a run's inputs, with the CLI's messages for bad values (no Locust here)."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from loadbench.config import load_profile
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


def _mooncake(tmp_path: Path, n: int = 5) -> Path:
    p = tmp_path / "t.jsonl"
    p.write_bytes(b"".join(orjson.dumps({"timestamp": 100 * i, "input_length": 8, "output_length": 2}) + b"\n"
                           for i in range(n)))
    return p


def test_session_fields_make_synthetic_sessions(tmp_path: Path) -> None:
    p = prepare(_form(session_turns="uniform min=3 max=8", session_user_tokens="32",
                      think_ms="uniform min=500 max=3000", session_header="X-Conversation"), DEFAULTS)
    s = p.scenario.sessions
    assert s is not None
    assert (s.turns.kind, s.turns.min, s.turns.max, s.user_tokens.value) == ("uniform", 3, 8, 32)
    assert s.think_ms is not None and (s.think_ms.kind, s.think_ms.min, s.think_ms.max) == ("uniform", 500, 3000)
    assert (s.session_header, s.mode, s.dataset) == ("X-Conversation", "live", None)
    fixed = prepare(_form(session_turns="5", session_header="none"), DEFAULTS).scenario.sessions
    assert fixed is not None and (fixed.turns.value, fixed.session_header) == (5, None)
    assert prepare(_form(), DEFAULTS).scenario.sessions is None  # no session field: single requests


def test_a_session_dataset_from_the_form_is_read_and_checked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "conv.jsonl").write_bytes(orjson.dumps({"conversations": [
        {"from": "human", "value": "a b"}, {"from": "gpt", "value": "c"}, {"from": "human", "value": "d"}]}) + b"\n")
    monkeypatch.chdir(tmp_path)  # relative to where the page was started
    s = prepare(_form(session_dataset="conv.jsonl", session_mode="replay"), DEFAULTS).scenario.sessions
    assert s is not None and (s.dataset, s.mode) == (str(tmp_path / "conv.jsonl"), "replay")


@pytest.mark.parametrize(("fields", "message"), [
    # a scenario file with the same sessions block says the same
    ({"session_turns": "uniform min=3"}, "sessions.turns.max: kind 'uniform' needs min, max"),
    ({"session_turns": "0"}, "sessions.turns.value"),
    ({"session_turns": "3", "session_mode": "replay"},
     "sessions.mode: replay mode sends recorded answers, and synthetic sessions have none"),
    ({"session_dataset": "no-such.jsonl"}, "no-such.jsonl: sessions.dataset: no such file"),
    ({"session_turns": "3", "session_dataset": "x.jsonl"}, "synthetic turns and a session dataset exclude each other"),
    ({"think_ms": "1000"}, "think_ms: applies to sessions; set session turns or a session dataset"),
    ({"session_header": "X-A"}, "session_header: applies to sessions"),
    ({"session_turns": "3", "think_ms": "uniform min=5"}, "sessions.think_ms.max: kind 'uniform' needs min, max"),
    ({"session_turns": "3", "think_ms": "mean"}, "think_ms: 'mean' is not name=value"),
    # loadbench replay's messages
    ({"trace": "no-such.jsonl"}, "no-such.jsonl: arrival.trace: no such file"),
    ({"trace": "NO_SUCH_VAR_FOR_A_TRACE"}, "no such file, and no environment variable NO_SUCH_VAR_FOR_A_TRACE"),
    ({"trace": "t.jsonl", "trace_speed": "0"}, "--speed: 0 is not in the range 0<x<=10000"),
    ({"trace": "t.jsonl", "trace_speed": "fast"}, "--speed: 'fast' is not a number"),
    ({"trace": "t.jsonl", "trace_sample": "1.5"}, "--sample: 1.5 is not in the range 0<x<=1"),
    ({"trace_speed": "2"}, "--speed and --sample apply to a trace replay"),
    ({"trace": "t.jsonl", "trace_format": "azure"}, "TIMESTAMP: column missing from the header"),
])
def test_bad_session_and_trace_fields_get_the_cli_messages(fields: dict[str, str], message: str, tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    _mooncake(tmp_path)
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("NO_SUCH_VAR_FOR_A_TRACE", raising=False)
    with pytest.raises(InputError) as err:
        prepare(_form(**fields), DEFAULTS)
    assert message in str(err.value)


def test_a_trace_from_the_form_is_loadbench_replays_arrival(tmp_path: Path) -> None:
    p = prepare(_form(trace=str(_mooncake(tmp_path, 41)), trace_speed="2", trace_sample="1"), DEFAULTS)
    a = p.profile.arrival
    assert a is not None and (a.format, a.speed, a.trace_requests, a.trace_span_s) == ("mooncake", 2.0, 41, 2.0)
    plan = p.profile.load_plan()
    assert plan.mode == "open" and plan.trace is not None  # the users field gives way to the trace
    # the same profile as the CLI's replay builds
    cli = load_profile(None).with_arrival({"trace": str(tmp_path / "t.jsonl"), "format": "auto", "speed": 2.0,
                                           "sample": 1.0}, source="command line")
    assert cli.arrival == a
