"""Per-user backoff after a throttled or failing answer, as a careful client does.

After a 429 or a 5xx the user waits before its next request: the answer's ``Retry-After`` when it
gives one (seconds or an HTTP date, capped at MAX_S), otherwise BASE_S x 2^(n-1) for the n-th such
answer in a row, capped at MAX_S. A request that got no answer at all (connection refused or reset
before the first byte: the target is gone, as when its process died) backs off the same way: a target
that disappears must not be hammered by every user in a tight loop. Any other answer resets the count.
The wait is recorded on the request's sample (``backoff_us``) and summed in the summary: throughput
lost to backoff is reported, never hidden.
"""

from __future__ import annotations

import email.utils
from collections.abc import Callable
from dataclasses import dataclass

BASE_S = 0.5
MAX_S = 30.0


def backs_off(status: int, no_answer: bool = False) -> bool:
    """``no_answer``: the connection failed before any response (refused, reset); ``status`` is then 0."""
    return no_answer or status == 429 or 500 <= status <= 599


def retry_after_s(value: str | None, now_unix_s: float) -> float | None:
    """Seconds to wait from a Retry-After header value (None when absent or unreadable)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - now_unix_s)


@dataclass(slots=True)
class Backoff:
    """The backoff state of one user."""

    in_a_row: int = 0

    def after(self, status: int, retry_after: str | None, now_unix_s: float, *, no_answer: bool = False) -> float:
        """Seconds to wait before the next request, given the answer just received (``no_answer``:
        none was, the connection failed first)."""
        if not backs_off(status, no_answer):
            self.in_a_row = 0
            return 0.0
        self.in_a_row += 1
        told = retry_after_s(retry_after, now_unix_s)
        wait = told if told is not None else BASE_S * 2 ** (self.in_a_row - 1)
        return min(wait, MAX_S)


def sleep_unless(wait_s: float, stop: Callable[[], bool], sleep: Callable[[float], None],
                 step_s: float = 0.1) -> None:
    """Sleep ``wait_s`` in steps, ending early once ``stop()`` (the run is draining)."""
    left = wait_s
    while left > 0 and not stop():
        sleep(min(step_s, left))
        left -= step_s
