"""The resolved plan of one run, handed from the CLI to the Locust master and from it to every worker.

Typed pieces, each read where it is used: the target, the load plan (``LoadPlan``), the profile's
settings the master and the workers act on (``ProfileSettings``) and what the workers generate
(``Workload``). It crosses process and machine boundaries as JSON (plan.json) and msgpack (the
master's message to each worker) through ``to_json`` / ``from_json``, which reads every version
written so far.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Literal, Protocol

from loadbench.errors import ConfigError
from loadbench.plan.load import DumpsFields, LoadPlan

REDACTED = "<redacted>"
SECRETS_ENV = "LOADBENCH_SECRET_HEADERS"  # the launcher hands secret header values to the master here
# 1: no "schema" key; the profile and scenario as dicts, prompt scale and overhead under "extra"
# 2: the target without protocol, region or auth (OpenAI, its key in api_key_env), read as such
SCHEMA = "loadbench.run_plan/3"
_READS = ("loadbench.run_plan/2", SCHEMA)


@dataclass(slots=True)
class TargetSpec:
    url: str  # the base URL the protocol's paths are appended to, e.g. http://127.0.0.1:8001/v1
    model: str
    name: str = "default"
    api_key_env: str | None = None  # the variable's NAME; the key itself never enters the plan
    protocol: str = "openai"  # the registered dialect the target speaks (protocol.registry)
    region: str | None = None  # bedrock: the AWS region requests are signed for
    auth: str = "key"  # key (the protocol's own header), bearer (Authorization: Bearer), aws (SigV4), none
    include_usage: bool = True
    headers: dict[str, str] = field(default_factory=dict)  # extra per-target headers
    secret_headers: list[str] = field(default_factory=list)  # names among headers never written to a file

    def redacted(self) -> TargetSpec:
        return replace(self, headers={k: REDACTED if k in self.secret_headers else v for k, v in self.headers.items()})

    def secrets(self) -> dict[str, str]:
        return {k: v for k, v in self.headers.items() if k in self.secret_headers}


class PlannedProfile(DumpsFields, Protocol):
    """A validated ``Profile`` as the plan reads it (this package does not import config)."""

    @property
    def seed(self) -> int: ...

    @property
    def interval_s(self) -> float: ...


@dataclass(frozen=True, slots=True)
class AbortRule:
    """The profile's ``abort_on``: once ``after_requests`` have finished, stop at this share failed."""

    error_rate: float
    after_requests: int


@dataclass(frozen=True, slots=True)
class SaturationRule:
    """The profile's ``stop_on_saturation``: when to call the target over-saturated and stop the run
    (the test itself: ``metrics.saturation``). Defaults are GuideLLM's."""

    min_s: float = 30.0  # no verdict before the run is this old
    window_s: float = 120.0  # points older than this are dropped
    moe: float = 2.0  # the largest relative margin of error of a rising slope
    confidence: float = 0.95
    min_points: int = 5
    min_ttft_ms: float = 2500.0  # half the window's TTFTs must exceed this


@dataclass(frozen=True, slots=True)
class ProfileSettings:
    """The profile's fields that the master and the workers act on (the rest stays with the CLI)."""

    stream: bool
    timeout_s: float
    stall_ms: float  # a gap between content chunks longer than this is a stall
    late: Literal["drop", "send"]  # open loop: an arrival with every user busy
    abort_on: AbortRule | None = None
    stop_on_saturation: SaturationRule | None = None

    @classmethod
    def from_profile(cls, profile: DumpsFields) -> ProfileSettings:
        """The settings of a validated ``Profile`` (by its fields: this package does not import config)."""
        return cls.from_profile_json(profile.model_dump(mode="json"))

    @classmethod
    def from_profile_json(cls, profile: Mapping[str, Any]) -> ProfileSettings:
        """From a profile's JSON: a validated profile's, or a version-1 plan's stored one. The
        defaults are the profile's own, for fields a profile written before them lacks."""
        rule = profile.get("abort_on")
        saturation = profile.get("stop_on_saturation")
        return cls(stream=bool(profile.get("stream", True)), timeout_s=float(profile.get("timeout_s", 600.0)),
                   stall_ms=float(profile.get("stall_ms", 250.0)),
                   late="send" if profile.get("late") == "send" else "drop",
                   abort_on=AbortRule(float(rule["error_rate"]), int(rule.get("after_requests", 100)))
                   if rule else None,
                   stop_on_saturation=SaturationRule(**saturation) if saturation else None)


