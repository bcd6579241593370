"""A latency distribution as sparse HDR bucket counts, in numpy, for fast merging and resampling.

Values are integer microseconds in the standard loadbench histogram (1 us .. 1 h, 3 significant
digits; see ``loadbench.metrics.histogram``). A bucket is named by its index in the HDR counts array;
a percentile is read exactly as ``HdrHistogram.get_value_at_percentile`` reads it (the highest value
equivalent to the bucket holding the target count), so figures here equal the ones in summary.json.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from hdrh.histogram import HdrHistogram

from loadbench.metrics.histogram import new_histogram

_REF = new_histogram()


@lru_cache(maxsize=65536)
def _bucket_value_us(index: int) -> int:
    return int(_REF.get_highest_equivalent_value(_REF.get_value_from_index(index)))


def bucket_values_us(indices: np.ndarray) -> np.ndarray:
    return np.fromiter((_bucket_value_us(int(i)) for i in indices), dtype=np.float64, count=len(indices))


@dataclass(frozen=True, slots=True)
class Dist:
    """Sorted bucket ``indices`` with their ``counts`` (both 1-D int64 arrays of equal length)."""

    indices: np.ndarray
    counts: np.ndarray

    @staticmethod
    def empty() -> Dist:
        return Dist(np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64))

    @staticmethod
    def from_histogram(hist: HdrHistogram) -> Dist:
        counts = np.ctypeslib.as_array(hist.counts)[: hist.counts_len]
        idx = np.flatnonzero(counts)
        return Dist(idx.astype(np.int64), counts[idx].astype(np.int64))

    @staticmethod
    def from_values_us(values_us: Iterable[int]) -> Dist:
        hist = new_histogram()
        for v in values_us:
            hist.record_value(max(1, int(v)))
        return Dist.from_histogram(hist)

    @property
    def total(self) -> int:
        return int(self.counts.sum())

    def merged(self, *others: Dist) -> Dist:
        return merge_dists([self, *others])

    def percentile_us(self, percentile: float) -> float | None:
        return percentiles_us(self.indices, self.counts, [percentile])[0]

    def percentile_ms(self, percentile: float) -> float | None:
        v = self.percentile_us(percentile)
        return None if v is None else v / 1000.0

    def mean_ms(self) -> float | None:
        if self.total == 0:
            return None
        return float((bucket_values_us(self.indices) * self.counts).sum() / self.total / 1000.0)

    def spectrum(self) -> tuple[np.ndarray, np.ndarray]:
        """(percentile in [0, 100), value in ms) at every bucket boundary, for a percentile-spectrum plot.

        The last point (percentile 100) is dropped: it has no place on a 1/(1-p) axis.
        """
        if self.total == 0:
            return np.zeros(0), np.zeros(0)
        cum = np.cumsum(self.counts)
        # the fraction of samples strictly below each bucket: the bucket's value holds from there on
        below = np.concatenate(([0], cum[:-1])) / self.total * 100.0
        return below, bucket_values_us(self.indices) / 1000.0


def merge_dists(dists: Iterable[Dist]) -> Dist:
    parts = [d for d in dists if d.total]
    if not parts:
        return Dist.empty()
    idx = np.concatenate([d.indices for d in parts])
    cnt = np.concatenate([d.counts for d in parts])
    uniq, inverse = np.unique(idx, return_inverse=True)
    out = np.zeros(len(uniq), dtype=np.int64)
    np.add.at(out, inverse, cnt)
    return Dist(uniq.astype(np.int64), out)


def percentiles_us(indices: np.ndarray, counts: np.ndarray,
                   percentiles: Sequence[float]) -> list[float | None]:
    """Percentiles of one set of bucket counts (for many, see :func:`percentile_matrix_us`)."""
    total = int(counts.sum())
    if total == 0:
        return [None for _ in percentiles]
    cum = np.cumsum(counts)
    out: list[float | None] = []
    for p in percentiles:
        target = max(int(min(p, 100.0) * total / 100 + 0.5), 1)
        pos = int(np.searchsorted(cum, target, side="left"))
        out.append(float(_bucket_value_us(int(indices[min(pos, len(indices) - 1)]))))
    return out


def percentile_matrix_us(indices: np.ndarray, counts: np.ndarray, percentile: float) -> np.ndarray:
    """One percentile per row of a 2-D ``counts`` (replicates x buckets); NaN for an empty row."""
    totals = counts.sum(axis=1)
    cum = np.cumsum(counts, axis=1)
    targets = np.maximum((min(percentile, 100.0) * totals / 100 + 0.5).astype(np.int64), 1)
    pos = (cum < targets[:, None]).sum(axis=1)
    pos = np.minimum(pos, counts.shape[1] - 1)
    values = bucket_values_us(indices)[pos]
    return np.where(totals > 0, values, np.nan)
