"""How much of a P99 latency the load generator itself may have added (docs/generator.md).

A worker reads a chunk when its event loop gets to the socket; a chunk that arrives while the loop
is busy is timestamped late by the rest of that busy spell. The loop-lag probe (a greenlet that sleeps
and records how late it wakes) samples the same delay, so the client-side delay inside the P99
figures is bounded by

    client_delay_ms = LAG_TO_DELAY x loop-lag P99 + schedule-lag P99 (open loop)

The schedule lag counts because ``ttft`` and ``e2e`` run from the intended start: an arrival that
left late carries its lateness into them. ``LAG_TO_DELAY`` is not picked by hand: it is the largest
ratio of (loadbench P99 TTFT - reference P99 TTFT) to the loop-lag P99 seen across the generator
matrix (``bench/generator_matrix.py``), rounded up. ITL errors in the matrix stay under half the
loop-lag P99, so a run inside the TTFT promise is inside the ITL promise too.
"""

from __future__ import annotations

TTFT_P99_PROMISE_MS = 5.0  # the accuracy loadbench promises: P99 TTFT within 5 ms of the truth
ITL_P99_PROMISE_MS = 2.0  # and P99 ITL within 2 ms
LAG_TO_DELAY = 2.0


def client_delay_ms(loop_lag_p99_ms: float | None, schedule_lag_p99_ms: float | None = None) -> float | None:
    """Upper bound of the client-side delay in the run's P99 figures (None: no loop-lag data)."""
    if loop_lag_p99_ms is None:
        return None
    return round(LAG_TO_DELAY * loop_lag_p99_ms + (schedule_lag_p99_ms or 0.0), 1)


def beyond_promise(delay_ms: float | None) -> bool:
    """Whether the generator's own delay can exceed the TTFT accuracy promise."""
    return delay_ms is not None and delay_ms > TTFT_P99_PROMISE_MS


def delay_reason(delay_ms: float, loop_lag_p99_ms: float | None, schedule_lag_p99_ms: float | None) -> str:
    """The verdict's sentence, with the size and the fix."""
    parts = [f"loop-lag P99 {loop_lag_p99_ms:.1f} ms" if loop_lag_p99_ms is not None else None,
             f"schedule-lag P99 {schedule_lag_p99_ms:.1f} ms" if schedule_lag_p99_ms else None]
    why = ", ".join(p for p in parts if p)
    return (f"P99 figures may include up to {delay_ms:.1f} ms of client-side delay ({why}; the accuracy "
            f"promise is P99 TTFT within {TTFT_P99_PROMISE_MS:g} ms): add workers (--workers), lower users "
            "per worker or give the generator an idle core")
