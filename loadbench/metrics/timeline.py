"""One line of ``timeline.jsonl``: an interval's counters and its plan context, as the master wrote it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


def _opt_float(v: Any) -> float | None:
    return None if v is None else float(v)


@dataclass(frozen=True, slots=True)
class TimelineRow:
    """Counts are of requests that *finished* in the interval; times are seconds since the load start."""

    t_start_s: float
    t_end_s: float
    phase: str = "measure"  # warmup | measure | cooldown | drain
    stage: str | None = None
    users: float | None = None
    target_rps: float | None = None
    requests: int = 0
    ok: int = 0
    failed: int = 0
    dropped: int = 0
    output_tokens: int = 0
    cpu_percent_max: float | None = None

    @property
    def length_s(self) -> float:
        return max(1e-9, self.t_end_s - self.t_start_s)

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> TimelineRow:
        stage = obj.get("stage")
        cpu = obj.get("cpu_percent_max")
        return cls(t_start_s=float(obj.get("t_start_s", 0.0)), t_end_s=float(obj.get("t_end_s", 0.0)),
                   phase=str(obj.get("phase") or "measure"), stage=None if stage is None else str(stage),
                   users=_opt_float(obj.get("users")), target_rps=_opt_float(obj.get("target_rps")),
                   requests=int(obj.get("requests") or 0), ok=int(obj.get("ok") or 0),
                   failed=int(obj.get("failed") or 0), dropped=int(obj.get("dropped") or 0),
                   output_tokens=int(obj.get("output_tokens") or 0),
                   cpu_percent_max=float(cpu) if isinstance(cpu, int | float) else None)
