"""Open-loop arrivals inside a worker: requests start on a precomputed schedule, whatever the
earlier requests are doing.

The schedule (loadbench.workload.arrivals) is a list of absolute offsets from the shared run start;
this worker takes its interleaved share. A scheduler greenlet sleeps until each deadline and hands
the *intended* start to an idle user. When every user of this worker is busy (``max_in_flight``
reached), the arrival is recorded as ``dropped`` — or, with ``late: send``, queued and sent as soon
as a user frees up, its queue delay measured from the intended start (coordinated omission stays
visible and corrected). How late the scheduler itself woke is recorded as schedule lag.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import gevent

from loadbench.config.trace import schedule
from loadbench.units import ns_to_s, ns_to_us
from loadbench.workers.runtime import WorkerRuntime
from loadbench.workers.slots import Slots
from loadbench.workload.arrivals import plan_arrivals_ns


def start_scheduler(rt: WorkerRuntime) -> gevent.Greenlet:
    rt.slots = Slots()
    return gevent.spawn(_schedule, rt)


def _arrivals(rt: WorkerRuntime) -> Iterator[tuple[int, int | None]]:
    """This worker's (offset ns, trace index): a trace's own timestamps, or the plan's rate schedule."""
    ref, trace = rt.load.trace, rt.trace
    count = max(rt.plan.workers, 1)
    if ref is not None and trace is not None:
        # the sends the plan counted, whatever a log still being written gained since (later rows come last)
        cap = ref.requests if rt.load.max_requests is None else min(ref.requests, rt.load.max_requests)
        for a in schedule(trace, speed=ref.speed, sample=ref.sample, seed=ref.sample_seed,
                          max_count=cap, worker_index=rt.worker_index, worker_count=count):
            yield a.offset_ns, a.index
        return
    for offset_ns in plan_arrivals_ns(rt.load, rt.plan.seed, worker_index=rt.worker_index, worker_count=count):
        yield offset_ns, None


def _schedule(rt: WorkerRuntime) -> None:
    slots = rt.slots
    assert slots is not None
    start_perf_ns = rt.plan.start_unix_ns - rt.unix_offset_ns
    send_late = rt.profile.late == "send"
    for offset_ns, trace_index in _arrivals(rt):
        if rt.draining:
            break
        intended = start_perf_ns + offset_ns
        delay_ns = intended - time.perf_counter_ns()
        if delay_ns > 0:
            gevent.sleep(ns_to_s(delay_ns))
        if rt.draining:
            break
        rt.record_schedule_lag(max(0, ns_to_us(time.perf_counter_ns() - intended)))
        if slots.qsize() < rt.idle or send_late:
            if trace_index is not None:
                rt.trace_due.append(trace_index)
            slots.put(intended)
        else:
            rt.record_dropped(intended)
    for _ in range(max(rt.idle, 1) * 4):
        slots.put(None)  # schedule exhausted: release waiting users
