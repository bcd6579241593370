"""The run's load plan (loadbench.plan.load.LoadPlan) as a Locust LoadTestShape."""

from __future__ import annotations

from locust import LoadTestShape

from loadbench.plan.load import LoadPlan

# A stopped user's request ends by its own deadline (timeout_s from its send, which came before the
# stop); this covers recording it on a busy worker before Locust would kill the user.
RAMP_DOWN_MARGIN_S = 1.0


def ramp_down_grace_s(plan: LoadPlan, timeout_s: float) -> float:
    """Locust's ``stop_timeout`` for the run: how long a user a ramp-down stopped may take to finish
    the request it is in. Closed loop: the request's own deadline, so no request is cut by a step
    down. Open loop: 0, Locust's immediate stop (its users are request slots spawned once, never
    ramped down)."""
    return timeout_s + RAMP_DOWN_MARGIN_S if plan.mode == "closed" else 0.0


class PlanShape(LoadTestShape):
    """Never ends the run itself: the master does, so it can drain in-flight requests first.
    After the plan, it holds the last stage's users (they send nothing new once draining)."""

    def __init__(self, plan: LoadPlan, lead_s: float = 0.0) -> None:
        super().__init__()
        self.plan = plan
        self.lead_s = lead_s
        self._last: tuple[int, float] = (0, 1.0)

    def tick(self) -> tuple[int, float] | None:
        t = max(0.0, self.get_run_time() - self.lead_s)
        current = self.plan.spawn_at(t)
        if current is None and t < self.plan.total_s:
            current = self.plan.spawn_at(0.0)
        if current is not None:
            self._last = current
        return self._last
