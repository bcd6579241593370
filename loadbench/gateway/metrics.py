"""Gateway metrics in Prometheus text format: counters by label tuple and fixed-bucket histograms.

Recording is a dict increment or one ``bisect`` per value, cheap enough for every chunk.
Each worker process keeps its own registry and ``/metrics`` reports the worker that answered
(label ``worker``); scrape each worker, or run one worker per port, for exact totals.
"""

from __future__ import annotations

import os
from bisect import bisect_left
from collections import defaultdict
from dataclasses import dataclass, field

# seconds; LLM latencies span sub-millisecond chunk gaps to minute-long streams
_TTFT_BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
_TOKEN_BUCKETS_S = (0.0005, 0.001, 0.0025, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.03, 0.05, 0.075, 0.1,
                    0.25, 0.5, 1.0)


@dataclass(slots=True)
class Histogram:
    bounds_s: tuple[float, ...]
    counts: list[int]
    sum_s: float = 0.0

    @classmethod
    def of(cls, bounds_s: tuple[float, ...]) -> Histogram:
        return cls(bounds_s, [0] * (len(bounds_s) + 1))

    def record(self, value_s: float) -> None:
        self.counts[bisect_left(self.bounds_s, value_s)] += 1
        self.sum_s += value_s


@dataclass(slots=True)
class TargetTimings:
    ttft: Histogram = field(default_factory=lambda: Histogram.of(_TTFT_BUCKETS_S))
    itl: Histogram = field(default_factory=lambda: Histogram.of(_TOKEN_BUCKETS_S))
    tpot: Histogram = field(default_factory=lambda: Histogram.of(_TOKEN_BUCKETS_S))


_COUNTERS: dict[str, tuple[str, tuple[str, ...]]] = {
    "requests": ("Client requests by virtual model and final status", ("model", "status")),
    "attempts": ("Upstream attempts by target and outcome (status code, timeout, connection_error, invalid_answer)",
                 ("target", "outcome")),
    "retries": ("Attempts repeated on the same target", ("target",)),
    "fallbacks": ("Requests that moved to another target", ("model",)),
    "cooldowns": ("Times a target was taken out of rotation", ("target",)),
    "stream_breaks": ("Streams that broke after the first byte (ended with an SSE error event)", ("target",)),
    "client_disconnects": ("Requests whose client went away before the end", ("target",)),
    "slow_clients": ("Streams cut off because the client stopped reading (not charged to the target)",
                     ("target",)),
    "cache_lookups": ("Cache lookups by virtual model and outcome (hit-exact, hit-semantic, miss, bypass)",
                      ("model", "outcome")),
    "cache_model_tokens_saved": ("Model tokens (prompt + completion) of the answers served from the cache",
                                 ("model",)),
    "cache_captures": ("Answers offered to the cache after a miss: stored, or refused (incomplete, errored)",
                       ("model", "result")),
    "cache_shared": ("Answers found in (hit) or written to (stored) the cache shared in Redis, and the other"
                     " replicas' semantic entries adopted into this one's index (adopted)",
                     ("model", "result")),
    "rate_limited": ("Requests refused with 429 by a per-key rate limit (requests or tokens per minute)",
                     ("limit",)),
}
# ResponseCache.stats() fields shown as gauges (the rest are counters)
_CACHE_GAUGES = frozenset({"entries", "partitions", "vector_bytes"})


class Metrics:
    def __init__(self) -> None:
        self.counters: dict[str, defaultdict[tuple[str, ...], int]] = {
            name: defaultdict(int) for name in _COUNTERS}
        self.timings: dict[str, TargetTimings] = {}
        self.worker = str(os.getpid())

    def inc(self, name: str, *labels: str) -> None:
        self.counters[name][labels] += 1

    def add(self, name: str, value: int, *labels: str) -> None:
        self.counters[name][labels] += value

    def target(self, name: str) -> TargetTimings:
        t = self.timings.get(name)
        if t is None:
            t = self.timings[name] = TargetTimings()
        return t

    def render(self, healthy: dict[str, bool], caches: dict[str, dict[str, int]] | None = None) -> str:
        """``caches``: ResponseCache.stats() by cache label (the virtual models sharing it)."""
        w = self.worker
        lines: list[str] = []
        for name, (help_text, label_names) in _COUNTERS.items():
            metric = f"loadbench_gateway_{name}_total"
            lines += [f"# HELP {metric} {help_text}", f"# TYPE {metric} counter"]
            for labels, value in sorted(self.counters[name].items()):
                pairs = ",".join(f'{k}="{_esc(v)}"' for k, v in zip(label_names, labels, strict=True))
                lines.append(f'{metric}{{{pairs},worker="{w}"}} {value}')
        lines += ["# HELP loadbench_gateway_target_healthy 1 if the target is in rotation",
                  "# TYPE loadbench_gateway_target_healthy gauge"]
        for target, ok in sorted(healthy.items()):
            tw = f'target="{_esc(target)}",worker="{w}"'
            lines.append(f"loadbench_gateway_target_healthy{{{tw}}} {int(ok)}")
        for kind, help_text in (("ttft", "Time to first content chunk from the attempt's send"),
                                ("itl", "Gaps between reads carrying content"),
                                ("tpot", "Time per output token per request")):
            metric = f"loadbench_gateway_{kind}_seconds"
            lines += [f"# HELP {metric} {help_text}", f"# TYPE {metric} histogram"]
            for target, timings in sorted(self.timings.items()):
                lines += histogram_lines(metric, f'target="{_esc(target)}",worker="{w}"', getattr(timings, kind))
        for field_name in next(iter(caches.values())) if caches else ():
            gauge = field_name in _CACHE_GAUGES
            metric = f"loadbench_gateway_cache_{field_name}" + ("" if gauge else "_total")
            lines += [f"# HELP {metric} Response cache {field_name.replace('_', ' ')} (see docs/cache.md)",
                      f"# TYPE {metric} {'gauge' if gauge else 'counter'}"]
            for label, stats in sorted((caches or {}).items()):
                lines.append(f'{metric}{{cache="{_esc(label)}",worker="{w}"}} {stats[field_name]}')
        return "\n".join(lines) + "\n"


def histogram_lines(metric: str, labels: str, h: Histogram) -> list[str]:
    """A histogram's cumulative buckets, sum and count in Prometheus text (``labels``: ``k="v",...``)."""
    lines = []
    cum = 0
    for bound, count in zip(h.bounds_s, h.counts, strict=False):
        cum += count
        lines.append(f'{metric}_bucket{{{labels},le="{bound}"}} {cum}')
    cum += h.counts[-1]
    lines.append(f'{metric}_bucket{{{labels},le="+Inf"}} {cum}')
    lines.append(f"{metric}_sum{{{labels}}} {h.sum_s:.6f}")
    lines.append(f"{metric}_count{{{labels}}} {cum}")
    return lines


def _esc(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
