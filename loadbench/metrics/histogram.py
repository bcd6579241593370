"""The one place that knows how latency histograms are built.

Every latency is an integer number of **microseconds** in an HdrHistogram covering 1 us .. 1 hour
with 3 significant digits (relative error <= 0.1%). Histograms with these parameters merge exactly:
the counts arrays are added index by index, so merging per-worker or per-interval histograms gives the
same histogram as recording every sample into one.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol

import numpy as np
from hdrh.histogram import HdrHistogram

from loadbench.metrics.records import PERCENTILES
from loadbench.units import us_to_ms

LOWEST_US = 1
HIGHEST_US = 3_600_000_000
SIGNIFICANT_DIGITS = 3



def new_histogram() -> HdrHistogram:
    return HdrHistogram(LOWEST_US, HIGHEST_US, SIGNIFICANT_DIGITS)


def clamp_us(value_us: int) -> int:
    """Values outside the trackable range are clamped, never dropped (a 0 us gap is a real gap)."""
    if value_us < LOWEST_US:
        return LOWEST_US
    if value_us > HIGHEST_US:
        return HIGHEST_US
    return value_us


def record(hist: HdrHistogram, value_us: int) -> None:
    hist.record_value(clamp_us(value_us))


_VECTOR_MIN = 16  # below this, numpy's call overhead costs more than hdrh's Python loop


def counts_view(hist: HdrHistogram) -> np.ndarray:
    """The histogram's own counters as a numpy array (no copy: writes go into the histogram)."""
    return np.ctypeslib.as_array(hist.counts)[: hist.counts_len]


def counts_indices(hist: HdrHistogram, values_us: np.ndarray) -> np.ndarray:
    """hdrh's ``_counts_index_for`` for an array of values (int64, already clamped)."""
    bits = np.frexp((values_us | hist.sub_bucket_mask).astype(np.float64))[1].astype(np.int64)
    bucket = bits - hist.unit_magnitude - (hist.sub_bucket_half_count_magnitude + 1)
    sub_bucket = values_us >> (bucket + hist.unit_magnitude)
    return ((bucket + 1) << hist.sub_bucket_half_count_magnitude) + (sub_bucket - hist.sub_bucket_half_count)


def record_many(hist: HdrHistogram, values_us: list[int]) -> None:
    """Record many values at once; the same counts as calling ``record`` for each (property-tested)."""
    if len(values_us) < _VECTOR_MIN:
        rec = hist.record_value
        for v in values_us:
            rec(clamp_us(v))
        return
    arr = np.clip(np.asarray(values_us, dtype=np.int64), LOWEST_US, HIGHEST_US)
    np.add.at(counts_view(hist), counts_indices(hist, arr), 1)
    hist.total_count += len(arr)
    hist.min_value = min(hist.min_value, int(arr.min()))
    hist.max_value = max(hist.max_value, int(arr.max()))


def to_sparse(hist: HdrHistogram) -> list[list[int]]:
    """Lossless, cheap wire form: [[counter index...], [count...]] of the non-zero counters.

    Workers ship this every second instead of hdrh's encoding, which compresses all ~23,000
    counters (milliseconds per histogram, a measurable stall in the worker that is timing streams)."""
    idx, counts = _nonzero(hist)
    return [idx.tolist(), counts.tolist()]


_LAYOUT = new_histogram()  # only its bucket layout is used (all histograms here share it)


def sparse_of(values_us: list[int]) -> list[list[int]]:
    """``to_sparse`` of a histogram holding ``values_us``, without building one: a worker ships
    every interval's values in this form, and filling then scanning a fresh 23,000-counter histogram
    per tag and interval was a stall of several ms once a second in the loop that times the streams."""
    if not values_us:
        return [[], []]
    arr = np.clip(np.asarray(values_us, dtype=np.int64), LOWEST_US, HIGHEST_US)
    idx, counts = np.unique(counts_indices(_LAYOUT, arr), return_counts=True)
    return [idx.tolist(), counts.tolist()]


