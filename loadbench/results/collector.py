"""The master's side of recording: merges what workers ship and writes the run folder.

Workers ship, about every second, the samples finished since their last report and the interval
histograms recorded since then (see loadbench.metrics.recorder). Intervals are written to
``histograms.hlog`` and ``timeline.jsonl`` once they can no longer receive data (their end plus a
grace period for reports in flight), and every remaining interval at ``close()``. A late part for an
interval already written is written as an extra line for the same interval: the hlog stays exact
when merged, and nothing is dropped.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import orjson
from hdrh.histogram import HdrHistogram

from loadbench.metrics import histogram as hg
from loadbench.metrics.live import LiveFeed
from loadbench.metrics.recorder import LOOP_LAG_TAG, SCHEDULE_LAG_TAG, IntervalPart
from loadbench.results import run_dir as rd
from loadbench.results.hlog import HlogWriter
from loadbench.units import ns_to_s, s_to_ns, us_to_ms

GRACE_S = 2.5
  # a report in flight arrives within ~1 s (the report period) plus slack
# An interval count a worker of a sessions run adds as each session starts (its first turn is sent): that
# run's arrivals are sessions, not turns. Absent from a single-request run's counts (and timeline).
SESSIONS_STARTED = "sessions_started"


@dataclass(slots=True)
class Bucket:
    part: IntervalPart = field(default_factory=IntervalPart)
    cpu_max: float | None = None
    lag: HdrHistogram | None = None
    workers: set[str] = field(default_factory=set)
    schedule_lag: HdrHistogram | None = None


@dataclass(slots=True)
class Progress:
    ok: int = 0
    failed: int = 0
    dropped: int = 0
    sessions_started: int = 0
    ttft: HdrHistogram = field(default_factory=hg.new_histogram)


class Collector:
    def __init__(self, run_dir: Path, start_unix_ns: int, interval_s: float,
                 context: Callable[[int], dict[str, Any]] | None = None) -> None:
        self.run_dir = run_dir
        self.start_unix_ns = start_unix_ns
        self.interval_s = interval_s
        self._context = context or (lambda idx: {})
        self._samples: IO[bytes] = (run_dir / rd.SAMPLES).open("ab")
        self._hlog_file = (run_dir / rd.HLOG).open("w")
        self._hlog = HlogWriter(self._hlog_file, ns_to_s(start_unix_ns))
        self._timeline = (run_dir / rd.TIMELINE).open("ab")
        self._buckets: dict[int, Bucket] = {}
        self._written: set[int] = set()
        self.totals = Progress()
        self.window = Progress()
        self.outcomes: dict[str, int] = {}
        self.workers_seen: set[str] = set()
        self.worker_cpu_s: dict[str, float] = {}
        self.closed = False
        self.live: LiveFeed | None = None  # the web page and Prometheus read each interval as it is written

    def add(self, data: dict[str, Any] | None) -> None:
        """Merge one worker report (see WorkerRuntime.drain)."""
        if not data or self.closed:
            return
        worker = str(data.get("worker"))
        self.workers_seen.add(worker)
        if data.get("cpu_s") is not None:
            self.worker_cpu_s[worker] = float(data["cpu_s"])
        samples = data.get("samples") or []
        if samples:
            self._samples.write(b"\n".join(samples) + b"\n")
            self._samples.flush()
        for key, wire in (data.get("parts") or {}).items():
            idx = int(key)
            b = self._bucket(idx)
            b.workers.add(worker)
            b.part.add_wire(wire)
            counts = wire.get("counts", {})
            for prog in (self.totals, self.window):
                prog.ok += int(counts.get("ok", 0))
                prog.failed += int(counts.get("failed", 0))
                prog.dropped += int(counts.get("dropped", 0))
                prog.sessions_started += int(counts.get(SESSIONS_STARTED, 0))
            for k, v in (wire.get("outcomes") or {}).items():
                self.outcomes[k] = self.outcomes.get(k, 0) + int(v)
            ttft = wire.get("hists", {}).get("ttft")
            if ttft:
                hg.add_sparse(self.window.ttft, ttft)
        for key, g in (data.get("gen") or {}).items():
            b = self._bucket(int(key))
            if g.get("cpu_max") is not None:
                b.cpu_max = max(b.cpu_max or 0.0, float(g["cpu_max"]))
            for name in ("lag", "schedule_lag"):
                if g.get(name):
                    h = getattr(b, name)
                    if h is None:
                        h = hg.new_histogram()
                        setattr(b, name, h)
                    hg.add_sparse(h, g[name])

    def _bucket(self, idx: int) -> Bucket:
        b = self._buckets.get(idx)
        if b is None:
            b = self._buckets[idx] = Bucket()
        return b

    def take_window(self) -> Progress:
        w, self.window = self.window, Progress()
        return w

    def flush_ready(self, now_unix_ns: int | None = None) -> None:
        now = time.time_ns() if now_unix_ns is None else now_unix_ns
        interval_ns = s_to_ns(self.interval_s)
        ready = [i for i in self._buckets
                 if self.start_unix_ns + (i + 1) * interval_ns + s_to_ns(GRACE_S) <= now]
        self._write(sorted(ready))

    def _write(self, indexes: list[int]) -> None:
        for idx in indexes:
            b = self._buckets.pop(idx)
            start_s = idx * self.interval_s
            for tag in sorted(b.part.hists):
                h = b.part.hists[tag]
                if h.get_total_count():
                    self._hlog.write(tag, start_s, self.interval_s, h)
            for tag, gh in ((LOOP_LAG_TAG, b.lag), (SCHEDULE_LAG_TAG, b.schedule_lag)):
                if gh is not None and gh.get_total_count():
                    self._hlog.write(tag, start_s, self.interval_s, gh)
            line = {
                "t_start_s": round(start_s, 3), "t_end_s": round(start_s + self.interval_s, 3),
                **self._context(idx),
                **b.part.counts,
                "outcomes": dict(b.part.outcomes),
                "workers": len(b.workers),
                "cpu_percent_max": b.cpu_max,
                "loop_lag_p99_ms": (round(us_to_ms(b.lag.get_value_at_percentile(99.0)), 3)
                                    if b.lag is not None and b.lag.get_total_count() else None),
                "schedule_lag_p99_ms": (round(us_to_ms(b.schedule_lag.get_value_at_percentile(99.0)), 3)
                                        if b.schedule_lag is not None and b.schedule_lag.get_total_count()
                                        else None),
            }
            if idx in self._written:
                line["late"] = True
            self._written.add(idx)
            if self.live is not None:
                self.live.add(start_s, self.interval_s, b.part.hists, line, b.lag, b.schedule_lag)
            self._timeline.write(orjson.dumps(line) + b"\n")
        self._hlog.flush()
        self._timeline.flush()

    def close(self) -> None:
        if self.closed:
            return
        self._write(sorted(self._buckets))
        self.closed = True
        for f in (self._samples, self._hlog_file, self._timeline):
            f.close()
