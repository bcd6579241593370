"""``status.json``: what happened during the run, written only by the master, atomically, whenever its
state changes (load start, end, stop reason, workers). Folders written before it existed keep these
fields in ``manifest.json``; ``read_status`` reads them from there."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, cast

from loadbench.results import run_dir as rd

STATUS_SCHEMA = "loadbench.status/1"
State = Literal["waiting", "running", "finished", "interrupted", "failed"]
STATES: tuple[State, ...] = ("waiting", "running", "finished", "interrupted", "failed")


@dataclass(frozen=True, slots=True)
class Workers:
    expected: int | None = None
    seen: tuple[str, ...] = ()
    lost: tuple[str, ...] = ()
    cpu_s: Mapping[str, float] = field(default_factory=dict)  # user+sys CPU seconds per worker

    def to_json(self) -> dict[str, Any]:
        return {"expected": self.expected, "seen": list(self.seen), "lost": list(self.lost),
                "cpu_s": dict(self.cpu_s)}

    @classmethod
    def from_json(cls, obj: Mapping[str, Any] | None) -> Workers:
        obj = obj or {}
        return cls(expected=obj.get("expected"), seen=tuple(map(str, obj.get("seen") or ())),
                   lost=tuple(map(str, obj.get("lost") or ())),
                   cpu_s={str(k): float(v) for k, v in (obj.get("cpu_s") or {}).items()})


@dataclass(frozen=True, slots=True)
class Round:
    """One round of a merged (interleaved) run folder."""

    load_start_unix_s: float
    end_unix_s: float | None
    planned_duration_s: float | None

    def to_json(self) -> dict[str, Any]:
        return {"start_unix_s": self.load_start_unix_s, "end_unix_s": self.end_unix_s,
                "planned_duration_s": self.planned_duration_s}

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> Round:
        end = obj.get("end_unix_s")
        planned = obj.get("planned_duration_s")
        return cls(float(obj["start_unix_s"]), None if end is None else float(end),
                   None if planned is None else float(planned))


@dataclass(frozen=True, slots=True)
class RunStatus:
    state: State = "waiting"
    load_start_unix_s: float | None = None
    end_unix_s: float | None = None
    planned_duration_s: float | None = None
    stop_reason: str | None = None
    signal: str | None = None  # "SIGINT", "SIGTERM" when a signal stopped the run
    interrupted: bool = False
    workers: Workers = field(default_factory=Workers)
    rounds: tuple[Round, ...] = ()  # merged folders only (stored as "windows")

    def to_json(self) -> dict[str, Any]:
        return {"schema": STATUS_SCHEMA, "state": self.state, "load_start_unix_s": self.load_start_unix_s,
                "end_unix_s": self.end_unix_s, "planned_duration_s": self.planned_duration_s,
                "stop_reason": self.stop_reason, "signal": self.signal, "interrupted": self.interrupted,
                "workers": self.workers.to_json(), "windows": [r.to_json() for r in self.rounds]}

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> RunStatus:
        """Also reads the same fields of a manifest written before status.json existed (there the
        state is ``status``)."""
        state = obj.get("state") or obj.get("status") or "finished"
        if state not in STATES:
            state = "failed"
        start = obj.get("load_start_unix_s") or obj.get("start_unix_s")
        end = obj.get("end_unix_s")
        planned = obj.get("planned_duration_s")
        return cls(state=cast(State, state), load_start_unix_s=None if start is None else float(start),
                   end_unix_s=None if end is None else float(end),
                   planned_duration_s=None if planned is None else float(planned),
                   stop_reason=obj.get("stop_reason"), signal=obj.get("signal"),
                   interrupted=bool(obj.get("interrupted")), workers=Workers.from_json(obj.get("workers")),
                   rounds=tuple(Round.from_json(r) for r in obj.get("windows") or ()))


def write_status(run_dir: Path, status: RunStatus) -> None:
    rd.write_json(run_dir / rd.STATUS, status.to_json())


def read_status(run_dir: Path, legacy_manifest: Mapping[str, Any] | None = None) -> RunStatus:
    path = run_dir / rd.STATUS
    if path.is_file():
        return RunStatus.from_json(rd.read_json(path))
    return RunStatus.from_json(legacy_manifest or {})
