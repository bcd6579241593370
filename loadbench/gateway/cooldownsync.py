"""Target cooldowns shared between replicas, without a round trip on the request path.

The local tier is each process's ``TargetHealth`` (``health.py``), which routing reads as before. A
cooldown decided here (``events.target_health_changed``, on the event loop) is put on a queue and the
poller's thread publishes it (``SharedState.publish_cooldown``); the same job reads every replica's
cooldowns (``SharedState.cooldowns``) every ``POLL_S``, or at once when the backend's notification
wakes it, and hands them to the event loop, which moves a target's deadline later, never earlier. A
cooldown learnt this way is not announced again (no echo between replicas); when it ends the target is
on probation here as after a cooldown of its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Mapping
from queue import Empty, SimpleQueue

from loadbench.gateway.health import TargetHealth
from loadbench.gateway.sharedstate import SharedState, StateUnavailable

log = logging.getLogger("loadbench.gateway")
POLL_S = 0.25
SAME_NS = 50_000_000  # a deadline within this of the local one is the same cooldown (clock conversion)


def local_deadline_ns(until_ms: int, now_ms: float, now_ns: int) -> int:
    """A shared deadline (Unix ms) on this process's monotonic clock (``perf_counter_ns``)."""
    return now_ns + round((until_ms - now_ms) * 1_000_000)


def adopt(health: Mapping[str, TargetHealth], deadlines_ns: Mapping[str, int]) -> list[str]:
    """Move each known target's cooldown to the shared deadline when that is later; the targets moved."""
    moved = []
    for name, until_ns in deadlines_ns.items():
        h = health.get(name)
        if h is not None and until_ns > h.unhealthy_until_ns + SAME_NS:
            h.unhealthy_until_ns = until_ns
            h.failures_ns.clear()
            moved.append(name)
    return moved


class CooldownSync:
    def __init__(self, shared: SharedState, loop: asyncio.AbstractEventLoop,
                 health: Callable[[], Mapping[str, TargetHealth]], wake: Callable[[], None] = lambda: None,
                 clock: Callable[[], float] = time.time, clock_ns: Callable[[], int] = time.perf_counter_ns) -> None:
        self.shared = shared
        self.loop = loop
        self.health = health  # the current snapshot's health by target (a reload swaps it)
        self.wake = wake
        self.clock = clock
        self.clock_ns = clock_ns
        self.adopted = 0  # cooldowns learnt from other replicas (/metrics)
        self._out: SimpleQueue[tuple[str, int, str]] = SimpleQueue()
        self._unsent: dict[str, tuple[int, str]] = {}  # the poller's: not yet published (backend away)

    def on_health_changed(self, target: str, healthy: bool, reason: str) -> None:
        """A listener of ``target_health_changed`` (event loop): queue this process's cooldown."""
        h = self.health().get(target)
        if healthy or h is None:
            return
        until_ms = round(self.clock() * 1000 + (h.unhealthy_until_ns - self.clock_ns()) / 1e6)
        self._out.put((target, until_ms, reason))
        self.wake()

    def poll(self, now: float) -> None:
        """The poller's job: publish what was queued, then adopt every replica's cooldowns."""
        while True:
            try:
                target, until_ms, reason = self._out.get_nowait()
            except Empty:
                break
            self._unsent[target] = max(self._unsent.get(target, (0, "")), (until_ms, reason))
        now_ms = self.clock() * 1000
        try:
            for target, (until_ms, reason) in list(self._unsent.items()):
                if until_ms > now_ms:
                    self.shared.publish_cooldown(target, until_ms, reason)
                del self._unsent[target]
            shared = self.shared.cooldowns(round(now_ms))
        except StateUnavailable:
            return  # kept for the next turn; the local tier goes on deciding alone
        now_ms, now_ns = self.clock() * 1000, self.clock_ns()
        deadlines = {name: local_deadline_ns(until, now_ms, now_ns) for name, until in shared.items()}
        if deadlines:
            with contextlib.suppress(RuntimeError):  # a closed loop: the gateway is stopping
                self.loop.call_soon_threadsafe(self._adopt, deadlines)

    def _adopt(self, deadlines_ns: Mapping[str, int]) -> None:
        for name in adopt(self.health(), deadlines_ns):
            self.adopted += 1
            log.warning("target %s cooled down by another replica (shared state)", name)

    def render(self, worker: str) -> list[str]:
        metric = "loadbench_gateway_shared_cooldowns_adopted_total"
        return [f"# HELP {metric} Cooldowns this process took from another replica through the shared state",
                f"# TYPE {metric} counter", f'{metric}{{worker="{worker}"}} {self.adopted}']
