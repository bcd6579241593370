"""A strict FIFO admission gate for ``--max-concurrency``.

Written out rather than using asyncio.Semaphore so the order is guaranteed first-come
first-served: a released slot is handed straight to the oldest waiter, and a newcomer never
overtakes the queue.
"""

from __future__ import annotations

import asyncio
from collections import deque


class FifoGate:
    __slots__ = ("_waiters", "active", "limit")

    def __init__(self, limit: int) -> None:
        self.limit = limit  # 0 = unlimited
        self.active = 0
        self._waiters: deque[asyncio.Future[None]] = deque()

    @property
    def queued(self) -> int:
        return len(self._waiters)

    def try_acquire(self) -> bool:
        """Take a slot now if one is free and nobody is waiting."""
        if self.limit == 0 or (self.active < self.limit and not self._waiters):
            self.active += 1
            return True
        return False

    async def wait(self) -> None:
        """Queue for a slot (call after ``try_acquire`` said no)."""
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(fut)
        try:
            await fut
        except asyncio.CancelledError:
            if fut.done() and not fut.cancelled():
                self.release()  # the slot was handed to us as we were cancelled: pass it on
            elif fut in self._waiters:  # release() may already have dropped it
                self._waiters.remove(fut)
            raise

    def release(self) -> None:
        while self._waiters:
            fut = self._waiters.popleft()
            if not fut.done():
                fut.set_result(None)  # the slot moves to the waiter; ``active`` is unchanged
                return
        self.active -= 1