@dataclass(frozen=True, slots=True)
class Workload:
    """What the workers generate: the scenario and the calibration of synthetic prompts.

    The scenario stays its validated JSON: each worker builds its request factory from the whole of
    it (mixes, length distributions, datasets read again from their resolved paths), so it is
    validated once per worker, where the factory is built."""

    scenario: Mapping[str, Any]  # Scenario.model_dump(mode="json")
    prompt_scale: float = 1.0
    prompt_overhead: Mapping[str, int] = field(default_factory=dict)  # request type -> tokens besides the text

    def to_json(self) -> dict[str, Any]:
        return {"scenario": dict(self.scenario), "prompt_scale": self.prompt_scale,
                "prompt_overhead": dict(self.prompt_overhead)}

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> Workload:
        return cls(scenario=dict(obj["scenario"]), prompt_scale=float(obj.get("prompt_scale", 1.0)),
                   prompt_overhead={str(k): int(v) for k, v in (obj.get("prompt_overhead") or {}).items()})


@dataclass(frozen=True, slots=True)
class RunPlan:
    run_id: str
    target: TargetSpec
    load: LoadPlan
    settings: ProfileSettings
    workload: Workload
    seed: int = 0
    interval_s: float = 2.0
    workers: int = 1
    start_unix_ns: int = 0  # set by the master when load starts

    @classmethod
    def build(cls, run_id: str, target: TargetSpec, profile: PlannedProfile, scenario: DumpsFields, workers: int,
              prompt_scale: float = 1.0, prompt_overhead: Mapping[str, int] | None = None) -> RunPlan:
        """The plan of a validated ``Profile`` and ``Scenario``."""
        return cls(run_id=run_id, target=target, load=LoadPlan.from_profile(profile),
                   settings=ProfileSettings.from_profile(profile),
                   workload=Workload(scenario.model_dump(mode="json"), prompt_scale, dict(prompt_overhead or {})),
                   seed=int(profile.seed), interval_s=float(profile.interval_s), workers=workers)

    def to_json(self) -> dict[str, Any]:
        """In memory and on the wire to workers (secret header values included)."""
        return {"schema": SCHEMA, "run_id": self.run_id, "target": asdict(self.target), "load": self.load.to_json(),
                "settings": asdict(self.settings), "workload": self.workload.to_json(), "seed": self.seed,
                "interval_s": self.interval_s, "workers": self.workers, "start_unix_ns": self.start_unix_ns}

    def to_record(self) -> dict[str, Any]:
        """For plan.json: secret header values replaced by ``<redacted>``."""
        return replace(self, target=self.target.redacted()).to_json()

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> RunPlan:
        schema = obj.get("schema")
        if schema is None:
            return _from_v1(obj)
        if schema not in _READS:
            raise ConfigError("run plan", "schema", f"{schema!r} is not one this loadbench reads ({SCHEMA})",
                              "run it with the loadbench version that wrote it")
        settings = dict(obj["settings"])
        rule = settings.pop("abort_on", None)
        saturation = settings.pop("stop_on_saturation", None)
        return cls(run_id=str(obj["run_id"]), target=TargetSpec(**obj["target"]), load=LoadPlan.from_json(obj["load"]),
                   settings=ProfileSettings(**settings, abort_on=AbortRule(**rule) if rule else None,
                                            stop_on_saturation=SaturationRule(**saturation) if saturation else None),
                   workload=Workload.from_json(obj["workload"]), seed=int(obj["seed"]),
                   interval_s=float(obj["interval_s"]), workers=int(obj["workers"]),
                   start_unix_ns=int(obj.get("start_unix_ns") or 0))


def _from_v1(obj: Mapping[str, Any]) -> RunPlan:
    """A plan written before the schema key: profile and scenario dicts, calibration under "extra"."""
    profile = obj.get("profile") or {}
    extra = obj.get("extra") or {}
    load = obj.get("load_plan")
    return RunPlan(run_id=str(obj["run_id"]), target=TargetSpec(**obj["target"]),
                   load=LoadPlan.from_json(load) if load else LoadPlan.from_legacy_profile(profile),
                   settings=ProfileSettings.from_profile_json(profile),
                   workload=Workload.from_json({**extra, "scenario": obj.get("scenario") or {}}),
                   seed=int(obj.get("seed", 0)), interval_s=float(obj.get("interval_s", 2.0)),
                   workers=int(obj.get("workers", 1)), start_unix_ns=int(obj.get("start_unix_ns") or 0))
