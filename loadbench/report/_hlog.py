"""``histograms.hlog`` as per-interval, per-tag distributions (on top of ``loadbench.results.hlog``).

Lines that share a start time belong to one interval. Each histogram is turned into a sparse
``Dist`` so the report can merge and resample intervals with numpy.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from loadbench.report.distribution import Dist, merge_dists
from loadbench.results.hlog import read_hlog as read_hlog_lines


@dataclass(slots=True)
class Interval:
    start_s: float
    length_s: float
    dists: dict[str, Dist] = field(default_factory=dict)

    @property
    def end_s(self) -> float:
        return self.start_s + self.length_s


@dataclass(slots=True)
class IntervalLog:
    intervals: list[Interval]

    @property
    def tags(self) -> list[str]:
        seen: dict[str, None] = {}
        for iv in self.intervals:
            for tag in iv.dists:
                seen.setdefault(tag, None)
        return list(seen)

    def total(self, tag: str) -> Dist:
        """The whole run's distribution for one tag (lossless merge of every interval)."""
        return merge_dists(iv.dists[tag] for iv in self.intervals if tag in iv.dists)

    def per_interval(self, tag: str) -> list[Dist]:
        """One distribution per interval (empty where the interval has no line for the tag)."""
        return [iv.dists.get(tag, Dist.empty()) for iv in self.intervals]


def read_intervals(path: Path) -> IntervalLog:
    if not path.is_file():
        return IntervalLog([])
    _, lines = read_hlog_lines(path)
    by_start: dict[float, Interval] = {}
    for line in lines:
        iv = by_start.setdefault(round(line.start_s, 3), Interval(line.start_s, line.length_s))
        dist = Dist.from_histogram(line.hist)
        iv.dists[line.tag] = merge_dists([iv.dists[line.tag], dist]) if line.tag in iv.dists else dist
    return IntervalLog([by_start[k] for k in sorted(by_start)])
