"""How a run's chunks were timed: per-chunk read delays, shared stamps, and the run's figures."""

from __future__ import annotations

from loadbench.metrics import histogram as hg
from loadbench.metrics.recorder import LOOP_LAG_TAG, SCHEDULE_LAG_TAG
from loadbench.metrics.records import Generator
from loadbench.metrics.sample import Sample
from loadbench.metrics.summarize import ReceiveClockStats, RunWindow, receive_clock_stats, summarize
from loadbench.metrics.timing import read_delays_us, shared_times
from loadbench.report.tables import generator_line
from tests.metrics.test_client_delay import _lag_interval
from tests.metrics.test_summarize import START_S, _facts, _plan, _run


def test_the_read_delay_is_the_read_minus_the_arrival_per_chunk() -> None:
    kernel = [1_000_000, 2_000_000, 2_000_000]
    reads = [1_400_000, 5_000_000, 5_000_000]
    assert read_delays_us(kernel, reads, stamped=3) == [400, 3_000, 3_000]


def test_chunks_left_in_user_space_have_no_delay_to_measure() -> None:
    # the first chunk came with the response head (its time is the read's), the others are stamped
    kernel, reads = [7_000_000, 9_000_000, 12_000_000], [7_000_000, 9_500_000, 13_000_000]
    assert read_delays_us(kernel, reads, stamped=2) == [500, 1_000]


def test_chunks_sharing_a_time_are_counted() -> None:
    assert shared_times([1, 1, 2, 3, 3, 3]) == 3
    assert shared_times([5]) == 0


def _sample(seq: int, chunks: int, stamped: int | None, shared: int | None) -> Sample:
    return Sample(seq=seq, worker="w", type="default", target="default", phase="measure", intended_unix_ns=seq,
                  outcome="ok", status=200, chunks=chunks, stamped_chunks=stamped, shared_chunks=shared)


def test_a_run_says_which_share_was_kernel_stamped_and_how_late_the_client_read() -> None:
    h = hg.new_histogram()
    for v in [100] * 98 + [4_000, 4_000]:
        hg.record(h, v)
    got = receive_clock_stats([_sample(1, 10, 10, 2), _sample(2, 10, 9, 0)], h)
    assert got.clock == "kernel" and got.stamped_share == 0.95 and got.shared_stamp_share == 0.1
    assert got.read_delay_p50_ms == 0.1 and 3.9 < (got.read_delay_p99_ms or 0) < 4.1


def test_a_run_without_stamps_says_user_space_and_an_old_folder_says_nothing() -> None:
    assert receive_clock_stats([_sample(1, 10, 0, None)], None) == ReceiveClockStats("user")
    assert receive_clock_stats([_sample(1, 10, None, None)], None) == ReceiveClockStats()
    assert receive_clock_stats([], None) == ReceiveClockStats()


def test_the_generator_record_round_trips_and_its_line_reads_the_stamps() -> None:
    g = Generator(loop_lag_p99_ms=1.0, receive_clock="kernel", stamped_share=0.99, shared_stamp_share=0.02,
                  read_delay_p50_ms=0.1, read_delay_p99_ms=2.5, user_ttft_p50_ms=51.0, user_ttft_p99_ms=58.0)
    assert Generator.from_json(g.to_json()) == g

    class _S:
        generator = g

    line = generator_line(_S())  # type: ignore[arg-type]
    assert line is not None
    assert "kernel receive stamps: 99.00% (2.00% sharing" in line and "P50 0.10 / P99 2.50 ms" in line
    assert "TTFT as user space read it: P50 51.00 / P99 58.00 ms" in line
    _S.generator = Generator(loop_lag_p99_ms=1.0, receive_clock="user")
    assert "user space" in (generator_line(_S()) or "")  # type: ignore[arg-type]


