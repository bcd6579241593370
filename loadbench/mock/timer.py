"""The pacer's timer: a wake-up at a deadline to the microsecond, where the platform has one.

Why: uvloop's (libuv's) timers count whole milliseconds from a loop time cached at the start of the
loop's iteration, so a chunk's wake-up lands up to a millisecond or two after its deadline (the pacer
rounds the delay up so it is never early). On the ruler that was most of a constant offset in every
stream's TTFT: the first chunk's wake-up read 0.7-1.2 ms late at P50, and every later chunk too. A Linux
``timerfd`` armed with the absolute deadline on ``CLOCK_MONOTONIC`` (the clock of ``time.monotonic``)
wakes the loop through its selector within tens of microseconds of the deadline, never before it (a
busy pacer puts its deadlines on a grid so that chunks share wake-ups: ``pacer.SHARE_FROM_STREAMS``).

``precise_timer(loop)`` gives the pacer its ``call_later`` and its resolution: the timerfd's (0: the
delay is used as is) on Linux, else the loop's own ``call_later`` with its whole milliseconds.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import math
import os
import sys
import time
from collections.abc import Callable

from loadbench.mock.pacer import CallLater

_CLOCK_MONOTONIC = 1
_TFD_NONBLOCK = os.O_NONBLOCK
_TFD_CLOEXEC = os.O_CLOEXEC
_TFD_TIMER_ABSTIME = 1
MS_RESOLUTION_S = 0.001  # what uvloop's and asyncio's call_later give


class _Timespec(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_nsec", ctypes.c_long)]


class _Itimerspec(ctypes.Structure):
    _fields_ = [("it_interval", _Timespec), ("it_value", _Timespec)]


def _libc() -> ctypes.CDLL | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        libc.timerfd_create.argtypes = [ctypes.c_int, ctypes.c_int]
        libc.timerfd_settime.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.POINTER(_Itimerspec),
                                         ctypes.c_void_p]
    except (OSError, AttributeError):
        return None
    return libc


class _Handle:
    """What ``call_later`` returns: ``cancel`` drops the callback if it is still the armed one."""

    __slots__ = ("_owner",)

    def __init__(self, owner: TimerFd) -> None:
        self._owner = owner

    def cancel(self) -> None:
        self._owner.cancel(self)


class TimerFd:
    """One timerfd on the loop's selector holding one pending callback (the pacer keeps one timer)."""

    def __init__(self, loop: asyncio.AbstractEventLoop, libc: ctypes.CDLL,
                 clock: Callable[[], float] = time.monotonic) -> None:
        fd = libc.timerfd_create(_CLOCK_MONOTONIC, _TFD_NONBLOCK | _TFD_CLOEXEC)
        if fd < 0:
            raise OSError(ctypes.get_errno(), "timerfd_create failed")
        self._fd, self._libc, self._loop, self._clock = fd, libc, loop, clock
        self._callback: Callable[[], None] | None = None
        self._handle: _Handle | None = None
        self._due = 0.0
        loop.add_reader(fd, self._fired)

    def call_later(self, delay_s: float, callback: Callable[[], None]) -> _Handle:
        """Run ``callback`` once, ``delay_s`` from now (any earlier pending callback is replaced)."""
        due = self._clock() + max(0.0, delay_s)
        self._arm(due)
        self._callback, self._due = callback, due
        self._handle = handle = _Handle(self)
        return handle

    def _arm(self, due: float) -> None:
        whole = int(due)
        nanos = min(999_999_999, max(1, math.ceil((due - whole) * 1e9)))  # rounded up: never before ``due``
        spec = _Itimerspec(_Timespec(0, 0), _Timespec(whole, nanos))
        if self._libc.timerfd_settime(self._fd, _TFD_TIMER_ABSTIME, ctypes.byref(spec), None) != 0:
            raise OSError(ctypes.get_errno(), "timerfd_settime failed")

    def cancel(self, handle: _Handle) -> None:
        # the armed deadline stays: a wake-up without a callback is read and ignored
        if handle is self._handle:
            self._callback = self._handle = None

    def _fired(self) -> None:
        try:
            os.read(self._fd, 8)  # the expiration count; re-arming cleared a stale one
        except BlockingIOError:
            return
        callback = self._callback
        if callback is None:
            return
        if self._clock() < self._due:  # cannot happen on one clock; if it does, wait on rather than drop it
            self._arm(self._due)
            return
        self._callback = self._handle = None
        callback()

    def close(self) -> None:
        if self._fd >= 0:
            self._loop.remove_reader(self._fd)
            os.close(self._fd)
            self._fd = -1
            self._callback = self._handle = None


def precise_timer(loop: asyncio.AbstractEventLoop) -> tuple[CallLater, float, TimerFd | None]:
    """(``call_later``, its resolution in seconds, the timerfd to close or None) for the pacer."""
    libc = _libc()
    if libc is not None:
        try:
            timer = TimerFd(loop, libc)
        except (OSError, NotImplementedError):  # a loop without add_reader, or no timerfd
            pass
        else:
            return timer.call_later, 0.0, timer
    return loop.call_later, MS_RESOLUTION_S, None
