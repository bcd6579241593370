"""``routing: cost``: the cheapest target whose quality clears the floor, among healthy ones within SLA. Pure.

A target qualifies when the lower bound of its acceptable-outcome rate is at or above
``quality_floor``: the live bound (Wilson 95% over the feedback scores of its latest
``window_requests`` requests) once it has ``min_feedback`` of them, else the scorecard's bound (the
``acceptable`` interval ``loadbench eval`` measured). Among qualifying targets, healthy (not cooling
down), matching the request's metadata (so each ``metadata_match`` segment is routed on its own) and not
breaking their ``sla_cutoff``, the one with the lowest expected cost per request goes first: the live
mean ``cost_usd`` of its latest requests, else the scorecard's cost per request, else its list price for
1,000 input and 1,000 output tokens (a ranking proxy). The others follow as fallbacks, qualifying ones
first, each group by cost. When no target qualifies, targets not measured yet go first (by cost), then
those known to be below the floor (highest bound first): the floor chooses, it never refuses a request.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from loadbench.eval.stats import wilson
from loadbench.gateway.abconfig import CostRoutingSpec, Estimate
from loadbench.gateway.config import Route, RouteTarget, SlaTunables
from loadbench.gateway.health import TargetHealth
from loadbench.gateway.routing import matches, sla_violated
from loadbench.gateway.stats import TpotWindow
from loadbench.pricing import Price, token_cost

PROXY_TOKENS = 1000


@dataclass(frozen=True, slots=True)
class LiveStats:
    requests: int
    cost_per_request: float | None
    feedback_n: int
    feedback_sum: float


def estimate(target: str, live: LiveStats | None, spec: CostRoutingSpec, price: Price | None) -> Estimate:
    prior = spec.prior.get(target)
    quality, source = (prior.quality_low, "scorecard") if prior else (None, "price")
    if live is not None and live.feedback_n >= spec.min_feedback:
        quality, source = wilson(round(live.feedback_sum), live.feedback_n).low, "live"
    cost = live.cost_per_request if live is not None else None
    if cost is None and prior is not None:
        cost = prior.cost_per_request
    if cost is None and price is not None:
        cost = token_cost(price, PROXY_TOKENS, PROXY_TOKENS)
    return Estimate(quality, cost, source)


def _cost(e: Estimate | None) -> float:
    return math.inf if e is None or e.cost_per_request is None else e.cost_per_request


def by_cost(candidates: Sequence[RouteTarget], estimates: Mapping[str, Estimate], floor: float) -> list[RouteTarget]:
    def qualifies(rt: RouteTarget) -> bool:
        e = estimates.get(rt.target)
        return e is not None and e.quality_low is not None and e.quality_low >= floor

    passing = sorted((rt for rt in candidates if qualifies(rt)), key=lambda rt: _cost(estimates.get(rt.target)))
    failing = sorted((rt for rt in candidates if not qualifies(rt)), key=lambda rt: _cost(estimates.get(rt.target)))
    if passing:
        return [*passing, *failing]

    def known(rt: RouteTarget) -> float | None:
        e = estimates.get(rt.target)
        return None if e is None else e.quality_low

    unknown = [rt for rt in failing if known(rt) is None]  # already by cost
    below = sorted((rt for rt in failing if known(rt) is not None), key=lambda rt: -(known(rt) or 0.0))
    return [*unknown, *below]


def cost_plan(route: Route, metadata: Mapping[str, str], health: Mapping[str, TargetHealth],
              windows: Mapping[str, TpotWindow], sla: SlaTunables, now_ns: int,
              estimates: Mapping[str, Estimate]) -> list[RouteTarget] | None:
    """Targets to try, in order; None when no eligible target is healthy (``routing.target_order`` decides then)."""
    assert route.cost is not None
    eligible = [rt for rt in route.targets if matches(rt, metadata)] if route.filtered else list(route.targets)
    healthy = [rt for rt in eligible if now_ns >= health[rt.target].unhealthy_until_ns]
    if not healthy:
        return None
    within = [rt for rt in healthy if not sla_violated(rt, windows.get(rt.target), sla, now_ns)] or healthy
    order = by_cost(within, estimates, route.cost.quality_floor)
    rest = [rt for rt in healthy if rt not in order]
    return [order[0], *(rt for rt in [*order[1:], *rest] if rt.fallback_candidate)]
