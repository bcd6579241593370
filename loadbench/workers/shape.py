"""The profile's load plan as a Locust LoadTestShape (ticked on the master)."""

from __future__ import annotations

from locust import LoadTestShape

from loadbench.config import Profile

INSTANT_SPAWN_RATE = 10_000.0  # users/s: "no ramp" still has to be a finite rate for Locust


def users_at(profile: Profile, t_s: float) -> tuple[int, float] | None:
    """(target users, spawn rate) at run time t_s; None once the plan is over. Pure."""
    if profile.mode == "open":
        if t_s >= profile.total_duration_s:
            return None
        # Open loop: users are only capacity (slots for in-flight requests); arrivals set the load.
        return profile.max_in_flight, INSTANT_SPAWN_RATE
    stages = profile.closed_stages()
    previous = 0
    for st in stages:
        if st.start_s <= t_s < st.end_s:
            delta = abs(st.users - previous)
            rate = delta / st.ramp_up_s if st.ramp_up_s > 0 and delta else INSTANT_SPAWN_RATE
            return st.users, max(rate, 0.001)
        previous = st.users
    return None


class PlanShape(LoadTestShape):
    def __init__(self, profile: Profile, workers: int) -> None:
        super().__init__()
        self.profile = profile
        self.workers = workers

    def tick(self) -> tuple[int, float] | None:
        return users_at(self.profile, self.get_run_time())
