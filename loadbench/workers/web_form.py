"""The start form of ``loadbench run --web``: its loadbench fields, and a submitted form turned into the
validated profile, scenario and target of one run (or the CLI's own error message, before any load).

No Locust here: the page's fields are declared as data (``FIELDS``) and added to Locust's parser by
loadbench.workers.web; this module only validates, with the same config loaders as ``loadbench run``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from loadbench.config import Profile, Scenario, load_profile, load_scenario, scenario_from_dict
from loadbench.errors import InputError
from loadbench.plan.run import TargetSpec

KINDS = ("fixed", "uniform", "normal", "lognormal", "exponential")
SCENARIO_DEFAULT = "(scenario)"  # keep the scenario's own distribution


@dataclass(frozen=True, slots=True)
class WebDefaults:
    """What `loadbench run --web` was started with: the form's initial values and the run's fixed parts."""

    target_url: str
    model: str
    profile: str  # path, "" for the built-in default
    scenario: str
    out_dir: str
    name: str | None  # --name: names every run's folder; None: each run is named after its profile
    api_key_env: str | None = None
    include_usage: bool = True
    users: int = 10
    ramp_up_s: float = 0.0
    duration_s: float | None = None  # empty run time: the profile's own duration
    protocol: str = "openai"  # the target's protocol, region and auth (never its secret)
    region: str | None = None
    auth: str = "key"

    def to_json(self) -> dict[str, Any]:
        return {"target_url": self.target_url, "model": self.model, "profile": self.profile,
                "scenario": self.scenario, "out_dir": self.out_dir, "name": self.name,
                "api_key_env": self.api_key_env, "include_usage": self.include_usage, "users": self.users,
                "ramp_up_s": self.ramp_up_s, "duration_s": self.duration_s, "protocol": self.protocol,
                "region": self.region, "auth": self.auth}

    def locust_args(self) -> list[str]:
        """Locust's own fields, filled as the command line asked (ramp up is a rate there)."""
        spawn_rate = self.users / self.ramp_up_s if self.ramp_up_s > 0 else float(self.users)
        return ["--users", str(self.users), "--spawn-rate", f"{spawn_rate:g}", "--host", self.target_url,
                *(["--run-time", f"{self.duration_s:g}s"] if self.duration_s else [])]

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> WebDefaults:
        return cls(target_url=str(obj["target_url"]), model=str(obj["model"]), profile=str(obj.get("profile") or ""),
                   scenario=str(obj.get("scenario") or ""), out_dir=str(obj["out_dir"]), name=obj.get("name") or None,
                   api_key_env=obj.get("api_key_env"), include_usage=bool(obj.get("include_usage", True)),
                   users=int(obj.get("users") or 10), ramp_up_s=float(obj.get("ramp_up_s") or 0.0),
                   duration_s=obj.get("duration_s"), protocol=str(obj.get("protocol") or "openai"),
                   region=obj.get("region"), auth=str(obj.get("auth") or "key"))


@dataclass(frozen=True, slots=True)
class Field:
    name: str  # the form field (Locust option dest)
    help: str
    default: str
    choices: tuple[str, ...] | None = None


def fields(defaults: WebDefaults, scenarios: list[str], profiles: list[str]) -> tuple[Field, ...]:
    """The loadbench fields of Locust's start form (Locust's own: users, ramp up, host = target URL,
    run time = duration)."""
    return (
        Field("model", "model to request", defaults.model),
        Field("scenario", "scenario YAML: " + ", ".join(scenarios), defaults.scenario),
        Field("load_profile", "profile YAML (stages, open loop, ...): " + ", ".join(profiles) +
              "; empty for the built-in default", defaults.profile),
        Field("prompt_dist", "prompt length distribution", SCENARIO_DEFAULT, (SCENARIO_DEFAULT, *KINDS)),
        Field("prompt_params", "its parameters, e.g. 'mean=512 stdev=256 clip_max=4096' or 'value=128'", ""),
        Field("output_dist", "output length distribution", SCENARIO_DEFAULT, (SCENARIO_DEFAULT, *KINDS)),
        Field("output_params", "its parameters, e.g. 'mean=128' or 'min=16 max=256'", ""),
        Field("max_tokens", "max output tokens per request (clips the output distribution); empty: scenario's", ""),
        Field("stream", "stream responses", "true", ("true", "false")),
    )


@dataclass(frozen=True, slots=True)
class Prepared:
    profile: Profile
    scenario: Scenario
    target: TargetSpec
    name: str


