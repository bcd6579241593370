"""The load plan of one run as data: mode, stages or rate segments, total, warm-up, cool-down.

Computed once from the profile, sent to every worker inside the RunPlan and recorded in the
manifest, so the workers, the master, the summary and the report share one phase rule, one
open/closed decision and one measurement window.

One small builder per load mode, each a pure function of plain values:
- ``flat``:          closed loop, ``users`` reached over ``ramp_up_s`` and held;
- ``staged``:        closed loop, ``[(duration_s, users, ramp_up_s)]`` back to back;
- ``peak_multiple``: warm-up, peak, multiplier x peak, recovery (closed in users, open in rps);
- ``open_arrival``:  open loop, one rate or a linear ramp from ``rps_start`` to the rate;
- ``sweep_steps``:   one level per step, held ``hold_s`` each (a whole sweep run by ``loadbench run``);
- ``sweep_step``:    one step of ``loadbench sweep`` on its own (a flat plan in users or rps);
- ``trace_replay``:  open loop on a trace's own timestamps (``TraceRef``; the workers read the trace).

``from_profile_dict`` picks the builder from a profile's stored fields, read leniently (no schema
re-validation), so an old run folder's manifest gives the plan it ran with.

Phases are decided per request by its *intended* start on the run clock: [0, warmup_s) is warm-up,
[total_s - cooldown_s, ...) cool-down when there is one, everything else (including a request sent
after total_s in a run without cool-down) is measured.

Closed loop: a stage with ``ramp_up_s`` > 0 moves from the previous stage's users to its own at
|delta| / ramp_up_s users per second; a stage without a ramp changes within INSTANT_S. Open loop:
the users are request slots (``max_in_flight`` for the whole run) and the rate segments decide when
requests start; every segment is linear, so the arrival schedule inverts the integrated rate exactly.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal, Protocol

Phase = Literal["warmup", "measure", "cooldown"]
Mode = Literal["closed", "open"]
ArrivalKind = Literal["constant", "poisson", "gamma"]

INSTANT_S = 0.05  # a stage without a ramp reaches its users within this time
DEFAULT_DURATION_S = 20.0
MAX_REQUESTS_CAP_S = 3600.0  # a run bounded only by request count still needs a time bound
SCHEMA = "loadbench.load_plan/1"


class DumpsFields(Protocol):
    """A config model (``Profile``): its fields as JSON-ready data."""

    def model_dump(self, *, mode: str) -> dict[str, Any]: ...


@dataclass(frozen=True, slots=True)
class PlanStage:
    """One closed-loop stage on the run clock: hold ``users`` from start_s, reaching it over ramp_up_s."""

    start_s: float
    duration_s: float
    users: int
    ramp_up_s: float
    label: str

    @property
    def end_s(self) -> float:
        return self.start_s + self.duration_s


@dataclass(frozen=True, slots=True)
class RateSegment:
    """One open-loop segment: the rate moves linearly from rps_start to rps_end over duration_s."""

    start_s: float
    duration_s: float
    rps_start: float
    rps_end: float
    label: str

    @property
    def end_s(self) -> float:
        return self.start_s + self.duration_s

    def rate_at(self, t_s: float) -> float:
        frac = (t_s - self.start_s) / self.duration_s if self.duration_s else 0.0
        return self.rps_start + (self.rps_end - self.rps_start) * frac


@dataclass(frozen=True, slots=True)
class PlanStep:
    """A labelled level of the plan: a closed-loop stage, or an open-loop rate level together with
    the ramp that leads to it. The report's stage breakdown and a sweep's steps are these."""

    start_s: float
    end_s: float
    label: str


@dataclass(frozen=True, slots=True)
class Frame:
    """What every builder shares: phases, caps and (open loop) the request slots and arrival kind."""

    warmup_s: float = 0.0
    cooldown_s: float = 0.0
    duration_s: float | None = None  # a hard cap on a stages/peak/sweep plan; the length of a flat one
    max_requests: int | None = None
    max_in_flight: int = 512
    arrival_kind: ArrivalKind = "poisson"
    burstiness: float = 1.0


def _arrival_kind(value: object) -> ArrivalKind:
    if value == "constant":
        return "constant"
    return "gamma" if value == "gamma" else "poisson"


@dataclass(frozen=True, slots=True)
class TraceRef:
    """A trace replay: which file, read how, scaled and sampled how (``config.trace``). Its one rate
    segment holds the trace's mean rate, so ``offered_arrivals`` over the whole run is the send count."""

    path: str
    format: str
    speed: float
    sample: float
    sample_seed: int
    block_tokens: int
    requests: int  # sends after sampling
    span_s: float  # from the first send to the last