def add_sparse(hist: HdrHistogram, sparse: list[list[int]]) -> None:
    idx, counts = sparse
    if not idx:
        return
    np.add.at(counts_view(hist), np.asarray(idx, dtype=np.int64), np.asarray(counts, dtype=np.int64))
    lo = int(hist.get_value_from_index(int(min(idx))))
    hi = int(hist.get_highest_equivalent_value(hist.get_value_from_index(int(max(idx)))))
    hist.total_count += int(sum(counts))
    hist.min_value = min(hist.min_value, lo)
    hist.max_value = max(hist.max_value, hi)


def encode(hist: HdrHistogram) -> str:
    return hist.encode().decode("ascii")


def decode(payload: str | bytes) -> HdrHistogram:
    """Decode into a histogram with the standard parameters (so it merges with any other)."""
    hist = new_histogram()
    hist.decode_and_add(payload if isinstance(payload, bytes) else payload.encode("ascii"))
    return hist


def merge(hists: Iterable[HdrHistogram]) -> HdrHistogram:
    out = new_histogram()
    for h in hists:
        if h.get_total_count():
            out.add(h)
    return out


class Tagged(Protocol):
    """A histogram with a tag (one interval of the histogram log)."""

    @property
    def tag(self) -> str: ...
    @property
    def hist(self) -> HdrHistogram: ...


def merge_by_tag(parts: Iterable[Tagged]) -> dict[str, HdrHistogram]:
    """One histogram per tag (exact: histograms with these parameters add bucket by bucket)."""
    merged: dict[str, HdrHistogram] = {}
    for part in parts:
        h = merged.get(part.tag)
        if h is None:
            merged[part.tag] = h = new_histogram()
        h.add(part.hist)
    return merged


def _nonzero(hist: HdrHistogram) -> tuple[np.ndarray, np.ndarray]:
    counts = counts_view(hist)
    idx = np.flatnonzero(counts)
    return idx, counts[idx].astype(np.int64)


def percentile_us(hist: HdrHistogram, idx: np.ndarray, cum: np.ndarray, percentile: float) -> int:
    """Exactly ``HdrHistogram.get_value_at_percentile`` (same target count, same bucket value), but
    over the non-zero buckets only: hdrh walks all ~23,000 counters in Python for every call."""
    total = int(cum[-1])
    target = max(int(min(percentile, 100.0) * total / 100 + 0.5), 1)
    i = int(np.searchsorted(cum, target))
    value = hist.get_value_from_index(int(idx[i]))
    return int(hist.get_highest_equivalent_value(value) if percentile else hist.get_lowest_equivalent_value(value))


def stats_ms(hist: HdrHistogram | None) -> dict[str, float | int | None]:
    """count, mean, stdev, min, p50 ... p99_9, max in milliseconds (floats), from the histogram.

    Same definitions as hdrh (mean and stdev over each bucket's median equivalent value), computed
    over the non-zero buckets with numpy (hdrh's own mean/stdev iterate in Python: ~0.5 s each)."""
    count = hist.get_total_count() if hist is not None else 0
    keys = ["mean", "stdev", "min", *[k for k, _ in PERCENTILES], "max"]
    if hist is None or count == 0:
        return {"count": 0, **{k: None for k in keys}}
    idx, counts = _nonzero(hist)
    cum = np.cumsum(counts)
    mids = np.fromiter((hist._hdr_median_equiv_value(hist.get_value_from_index(int(i))) for i in idx),
                       dtype=np.float64, count=len(idx))
    mean = float(np.dot(mids, counts) / count)
    stdev = float(np.sqrt(np.dot((mids - mean) ** 2, counts) / count))
    out: dict[str, float | int | None] = {
        "count": count,
        "mean": round(us_to_ms(mean), 4),
        "stdev": round(us_to_ms(stdev), 4),
        "min": round(us_to_ms(hist.get_min_value()), 4),
    }
    for key, p in PERCENTILES:
        out[key] = round(us_to_ms(percentile_us(hist, idx, cum, p)), 4)
    out["max"] = round(us_to_ms(hist.get_max_value()), 4)
    return out
