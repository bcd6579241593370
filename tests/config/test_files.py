"""Shipped profiles/scenarios load; datasets and cross-field rules give errors naming file, field, fix."""

from __future__ import annotations

from pathlib import Path

import pytest

from loadbench.config import Profile, load_profile, load_scenario, resolve_api_key
from loadbench.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("path", sorted((ROOT / "profiles").glob("*.yaml")), ids=lambda p: p.name)
def test_shipped_profiles_load(path: Path) -> None:
    p = load_profile(path)
    assert p.total_duration_s > p.warmup_s + p.cooldown_s
    assert Profile.model_validate(p.model_dump(mode="json")) == p


@pytest.mark.parametrize("path", sorted((ROOT / "scenarios").glob("*.yaml")), ids=lambda p: p.name)
def test_shipped_scenarios_load(path: Path) -> None:
    load_scenario(path)


def test_shipped_set_is_complete() -> None:
    names = {p.name for p in (ROOT / "profiles").glob("*.yaml")} | {
        p.name for p in (ROOT / "scenarios").glob("*.yaml")
    }
    for name in ("default.yaml", "smoke.yaml", "2x-peak.yaml", "open-loop-poisson.yaml", "sweep.yaml",
                 "chat-mix.yaml", "dataset-fables.yaml", "distributions.yaml"):  # fmt: skip
        assert name in names


def scenario_with_dataset(tmp_path: Path, lines: str) -> ConfigError:
    (tmp_path / "d.jsonl").write_text(lines, encoding="utf-8")
    (tmp_path / "s.yaml").write_text("dataset: {path: d.jsonl}\n", encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_scenario(tmp_path / "s.yaml")
    assert info.value.path == str(tmp_path / "d.jsonl")
    return info.value


def test_dataset_line_that_is_not_json(tmp_path: Path) -> None:
    err = scenario_with_dataset(tmp_path, '{"prompt": "a"}\n\n{"prompt": "b",\n')
    assert err.field == "line 3" and "not valid JSON" in err.problem and '{"prompt"' in err.fix


@pytest.mark.parametrize(
    ("line", "field", "problem"),
    [
        ('{"prompt": "a", "messages": []}', "line 2", "exactly one"),
        ('{"promt": "a"}', "line 2.promt", "unknown key"),
        ('{"messages": [{"role": "wizard", "content": "x"}]}', "line 2.messages[0].role", "not a role"),
        ('{"prompt": "a", "max_tokens": 0}', "line 2.max_tokens", "positive integer"),
        ('["prompt"]', "line 2", "not an object"),
    ],
)
def test_dataset_record_errors(tmp_path: Path, line: str, field: str, problem: str) -> None:
    err = scenario_with_dataset(tmp_path, '{"prompt": "fine"}\n' + line + "\n")
    assert err.field == field and problem in err.problem


def test_missing_dataset_file(tmp_path: Path) -> None:
    (tmp_path / "s.yaml").write_text("mix: [{name: a, weight: 1, dataset: {path: nope.jsonl}}]\n")
    with pytest.raises(ConfigError, match="dataset file not found"):
        load_scenario(tmp_path / "s.yaml")


@pytest.mark.parametrize(
    ("yaml", "field", "words"),
    [
        ("stages: [{duration_s: 5, users: 1}]\npeak: {users: 3}\n", "peak", "cannot be combined"),
        ("peak: {users: 3, rps: 2}\n", "peak", "exactly one"),
        ("arrival: {kind: poisson}\n", "arrival", "needs a rate"),
        ("arrival: {kind: poisson, rps: 2, burstiness: 3}\n", "arrival.burstiness", "gamma"),
        ("arrival: {kind: uniform, rps: 2}\n", "arrival.kind", "not allowed"),
        ("late: maybe\n", "late", "not allowed"),
        ("duration_s: 10\nwarmup_s: 6\ncooldown_s: 4\n", "warmup_s", "no measured time"),
        ("stages: [{duration_s: 5, users: 1, ramp_up_s: 9}]\n", "stages[0].ramp_up_s", "longer"),
        ("stages: []\n", "stages", "empty"),
        ("sweep: {variable: users, start: 2.5, step: 1, max: 5, hold_s: 5}\n", "sweep.start", "whole"),
        ("sweep: {variable: rps, start: 5, step: 1, max: 2, hold_s: 5}\n", "sweep.max", "max"),
        ("slo: {ttft_ms: {p95x: 3}}\n", "slo.ttft_ms.p95x", "unknown statistic"),
        ("slo: {error_rate: 2}\n", "slo.error_rate", "out of range"),
        ("targets: [{name: a, url: ftp://x}]\n", "targets[0].url", "http(s) URL"),
        (
            "targets: [{name: a, url: 'http://x', options: {includ_usage: false}}]\n",
            "targets[0].options.includ_usage",
            "unknown key",
        ),
        ("thresholds: ['ttft.p95 > 1s', '']\n", "thresholds", "empty"),
        ("timeout_s: 0\n", "timeout_s", "out of range"),
    ],
)
def test_profile_rules(tmp_path: Path, yaml: str, field: str, words: str) -> None:
    path = tmp_path / "p.yaml"
    path.write_text(yaml, encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_profile(path)
    err = info.value
    assert (err.path, err.field) == (str(path), field)
    assert words in err.problem or words in err.fix
    assert err.fix  # every error says what is allowed


@pytest.mark.parametrize(
    ("yaml", "field"),
    [
        ("extra_body: {model: x}\n", "extra_body"),
        ("mix: [{name: a, weight: 1}, {name: a, weight: 2}]\n", "mix"),
        ("mix: [{name: a, weight: 0}]\n", "mix[0].weight"),
        ("mix: []\n", "mix"),
        ("prompt_tokens: {kind: uniform, min: 9, max: 3}\n", "prompt_tokens.min"),
        ("prompt_tokens: -3\n", "prompt_tokens.value"),
        ("api: responses\n", "api"),
        ("mix: [{name: a, weight: 1, metadata: {tier: 1}}]\n", "mix[0].metadata.tier"),
    ],
)
def test_scenario_rules(tmp_path: Path, yaml: str, field: str) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(yaml, encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_scenario(path)
    assert (info.value.path, info.value.field) == (str(path), field)


def test_api_key_comes_from_the_named_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    p = Profile.model_validate(
        {"targets": [{"name": "a", "url": "http://127.0.0.1:1", "api_key_env": "LB_TEST_KEY"}]}
    )
    monkeypatch.delenv("LB_TEST_KEY", raising=False)
    with pytest.raises(ConfigError, match="LB_TEST_KEY is not set"):
        resolve_api_key(p.targets[0])
    monkeypatch.setenv("LB_TEST_KEY", "sk-test")
    assert resolve_api_key(p.targets[0]) == "sk-test"
