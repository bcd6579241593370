"""Keeps one process's experiments in step with the shared state, and trips the rollback guardrails.

Runs on the poller's thread every ``POLL_S``, never on the request path: registers the experiments a
reload added (retried each turn until the state takes them), checks each running experiment's
candidate every ``guardrails.interval_s`` over its window (``experiments.advance``: ``failed_checks``
failed checks in a row trip a rollback, written to the shared state), then reads every experiment's
record and hands a changed set to the event loop in one assignment. So an admin change or another
process's trip reaches this process within ``POLL_S``. A reload (``on_reload``, a listener of
``events.config_reloaded``) hands the new experiments over and wakes the poller: from then on
exactly the reloaded set is checked, and a new or changed experiment's count of failed checks
starts over. An experiment of this config whose record the state does not have (not registered yet,
or a networked store that lost it) is registered again at the next turn; until then this process
routes it by the record it holds.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import time
from collections.abc import Callable
from dataclasses import dataclass

from loadbench.gateway.abconfig import ExperimentSpec
from loadbench.gateway.config import GatewaySpec
from loadbench.gateway.experiments import CANDIDATE, Experiments, advance
from loadbench.gateway.sharedstate import SharedState, StateUnavailable

log = logging.getLogger("loadbench.gateway")
POLL_S = 0.25


@dataclass(frozen=True, slots=True)
class Reload:
    """What a config reload hands the poller: every experiment of the new config (registered if new)
    and the names added, removed or changed."""

    specs: tuple[ExperimentSpec, ...]
    changed: frozenset[str]


class Guardrails:
    def __init__(self, experiments: Experiments, shared: SharedState, loop: asyncio.AbstractEventLoop, worker: int,
                 wake: Callable[[], None] = lambda: None, clock: Callable[[], float] = time.time) -> None:
        self.experiments = experiments
        self.shared = shared
        self.loop = loop
        self.worker = worker
        self.wake = wake  # runs ``poll`` at once (the poller's wake for this job)
        self.clock = clock  # Unix seconds
        self.trips = 0
        self._reloads: queue.SimpleQueue[Reload] = queue.SimpleQueue()
        self._unregistered: tuple[ExperimentSpec, ...] = ()  # the poller's, until the state takes them
        self._streaks: dict[str, int] = {}
        self._next_check: dict[str, float] = {}

    # ------------------------------------------------------------------ the event loop's side

    def on_reload(self, old: GatewaySpec, new: GatewaySpec) -> None:
        """A reloaded config's experiments: checked, judged and shown from now on; the new ones are
        registered by the poller (their candidate is served once their record is read, well under a
        second). A removed one is no longer checked; its record stays."""
        changed = self.experiments.update(new.routes)
        if changed:
            self._reloads.put(Reload(tuple(self.experiments.specs.values()), changed))
            self.wake()

    def register_later(self, specs: tuple[ExperimentSpec, ...]) -> None:
        """Experiments the shared state could not take at start-up: registered by the poller, which
        retries each turn (their candidate serves once their record is read)."""
        self._reloads.put(Reload(specs, frozenset()))

    # ------------------------------------------------------------------ the poller's thread

    def poll(self, now: float) -> None:
        while True:
            try:
                job = self._reloads.get_nowait()
            except queue.Empty:
                break
            for name in job.changed:  # a new or changed experiment's count of failed checks starts over
                self._streaks.pop(name, None)
                self._next_check.pop(name, None)
            self._unregistered = job.specs
        rows = self.experiments.rows
        try:
            if self._unregistered:  # retried every poll until the state takes it
                self.shared.register_experiments(self._unregistered, round(self.clock() * 1000), self.worker)
                self._unregistered = ()
            for spec in self.experiments.specs.values():
                if now >= self._next_check.get(spec.name, 0.0):
                    self._next_check[spec.name] = now + spec.guardrails.interval_s
                    self._check(spec)
            if self.experiments.specs:  # only this gateway's experiments are read
                rows = self.shared.experiments()
                missing = tuple(spec for spec in self.experiments.specs.values() if spec.name not in rows)
                if missing:  # not yet registered, or a store that lost them: registered again next turn,
                    self._unregistered = missing  # and meanwhile routed by the records this process holds
                    rows = {**{s.name: self.experiments.rows[s.name] for s in missing
                               if s.name in self.experiments.rows}, **rows}
        except StateUnavailable as exc:
            log.warning("experiments: reading the shared state failed: %s", exc)
            return
        if rows != self.experiments.rows:
            with contextlib.suppress(RuntimeError):  # a closed loop: the gateway is stopping
                self.loop.call_soon_threadsafe(self.experiments.apply, rows)

    def _check(self, spec: ExperimentSpec) -> None:
        row = self.experiments.rows.get(spec.name)
        if row is None or row.state != "running" or row.weight <= 0:
            self._streaks[spec.name] = 0
            return
        g = spec.guardrails
        since_ms = round((self.clock() - g.window_s) * 1000)
        stats = self.shared.window(spec.name, CANDIDATE, since_ms)
        streak, reason = advance(self._streaks.get(spec.name, 0), stats, g)
        self._streaks[spec.name] = streak
        if reason is not None:
            now_ms = round(self.clock() * 1000)
            if self.shared.change_experiment(spec.name, "trip", 0.0, reason, now_ms, self.worker):
                self.trips += 1
                log.warning("experiment %s rolled back: %s", spec.name, reason)
