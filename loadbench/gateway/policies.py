"""Route policies: which targets one request tries, in order. One small class per policy, registered by name.

Every policy answers one question with one signature, ``order(route, ctx, view) -> list[RouteTarget]``:
``route`` the virtual model, ``ctx`` the request's context (metadata; a policy may set its
``experiment`` / ``arm``), ``view`` the ``GatewayState`` snapshot the exchange reads (``spec``,
``health``, ``windows``, ``rng``). An empty list means no target matches the request (the client gets a
400). The exchange asks ``route.policy``'s instance and never tests which subsystems exist.

Built in: ``plain`` (``routing.target_order``: weight, priority, latency), ``experiment`` (the arm's target
alone) and ``cost`` (``costroute.cost_plan``, else plain). Another policy is a class with that method
and a constructor taking the ``Gateway``, registered with ``@route_policy("name")``; a virtual model
selects it with ``routing: name`` (docs/ARCHITECTURE.md, "How to add").
"""

from __future__ import annotations

from collections.abc import Callable
from time import perf_counter_ns
from typing import TYPE_CHECKING, Protocol, TypeVar

from loadbench.gateway.config import Route, RouteTarget
from loadbench.gateway.context import RequestContext
from loadbench.gateway.costroute import cost_plan
from loadbench.gateway.routing import target_order

if TYPE_CHECKING:
    from loadbench.gateway.state import Gateway, GatewayState


class RoutePolicy(Protocol):
    def order(self, route: Route, ctx: RequestContext, view: GatewayState) -> list[RouteTarget]:
        """The targets to try, in order (the first, then its fallbacks); empty: none matches."""


PolicyFactory = Callable[["Gateway"], RoutePolicy]
F = TypeVar("F", bound=PolicyFactory)
BUILT_IN = frozenset({"plain", "experiment", "cost"})
_POLICIES: dict[str, PolicyFactory] = {}


def route_policy(name: str) -> Callable[[F], F]:
    """Register a policy class (or any ``Gateway -> RoutePolicy`` factory) under ``name``."""
    def register(factory: F) -> F:
        if name in _POLICIES and _POLICIES[name] is not factory:
            raise ValueError(f"route policy {name!r} is registered already")
        _POLICIES[name] = factory
        return factory
    return register


def registered() -> frozenset[str]:
    """Names a virtual model's ``routing:`` may select besides the built-in strategies."""
    return frozenset(_POLICIES) - BUILT_IN


def factory_of(name: str) -> PolicyFactory:
    return _POLICIES[name]


@route_policy("plain")
class PlainPolicy:
    """``routing: weight | priority | latency`` (``routing.target_order``)."""

    def __init__(self, gw: Gateway) -> None:
        pass

    def order(self, route: Route, ctx: RequestContext, view: GatewayState) -> list[RouteTarget]:
        spec = view.spec
        return target_order(route, ctx.metadata, view.health, view.windows, spec.latency, spec.sla, perf_counter_ns(),
                    view.rng)


@route_policy("experiment")
class ExperimentPolicy:
    """A virtual model with an ``experiment:``: the assigned arm's target alone."""

    def __init__(self, gw: Gateway) -> None:
        assert gw.experiments is not None, "an experiment needs the request log (config enforces it)"
        self.experiments = gw.experiments

    def order(self, route: Route, ctx: RequestContext, view: GatewayState) -> list[RouteTarget]:
        return self.experiments.order(route, ctx, view.rng)


@route_policy("cost")
class CostPolicy:
    """``routing: cost``: the cheapest target that clears the quality floor (``costroute``), else plain."""

    def __init__(self, gw: Gateway) -> None:
        assert gw.estimates is not None, "routing: cost needs the request log (config enforces it)"
        self.estimates = gw.estimates
        self.plain = PlainPolicy(gw)

    def order(self, route: Route, ctx: RequestContext, view: GatewayState) -> list[RouteTarget]:
        spec = view.spec
        found = cost_plan(route, ctx.metadata, view.health, view.windows, spec.sla, perf_counter_ns(),
                          self.estimates.current)
        return found if found is not None else self.plain.order(route, ctx, view)
