"""A target's recent time-per-output-token samples and the rolling means routing needs. Pure.

One bounded deque per target serves both latency routing (20 min / 100 requests) and the SLA
cutoff (3 min / 10 requests): each asks for the mean over its own window.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

MAX_SAMPLES = 1000  # upper bound on any configured window


@dataclass(slots=True)
class TpotWindow:
    samples: deque[tuple[int, float]] = field(default_factory=lambda: deque(maxlen=MAX_SAMPLES))

    def add(self, now_ns: int, tpot_ms: float) -> None:
        self.samples.append((now_ns, tpot_ms))


def mean_tpot(window: TpotWindow, now_ns: int, window_ns: int, max_samples: int) -> tuple[float, int]:
    """Mean of the newest samples within ``window_ns`` of now, at most ``max_samples``: (mean, n)."""
    horizon = now_ns - window_ns
    total = 0.0
    n = 0
    for t_ns, value in reversed(window.samples):
        if t_ns < horizon or n >= max_samples:
            break
        total += value
        n += 1
    return (total / n if n else 0.0), n
