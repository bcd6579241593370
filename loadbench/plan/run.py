"""The resolved plan of one run, handed from the CLI to the Locust master and from it to every worker.

Plain data only (it crosses process and machine boundaries as JSON / msgpack)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Any

REDACTED = "<redacted>"
SECRETS_ENV = "LOADBENCH_SECRET_HEADERS"  # the launcher hands secret header values to the master here


@dataclass(slots=True)
class TargetSpec:
    url: str  # OpenAI base URL, e.g. http://127.0.0.1:8001/v1
    model: str
    name: str = "default"
    api_key_env: str | None = None  # the variable's NAME; the key itself never enters the plan
    include_usage: bool = True
    headers: dict[str, str] = field(default_factory=dict)  # extra per-target headers
    secret_headers: list[str] = field(default_factory=list)  # names among headers never written to a file

    def redacted(self) -> TargetSpec:
        return replace(self, headers={k: REDACTED if k in self.secret_headers else v for k, v in self.headers.items()})

    def secrets(self) -> dict[str, str]:
        return {k: v for k, v in self.headers.items() if k in self.secret_headers}


@dataclass(slots=True)
class RunPlan:
    run_id: str
    target: TargetSpec
    profile: dict[str, Any]  # Profile.model_dump(mode="json")
    scenario: dict[str, Any]  # Scenario.model_dump(mode="json")
    load_plan: dict[str, Any] = field(default_factory=dict)  # LoadPlan.to_json(): what load, when
    seed: int = 0
    interval_s: float = 2.0
    workers: int = 1
    start_unix_ns: int = 0  # set by the master when load starts
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """In memory and on the wire to workers (secret header values included)."""
        return asdict(self)

    def to_record(self) -> dict[str, Any]:
        """For plan.json: secret header values replaced by ``<redacted>``."""
        return asdict(replace(self, target=self.target.redacted()))

    @classmethod
    def from_dict(cls, obj: dict[str, Any]) -> RunPlan:
        data = dict(obj)
        data["target"] = TargetSpec(**data["target"])
        return cls(**data)
