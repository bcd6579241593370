"""The live view of a running load test: one point per interval, read from the master's merged HDR
interval histograms (never from Locust's rounded statistics), and the run so far.

The master's collector hands each interval to ``LiveFeed.add`` when it writes it to the hlog (its
end plus the collector's grace period), so a point is exactly what the folder holds for it. The
web page and the Prometheus exporter both read this one object.

    interval quantiles  P50 / P90 / P99 of that interval's histogram (hdrh's percentile rule)
    run quantiles       the same of all intervals merged so far (measured requests only: the
                        recorder keeps warm-up and cool-down out of the histograms), so at the end
                        they equal the summary's figures for the run's window within HDR precision
    requests_per_s      ok requests finished in the interval / interval length
    output_tokens_per_s output tokens of requests finished in the interval / interval length
    errors              failed requests finished in the interval, by outcome
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from hdrh.histogram import HdrHistogram

from loadbench.metrics import histogram as hg
from loadbench.metrics.summarize import generator_reasons
from loadbench.units import us_to_ms

LIVE_METRICS = ("ttft", "itl", "tpot", "e2e")
QUANTILES = (50.0, 90.0, 99.0)
CACHE_TAG = "ttft:cache="  # the gateway's x-loadbench-cache value: hit-exact, hit-semantic, miss, bypass
MAX_POINTS = 3600  # an hour of one-second intervals; older points leave the chart, not the run figures


@dataclass(frozen=True, slots=True)
class Quantiles:
    count: int = 0
    p50_ms: float | None = None
    p90_ms: float | None = None
    p99_ms: float | None = None

    @classmethod
    def of(cls, hist: HdrHistogram | None) -> Quantiles:
        if hist is None or not hist.get_total_count():
            return cls()
        # hdrh's own rule over the non-zero counters only (histogram.percentile_us): this runs for every
        # interval and every page poll on the master, which shares the cores with the workers
        counts = hg.counts_view(hist)
        idx = np.flatnonzero(counts)
        cum = np.cumsum(counts[idx].astype(np.int64))
        p50, p90, p99 = (us_to_ms(hg.percentile_us(hist, idx, cum, q)) for q in QUANTILES)
        return cls(count=int(hist.get_total_count()), p50_ms=p50, p90_ms=p90, p99_ms=p99)

    def to_json(self) -> dict[str, Any]:
        return {"count": self.count, "p50_ms": self.p50_ms, "p90_ms": self.p90_ms, "p99_ms": self.p99_ms}


@dataclass(frozen=True, slots=True)
class LivePoint:
    t_s: float  # interval start on the run clock
    interval_s: float
    latency: dict[str, Quantiles]  # LIVE_METRICS
    cache_ttft: dict[str, Quantiles]  # by cache state; empty when the target reports no cache
    requests_per_s: float
    output_tokens_per_s: float
    errors: dict[str, int]
    cpu_percent_max: float | None
    loop_lag_p99_ms: float | None
    users: int | None
    target_rps: float | None
    phase: str | None

    def to_json(self) -> dict[str, Any]:
        return {"t_s": self.t_s, "interval_s": self.interval_s,
                "latency": {k: q.to_json() for k, q in self.latency.items()},
                "cache_ttft": {k: q.to_json() for k, q in self.cache_ttft.items()},
                "requests_per_s": self.requests_per_s, "output_tokens_per_s": self.output_tokens_per_s,
                "errors": dict(self.errors), "cpu_percent_max": self.cpu_percent_max,
                "loop_lag_p99_ms": self.loop_lag_p99_ms, "users": self.users, "target_rps": self.target_rps,
                "phase": self.phase}


@dataclass(slots=True)
class LiveFeed:
    """Points of one run plus its cumulative histograms and counters (one writer: the master)."""

    points: list[LivePoint] = field(default_factory=list)
    run_hists: dict[str, HdrHistogram] = field(default_factory=dict)
    outcomes: dict[str, int] = field(default_factory=dict)
    output_tokens: int = 0
    cpu: list[float] = field(default_factory=list)
    loop_lag: HdrHistogram = field(default_factory=hg.new_histogram)
    schedule_lag: HdrHistogram = field(default_factory=hg.new_histogram)

    def add(self, t_s: float, interval_s: float, hists: Mapping[str, HdrHistogram], line: Mapping[str, Any],
            loop_lag: HdrHistogram | None = None, schedule_lag: HdrHistogram | None = None) -> LivePoint:
        """One written interval: its histograms by tag and its timeline line (counts, outcomes, context)."""
        for tag, h in hists.items():
            if tag in LIVE_METRICS or tag.startswith(tuple(f"{m}:cache=" for m in LIVE_METRICS)):
                run = self.run_hists.get(tag)
                if run is None:
                    run = self.run_hists[tag] = hg.new_histogram()
                run.add(h)
        for run, part in ((self.loop_lag, loop_lag), (self.schedule_lag, schedule_lag)):
            if part is not None:
                run.add(part)
        outcomes = {str(k): int(v) for k, v in (line.get("outcomes") or {}).items()}
        for k, v in outcomes.items():
            self.outcomes[k] = self.outcomes.get(k, 0) + v
        tokens = int(line.get("output_tokens") or 0)
        self.output_tokens += tokens
        cpu = line.get("cpu_percent_max")
        if isinstance(cpu, int | float):
            self.cpu.append(float(cpu))
        point = LivePoint(
            t_s=t_s, interval_s=interval_s,
            latency={m: Quantiles.of(hists.get(m)) for m in LIVE_METRICS},
            cache_ttft={tag.removeprefix(CACHE_TAG): Quantiles.of(h) for tag, h in sorted(hists.items())
                        if tag.startswith(CACHE_TAG) and h.get_total_count()},
            requests_per_s=round(int(line.get("ok") or 0) / interval_s, 3),
            output_tokens_per_s=round(tokens / interval_s, 3),
            errors={k: v for k, v in outcomes.items() if k != "ok"},
            cpu_percent_max=float(cpu) if isinstance(cpu, int | float) else None,
            loop_lag_p99_ms=line.get("loop_lag_p99_ms"), users=line.get("users"),
            target_rps=line.get("target_rps"), phase=line.get("phase"))
        self.points.append(point)
        del self.points[:-MAX_POINTS]
        return point

    def run_quantiles(self, tag: str) -> Quantiles:
        return Quantiles.of(self.run_hists.get(tag))

    def run_cache_ttft(self) -> dict[str, Quantiles]:
        return {tag.removeprefix(CACHE_TAG): Quantiles.of(h) for tag, h in sorted(self.run_hists.items())
                if tag.startswith(CACHE_TAG)}

    def saturation(self) -> list[str]:
        """The summary's generator rule over the intervals so far (metrics.summarize)."""
        def p99(h: HdrHistogram) -> float | None:
            return us_to_ms(h.get_value_at_percentile(99.0)) if h.get_total_count() else None

        return generator_reasons(self.cpu, p99(self.loop_lag), p99(self.schedule_lag))

    def rows(self) -> list[dict[str, Any]]:
        """One row per figure for a table: the last interval and the run so far (None: no data)."""
        last = self.points[-1] if self.points else None
        rows: list[dict[str, Any]] = []
        for m in LIVE_METRICS:
            q, r = (last.latency[m] if last else Quantiles()), self.run_quantiles(m)
            rows.append({"name": f"{m} (ms)", "p50": q.p50_ms, "p90": q.p90_ms, "p99": q.p99_ms,
                         "run_p50": r.p50_ms, "run_p90": r.p90_ms, "run_p99": r.p99_ms, "run_count": r.count})
        for state, r in self.run_cache_ttft().items():
            q = last.cache_ttft.get(state, Quantiles()) if last else Quantiles()
            rows.append({"name": f"ttft, cache {state} (ms)", "p50": q.p50_ms, "p90": q.p90_ms, "p99": q.p99_ms,
                         "run_p50": r.p50_ms, "run_p90": r.p90_ms, "run_p99": r.p99_ms, "run_count": r.count})
        if last is not None:
            rows.append({"name": "output tokens/s", "p50": last.output_tokens_per_s})
            rows.append({"name": "requests/s (ok)", "p50": last.requests_per_s})
            rows.append({"name": "generator CPU % (busiest worker)", "p50": last.cpu_percent_max})
            rows.append({"name": "generator loop lag P99 (ms)", "p50": last.loop_lag_p99_ms})
        for outcome, n in sorted(self.outcomes.items()):
            if outcome != "ok":
                rows.append({"name": f"errors: {outcome}", "run_count": n})
        return rows

    def to_json(self) -> dict[str, Any]:
        return {"points": [p.to_json() for p in self.points],
                "run": {m: self.run_quantiles(m).to_json() for m in LIVE_METRICS},
                "run_cache_ttft": {c: q.to_json() for c, q in self.run_cache_ttft().items()},
                "outcomes": dict(self.outcomes), "output_tokens": self.output_tokens,
                "saturation": self.saturation()}
