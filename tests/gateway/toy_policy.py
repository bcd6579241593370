"""A route policy from outside the package: the last listed target first, the others as its fallbacks
(registered by importing this module; a virtual model selects it with ``routing: last_first``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from loadbench.gateway.config import Route, RouteTarget
from loadbench.gateway.context import RequestContext
from loadbench.gateway.policies import route_policy

if TYPE_CHECKING:
    from loadbench.gateway.state import Gateway, GatewayState


@route_policy("last_first")
class LastFirst:
    def __init__(self, gw: Gateway) -> None:
        self.asked = 0

    def order(self, route: Route, ctx: RequestContext, view: GatewayState) -> list[RouteTarget]:
        self.asked += 1
        return list(reversed(route.targets))