TRACE_TAIL_S = 1.0  # the plan runs this long past the last send, so the scheduler reaches it


@dataclass(frozen=True, slots=True)
class LoadPlan:
    mode: Mode
    stages: tuple[PlanStage, ...]  # closed loop (empty when open)
    segments: tuple[RateSegment, ...]  # open loop (empty when closed)
    total_s: float
    warmup_s: float
    cooldown_s: float
    max_requests: int | None = None
    max_in_flight: int | None = None  # open loop: request slots
    arrival_kind: ArrivalKind = "poisson"  # open loop
    burstiness: float = 1.0
    trace: TraceRef | None = None  # open loop: send on this trace's timestamps instead

    # ---- the one phase rule and the one measurement window ----

    def phase_at(self, t_s: float) -> Phase:
        if t_s < self.warmup_s:
            return "warmup"
        if self.cooldown_s > 0 and t_s >= self.total_s - self.cooldown_s:
            return "cooldown"
        return "measure"

    def measure_window(self) -> tuple[float, float]:
        """(start_s, end_s) on the run clock of the measured part of the plan."""
        return self.warmup_s, self.total_s - self.cooldown_s

    # ---- what the plan asks for at a time ----

    def steps(self) -> tuple[PlanStep, ...]:
        if self.mode == "closed":
            return tuple(PlanStep(s.start_s, s.end_s, s.label) for s in self.stages)
        return _levels(self.segments, self.total_s)

    def step_at(self, t_s: float) -> int | None:
        if t_s < 0 or t_s >= self.total_s:
            return None
        i = bisect_right([s.start_s for s in self.steps()], t_s) - 1
        return i if i >= 0 else None

    def label_at(self, t_s: float) -> str | None:
        i = self.step_at(t_s)
        return None if i is None else self.steps()[i].label

    def users_at(self, t_s: float) -> int | None:
        """Users to hold (closed loop) or request slots (open loop); None outside the plan."""
        spawn = self.spawn_at(t_s)
        return None if spawn is None else spawn[0]

    def spawn_at(self, t_s: float) -> tuple[int, float] | None:
        """Locust's LoadTestShape.tick(): (users, spawn rate per second), None outside the plan."""
        i = self.step_at(t_s)
        if i is None:
            return None
        if self.mode == "open":
            slots = self.max_in_flight or 1
            return slots, _spawn_rate(slots, 0.0)
        stage = self.stages[i]
        previous = self.stages[i - 1].users if i > 0 else 0
        return stage.users, _spawn_rate(abs(stage.users - previous), stage.ramp_up_s)

    def rate_at(self, t_s: float) -> float | None:
        """The planned arrival rate (open loop only; None when closed or outside the plan)."""
        for seg in self.segments:
            if seg.start_s <= t_s < seg.end_s:
                return seg.rate_at(t_s)
        return None

    def offered_arrivals(self, t0_s: float, t1_s: float) -> float:
        """Expected arrivals in [t0, t1): the integral of the planned rate (0 for closed loop)."""
        return integrated_rate(self.segments, t1_s) - integrated_rate(self.segments, t0_s)

    def peak_load(self) -> float:
        """The most users (closed) or the highest rate (open) the plan asks for."""
        if self.mode == "open":
            return max((max(s.rps_start, s.rps_end) for s in self.segments), default=0.0)
        return float(max((s.users for s in self.stages), default=0))

    # ---- serialisation ----

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["schema"] = SCHEMA
        return out

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> LoadPlan:
        return cls(
            mode="open" if obj["mode"] == "open" else "closed",
            stages=tuple(PlanStage(**s) for s in obj.get("stages") or ()),
            segments=tuple(RateSegment(**s) for s in obj.get("segments") or ()),
            total_s=float(obj["total_s"]),
            warmup_s=float(obj.get("warmup_s") or 0.0),
            cooldown_s=float(obj.get("cooldown_s") or 0.0),
            max_requests=obj.get("max_requests"),
            max_in_flight=obj.get("max_in_flight"),
            arrival_kind=_arrival_kind(obj.get("arrival_kind")),
            burstiness=float(obj.get("burstiness") or 1.0),
            trace=TraceRef(**obj["trace"]) if obj.get("trace") else None,
        )

    @classmethod
    def from_profile(cls, profile: DumpsFields) -> LoadPlan:
        """The plan of a validated ``Profile`` (by its fields: this module does not import config)."""
        return from_profile_dict(profile.model_dump(mode="json"))

    @classmethod
    def from_legacy_profile(cls, profile: Mapping[str, Any]) -> LoadPlan:
        """The plan of an old manifest's stored profile dict (read leniently)."""
        return from_profile_dict(profile)


