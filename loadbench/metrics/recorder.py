"""Per-process interval recording: samples go into HDR histograms keyed by (interval, tag).

A worker records each finished request into the interval in which it *finished* (index =
(finish - run start) // interval). ``drain()`` hands over everything recorded since the last drain,
encoded, so it can cross a process boundary; the collector adds drained parts into its own buckets.
Because HDR histograms with identical parameters add exactly, splitting an interval over several
drains (or several workers) loses nothing.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from hdrh.histogram import HdrHistogram

from loadbench.metrics import histogram as hg
from loadbench.metrics.records import LATENCY_METRICS
from loadbench.metrics.sample import Sample

METRICS = LATENCY_METRICS
# The generator's own health goes into the same hlog (these are not latencies of the target).
LOOP_LAG_TAG = "generator.loop_lag"
SCHEDULE_LAG_TAG = "generator.schedule_lag"
# user-space read time minus kernel receive time, per kernel-stamped content chunk (us)
READ_DELAY_TAG = "generator.read_delay"
COUNTERS = ("requests", "ok", "failed", "dropped", "excluded", "output_tokens", "prompt_tokens")


def breakdown_tags(sample: Sample) -> list[str]:
    """Dimensions a sample is broken down by (only non-default values, to keep the log small)."""
    dims = []
    if sample.type != "default":
        dims.append(f"type={sample.type}")
    if sample.target != "default":
        dims.append(f"target={sample.target}")
    if sample.cache:
        dims.append(f"cache={sample.cache}")
    return dims


@dataclass(slots=True)
class IntervalPart:
    hists: dict[str, HdrHistogram] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(COUNTERS, 0))
    outcomes: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    # Values waiting to be recorded: appending to a list is the cheapest thing the hot path can do;
    # a worker ships them in the sparse wire form (histogram.sparse_of), never as histograms.
    pending: dict[str, list[int]] = field(default_factory=lambda: defaultdict(list))

    def hist(self, tag: str) -> HdrHistogram:
        h = self.hists.get(tag)
        if h is None:
            h = self.hists[tag] = hg.new_histogram()
        return h

    def to_wire(self) -> dict[str, Any]:
        for tag in [t for t in self.pending if t in self.hists]:
            hg.record_many(self.hists[tag], self.pending.pop(tag))
        hists = {tag: hg.to_sparse(h) for tag, h in self.hists.items() if h.get_total_count()}
        hists.update({tag: hg.sparse_of(values) for tag, values in self.pending.items() if values})
        self.pending.clear()
        return {
            "hists": hists,
            "counts": dict(self.counts),
            "outcomes": dict(self.outcomes),
        }

    def add_wire(self, wire: dict[str, Any]) -> None:
        for tag, sparse in wire.get("hists", {}).items():
            hg.add_sparse(self.hist(tag), sparse)
        for k, v in wire.get("counts", {}).items():
            self.counts[k] = self.counts.get(k, 0) + int(v)
        for k, v in wire.get("outcomes", {}).items():
            self.outcomes[k] += int(v)


class IntervalRecorder:
    """Records samples into per-interval parts. Not thread-safe; one per process (gevent is fine)."""

    __slots__ = ("_parts", "interval_ns", "start_unix_ns")

    def __init__(self, start_unix_ns: int, interval_ns: int) -> None:
        self.start_unix_ns = start_unix_ns
        self.interval_ns = interval_ns
        self._parts: dict[int, IntervalPart] = {}

    def index_of(self, unix_ns: int) -> int:
        return max(0, (unix_ns - self.start_unix_ns) // self.interval_ns)

    def part(self, index: int) -> IntervalPart:
        p = self._parts.get(index)
        if p is None:
            p = self._parts[index] = IntervalPart()
        return p

    def record(self, sample: Sample, finish_unix_ns: int, gaps_us: list[int],
               read_delays_us: list[int] | None = None) -> None:
        part = self.part(self.index_of(finish_unix_ns))
        c = part.counts
        c["requests"] += 1
        part.outcomes[sample.outcome] += 1
        if sample.outcome == "dropped":
            c["dropped"] += 1
        elif sample.outcome == "interrupted":
            pass  # cut by a user's stop, not an answer of the target: counted in outcomes only (as the summary)
        elif sample.outcome != "ok":
            c["failed"] += 1
        else:
            c["ok"] += 1
        if sample.output_tokens:
            c["output_tokens"] += sample.output_tokens
        if sample.prompt_tokens:
            c["prompt_tokens"] += sample.prompt_tokens
        if sample.phase != "measure":
            c["excluded"] += 1
            return
        if sample.outcome != "ok":
            return  # failures never enter latency histograms
        values = {
            "ttft": sample.ttft_us, "ttft_answer": sample.ttft_answer_us, "tpot": sample.tpot_us,
            "e2e": sample.e2e_us, "queue": sample.queue_us, "service_ttft": sample.service_ttft_us,
        }
        dims = breakdown_tags(sample)
        pending = part.pending
        for metric, value in values.items():
            if value is None:
                continue
            pending[metric].append(value)
            for d in dims:
                pending[f"{metric}:{d}"].append(value)
        if gaps_us:
            pending["itl"].extend(gaps_us)
            for d in dims:
                pending[f"itl:{d}"].extend(gaps_us)
        if read_delays_us:
            pending[READ_DELAY_TAG].extend(read_delays_us)

    def drain(self) -> dict[int, dict[str, Any]]:
        """Everything recorded since the last drain, encoded for the wire, and reset."""
        parts, self._parts = self._parts, {}
        return {idx: p.to_wire() for idx, p in parts.items()}
