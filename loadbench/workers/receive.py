"""The worker's receive clock: which connections the kernel stamps, and their stamps on our clock.

Why: a chunk is timed when its bytes reached the host (the kernel's receive stamp, see
loadbench.rxstamp), not when a busy event loop got round to reading them. One per worker process:
every connection is asked once, when the worker first reads from it (a pooled connection keeps its
answer), and one ``ClockMap`` serves them all.

A connection does not stamp where the platform lacks the option, where the socket refuses it, or
where it is TLS (an SSL socket cannot hand over ``recvmsg``'s ancillary data): its chunks keep their
user-space times.
"""

from __future__ import annotations

import os
import weakref
from typing import Any

from gevent.ssl import SSLSocket

from loadbench import rxstamp


class ReceiveClock:
    __slots__ = ("_clock", "_socks", "available")

    def __init__(self, enabled: bool = True) -> None:
        self.available = enabled and rxstamp.supported()
        self._clock: rxstamp.ClockMap | None = None
        # a socket is asked once; the entry goes with the socket
        self._socks: weakref.WeakKeyDictionary[Any, bool] = weakref.WeakKeyDictionary()

    def stamps(self, sock: Any) -> bool:
        """Whether ``sock``'s reads come with kernel stamps (asks the kernel on the first call)."""
        if sock is None:
            return False
        known = self._socks.get(sock)
        if known is None:
            known = self.available and not isinstance(sock, SSLSocket) and rxstamp.enable(sock)
            self._socks[sock] = known
        return known

    def to_perf_ns(self, stamp_realtime_ns: int, read_ns: int, not_before_ns: int) -> int:
        """A kernel stamp on ``perf_counter_ns``, within [``not_before_ns``, ``read_ns``]."""
        clock = self._clock
        if clock is None:
            clock = self._clock = rxstamp.ClockMap()
        else:
            clock.refresh_if_due(read_ns)
        return clock.to_perf_ns(stamp_realtime_ns, read_ns, not_before_ns)


# Set to "user" in a run's environment, every chunk is timed in user space, as where the host has no
# stamps (the accuracy matrix compares the two on the same host; the run says which clock it got).
RECEIVE_CLOCK_ENV = "LOADBENCH_RECEIVE_CLOCK"

# The worker process's clock (a worker is one process; tests may pass their own).
RECEIVE_CLOCK = ReceiveClock(enabled=os.environ.get(RECEIVE_CLOCK_ENV, "kernel") != "user")