def integrated_rate(segments: Sequence[RateSegment], t_s: float) -> float:
    """Lambda(t): expected arrivals in [0, t) (exact for piecewise-linear rates)."""
    total = 0.0
    for seg in segments:
        if t_s <= seg.start_s:
            break
        tau = min(t_s, seg.end_s) - seg.start_s
        slope = (seg.rps_end - seg.rps_start) / seg.duration_s if seg.duration_s > 0 else 0.0
        total += seg.rps_start * tau + slope * tau * tau / 2
    return total


def _spawn_rate(delta: int, ramp_s: float) -> float:
    if ramp_s > 0 and delta > 0:
        return delta / ramp_s
    return max(delta, 1) / INSTANT_S


def _levels(segments: Sequence[RateSegment], total_s: float) -> tuple[PlanStep, ...]:
    """One step per rate level; a ``ramp-to-X`` segment belongs to the level X it leads to."""
    out: list[PlanStep] = []
    ramp_start: float | None = None
    for seg in segments:
        if seg.label.startswith("ramp-to-"):
            ramp_start = seg.start_s
            if seg.end_s >= total_s:  # the run was cut during this ramp
                out.append(PlanStep(seg.start_s, seg.end_s, seg.label.removeprefix("ramp-to-")))
            continue
        start = seg.start_s if ramp_start is None else ramp_start
        ramp_start = None
        out.append(PlanStep(start, seg.end_s, seg.label))
    return tuple(out)


# ---- laying pieces on the run clock ----

_Closed = tuple[float, int, float, str]  # duration_s, users, ramp_up_s, label
_Open = tuple[float, float, float, str]  # duration_s, rps_from, rps_to, label


def _cap(planned_s: float, frame: Frame) -> float:
    return min(frame.duration_s, planned_s) if frame.duration_s is not None else planned_s


def _closed_plan(pieces: Sequence[_Closed], frame: Frame) -> LoadPlan:
    total = _cap(sum(p[0] for p in pieces), frame)
    out: list[PlanStage] = []
    start = 0.0
    for duration, users, ramp, label in pieces:
        if start >= total:
            break
        d = min(duration, total - start)
        out.append(PlanStage(start, d, users, min(ramp, d), label))
        start += d
    return LoadPlan("closed", tuple(out), (), total, frame.warmup_s, frame.cooldown_s, frame.max_requests)


def _open_plan(pieces: Sequence[_Open], frame: Frame) -> LoadPlan:
    total = _cap(sum(p[0] for p in pieces), frame)
    out: list[RateSegment] = []
    start = 0.0
    for duration, r0, r1, label in pieces:
        if start >= total or duration <= 0:
            start += duration
            continue
        d = min(duration, total - start)
        out.append(RateSegment(start, d, r0, r0 + (r1 - r0) * d / duration, label))
        start += d
    return LoadPlan("open", (), tuple(out), total, frame.warmup_s, frame.cooldown_s, frame.max_requests,
                    frame.max_in_flight, frame.arrival_kind, frame.burstiness)


def _flat_duration_s(frame: Frame) -> float:
    if frame.duration_s is not None:
        return frame.duration_s
    return MAX_REQUESTS_CAP_S if frame.max_requests else DEFAULT_DURATION_S


