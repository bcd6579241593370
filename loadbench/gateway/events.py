"""What the gateway announces, and who listens: one typed hook per event (Locust's ``event.py`` shape).

A subsystem that wants to know when an exchange ends, a config is reloaded or a target goes in or out
of rotation adds a listener here instead of being called by name from the exchange or the state. A
listener that raises is logged and counted (``loadbench_gateway_event_listener_errors_total``) and
the next listener still runs: an event never fails a client's request. Firing is a plain loop over a
list (the exchange fires one event per request), and ``bool(hook)`` says whether anyone listens, so a
caller can skip preparing the arguments of an event nobody hears.

Listeners of ``exchange_finished`` run on the event loop and must return at once: they copy what they
need, or start a task of their own. Listeners of ``log_batch`` run on the request log's writer thread.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Generic, ParamSpec

if TYPE_CHECKING:
    from loadbench.gateway.config import GatewaySpec
    from loadbench.gateway.context import RequestContext
    from loadbench.gateway.logrecord import LogRecord

log = logging.getLogger("loadbench.gateway")
P = ParamSpec("P")


class EventHook(Generic[P]):
    """Listeners of one event, called in the order they were added."""

    __slots__ = ("_listeners", "errors", "name")

    def __init__(self, name: str) -> None:
        self.name = name
        self._listeners: list[Callable[P, object]] = []
        self.errors = 0  # listener calls that raised (read by /metrics; a race may lose a count, never a call)

    def add_listener(self, listener: Callable[P, object]) -> Callable[P, object]:
        # a new list, not an append: a fire in progress on another thread keeps iterating the old one
        self._listeners = [*self._listeners, listener]
        return listener

    def remove_listener(self, listener: Callable[P, object]) -> None:
        self._listeners = [f for f in self._listeners if f is not listener]

    def __bool__(self) -> bool:
        return bool(self._listeners)

    if TYPE_CHECKING:
        def fire(self, *args: P.args, **kwargs: P.kwargs) -> None:
            """Call every listener with these (positional) arguments."""
    else:
        def fire(self, *args):  # positional only: a ``**kwargs`` costs a dict per call on the request path
            for listener in self._listeners:
                try:
                    listener(*args)
                except Exception:
                    self.errors += 1
                    log.exception("a listener of %s failed (counted, the caller goes on)", self.name)


class MetricsSections:
    """Each subsystem's part of ``/metrics``: a renderer ``(worker) -> lines`` added once, called in order."""

    __slots__ = ("_renderers", "errors")

    def __init__(self) -> None:
        self._renderers: list[Callable[[str], list[str]]] = []
        self.errors = 0

    def add(self, renderer: Callable[[str], list[str]]) -> Callable[[str], list[str]]:
        self._renderers = [*self._renderers, renderer]
        return renderer

    def render(self, worker: str) -> list[str]:
        lines: list[str] = []
        for renderer in self._renderers:
            try:
                lines += renderer(worker)
            except Exception:
                self.errors += 1
                log.exception("a /metrics section failed to render (left out)")
        return lines


class GatewayEvents:
    """The catalogue. One instance per ``Gateway``, for the process's life (a reload keeps the listeners)."""

    exchange_started: EventHook[[RequestContext]]
    """``(ctx)``: an exchange begins, before its body is read. A listener may ask for the answer's bytes
    (``ctx.keep_answer``, ``ctx.log_body``). Fired only when ``exchange_finished`` has listeners."""

    exchange_finished: EventHook[[RequestContext, int]]
    """``(ctx, status)``: a record is over: the client's exchange (``ctx.role == "primary"``), a shadow
    copy or an escalated answer. ``status`` is the HTTP status sent (499: the client went away);
    ``ctx.outcome`` says why a 200 went wrong. On the event loop: listeners return at once."""

    config_reloaded: EventHook[[GatewaySpec, GatewaySpec]]
    """``(old, new)``: a reload was accepted; requests that start from now on read ``new``."""

    target_health_changed: EventHook[[str, bool, str]]
    """``(target, healthy, reason)``: a target was cooled down (``healthy`` False) or passed its
    probation after a cooldown (True), as ``health.py`` decided in this process."""

    log_batch: EventHook[[Sequence[LogRecord], Sequence[tuple[object, ...]], list[tuple[object, ...]]]]
    """``(records, rows, feedback)``: a batch of the request log is about to be committed, on its writer
    thread. ``rows`` are ``records`` as ``logdb.COLUMNS`` rows; a listener may append feedback rows
    (ts_ms, request_id, tenant, score, outcome) to ``feedback``, committed in the same transaction."""

    metrics_sections: MetricsSections
    """Each subsystem's lines of ``/metrics`` (``metrics_sections.add(render)``)."""

    def __init__(self) -> None:
        self.exchange_started = EventHook("exchange_started")
        self.exchange_finished = EventHook("exchange_finished")
        self.config_reloaded = EventHook("config_reloaded")
        self.target_health_changed = EventHook("target_health_changed")
        self.log_batch = EventHook("log_batch")
        self.metrics_sections = MetricsSections()

    def hooks(self) -> list[EventHook[...]]:
        return [self.exchange_started, self.exchange_finished, self.config_reloaded, self.target_health_changed,
                self.log_batch]

    def render_errors(self, worker: str) -> list[str]:
        metric = "loadbench_gateway_event_listener_errors_total"
        lines = [f"# HELP {metric} Event listeners (and /metrics sections) that raised; the caller went on",
                 f"# TYPE {metric} counter"]
        for hook in self.hooks():
            lines.append(f'{metric}{{event="{hook.name}",worker="{worker}"}} {hook.errors}')
        lines.append(f'{metric}{{event="metrics_sections",worker="{worker}"}} {self.metrics_sections.errors}')
        return lines