def _stamped_run(stamped_share: float, shared_share: float, send_delay_us: int | None = 300) -> list[Sample]:
    """Samples whose chunks are stamped in the given shares; each send stamped with ``send_delay_us``
    (None: sends unstamped)."""
    samples = _run()
    for s in samples:
        if s.chunks:
            s.stamped_chunks = round(s.chunks * stamped_share)
            s.shared_chunks = round(s.chunks * shared_share)
        s.send_delay_us = send_delay_us
    return samples


def _verdict(samples: list[Sample], loop_lag_us: int, schedule_lag_us: int | None = None,
             mode: str = "closed") -> tuple[Generator, list[str]]:
    intervals = [_lag_interval(LOOP_LAG_TAG, loop_lag_us)]
    if schedule_lag_us is not None:
        intervals.append(_lag_interval(SCHEDULE_LAG_TAG, schedule_lag_us))
    s = summarize(samples=samples, intervals=intervals, plan=_plan(mode), window=RunWindow(START_S, START_S + 30.0),
                  facts=_facts())
    return s.generator, s.warnings


def test_unstamped_sends_keep_the_loop_lag_bound_however_the_reads_were_stamped() -> None:
    # the client's time before an unstamped send is inside a closed loop's TTFT, unmeasured
    g, warnings = _verdict(_stamped_run(1.0, 0.0, send_delay_us=None), loop_lag_us=6_000)
    assert g.send_stamped_share == 0.0 and g.client_delay_ms == 12.0 and g.beyond_promise
    assert any("loop-lag P99 6.0 ms" in w for w in warnings)


def test_stamped_sends_report_their_delay_and_add_it_in_open_loop_only() -> None:
    g, _ = _verdict(_stamped_run(1.0, 0.0, send_delay_us=3_000), loop_lag_us=6_000)
    assert (g.send_stamped_share, g.send_delay_p50_ms, g.send_delay_p99_ms) == (1.0, 3.0, 3.0)
    assert g.client_delay_ms == 0.0  # closed loop: TTFT starts at the send stamp, after the delay
    g, warnings = _verdict(_stamped_run(1.0, 0.0, send_delay_us=3_000), loop_lag_us=6_000,
                           schedule_lag_us=2_000, mode="open")
    assert g.client_delay_ms == 5.0 and not g.beyond_promise  # open loop: TTFT runs from the intended start
    g, warnings = _verdict(_stamped_run(1.0, 0.0, send_delay_us=4_000), loop_lag_us=6_000,
                           schedule_lag_us=2_000, mode="open")
    assert g.client_delay_ms == 6.0 and g.beyond_promise
    assert any("schedule-lag P99 2.0 ms, send-delay P99 4.0 ms" in w for w in warnings)


def test_with_kernel_stamps_the_loop_lag_leaves_the_receive_side_of_the_bound() -> None:
    g, warnings = _verdict(_stamped_run(1.0, 0.0), loop_lag_us=6_000)
    assert g.receive_clock == "kernel" and g.client_delay_ms == 0.0 and not g.beyond_promise
    assert not any("client-side delay" in w for w in warnings)
    g, warnings = _verdict(_stamped_run(1.0, 0.0), loop_lag_us=6_000, schedule_lag_us=7_000)
    assert g.client_delay_ms == 7.0 and g.beyond_promise  # the send side stays
    assert any("up to 7.0 ms of client-side delay (schedule-lag P99 7.0 ms;" in w for w in warnings)


def test_unstamped_or_coalesced_chunks_keep_the_loop_lag_bound() -> None:
    for stamped, shared in ((0.9, 0.0), (1.0, 0.05), (0.0, 0.0)):
        g, warnings = _verdict(_stamped_run(stamped, shared), loop_lag_us=6_000)
        assert g.client_delay_ms == 12.0 and g.beyond_promise, (stamped, shared)
        assert any("loop-lag P99 6.0 ms" in w for w in warnings)
    g, _ = _verdict(_stamped_run(0.0, 0.0), loop_lag_us=6_000)
    assert g.receive_clock == "user"