# ---- the builders ----


def flat(users: int, ramp_up_s: float, frame: Frame) -> LoadPlan:
    return _closed_plan([(_flat_duration_s(frame), users, ramp_up_s, "main")], frame)


def staged(stages: Sequence[tuple[float, int, float]], frame: Frame) -> LoadPlan:
    """``(duration_s, users, ramp_up_s)`` per stage; a stage's duration includes its ramp."""
    return _closed_plan([(d, u, r, f"stage-{i}") for i, (d, u, r) in enumerate(stages)], frame)


@dataclass(frozen=True, slots=True)
class PeakShape:
    """Peak-multiple test: warm up at ``warmup_fraction`` x peak for the frame's warmup_s, ramp to
    peak and hold, ramp to ``multiplier`` x peak and hold, ramp back to peak and hold (recovery)."""

    peak: float
    open_loop: bool
    multiplier: float = 2.0
    warmup_fraction: float = 0.5
    ramp_s: float = 5.0
    hold_s: float = 30.0
    surge_hold_s: float | None = None
    recovery_s: float | None = None


def peak_multiple(shape: PeakShape, frame: Frame, warmup_ramp_s: float = 0.0) -> LoadPlan:
    """``warmup_ramp_s``: the closed-loop warm-up stage's ramp (the profile's ramp_up_s)."""
    levels: list[tuple[float, float, str]] = []  # duration_s (ramp included), load, label
    if frame.warmup_s > 0:
        warm = shape.peak * shape.warmup_fraction
        levels.append((frame.warmup_s, warm if shape.open_loop else max(1.0, round(warm)), "warmup"))
    surge = shape.peak * shape.multiplier
    levels.append((shape.ramp_s + shape.hold_s, shape.peak, "peak"))
    levels.append((shape.ramp_s + (shape.surge_hold_s or shape.hold_s),
                   surge if shape.open_loop else float(round(surge)), f"{shape.multiplier:g}x-peak"))
    levels.append((shape.ramp_s + (shape.recovery_s or shape.hold_s), shape.peak, "recovery"))
    if not shape.open_loop:
        return _closed_plan([(d, int(load), warmup_ramp_s if label == "warmup" else shape.ramp_s, label)
                             for d, load, label in levels], frame)
    return _open_plan(_ramped(levels, shape.ramp_s), frame)


def _ramped(levels: Sequence[tuple[float, float, str]], ramp_s: float) -> list[_Open]:
    """Every level but the warm-up is reached by a linear ramp of ramp_s (from 0 for the first)."""
    pieces: list[_Open] = []
    previous = 0.0
    for duration, level, label in levels:
        ramp = 0.0 if label == "warmup" else min(ramp_s, duration)
        if ramp > 0:
            pieces.append((ramp, previous, level, f"ramp-to-{label}"))
        pieces.append((duration - ramp, level, level, label))
        previous = level
    return pieces


def open_arrival(rps: float, frame: Frame, rps_start: float | None = None, ramp_up_s: float = 0.0) -> LoadPlan:
    """One rate for the run, reached by a linear ramp from ``rps_start`` (0) when ramp_up_s > 0."""
    total = _flat_duration_s(frame)
    if ramp_up_s <= 0:
        return _open_plan([(total, rps, rps, "main")], frame)
    r0 = rps_start if rps_start is not None else 0.0
    ramp = min(ramp_up_s, total)
    pieces: list[_Open] = [(ramp, r0, r0 + (rps - r0) * ramp / ramp_up_s, "ramp-to-main")]
    if total > ramp:
        pieces.append((total - ramp, rps, rps, "main"))
    return _open_plan(pieces, frame)


def trace_replay(trace: TraceRef, frame: Frame) -> LoadPlan:
    """The trace's sends, then ``TRACE_TAIL_S``; ``duration_s`` cuts it, ``max_requests`` caps the sends."""
    total = trace.span_s + TRACE_TAIL_S
    sends = trace.requests if frame.max_requests is None else min(trace.requests, frame.max_requests)
    plan = _open_plan([(total, sends / total, sends / total, "trace")], frame)
    return LoadPlan("open", (), plan.segments, plan.total_s, frame.warmup_s, frame.cooldown_s, frame.max_requests,
                    frame.max_in_flight, "constant", 1.0, trace)


