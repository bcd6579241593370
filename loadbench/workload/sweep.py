"""Sweeps and SLOs: the sequence of loads to try, whether a summary meets the SLO, and per-request
goodput.

Summary input for ``slo_met``: ``{"ttft_ms": {"p95": 412.0, ...}, "itl_ms": {...}, "tpot_ms": {...},
"e2e_ms": {...}, "error_rate": 0.004}`` (statistic names as in the SLO: p50, p95, p99.9, mean, max).

Goodput of one request: it succeeded and each of its values is within the loosest limit the SLO
gives for that metric (``max`` when given, otherwise the largest percentile limit): a request
slower than every percentile budget can never help meet the SLO. For ``itl_ms`` the request's value
is its worst gap. Metrics the request does not have (tpot with one output token) are not judged.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from loadbench.config.profile import Slo, Sweep


@dataclass(frozen=True, slots=True)
class SweepStep:
    index: int
    variable: str  # "users" | "rps"
    value: float
    start_s: float
    end_s: float


def sweep_steps(sweep: Sweep, *, start_s: float = 0.0) -> list[SweepStep]:
    """Each load level held for hold_s, back to back from ``start_s``."""
    return [
        SweepStep(i, sweep.variable, v, start_s + i * sweep.hold_s, start_s + (i + 1) * sweep.hold_s)
        for i, v in enumerate(sweep.values())
    ]


def slo_met(summary_metrics: Mapping[str, Any], slo: Slo) -> tuple[bool, list[str]]:
    """(all limits met, one reason per limit missed or without data)."""
    reasons: list[str] = []
    for metric, limits in slo.metrics().items():
        stats = summary_metrics.get(metric) or {}
        for stat, limit in limits.items():
            value = stats.get(stat)
            if value is None:
                reasons.append(f"{metric}.{stat}: no data")
            elif value > limit:
                reasons.append(f"{metric}.{stat} = {value:g} > {limit:g}")
    if slo.error_rate is not None:
        rate = summary_metrics.get("error_rate")
        if rate is None:
            reasons.append("error_rate: no data")
        elif rate > slo.error_rate:
            reasons.append(f"error_rate = {rate:g} > {slo.error_rate:g}")
    return not reasons, reasons


def request_limits_ms(slo: Slo) -> dict[str, float]:
    """Per-request limit for each metric: the loosest limit given for it."""
    return {metric: max(limits.values()) for metric, limits in slo.metrics().items()}


def request_is_good(
    limits_ms: Mapping[str, float],
    *,
    ok: bool,
    ttft_ms: float | None = None,
    itl_ms: float | None = None,
    tpot_ms: float | None = None,
    e2e_ms: float | None = None,
) -> bool:
    """Whether one request counts towards goodput (``limits_ms`` from ``request_limits_ms``)."""
    if not ok:
        return False
    values = {"ttft_ms": ttft_ms, "itl_ms": itl_ms, "tpot_ms": tpot_ms, "e2e_ms": e2e_ms}
    for metric, limit in limits_ms.items():
        value = values[metric]
        if value is not None and value > limit:
            return False
    return True


def max_passing_load(results: Sequence[tuple[float, bool]]) -> float | None:
    """The highest load of the leading run of passing steps (a sweep stops counting at the first
    failure: a later pass after a failure is noise, not capacity)."""
    best: float | None = None
    for value, met in results:
        if not met:
            break
        best = value
    return best
