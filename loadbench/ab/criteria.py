"""The pre-registered success criteria of an experiment (``experiment.success`` in the gateway config),
stored with the experiment when it starts and judged by ``loadbench ab``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class Criteria:
    error_rate_margin: float = 0.01  # the candidate's error rate may exceed the incumbent's by less than this
    cost_ratio_max: float = 1.10  # its cost per request must stay below this multiple of the incumbent's
    quality_ratio_min: float = 0.97  # its quality must stay above this multiple of the incumbent's
    alpha: float = 0.05  # the chance of any false decision, however often the result is looked at
    min_requests: int = 100  # per arm, before any verdict other than CONTINUE

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> Criteria:
        return cls(**{k: obj[k] for k in cls.__dataclass_fields__ if k in obj})
