"""Open-loop arrival slots, handed to the user that became idle most recently.

Why not a FIFO queue: its waiters are served in turn, so with a pool of ``max_in_flight`` idle users
every arrival went to the user idle the longest, a different one each time, whose kept-alive
connection had not been used since (or never opened): in an open-loop run every request opened a
new connection (measured: 240 of 240 at 40 requests/s), and its name lookup and TCP handshake (and
a TLS handshake to a remote target) were inside its TTFT, which runs from the intended start.
Served last-in first-out, the few users that keep up with the rate take the arrivals in turn and
their connections stay warm, as a production client's pool does; the rest stay parked.

Arrivals that find no idle user (``late: send``) wait in arrival order; a waiting user handed a slot
resumes before any user handed a later one (gevent runs the wake-ups in the order they were set),
which the trace replay's bookkeeping relies on (``WorkerRuntime.trace_due``).
"""

from __future__ import annotations

from collections import deque

from gevent.event import AsyncResult
from gevent.queue import Empty


class Slots:
    """A scheduler's intended starts (perf_counter_ns; None: the schedule is over) for idle users."""

    __slots__ = ("_queued", "_waiting")

    def __init__(self) -> None:
        self._waiting: list[AsyncResult] = []  # idle users, the most recent last
        self._queued: deque[int | None] = deque()  # slots no user was waiting for, oldest first

    def put(self, slot: int | None) -> None:
        if self._waiting:
            self._waiting.pop().set(slot)
        else:
            self._queued.append(slot)

    def get(self) -> int | None:
        """The oldest queued slot, else wait to be handed the next one."""
        if self._queued:
            return self._queued.popleft()
        waiter = AsyncResult()
        self._waiting.append(waiter)
        try:
            slot: int | None = waiter.get()
        except BaseException:  # killed while waiting: a slot already handed to it goes to another user
            if waiter in self._waiting:
                self._waiting.remove(waiter)
            elif waiter.ready() and waiter.successful():
                self._queued.appendleft(waiter.value)
            raise
        return slot

    def get_nowait(self) -> int | None:
        if not self._queued:
            raise Empty
        return self._queued.popleft()

    def qsize(self) -> int:
        return len(self._queued)

    def empty(self) -> bool:
        return not self._queued