def _number(form: Mapping[str, str], key: str, flag: str, *, integer: bool, minimum: float,
            open_min: bool = False) -> float | None:
    """Locust's own fields, checked with the CLI's rule for the flag they stand for."""
    raw = (form.get(key) or "").strip()
    if not raw:
        return None
    try:
        value = float(int(raw)) if integer else float(raw)
    except ValueError:
        raise InputError(f"{flag}: {raw!r} is not {'an integer' if integer else 'a number'}") from None
    if not math.isfinite(value) or value < minimum or (open_min and value == minimum):
        rng = f"x>{minimum:g}" if open_min else f"x>={minimum:g}"
        raise InputError(f"{flag}: {raw} is not in the range {rng}")
    return value


def _duration_s(raw: str) -> float | None:
    """Locust's run time field: '60', '60s', '2m', '1h30m'."""
    raw = raw.strip()
    if not raw:
        return None
    total, num = 0.0, ""
    for ch in raw:
        if ch.isdigit() or ch == ".":
            num += ch
        elif ch in "hms" and num:
            total += float(num) * {"h": 3600, "m": 60, "s": 1}[ch]
            num = ""
        else:
            raise InputError(f"--duration: {raw!r} is not a duration (examples: 60, 90s, 2m, 1h30m)")
    total += float(num) if num else 0.0
    if total <= 0:
        raise InputError(f"--duration: {raw} is not in the range x>0")
    return total


def _dist(base: Any, kind: str, params: str, clip_max: int | None, field: str) -> dict[str, Any]:
    data: dict[str, Any] = base.model_dump(mode="json", exclude_none=True)
    if kind and kind != SCENARIO_DEFAULT:
        data = {"kind": kind}
    for word in params.split():
        key, eq, value = word.partition("=")
        if not eq:
            raise InputError(f"{field}: {word!r} is not name=value (example: mean=512 stdev=256)")
        try:
            data[key] = int(value) if value.lstrip("-").isdigit() else float(value)
        except ValueError:
            raise InputError(f"{field}: {key}={value!r} is not a number") from None
    if clip_max is not None:
        data["clip_max"] = clip_max
    return data


def prepare(form: Mapping[str, str], defaults: WebDefaults) -> Prepared:
    """The submitted form as one run's inputs; raises the CLI's InputError / ConfigError messages."""
    users = _number(form, "user_count", "--users", integer=True, minimum=1)
    spawn_rate = _number(form, "spawn_rate", "ramp up (users/s)", integer=False, minimum=0, open_min=True)
    duration_s = _duration_s(form.get("run_time") or "")
    max_tokens = _number(form, "max_tokens", "max output tokens", integer=True, minimum=1)
    url = (form.get("host") or defaults.target_url).strip().rstrip("/")
    if not url.startswith(("http://", "https://")):
        raise InputError(f"--target: {url!r} is not an http(s) URL (example: http://127.0.0.1:8001/v1)")
    model = (form.get("model") or "").strip() or defaults.model
    profile_path = (form.get("load_profile") or "").strip()
    profile = load_profile(Path(profile_path) if profile_path else None)
    flat = profile.load_plan().mode == "closed" and not (profile.stages or profile.peak or profile.sweep)
    overrides: dict[str, Any] = {"duration_s": duration_s, "model": model,
                                 "stream": (form.get("stream") or "true").lower() != "false"}
    if flat and users is not None:  # a staged or open-loop profile brings its own load
        overrides["users"] = int(users)
        overrides["ramp_up_s"] = round(users / spawn_rate, 3) if spawn_rate else None
    profile = profile.apply_overrides(**overrides)
    scenario_path = (form.get("scenario") or "").strip()
    scenario = load_scenario(Path(scenario_path) if scenario_path else None)
    clip = int(max_tokens) if max_tokens is not None else None
    data = scenario.model_dump(mode="json", exclude_none=True)
    data["prompt_tokens"] = _dist(scenario.prompt_tokens, form.get("prompt_dist") or "",
                                  form.get("prompt_params") or "", None, "prompt_params")
    data["output_tokens"] = _dist(scenario.output_tokens, form.get("output_dist") or "",
                                  form.get("output_params") or "", clip, "output_params")
    scenario = scenario_from_dict(data, base_dir=Path(scenario_path).parent if scenario_path else None,
                                  source=f"{scenario_path or 'scenario'} (as set in the form)")
    target = TargetSpec(url=url, model=model, api_key_env=defaults.api_key_env,
                        include_usage=profile.include_usage, protocol=defaults.protocol, region=defaults.region,
                        auth=defaults.auth)
    return Prepared(profile=profile, scenario=scenario, target=target, name=defaults.name or profile.name or "web")
