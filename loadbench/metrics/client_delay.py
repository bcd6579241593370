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

With kernel receive stamps (loadbench.rxstamp) a chunk is timed when it reached the host, so the loop
lag no longer lands in the receive side: ``receive_delay_counts`` says when it still can, and the
bound is then the send side alone (schedule lag). It still can when chunks carried no stamp (came with
the response head, or on a connection without stamps) or shared a stamp with a later chunk (TCP
coalesced them while the client was late: the earlier chunk carries the later one's arrival, late by
at most its own read delay, which the loop lag bounds as before) in more than 1% of the chunks: then
they can reach the P99 and the loop-lag term stays.

The send side: a request is timed from when its last byte left (the kernel's send stamp,
loadbench.workers.sockets). In closed loop the client's time before that (building the request, a
preemption before the send) is then outside TTFT and E2E, and measured as the send delay. In open
loop TTFT and E2E run from the intended start, so the send delay is inside them beside the schedule
lag, and its P99 joins the bound. Where sends are not stamped (TLS, another OS, or fewer than 99% of
the requests) the send delay is inside the figures unmeasured, and the loop lag bounds it as it does
a read's:

    client_delay_ms = LAG_TO_DELAY x loop-lag P99   (when reads or sends can carry the loop's delay)
                    + schedule-lag P99 + send-delay P99   (open loop; the send delay when stamped)
"""

from __future__ import annotations

from dataclasses import dataclass

TTFT_P99_PROMISE_MS = 5.0  # the accuracy loadbench promises: P99 TTFT within 5 ms of the truth
ITL_P99_PROMISE_MS = 2.0  # and P99 ITL within 2 ms
LAG_TO_DELAY = 2.0
STAMPED_SHARE_MIN = 0.99  # of the chunks, stamped by the kernel, for the loop lag to leave the receive side
SHARED_STAMP_SHARE_MAX = 0.01  # and at most this share sharing a stamp (coalesced while the client was late)


def client_delay_ms(loop_lag_p99_ms: float | None, schedule_lag_p99_ms: float | None = None,
                    send_delay_p99_ms: float | None = None) -> float | None:
    """Upper bound of the client-side delay in the run's P99 figures (None: no loop-lag data)."""
    if loop_lag_p99_ms is None:
        return None
    return round(LAG_TO_DELAY * loop_lag_p99_ms + (schedule_lag_p99_ms or 0.0) + (send_delay_p99_ms or 0.0), 1)


def receive_delay_counts(receive_clock: str | None, stamped_share: float | None,
                         shared_stamp_share: float | None) -> bool:
    """Whether the client's read delay can reach the P99 figures (user-space times can; kernel stamps
    can only through unstamped or coalesced chunks, above 1% of them)."""
    if receive_clock != "kernel" or stamped_share is None or stamped_share < STAMPED_SHARE_MIN:
        return True
    return shared_stamp_share is None or shared_stamp_share > SHARED_STAMP_SHARE_MAX


def send_delay_counts(send_stamped_share: float | None) -> bool:
    """Whether the client's send delay is inside the figures unmeasured (sends not kernel-stamped)."""
    return send_stamped_share is None or send_stamped_share < STAMPED_SHARE_MIN


@dataclass(frozen=True, slots=True)
class DelayTerms:
    """The terms of a run's client-delay bound that can reach its figures (the module's formula); a
    term is None where it reaches none."""

    loop_lag_p99_ms: float | None
    schedule_lag_p99_ms: float | None
    send_delay_p99_ms: float | None

    @property
    def bound_ms(self) -> float | None:
        return client_delay_ms(self.loop_lag_p99_ms or 0.0, self.schedule_lag_p99_ms, self.send_delay_p99_ms)


def delay_terms(loop_lag_p99_ms: float | None, schedule_lag_p99_ms: float | None, *, reads_count: bool,
                sends_count: bool, open_loop: bool, send_delay_p99_ms: float | None) -> DelayTerms | None:
    """The loop-lag term where reads or sends can carry the loop's delay; in open loop the schedule lag
    and the measured send delay besides. None without loop-lag data (no bound at all)."""
    if loop_lag_p99_ms is None:
        return None
    return DelayTerms(loop_lag_p99_ms if reads_count or sends_count else None, schedule_lag_p99_ms,
                      send_delay_p99_ms if open_loop and not sends_count else None)


def beyond_promise(delay_ms: float | None) -> bool:
    """Whether the generator's own delay can exceed the TTFT accuracy promise."""
    return delay_ms is not None and delay_ms > TTFT_P99_PROMISE_MS


def delay_reason(delay_ms: float, loop_lag_p99_ms: float | None, schedule_lag_p99_ms: float | None,
                 send_delay_p99_ms: float | None = None) -> str:
    """The verdict's sentence, with the size and the fix."""
    parts = [f"loop-lag P99 {loop_lag_p99_ms:.1f} ms" if loop_lag_p99_ms is not None else None,
             f"schedule-lag P99 {schedule_lag_p99_ms:.1f} ms" if schedule_lag_p99_ms else None,
             f"send-delay P99 {send_delay_p99_ms:.1f} ms" if send_delay_p99_ms else None]
    why = ", ".join(p for p in parts if p)
    return (f"P99 figures may include up to {delay_ms:.1f} ms of client-side delay ({why}; the accuracy "
            f"promise is P99 TTFT within {TTFT_P99_PROMISE_MS:g} ms): add workers (--workers), lower users "
            "per worker or give the generator an idle core")