def sweep_steps(variable: str, values: Sequence[float], hold_s: float, frame: Frame,
                ramp_up_s: float = 0.0) -> LoadPlan:
    """A whole sweep in one run: each value held hold_s; rps steps switch at once, the first users
    step ramps over ramp_up_s."""
    if variable == "rps":
        return _open_plan([(hold_s, v, v, f"step-{i}") for i, v in enumerate(values)], frame)
    return _closed_plan([(hold_s, int(v), ramp_up_s if i == 0 else 0.0, f"step-{i}")
                         for i, v in enumerate(values)], frame)


def sweep_step(variable: str, value: float, hold_s: float, frame: Frame, ramp_up_s: float = 0.0) -> LoadPlan:
    """One step of ``loadbench sweep``: a flat plan of ``value`` users or rps for hold_s."""
    return sweep_steps(variable, [value], hold_s, frame, ramp_up_s)


# ---- the builder choice (and with it the one open/closed decision), from a profile's fields ----


def sweep_values(start: float, step: float, max_: float) -> list[float]:
    """start, start+step, ... <= max (computed by index, so no float drift)."""
    count = int((max_ - start) / step + 1e-9) + 1
    return [start + i * step for i in range(count)]


def from_profile_dict(profile: Mapping[str, Any]) -> LoadPlan:
    """The plan of a profile's fields (``Profile.model_dump(mode="json")`` or an old manifest's copy)."""
    arrival = profile.get("arrival") or {}
    frame = Frame(
        warmup_s=float(profile.get("warmup_s") or 0.0),
        cooldown_s=float(profile.get("cooldown_s") or 0.0),
        duration_s=None if profile.get("duration_s") is None else float(profile["duration_s"]),
        max_requests=profile.get("max_requests"),
        max_in_flight=int(profile.get("max_in_flight") or 512),
        arrival_kind=_arrival_kind(arrival.get("kind")),
        burstiness=float(arrival.get("burstiness") or 1.0),
    )
    ramp_up_s = float(profile.get("ramp_up_s") or 0.0)
    if profile.get("peak"):
        p = profile["peak"]
        open_loop = p.get("users") is None
        shape = PeakShape(
            peak=float(p["rps"] if open_loop else p["users"]), open_loop=open_loop,
            multiplier=float(p.get("multiplier", 2.0)), warmup_fraction=float(p.get("warmup_fraction", 0.5)),
            ramp_s=float(p.get("ramp_s", 5.0)), hold_s=float(p.get("hold_s", 30.0)),
            surge_hold_s=p.get("surge_hold_s"), recovery_s=p.get("recovery_s"),
        )
        return peak_multiple(shape, frame, ramp_up_s)
    if profile.get("sweep"):
        s = profile["sweep"]
        values = sweep_values(float(s["start"]), float(s["step"]), float(s["max"]))
        return sweep_steps(str(s["variable"]), values, float(s["hold_s"]), frame, ramp_up_s)
    if profile.get("stages"):
        return staged([(float(s["duration_s"]), int(s["users"]), float(s.get("ramp_up_s") or 0.0))
                       for s in profile["stages"]], frame)
    if arrival.get("trace"):
        return trace_replay(TraceRef(
            path=str(arrival["trace"]), format=str(arrival.get("format") or "auto"),
            speed=float(arrival.get("speed") or 1.0), sample=float(arrival.get("sample") or 1.0),
            sample_seed=int(arrival.get("sample_seed") or 0), block_tokens=int(arrival.get("block_tokens") or 512),
            requests=int(arrival.get("trace_requests") or 0), span_s=float(arrival.get("trace_span_s") or 0.0)),
            frame)
    if arrival:
        rps = arrival.get("rps_end") if arrival.get("rps_end") is not None else arrival.get("rps")
        return open_arrival(float(rps or 0.0), frame, arrival.get("rps_start"),
                            float(arrival.get("ramp_up_s") or 0.0))
    return flat(int(profile.get("users") or 20), ramp_up_s, frame)
