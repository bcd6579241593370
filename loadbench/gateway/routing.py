"""Route selection: the ordered list of targets one request will try. Pure.

``target_order`` takes the route, the request's metadata, each target's health and TPOT window, the clock
and the RNG, and returns the targets in the order the request should try them: the strategy's
choice first, then the fallbacks. Nothing here reads a clock, a global RNG or the network.

- weight:   weighted random pick among healthy, metadata-matching targets; fallbacks by weight.
- priority: lowest ``priority`` value first; a target whose rolling mean TPOT breaks its
            ``sla_cutoff`` moves to the end of the order.
- latency:  targets within ``band`` x the lowest mean TPOT (and those still learning, with fewer
            than ``min_samples`` samples) share traffic uniformly; ``explore_fraction`` of the
            requests go to a slower target so its figures stay fresh.
If no eligible target is healthy, the one whose last failure is oldest is tried alone.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence

from loadbench.gateway.config import LatencyTunables, Route, RouteTarget, SlaTunables
from loadbench.gateway.health import TargetHealth
from loadbench.gateway.stats import TpotWindow, mean_tpot


def matches(rt: RouteTarget, metadata: Mapping[str, str]) -> bool:
    return all(metadata.get(key) == value for key, value in rt.metadata_match)


def sla_violated(rt: RouteTarget, window: TpotWindow | None, sla: SlaTunables, now_ns: int) -> bool:
    if rt.sla_cutoff_tpot_ms is None or window is None:
        return False
    mean, n = mean_tpot(window, now_ns, sla.window_ns, sla.max_samples)
    return n >= sla.min_samples and mean > rt.sla_cutoff_tpot_ms


def _weight_order(healthy: list[RouteTarget], rng: random.Random) -> list[RouteTarget]:
    total = 0.0
    for rt in healthy:
        total += rt.weight
    if total <= 0:
        return healthy
    x = rng.random() * total
    pick = healthy[-1]
    for rt in healthy:
        x -= rt.weight
        if x < 0 and rt.weight > 0:
            pick = rt
            break
    rest = sorted((rt for rt in healthy if rt is not pick), key=lambda rt: -rt.weight)
    return [pick, *rest]


def _priority_order(healthy: list[RouteTarget], windows: Mapping[str, TpotWindow], sla: SlaTunables,
                    now_ns: int) -> list[RouteTarget]:
    # sorted() is stable, so equal priorities keep their config order
    return sorted(healthy, key=lambda rt: (sla_violated(rt, windows.get(rt.target), sla, now_ns),
                                           rt.priority))


def _latency_order(healthy: list[RouteTarget], windows: Mapping[str, TpotWindow], lt: LatencyTunables,
                   now_ns: int, rng: random.Random) -> list[RouteTarget]:
    means: dict[str, float] = {}
    learning: list[RouteTarget] = []
    for rt in healthy:
        window = windows.get(rt.target)
        mean, n = mean_tpot(window, now_ns, lt.window_ns, lt.window_requests) if window else (0.0, 0)
        if n < lt.min_samples:
            learning.append(rt)
        else:
            means[rt.target] = mean
    known = sorted((rt for rt in healthy if rt.target in means), key=lambda rt: means[rt.target])
    fast = list(learning)
    slow: list[RouteTarget] = []
    if known:
        limit = means[known[0].target] * lt.band
        for rt in known:
            (fast if means[rt.target] <= limit else slow).append(rt)
    if slow and rng.random() < lt.explore_fraction:
        pick = slow[rng.randrange(len(slow))]
    else:
        pick = fast[rng.randrange(len(fast))]
    return [pick, *(rt for rt in learning if rt is not pick), *(rt for rt in known if rt is not pick)]


def target_order(route: Route, metadata: Mapping[str, str], health: Mapping[str, TargetHealth],
         windows: Mapping[str, TpotWindow], lt: LatencyTunables, sla: SlaTunables, now_ns: int,
         rng: random.Random) -> list[RouteTarget]:
    """Targets to try, in order. Empty only when no target matches the metadata."""
    eligible = [rt for rt in route.targets if matches(rt, metadata)] if route.filtered else route.targets
    healthy = [rt for rt in eligible if now_ns >= health[rt.target].unhealthy_until_ns]
    order: Sequence[RouteTarget]
    if not healthy:
        if not eligible:
            return []
        # Everything is cooling down: try the target that failed longest ago rather than nothing.
        return [min(eligible, key=lambda rt: health[rt.target].last_failure_ns)]
    if len(healthy) == 1:
        order = healthy
    elif route.routing == "weight":
        order = _weight_order(healthy, rng)
    elif route.routing == "priority":
        order = _priority_order(healthy, windows, sla, now_ns)
    else:
        order = _latency_order(healthy, windows, lt, now_ns, rng)
    return [order[0], *(rt for rt in order[1:] if rt.fallback_candidate)]
