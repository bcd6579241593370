"""One thread for the gateway's periodic work off the request path: each job runs every ``every_s``.

Jobs read and write the shared state (guardrail checks and experiment records, the day's shadow
spend, cost estimates), which may block on a disk or a network; the event loop never waits for them.
A job that raises is logged and counted and runs again at its next turn. ``wake(name)`` runs a job at
once (a reload's new experiments are registered without waiting a turn).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

log = logging.getLogger("loadbench.gateway")
MAX_WAIT_S = 1.0  # the thread looks at its stop flag at least this often


@dataclass(slots=True)
class Job:
    name: str
    every_s: float
    run: Callable[[float], None]  # called with the poller's clock (monotonic seconds)
    next_s: float = 0.0  # 0: at the first turn


class Poller:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.jobs: list[Job] = []
        self.errors = 0
        self._wake = threading.Event()
        self._stop = False
        self._thread = threading.Thread(target=self._loop, name="gateway-poller", daemon=True)

    def add(self, name: str, every_s: float, run: Callable[[float], None]) -> None:
        """Add a job (before ``start``)."""
        self.jobs.append(Job(name, every_s, run))

    def start(self) -> None:
        if self.jobs:
            self._thread.start()

    def wake(self, name: str) -> None:
        """Run job ``name`` at once (from any thread)."""
        for job in self.jobs:
            if job.name == name:
                job.next_s = 0.0
        self._wake.set()

    def stop(self, timeout_s: float = 10.0) -> None:
        self._stop = True
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join(timeout=timeout_s)

    def _loop(self) -> None:
        while not self._stop:
            self._wake.clear()
            now = self.clock()
            for job in self.jobs:
                if now >= job.next_s:
                    job.next_s = now + job.every_s
                    try:
                        job.run(now)
                    except Exception:
                        self.errors += 1
                        log.exception("gateway job %s failed (runs again in %.2f s)", job.name, job.every_s)
            due = min(job.next_s for job in self.jobs) - self.clock()
            self._wake.wait(timeout=min(max(due, 0.0), MAX_WAIT_S))
