"""The live progress line: no nan during warm-up, open loop shows target against achieved rate."""

from __future__ import annotations

from loadbench.report.live import live_line


def test_an_empty_window_shows_a_dash_not_nan() -> None:
    line = live_line(elapsed_s=5.0, finished_rps=0.0, ttft_p50_ms=None, ttft_p99_ms=None, ok=0, failed=0,
                     dropped=0, users=4)
    assert "nan" not in line and "ttft p50        – ms" in line and "users     4" in line


def test_open_loop_shows_target_and_achieved_rate_instead_of_users() -> None:
    line = live_line(elapsed_s=10.0, finished_rps=9.5, ttft_p50_ms=51.2, ttft_p99_ms=60.0, ok=95, failed=1,
                     dropped=2, target_rps=10.0, achieved_rps=9.8)
    assert "target    10.0 req/s  achieved     9.8 req/s" in line and "users" not in line
    assert "ttft p50    51.20 ms" in line and line.endswith("dropped 2")


def test_a_sessions_run_gives_its_arrival_rates_in_sessions_a_second() -> None:
    line = live_line(elapsed_s=10.0, finished_rps=16.2, ttft_p50_ms=20.0, ttft_p99_ms=25.0, ok=160, failed=0,
                     dropped=0, target_rps=4.0, achieved_rps=4.1, arrivals="sessions")
    assert "target     4.0 sessions/s  achieved     4.1 sessions/s  finished     16.2 req/s" in line
