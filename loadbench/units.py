"""Units: nanoseconds in (perf_counter_ns), integer microseconds into histograms, ms on screen."""

from __future__ import annotations

NS_PER_US = 1_000
NS_PER_MS = 1_000_000
NS_PER_S = 1_000_000_000
US_PER_MS = 1_000
US_PER_S = 1_000_000
MS_PER_S = 1_000
DAY_S = 86_400


def ns_to_us(value_ns: int) -> int:
    """Round to the nearest microsecond (histograms store integer us)."""
    return (value_ns + 500) // NS_PER_US


def us_to_ms(value_us: float) -> float:
    return value_us / US_PER_MS


def us_to_s(value_us: float) -> float:
    return value_us / US_PER_S


def ms_to_s(value_ms: float) -> float:
    return value_ms / MS_PER_S


def ns_to_ms(value_ns: float) -> float:
    return value_ns / NS_PER_MS


def ms_to_us(value_ms: float) -> int:
    return round(value_ms * US_PER_MS)


def s_to_us(value_s: float) -> int:
    return round(value_s * US_PER_S)


def s_to_ns(value_s: float) -> int:
    return round(value_s * NS_PER_S)


def ns_to_s(value_ns: float) -> float:
    return value_ns / NS_PER_S


def utc_day(unix_s: float) -> int:
    """Days since the epoch, counted in UTC: a daily budget's day."""
    return int(unix_s // DAY_S)


def utc_day_start_ms(day: int) -> int:
    """00:00 UTC of ``day`` (a ``utc_day``), Unix milliseconds: where a daily budget's sums start."""
    return day * DAY_S * MS_PER_S
