"""An SLO as data, and the verdict of a run (or one stage) against it.

Read from the profile's stored ``slo:`` block (``{"ttft_ms": {"p95": 500}, "error_rate": 0.01,
"stalls_per_1k_tokens": 2}``) without re-validating it against today's config schema: the config
layer validated it when the run started.

Goodput of one request: it succeeded and each of its values is within the loosest limit the SLO
gives for that metric (``max`` when given, otherwise the largest percentile limit): a request slower
than every percentile budget can never help meet the SLO. For ``itl_ms`` the request's value is its
worst gap. Metrics the request does not have (tpot with one output token) are not judged.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from loadbench.metrics.records import LatencyStats, Objective, SloResult

# Run-level figures an SLO may bound (name -> how it reads), besides the ``<metric>_ms`` latencies.
RUN_OBJECTIVES: tuple[str, ...] = ("error_rate", "stalls_per_1k_tokens", "stalled_share")
_LATENCY_ORDER: tuple[str, ...] = ("ttft", "itl", "tpot", "e2e")


@dataclass(frozen=True, slots=True)
class SloSpec:
    latency: tuple[tuple[str, str, float], ...]  # (metric "ttft", statistic as written "p99.9", limit ms)
    run: tuple[tuple[str, float], ...]  # (RUN_OBJECTIVES name, limit)

    @classmethod
    def from_json(cls, obj: Mapping[str, Any] | None) -> SloSpec | None:
        if not obj:
            return None
        latency: list[tuple[str, str, float]] = []
        run: list[tuple[str, float]] = []
        for key, value in obj.items():
            if value is None:
                continue
            if key.endswith("_ms") and isinstance(value, Mapping):
                latency += [(key.removesuffix("_ms"), str(stat), float(limit)) for stat, limit in value.items()]
            elif key in RUN_OBJECTIVES:
                run.append((key, float(value)))
        # the order the profile's Slo declares them, whatever order the stored dict has
        latency.sort(key=lambda o: _LATENCY_ORDER.index(o[0]) if o[0] in _LATENCY_ORDER else len(_LATENCY_ORDER))
        run.sort(key=lambda o: RUN_OBJECTIVES.index(o[0]))
        return cls(tuple(latency), tuple(run)) if latency or run else None

    def request_limits_ms(self) -> dict[str, float]:
        """Per-request limit for each latency metric (``ttft_ms`` -> ms): the loosest limit given."""
        out: dict[str, float] = {}
        for metric, _, limit in self.latency:
            key = f"{metric}_ms"
            out[key] = max(out.get(key, limit), limit)
        return out

    def text(self) -> str:
        """As people write it: ``ttft p95 <= 200 ms, error_rate <= 0.01``."""
        return ", ".join(o.label for o in self.judge(lambda _: LatencyStats(), {}).objectives)

    def judge(self, latency: Callable[[str], LatencyStats], figures: Mapping[str, float | None]) -> SloResult:
        """Each objective with its measured value; a missing value fails it ("no data")."""
        checks = [(Objective(m, st, lim, latency(m).stat(st), False), f"{m}_ms.{st}") for m, st, lim in self.latency]
        checks += [(Objective(name, None, lim, figures.get(name), False), name) for name, lim in self.run]
        objectives: list[Objective] = []
        reasons: list[str] = []
        for o, key in checks:
            passed = o.value is not None and o.value <= o.limit
            objectives.append(replace(o, passed=passed))
            if o.value is None:
                reasons.append(f"{key}: no data")
            elif not passed:
                reasons.append(f"{key} = {o.value:g} > {o.limit:g}")
        return SloResult(met=not reasons, reasons=tuple(reasons), limits_ms=self.request_limits_ms(),
                         objectives=tuple(objectives))


def request_is_good(limits_ms: Mapping[str, float], values_ms: Mapping[str, float | None]) -> bool:
    """Whether one successful request counts towards goodput (``limits_ms`` from ``request_limits_ms``)."""
    for metric, limit in limits_ms.items():
        value = values_ms.get(metric)
        if value is not None and value > limit:
            return False
    return True
