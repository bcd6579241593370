"""Closed-loop load shape and run phases as pure functions of the run clock (seconds since start).

``LoadShape.users_at(t)`` answers Locust's LoadTestShape.tick(): the user count to reach and the
spawn rate to reach it at, or None to stop. A stage with ``ramp_up_s`` > 0 moves from the previous
stage's users to its own at |delta| / ramp_up_s users per second; a stage without a ramp changes
effectively at once (INSTANT_S). In open-loop profiles the users are request slots: the shape holds
``max_in_flight`` users for the whole run and the arrival schedule decides when requests start.

Phases are decided per request by its *intended* start: [0, warmup_s) is warmup,
[total - cooldown_s, total) cooldown, the rest is measured.
"""

from __future__ import annotations

from bisect import bisect_right
from dataclasses import dataclass
from typing import Literal

from loadbench.config.profile import PlannedStage, Profile

Phase = Literal["warmup", "measure", "cooldown"]
INSTANT_S = 0.05  # a stage without a ramp reaches its users within this time


@dataclass(frozen=True, slots=True)
class ShapeStage:
    start_s: float
    end_s: float
    users: int
    spawn_rate: float
    label: str


@dataclass(frozen=True, slots=True)
class LoadShape:
    stages: tuple[ShapeStage, ...]
    total_s: float
    warmup_s: float
    cooldown_s: float

    @classmethod
    def from_profile(cls, profile: Profile) -> LoadShape:
        stages = _closed(profile.closed_stages()) if profile.mode == "closed" else _open(profile)
        return cls(tuple(stages), profile.total_duration_s, profile.warmup_s, profile.cooldown_s)

    def stage_at(self, t_s: float) -> int | None:
        if t_s < 0 or t_s >= self.total_s:
            return None
        i = bisect_right([s.start_s for s in self.stages], t_s) - 1
        return i if i >= 0 else None

    def users_at(self, t_s: float) -> tuple[int, float] | None:
        i = self.stage_at(t_s)
        if i is None:
            return None
        stage = self.stages[i]
        return stage.users, stage.spawn_rate

    def phase_at(self, t_s: float) -> Phase:
        if t_s < self.warmup_s:
            return "warmup"
        if t_s >= self.total_s - self.cooldown_s:
            return "cooldown"
        return "measure"

    def label_at(self, t_s: float) -> str | None:
        i = self.stage_at(t_s)
        return None if i is None else self.stages[i].label


def _spawn_rate(delta: int, ramp_s: float) -> float:
    if ramp_s > 0 and delta > 0:
        return delta / ramp_s
    return max(delta, 1) / INSTANT_S


def _closed(planned: list[PlannedStage]) -> list[ShapeStage]:
    out: list[ShapeStage] = []
    previous = 0
    for p in planned:
        out.append(
            ShapeStage(
                p.start_s, p.end_s, p.users, _spawn_rate(abs(p.users - previous), p.ramp_up_s), p.label
            )
        )
        previous = p.users
    return out


def _open(profile: Profile) -> list[ShapeStage]:
    """All stages hold max_in_flight users; with peak/sweep there is one stage per rate level
    (a ramp segment belongs to the level it leads to), otherwise one stage for the run."""
    users = profile.max_in_flight
    rate = _spawn_rate(users, 0.0)
    if profile.peak is None and profile.sweep is None:
        return [ShapeStage(0.0, profile.total_duration_s, users, rate, "main")]
    out: list[ShapeStage] = []
    ramp_start: float | None = None
    for seg in profile.rate_segments():
        if seg.label.startswith("ramp-to-"):
            ramp_start = seg.start_s
            if seg.end_s >= profile.total_duration_s:  # the run was cut during this ramp
                out.append(
                    ShapeStage(seg.start_s, seg.end_s, users, rate, seg.label.removeprefix("ramp-to-"))
                )
            continue
        start = seg.start_s if ramp_start is None else ramp_start
        ramp_start = None
        out.append(ShapeStage(start, seg.end_s, users, rate, seg.label))
    return out
