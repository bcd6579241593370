"""Live Prometheus metrics of a running load test, served by the master (docs/web.md).

Latencies are exposed twice, both from the master's merged HDR histograms:

- as Prometheus **histograms** (``loadbench_ttft_seconds_bucket`` ...), cumulative over the run.
  Histograms, not summaries, because buckets add up across runs and scrapes: PromQL's
  ``histogram_quantile(0.99, rate(loadbench_ttft_seconds_bucket[1m]))`` gives any window, where a
  summary's quantiles cannot be merged or re-windowed. A bucket counts every HDR counter whose
  range starts at or below its bound: a value is placed within HDR precision (0.1%) of itself.
- as **gauges** of exact HDR quantiles (``loadbench_ttft_quantile_seconds{quantile, window}``), for
  the last written interval and for the run so far: what the page and the final summary show,
  without a bucket's coarseness.

A scrape reads the live state through a callable, so nothing is copied on the master's hot path.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from hdrh.histogram import HdrHistogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector, CollectorRegistry

from loadbench.metrics import histogram as hg
from loadbench.metrics.live import LIVE_METRICS, QUANTILES, LiveFeed, Quantiles
from loadbench.units import US_PER_S, ms_to_s

PREFIX = "loadbench"
# Bucket bounds in seconds: LLM latencies run from a few ms (ITL) to minutes (E2E of long answers).
BUCKETS_S = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0,
             3.0, 5.0, 7.5, 10.0, 15.0, 20.0, 30.0, 60.0, 120.0)
_HELP = {"ttft": "time to first content token from the intended start",
         "itl": "each gap between consecutive content chunks",
         "tpot": "time per output token after the first, per request",
         "e2e": "end of stream from the intended start"}


@dataclass(frozen=True, slots=True)
class LiveState:
    """What a scrape reads: the run's live feed and the master's running counts."""

    run_id: str
    feed: LiveFeed
    outcomes: Mapping[str, int]  # every finished request so far, by outcome (ok included)
    users: int | None
    target_rps: float | None


def _bucket_values_us() -> np.ndarray:
    layout = hg.new_histogram()
    # the lowest value of each counter's range (HDR records a value at the start of its counter)
    return np.fromiter((layout.get_lowest_equivalent_value(layout.get_value_from_index(i))
                        for i in range(layout.counts_len)), dtype=np.int64, count=layout.counts_len)


_VALUES_US = _bucket_values_us()


def histogram_buckets(hist: HdrHistogram | None) -> tuple[list[tuple[str, float]], float]:
    """Cumulative (le, count) pairs ending in +Inf, and the sum in seconds, of an HDR histogram."""
    if hist is None or not hist.get_total_count():
        return [*((f"{b:g}", 0.0) for b in BUCKETS_S), ("+Inf", 0.0)], 0.0
    counts = hg.counts_view(hist).astype(np.int64)
    cum = np.cumsum(counts)
    bounds_us = np.asarray(BUCKETS_S) * US_PER_S
    at = np.searchsorted(_VALUES_US, bounds_us, side="right") - 1  # last counter starting <= bound
    below = [float(cum[i]) if i >= 0 else 0.0 for i in at]
    nz = np.flatnonzero(counts)
    mids = np.fromiter((hist._hdr_median_equiv_value(hist.get_value_from_index(int(i))) for i in nz),
                       dtype=np.float64, count=len(nz))
    total_s = float(np.dot(mids, counts[nz])) / US_PER_S
    return [*((f"{b:g}", c) for b, c in zip(BUCKETS_S, below, strict=True)), ("+Inf", float(cum[-1]))], total_s


def _quantile_gauge(name: str, doc: str, windows: Mapping[str, Quantiles]) -> GaugeMetricFamily:
    g = GaugeMetricFamily(name, doc, labels=["quantile", "window"])
    for window, q in windows.items():
        for p, value_ms in zip(QUANTILES, (q.p50_ms, q.p90_ms, q.p99_ms), strict=True):
            if value_ms is not None:
                g.add_metric([f"{p / 100:g}", window], ms_to_s(value_ms))
    return g


def metrics_of(state: LiveState) -> Iterator[Metric]:
    feed = state.feed
    last = feed.points[-1] if feed.points else None
    info = GaugeMetricFamily(f"{PREFIX}_run_info", "the run being measured (value 1)", labels=["run_id"])
    info.add_metric([state.run_id], 1.0)
    yield info
    requests = CounterMetricFamily(f"{PREFIX}_requests", "finished requests by outcome", labels=["outcome"])
    errors = CounterMetricFamily(f"{PREFIX}_errors", "failed requests by outcome (not ok, not dropped)",
                                 labels=["outcome"])
    for outcome, n in sorted(state.outcomes.items()):
        requests.add_metric([outcome], float(n))
        if outcome not in ("ok", "dropped"):
            errors.add_metric([outcome], float(n))
    yield requests
    yield errors
    yield CounterMetricFamily(f"{PREFIX}_output_tokens", "output tokens of finished requests (written intervals)",
                              value=float(feed.output_tokens))
    yield GaugeMetricFamily(f"{PREFIX}_output_tokens_per_second", "output tokens per second, last interval",
                            value=last.output_tokens_per_s if last else 0.0)
    yield GaugeMetricFamily(f"{PREFIX}_requests_per_second", "ok requests per second, last interval",
                            value=last.requests_per_s if last else 0.0)
    for metric in LIVE_METRICS:
        buckets, total_s = histogram_buckets(feed.run_hists.get(metric))
        yield HistogramMetricFamily(f"{PREFIX}_{metric}_seconds", _HELP[metric] + " (HDR, measured requests)",
                                    buckets=buckets, sum_value=total_s)
        yield _quantile_gauge(f"{PREFIX}_{metric}_quantile_seconds", _HELP[metric] + ": exact HDR quantiles",
                              {"interval": last.latency[metric] if last else Quantiles(),
                               "run": feed.run_quantiles(metric)})
    cache = GaugeMetricFamily(f"{PREFIX}_cache_ttft_p50_seconds", "P50 TTFT by cache state of the gateway, run",
                              labels=["cache"])
    for c, q in feed.run_cache_ttft().items():
        if q.p50_ms is not None:
            cache.add_metric([c], ms_to_s(q.p50_ms))
    yield cache
    if state.users is not None:
        yield GaugeMetricFamily(f"{PREFIX}_users", "users (closed loop) or request slots (open loop)",
                                value=float(state.users))
    if state.target_rps is not None:
        yield GaugeMetricFamily(f"{PREFIX}_target_requests_per_second", "planned arrival rate (open loop)",
                                value=state.target_rps)
    reasons = feed.saturation()
    yield GaugeMetricFamily(f"{PREFIX}_generator_saturated", "1 when the load generator is the bottleneck "
                            "(the summary's rule over the run so far)", value=1.0 if reasons else 0.0)
    if last is not None and last.cpu_percent_max is not None:
        yield GaugeMetricFamily(f"{PREFIX}_generator_cpu_ratio", "busiest worker's share of a core, last interval",
                                value=last.cpu_percent_max / 100.0)
    if last is not None and last.loop_lag_p99_ms is not None:
        yield GaugeMetricFamily(f"{PREFIX}_generator_loop_lag_p99_seconds", "worker loop lag P99, last interval",
                                value=ms_to_s(last.loop_lag_p99_ms))


class LiveCollector(Collector):
    def __init__(self, source: Callable[[], LiveState | None]) -> None:
        self._source = source

    def collect(self) -> Iterator[Metric]:
        state = self._source()
        if state is not None:
            yield from metrics_of(state)


def registry_for(source: Callable[[], LiveState | None]) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(LiveCollector(source))
    return registry


def serve(port: int, source: Callable[[], LiveState | None], host: str = "127.0.0.1") -> Any:
    """Serve ``/metrics`` on host:port (a background server; it ends with the process)."""
    from prometheus_client import start_http_server

    return start_http_server(port, addr=host, registry=registry_for(source))
