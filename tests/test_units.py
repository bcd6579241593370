"""The unit helpers that carry a calendar: a daily budget's day starts at 00:00 UTC."""

from __future__ import annotations

from datetime import UTC, datetime

from loadbench.units import utc_day, utc_day_start_ms


def test_a_day_runs_from_midnight_utc_to_the_next() -> None:
    noon = datetime(2026, 12, 1, 12, 30, tzinfo=UTC).timestamp()
    midnight = datetime(2026, 12, 1, tzinfo=UTC).timestamp()
    day = utc_day(noon)
    assert utc_day_start_ms(day) == round(midnight * 1000)
    assert utc_day(midnight) == day and utc_day(midnight - 0.001) == day - 1
    assert utc_day_start_ms(day + 1) - utc_day_start_ms(day) == 86_400_000
