"""Live cost and quality estimates of every target behind a ``routing: cost`` model, for its policy.

Refreshed by the poller every ``ESTIMATE_EVERY_S`` from the shared state (each target's newest
``window_requests`` requests: mean cost, feedback); read by the cost policy on the event loop, which
sees the previous or the new dict, never half of one. Before the first refresh (and for a target the
state cannot answer for) the scorecard's prior or the list price stands (``costroute.estimate``).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

from loadbench.gateway.abconfig import Estimate
from loadbench.gateway.config import Route
from loadbench.gateway.costroute import estimate
from loadbench.gateway.sharedstate import SharedState, StateUnavailable
from loadbench.pricing import Price

log = logging.getLogger("loadbench.gateway")
ESTIMATE_EVERY_S = 2.0


class CostEstimates:
    def __init__(self, routes: Mapping[str, Route], prices: Mapping[str, Price | None], shared: SharedState) -> None:
        self.routes = [r for r in routes.values() if r.cost is not None]
        self.prices = prices
        self.shared = shared
        self.every_s = ESTIMATE_EVERY_S  # read when the gateway starts
        self.current: dict[str, Estimate] = self._estimate(live=False)  # by target

    def refresh(self, now: float) -> None:
        """The poller's job."""
        try:
            self.current = self._estimate(live=True)  # one assignment: the loop sees old or new
        except StateUnavailable as exc:
            log.warning("cost estimates not updated: %s", exc)

    def _estimate(self, live: bool) -> dict[str, Estimate]:
        out: dict[str, Estimate] = {}
        for route in self.routes:
            assert route.cost is not None
            for rt in route.targets:
                stats = self.shared.target_stats(route.name, rt.target, route.cost.window_requests) if live else None
                out[rt.target] = estimate(rt.target, stats if stats is not None and stats.requests else None,
                                          route.cost, self.prices.get(rt.target))
        return out
