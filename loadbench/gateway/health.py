"""Passive health of one target: failures per sliding minute, cooldown, probation. Pure.

A target that records more than ``allowed`` failures within any 60 s window is cooled down
(taken out of rotation) for ``cooldown_ns``; afterwards it returns by itself on probation,
where its first failure cools it down again at once and its first success clears probation.
The clock is an argument (``now_ns``), so tests can replay minutes of history instantly.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

MINUTE_NS = 60_000_000_000


@dataclass(slots=True)
class TargetHealth:
    failures_ns: deque[int] = field(default_factory=deque)  # failure times in the last minute
    unhealthy_until_ns: int = 0  # 0 = never cooled down / probation cleared
    last_failure_ns: int = -1  # -1 = never failed
    cooldowns: int = 0  # how many times it was taken out of rotation


def is_healthy(h: TargetHealth, now_ns: int) -> bool:
    return now_ns >= h.unhealthy_until_ns


def cooldown_remaining_s(h: TargetHealth, now_ns: int) -> float:
    return max(0, h.unhealthy_until_ns - now_ns) / 1e9


def record_success(h: TargetHealth, now_ns: int) -> bool:
    """Count one success; return True if it ended a probation (the target is back for good)."""
    if h.unhealthy_until_ns and now_ns >= h.unhealthy_until_ns:
        h.unhealthy_until_ns = 0  # probation passed
        return True
    return False


def record_failure(h: TargetHealth, now_ns: int, allowed: int, cooldown_ns: int) -> bool:
    """Count one failure; return True if it started a cooldown."""
    h.last_failure_ns = now_ns
    if h.unhealthy_until_ns:
        if now_ns < h.unhealthy_until_ns:
            return False  # already cooling down (a last-resort attempt failed): do not extend
        # on probation after a cooldown: one failure is enough to go back out
        _cool(h, now_ns, cooldown_ns)
        return True
    failures = h.failures_ns
    failures.append(now_ns)
    horizon = now_ns - MINUTE_NS
    while failures and failures[0] <= horizon:
        failures.popleft()
    if len(failures) > allowed:
        _cool(h, now_ns, cooldown_ns)
        return True
    return False


def _cool(h: TargetHealth, now_ns: int, cooldown_ns: int) -> None:
    h.unhealthy_until_ns = now_ns + max(1, cooldown_ns)
    h.failures_ns.clear()
    h.cooldowns += 1
