"""How long the gateway's event loop keeps ready work waiting: a probe for ``/metrics``, off by default.

Everything the gateway measures with its own clock (TTFT and TPOT per target, the request log's
timings, the latency routing built on them) is stamped by the event loop when it gets round to a
callback, so a loop busy relaying makes those figures late by as much as it makes ready work wait.
Every ``PROBE_S`` a timer callback stamps the time and queues a second callback with ``call_soon``;
the second one records how long it waited: behind the ready callbacks queued before it (the
coroutine steps the loop's last I/O made ready) and any I/O handled first, the work an event that
arrives while the loop is busy waits behind too. (The timer's own lateness is not used: uvloop's
timers are due on a millisecond clock, too coarse for a sub-millisecond figure.) A process that waits
for a CPU meanwhile (a shared core) makes the wait longer too, as it delays every timestamp. The
waits go to a histogram, ``loadbench_gateway_event_loop_delay_seconds``, one per worker process.

Set ``LOADBENCH_GATEWAY_LOOP_DELAY=1`` in the gateway's environment to run it (bench/gateway_paired.py
--loop-delay does). It is off by default because its 50 wake-ups a second cost an idle gateway about
5 ms of CPU a second (measured; a busy loop wakes anyway and pays less).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Mapping
from time import perf_counter_ns

from loadbench.gateway.metrics import Histogram, histogram_lines

ENV = "LOADBENCH_GATEWAY_LOOP_DELAY"
PROBE_S = 0.02
# seconds; the promise this checks is a P99 under 1 ms, so the buckets are fine below it
BOUNDS_S = (0.00005, 0.0001, 0.00025, 0.0005, 0.00075, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)
METRIC = "loadbench_gateway_event_loop_delay_seconds"


def wanted(env: Mapping[str, str] = os.environ) -> bool:
    """Whether the environment asks for the probe (``ENV`` set to 1)."""
    return env.get(ENV, "") == "1"


class LoopDelay:
    """The probe: ``start`` once on the loop's thread, ``stop`` at shutdown; ``render`` for /metrics."""

    def __init__(self, loop: asyncio.AbstractEventLoop, clock: Callable[[], int] = perf_counter_ns) -> None:
        self.loop = loop
        self.clock = clock
        self.histogram = Histogram.of(BOUNDS_S)
        self._stamp_ns = 0
        self._timer: asyncio.TimerHandle | None = None

    def start(self) -> LoopDelay:
        self._timer = self.loop.call_later(PROBE_S, self._tick)
        return self

    def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _tick(self) -> None:
        self._stamp_ns = self.clock()
        self.loop.call_soon(self._ran)

    def _ran(self) -> None:
        self.histogram.record((self.clock() - self._stamp_ns) / 1e9)
        if self._timer is not None:  # not stopped meanwhile
            self._timer = self.loop.call_later(PROBE_S, self._tick)

    def render(self, worker: str) -> list[str]:
        return [f"# HELP {METRIC} How long a callback made ready by a timer waited for the event loop",
                f"# TYPE {METRIC} histogram", *histogram_lines(METRIC, f'worker="{worker}"', self.histogram)]
