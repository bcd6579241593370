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
from loadbench.config.trace import FORMATS
from loadbench.errors import InputError
from loadbench.plan.run import TargetSpec

KINDS = ("fixed", "uniform", "normal", "lognormal", "exponential")
SCENARIO_DEFAULT = "(scenario)"  # keep the scenario's own distribution
NO_HEADER = "none"  # session_header: send no session id
# loadbench replay's ranges (its --speed and --sample options), so the form says what the CLI says
SPEED_MAX = 10_000.0


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
        Field("session_turns", "sessions: synthetic turns per session, e.g. '5' or 'uniform min=3 max=8' "
              "(empty: the scenario's sessions, if any)", ""),
        Field("session_dataset", "sessions: conversations from a ShareGPT-style JSONL file instead", ""),
        Field("session_mode", "sessions: live sends the model's answers back, replay the dataset's recorded ones",
              SCENARIO_DEFAULT, (SCENARIO_DEFAULT, "live", "replay")),
        Field("session_user_tokens", "sessions: words of each synthetic user message, e.g. '64'", ""),
        Field("think_ms", "sessions: think time between turns (ms), e.g. '1000' or 'uniform min=500 max=3000'", ""),
        Field("session_header", f"sessions: the header carrying the session id (default X-Session-Id; "
              f"'{NO_HEADER}': none)", ""),
        Field("trace", "trace replay: a trace file (Mooncake JSONL, Azure CSV, gateway log) or the variable "
              "holding a PostgreSQL log's URL; its timestamps set the arrivals", ""),
        Field("trace_format", "trace replay: the trace's format (auto: by the extension)", "auto", FORMATS),
        Field("trace_speed", "trace replay: speed (2: the trace's traffic at twice its rate)", "1"),
        Field("trace_sample", "trace replay: keep each request with this probability", "1"),
    )


@dataclass(frozen=True, slots=True)
class Prepared:
    profile: Profile
    scenario: Scenario
    target: TargetSpec
    name: str


def _number(form: Mapping[str, str], key: str, flag: str, *, integer: bool, minimum: float,
            open_min: bool = False, maximum: float | None = None) -> float | None:
    """Locust's own fields, checked with the CLI's rule for the flag they stand for (click's range words)."""
    raw = (form.get(key) or "").strip()
    if not raw:
        return None
    try:
        value = float(int(raw)) if integer else float(raw)
    except ValueError:
        raise InputError(f"{flag}: {raw!r} is not {'an integer' if integer else 'a number'}") from None
    low = "<" if open_min else "<="
    if not math.isfinite(value) or value < minimum or (open_min and value == minimum) or (
            maximum is not None and value > maximum):
        rng = f"x>{minimum:g}" if open_min else f"x>={minimum:g}"
        if maximum is not None:
            rng = f"{minimum:g}{low}x<={maximum:g}"
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


def _params(data: dict[str, Any], words: list[str], field: str) -> dict[str, Any]:
    """``data`` with each ``name=value`` word set (numbers)."""
    for word in words:
        key, eq, value = word.partition("=")
        if not eq:
            raise InputError(f"{field}: {word!r} is not name=value (example: mean=512 stdev=256)")
        try:
            data[key] = int(value) if value.lstrip("-").isdigit() else float(value)
        except ValueError:
            raise InputError(f"{field}: {key}={value!r} is not a number") from None
    return data


def _dist(base: Any, kind: str, params: str, clip_max: int | None, field: str) -> dict[str, Any]:
    data: dict[str, Any] = base.model_dump(mode="json", exclude_none=True)
    if kind and kind != SCENARIO_DEFAULT:
        data = {"kind": kind}
    data = _params(data, params.split(), field)
    if clip_max is not None:
        data["clip_max"] = clip_max
    return data


def _dist_text(text: str, field: str) -> int | dict[str, Any] | None:
    """A one-line distribution: '5' (fixed) or 'uniform min=3 max=8' (a kind, then its parameters);
    None when empty. The scenario's own checks judge the result."""
    words = text.split()
    if not words:
        return None
    if len(words) == 1 and words[0].isdigit():
        return int(words[0])
    if words[0] in KINDS:
        return _params({"kind": words[0]}, words[1:], field)
    return _params({}, words, field)


def _trace_arrival(form: Mapping[str, str]) -> dict[str, Any] | None:
    """The form's trace replay as ``loadbench replay`` makes it: an open-loop ``arrival`` block."""
    speed = _number(form, "trace_speed", "--speed", integer=False, minimum=0, open_min=True, maximum=SPEED_MAX)
    sample = _number(form, "trace_sample", "--sample", integer=False, minimum=0, open_min=True, maximum=1)
    trace = (form.get("trace") or "").strip()
    if not trace:
        if (speed or 1.0) != 1.0 or (sample or 1.0) != 1.0:
            raise InputError("--speed and --sample apply to a trace replay: name the trace, or leave them at 1")
        return None
    return {"trace": trace, "format": (form.get("trace_format") or "auto").strip(), "speed": speed or 1.0,
            "sample": sample or 1.0}


def _sessions(scenario: Scenario, form: Mapping[str, str]) -> dict[str, Any] | None:
    """The scenario's ``sessions:`` block with the form's session fields applied (None: no sessions)."""
    turns = _dist_text(form.get("session_turns") or "", "session_turns")
    dataset = (form.get("session_dataset") or "").strip()
    mode = (form.get("session_mode") or "").strip()
    extra: dict[str, Any] = {
        "user_tokens": _dist_text(form.get("session_user_tokens") or "", "session_user_tokens"),
        "think_ms": _dist_text(form.get("think_ms") or "", "think_ms"),
        "mode": mode if mode and mode != SCENARIO_DEFAULT else None}
    header = (form.get("session_header") or "").strip()
    data = scenario.sessions.model_dump(mode="json") if scenario.sessions is not None else None
    if data is None and turns is None and not dataset:
        given = [k for k, v in {**extra, "session_header": header}.items() if v]
        if given:
            raise InputError(f"{given[0]}: applies to sessions; set session turns or a session dataset "
                             "(or start from a scenario with sessions:)")
        return None
    if turns is not None and dataset:
        raise InputError("session_turns: synthetic turns and a session dataset exclude each other; give one")
    data = data or {}
    if turns is not None:  # synthetic turns replace a dataset, as in a scenario that names only turns
        data.update(turns=turns, dataset=None)
    if dataset:  # relative to where the page was started, as the form's scenario and profile paths are
        data.update(dataset=str(Path(dataset).absolute()))
    data.update({k: v for k, v in extra.items() if v is not None})
    if header:
        data["session_header"] = None if header.lower() == NO_HEADER else header
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
    arrival = _trace_arrival(form)
    if arrival is not None:  # as loadbench replay: the trace's arrivals replace the profile's load
        profile = profile.with_arrival(arrival, source="web form")
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
    sessions = _sessions(scenario, form)
    if sessions is not None:
        data["sessions"] = sessions
    scenario = scenario_from_dict(data, base_dir=Path(scenario_path).parent if scenario_path else None,
                                  source=f"{scenario_path or 'scenario'} (as set in the form)")
    target = TargetSpec(url=url, model=model, api_key_env=defaults.api_key_env,
                        include_usage=profile.include_usage, protocol=defaults.protocol, region=defaults.region,
                        auth=defaults.auth)
    return Prepared(profile=profile, scenario=scenario, target=target, name=defaults.name or profile.name or "web")
