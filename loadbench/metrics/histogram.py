"""The one place that knows how latency histograms are built.

Every latency is an integer number of **microseconds** in an HdrHistogram covering 1 us .. 1 hour
with 3 significant digits (relative error <= 0.1%). Histograms with these parameters merge exactly:
the counts arrays are added index by index, so merging per-worker or per-interval histograms gives the
same histogram as recording every sample into one.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
from hdrh.histogram import HdrHistogram

LOWEST_US = 1
HIGHEST_US = 3_600_000_000
SIGNIFICANT_DIGITS = 3

# Percentiles reported everywhere (summary keys p50 ... p99_9).
PERCENTILES: tuple[tuple[str, float], ...] = (
    ("p50", 50.0), ("p75", 75.0), ("p90", 90.0), ("p95", 95.0), ("p99", 99.0), ("p99_9", 99.9),
)


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


def record_many(hist: HdrHistogram, values_us: Iterable[int]) -> None:
    rec = hist.record_value
    for v in values_us:
        rec(clamp_us(v))


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


def _nonzero(hist: HdrHistogram) -> tuple[np.ndarray, np.ndarray]:
    counts = np.ctypeslib.as_array(hist.counts)[: hist.counts_len]
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
        "mean": round(mean / 1000.0, 4),
        "stdev": round(stdev / 1000.0, 4),
        "min": round(hist.get_min_value() / 1000.0, 4),
    }
    for key, p in PERCENTILES:
        out[key] = round(percentile_us(hist, idx, cum, p) / 1000.0, 4)
    out["max"] = round(hist.get_max_value() / 1000.0, 4)
    return out
