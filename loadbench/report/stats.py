"""Names and look-ups of the figures gates and comparisons talk about, read from a ``Summary``.

A figure is named ``<metric>.<stat>`` for latencies (``ttft.p95``, ``itl.p99_9``), optionally narrowed
to one breakdown value (``ttft.p95[target=fast]``), or one of the run-level figures in
``RUN_FIGURES``. Latencies are in milliseconds, error_rate and stalls.stalled_share fractions,
throughputs per second, stalls.per_1k_tokens stalls per 1,000 output tokens.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from loadbench.metrics.records import EMPTY_STATS, PERCENTILES, LatencyStats, Summary

PERCENTILE_STATS: dict[str, float] = dict(PERCENTILES)
LATENCY_STATS: tuple[str, ...] = ("mean", "stdev", "min", *PERCENTILE_STATS, "max")


def _stall(attr: str) -> Callable[[Summary], float | None]:
    return lambda s: None if s.stalls is None else getattr(s.stalls, attr)


RUN_FIGURES: dict[str, Callable[[Summary], float | None]] = {
    "error_rate": lambda s: s.requests.error_rate,
    "throughput.rps": lambda s: s.throughput.requests_per_s,
    "throughput.tokens_per_s": lambda s: s.throughput.output_tokens_per_s,
    "throughput.goodput_rps": lambda s: s.throughput.goodput_rps,
    "stalls.per_1k_tokens": _stall("per_1k_tokens"),
    "stalls.stalled_share": _stall("stalled_share"),
}
# run figures that are fractions (shown as percentages, thresholds written as 1% or 0.01)
FRACTION_FIGURES: tuple[str, ...] = ("error_rate", "stalls.stalled_share")
# run figures that are not rates per second
_PLAIN_FIGURES: tuple[str, ...] = ("stalls.per_1k_tokens",)
# worse when higher
_HIGHER_IS_WORSE: tuple[str, ...] = (*FRACTION_FIGURES, *_PLAIN_FIGURES)


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
        """"ms", "" (a fraction), "/s", or "per 1k tokens"."""
        if self.is_latency:
            return "ms"
        if self.metric in FRACTION_FIGURES:
            return ""
        return " per 1k tokens" if self.metric in _PLAIN_FIGURES else "/s"

    @property
    def higher_is_worse(self) -> bool:
        return self.is_latency or self.metric in _HIGHER_IS_WORSE

    def hlog_tag(self) -> str:
        return self.metric if not self.where else f"{self.metric}:{self.where[0]}={self.where[1]}"

    def stats(self, summary: Summary) -> LatencyStats:
        """The latency distribution the figure reads (empty for run figures or a missing breakdown)."""
        if not self.is_latency:
            return EMPTY_STATS
        if self.where:
            dim, val = self.where
            entry = summary.breakdowns.get(dim, {}).get(val)
            return entry.latency(self.metric) if entry is not None else EMPTY_STATS
        return summary.latency(self.metric)

    def lookup(self, summary: Summary) -> float | None:
        if not self.is_latency:
            return RUN_FIGURES[self.metric](summary)
        stats = self.stats(summary)
        if not stats.count:
            return None
        assert self.stat is not None
        return stats.stat(self.stat)

    def count(self, summary: Summary) -> int:
        """How many samples the figure rests on (requests for run figures)."""
        if not self.is_latency:
            return summary.requests.total
        return self.stats(summary).count
