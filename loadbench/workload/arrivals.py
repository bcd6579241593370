"""Open-loop arrival schedules: absolute offsets in ns from the run start, one global sequence.

Method: draw arrival *counts* in operational time u (a unit-rate renewal process) and map each u
to wall time through the inverse of the integrated rate Lambda(t) = integral of rate(s) ds. Offsets
are computed from u directly, never by adding gaps in wall time, so there is no drift: for a
constant rate the k-th arrival (k = 0, 1, ...) is exactly k / rps, and a linear ramp places the k-th
arrival where Lambda(t) = k.

Kinds (inter-arrival gaps in operational time, all with mean 1):
- ``constant``: exactly 1 (first arrival at t = 0);
- ``poisson``: exponential(1); memoryless, coefficient of variation 1;
- ``gamma``: gamma(shape = 1/burstiness, scale = burstiness); burstiness is the squared
  coefficient of variation: 1 is poisson, > 1 clumps arrivals into bursts and gaps, < 1 is more
  regular than poisson (-> constant as burstiness -> 0).

Workers: every worker generates the same global sequence (same seed) and keeps every
``worker_count``-th arrival starting at ``worker_index``, so the union over workers is exactly the
global schedule and one worker's arrivals are spread over time instead of bursting together.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator, Sequence

from loadbench.plan.load import ArrivalKind, LoadPlan, RateSegment
from loadbench.units import NS_PER_S


def _segment_integral(seg: RateSegment) -> float:
    return (seg.rps_start + seg.rps_end) / 2 * seg.duration_s


def _invert_in_segment(seg: RateSegment, delta: float) -> float:
    """tau in [0, duration] with integral over [start, start + tau) == delta."""
    if delta <= 0:
        return 0.0
    r0 = seg.rps_start
    a = (seg.rps_end - r0) / (2 * seg.duration_s)  # Lambda(tau) = r0 tau + a tau^2
    if a == 0:
        return delta / r0
    # the root of a tau^2 + r0 tau - delta in the stable form (no cancellation when a is small)
    disc = max(0.0, r0 * r0 + 4 * a * delta)
    return min(seg.duration_s, 2 * delta / (r0 + math.sqrt(disc)))


def _unit_times(kind: ArrivalKind, rng: random.Random, burstiness: float) -> Iterator[float]:
    if kind == "constant":
        k = 0
        while True:
            yield float(k)
            k += 1
    u = 0.0
    if kind == "poisson":
        while True:
            u += rng.expovariate(1.0)
            yield u
    if kind == "gamma":
        shape = 1.0 / burstiness
        while True:
            u += rng.gammavariate(shape, burstiness)
            yield u
    raise ValueError(f"unknown arrival kind {kind!r}")


def arrival_offsets_ns(
    segments: Sequence[RateSegment],
    *,
    kind: ArrivalKind,
    rng: random.Random,
    burstiness: float = 1.0,
    max_count: int | None = None,
    worker_index: int = 0,
    worker_count: int = 1,
) -> Iterator[int]:
    """Yield this worker's arrival offsets (ns from run start, non-decreasing).

    Bounded by the end of the last segment and by ``max_count`` arrivals of the *global* sequence.
    """
    if not 0 <= worker_index < worker_count:
        raise ValueError(f"worker_index {worker_index} outside [0, {worker_count})")
    if burstiness <= 0:
        raise ValueError("burstiness must be > 0")
    live = [s for s in segments if s.duration_s > 0 and _segment_integral(s) > 0]
    if not live:
        return
    # cumulative integral at each live segment's start
    starts: list[float] = []
    acc = 0.0
    for seg in live:
        starts.append(acc)
        acc += _segment_integral(seg)
    total = acc
    i = 0
    for k, u in enumerate(_unit_times(kind, rng, burstiness)):
        if (max_count is not None and k >= max_count) or u >= total:
            return
        while i + 1 < len(live) and u >= starts[i + 1]:
            i += 1
        if k % worker_count != worker_index:
            continue
        seg = live[i]
        t_s = seg.start_s + _invert_in_segment(seg, u - starts[i])
        yield round(t_s * NS_PER_S)


def plan_arrivals_ns(
    plan: LoadPlan, seed: int, *, worker_index: int = 0, worker_count: int = 1
) -> Iterator[int]:
    """The open-loop schedule of a plan (empty for closed loop), seeded by the run's seed."""
    if plan.mode != "open":
        return iter(())
    return arrival_offsets_ns(
        plan.segments,
        kind=plan.arrival_kind,
        rng=random.Random(f"loadbench-arrivals:{seed}"),
        burstiness=plan.burstiness,
        max_count=plan.max_requests,
        worker_index=worker_index,
        worker_count=worker_count,
    )
