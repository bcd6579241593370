"""The run's load plan (loadbench.plan.load.LoadPlan) as a Locust LoadTestShape."""

from __future__ import annotations

from locust import LoadTestShape

from loadbench.plan.load import LoadPlan


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
