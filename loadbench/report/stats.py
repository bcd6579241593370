"""Names and look-ups of the figures gates and comparisons talk about, read from a summary.json.

A figure is named ``<metric>.<stat>`` for latencies (``ttft.p95``, ``itl.p99_9``), optionally narrowed
to one breakdown value (``ttft.p95[target=fast]``), or one of the run-level figures ``error_rate``,
``throughput.rps``, ``throughput.tokens_per_s``, ``throughput.goodput_rps``.
Latencies are in milliseconds, error_rate a fraction, throughputs per second.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

LATENCY_METRICS: tuple[str, ...] = ("ttft", "itl", "tpot", "e2e", "queue", "service_ttft")
PERCENTILE_STATS: dict[str, float] = {
    "p50": 50.0, "p75": 75.0, "p90": 90.0, "p95": 95.0, "p99": 99.0, "p99_9": 99.9,
}
LATENCY_STATS: tuple[str, ...] = ("mean", "stdev", "min", *PERCENTILE_STATS, "max")
RUN_FIGURES: dict[str, tuple[str, str]] = {
    # name -> (summary section, key)
    "error_rate": ("requests", "error_rate"),
    "throughput.rps": ("throughput", "requests_per_s"),
    "throughput.tokens_per_s": ("throughput", "output_tokens_per_s"),
    "throughput.goodput_rps": ("throughput", "goodput_rps"),
}


@dataclass(frozen=True, slots=True)
class Figure:
    """One figure of a run: a latency statistic (optionally for one breakdown value) or a run figure."""

    metric: str  # a LATENCY_METRICS name or a RUN_FIGURES name
    stat: str | None = None  # a LATENCY_STATS name for latencies
    where: tuple[str, str] | None = None  # (dimension, value) of a breakdown

    @property
    def key(self) -> str:
        if self.stat is None:
            return self.metric
        out = f"{self.metric}.{self.stat}"
        if self.where:
            out += f"[{self.where[0]}={self.where[1]}]"
        return out

    @property
    def is_latency(self) -> bool:
        return self.stat is not None

    @property
    def unit(self) -> str:
        if self.is_latency:
            return "ms"
        return "" if self.metric == "error_rate" else "/s"

    @property
    def higher_is_worse(self) -> bool:
        return self.is_latency or self.metric == "error_rate"

    def hlog_tag(self) -> str:
        return self.metric if not self.where else f"{self.metric}:{self.where[0]}={self.where[1]}"

    def lookup(self, summary: dict[str, Any]) -> float | None:
        if not self.is_latency:
            section, name = RUN_FIGURES[self.metric]
            value = (summary.get(section) or {}).get(name)
            return None if value is None else float(value)
        metrics = summary.get("metrics") or {}
        if self.where:
            dim, val = self.where
            metrics = (((summary.get("breakdowns") or {}).get(dim) or {}).get(val) or {}).get("metrics") or {}
        stats = metrics.get(f"{self.metric}_ms") or {}
        if not stats.get("count"):
            return None
        value = stats.get(self.stat)
        return None if value is None else float(value)

    def count(self, summary: dict[str, Any]) -> int:
        """How many samples the figure rests on (requests for run figures)."""
        if not self.is_latency:
            return int((summary.get("requests") or {}).get("total") or 0)
        metrics = summary.get("metrics") or {}
        if self.where:
            dim, val = self.where
            metrics = (((summary.get("breakdowns") or {}).get(dim) or {}).get(val) or {}).get("metrics") or {}
        return int((metrics.get(f"{self.metric}_ms") or {}).get("count") or 0)


def format_value(value: float | None, unit: str) -> str:
    if value is None:
        return "–"
    if unit == "":  # a fraction shown as a percentage
        return f"{value * 100:.2f}%"
    if unit == "ms":
        return f"{value:.3g} ms" if abs(value) < 100 else f"{value:.0f} ms"
    return f"{value:,.0f}{unit}" if abs(value) >= 1000 else f"{value:.3g}{unit}"
