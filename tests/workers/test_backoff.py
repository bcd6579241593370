"""Per-user backoff as pure functions: Retry-After first, else exponential, reset by a good answer."""

from __future__ import annotations

import email.utils

import pytest

from loadbench.workers.backoff import BASE_S, MAX_S, Backoff, backs_off, retry_after_s, sleep_unless


def test_throttling_and_server_errors_back_off_others_do_not() -> None:
    assert [backs_off(s) for s in (200, 400, 401, 404, 429, 500, 503, 599)] == [
        False, False, False, False, True, True, True, True]  # fmt: skip


def test_a_request_that_got_no_answer_backs_off_like_a_503() -> None:
    """A refused connection (the target's process died) waits as a 503 does; a good answer resets."""
    assert backs_off(0, no_answer=True) and not backs_off(0)
    b = Backoff()
    assert [b.after(0, None, 0.0, no_answer=True) for _ in range(3)] == [BASE_S, 2 * BASE_S, 4 * BASE_S]
    assert b.after(503, None, 0.0) == 8 * BASE_S  # one run of failures, whatever their kind
    assert b.after(200, None, 0.0) == 0.0
    assert b.after(0, None, 0.0, no_answer=True) == BASE_S


def test_exponential_backoff_without_retry_after_resets_after_a_good_answer() -> None:
    b = Backoff()
    assert [b.after(503, None, 0.0) for _ in range(3)] == [BASE_S, 2 * BASE_S, 4 * BASE_S]
    assert b.after(200, None, 0.0) == 0.0
    assert b.after(429, None, 0.0) == BASE_S
    assert max(b.after(429, None, 0.0) for _ in range(20)) == MAX_S


def test_retry_after_in_seconds_or_as_a_date_wins_and_is_capped() -> None:
    b = Backoff()
    assert b.after(429, "3", 0.0) == 3.0
    date = email.utils.formatdate(1_000_007, usegmt=True)
    assert retry_after_s(date, 1_000_000.0) == pytest.approx(7.0)
    assert b.after(429, date, 1_000_000.0) == pytest.approx(7.0)
    assert b.after(429, "86400", 0.0) == MAX_S
    assert retry_after_s("soon", 0.0) is None and retry_after_s(None, 0.0) is None


def test_backoff_sleep_ends_when_the_run_drains() -> None:
    slept: list[float] = []
    sleep_unless(1.0, lambda: len(slept) >= 3, slept.append)
    assert slept == [0.1, 0.1, 0.1]
    slept.clear()
    sleep_unless(0.25, lambda: False, slept.append)
    assert slept == pytest.approx([0.1, 0.1, 0.05])
