"""The mock's Pacer (one timer for every stream's chunk deadlines), driven by a fake clock."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from types import SimpleNamespace

from aiohttp.http_writer import StreamWriter
from hypothesis import given, settings
from hypothesis import strategies as st

from loadbench.mock.pacer import GRID_S, HIGH_WATER_BYTES, SHARE_FROM_STREAMS, PacedStream, Pacer, frame
from loadbench.mock.stats import MockStats


@dataclass
class FakeTransport:
    clock: Callable[[], float]
    writes: list[tuple[float, bytes]] = field(default_factory=list)
    closing: bool = False
    buffered: int = 0
    log: list[tuple[FakeTransport, bytes]] | None = None  # every transport's writes, in order

    def write(self, data: bytes) -> None:
        self.writes.append((self.clock(), data))
        if self.log is not None:
            self.log.append((self, data))

    def is_closing(self) -> bool:
        return self.closing

    def get_write_buffer_size(self) -> int:
        return self.buffered


class FakeLoop:
    """A clock plus one-shot timers; ``run`` fires them, up to ``early_s`` before they are due
    (as uvloop's millisecond timers can), until none is left."""

    def __init__(self, early_s: float = 0.0, rng: random.Random | None = None) -> None:
        self.now = 100.0
        self.early_s = early_s
        self.rng = rng or random.Random(0)
        self.timers: list[list[object]] = []  # [when, callback, cancelled]

    def clock(self) -> float:
        return self.now

    def call_later(self, delay: float, callback: Callable[[], None]) -> SimpleNamespace:
        entry: list[object] = [self.now + delay, callback, False]
        self.timers.append(entry)
        return SimpleNamespace(cancel=lambda: entry.__setitem__(2, True))

    def fire_now(self) -> None:
        """Run the pending timer at the current time, as a late or early wake-up would."""
        live = [t for t in self.timers if not t[2]]
        self.timers = []
        assert len(live) == 1
        live[0][1]()  # type: ignore[operator]

    def run(self, max_steps: int = 100_000) -> None:
        for _ in range(max_steps):
            live = [t for t in self.timers if not t[2]]
            self.timers = []
            if not live:
                return
            assert len(live) == 1, "the pacer keeps at most one timer"
            when, callback, _ = live[0]
            assert isinstance(when, float)
            self.now = max(self.now, when - self.rng.uniform(0.0, self.early_s))
            callback()  # type: ignore[operator]
        raise AssertionError("timers never ran out")


def make_stream(loop: FakeLoop, offsets: list[float], ends: list[bool] | None = None,
                start: float | None = None) -> tuple[PacedStream, FakeTransport]:
    transport = FakeTransport(loop.clock)
    stream = PacedStream(
        transport=transport, start_s=loop.now if start is None else start, offsets_s=offsets,
        prefix=b"<", suffix=b">", tail=b"|end", n_tokens=len(offsets), tokens_per_chunk=1,
        chunked=False, on_end=(ends if ends is not None else []).append)
    return stream, transport


def chunk_indexes(data: bytes) -> list[int]:
    return [int(part.split(b">")[0]) for part in data.split(b"< tok")[1:]]


@settings(max_examples=60, deadline=None)
@given(st.lists(st.lists(st.floats(0.0, 0.05), min_size=1, max_size=12), min_size=1, max_size=8),
       st.floats(0.0, 0.001), st.integers(0, 1000))
def test_every_chunk_is_written_once_in_order_and_never_early(
        raw_offsets: list[list[float]], early_s: float, seed: int) -> None:
    loop = FakeLoop(early_s=early_s, rng=random.Random(seed))
    stats = MockStats()
    pacer = Pacer(stats, loop.call_later, loop.clock)
    streams = []
    log: list[tuple[FakeTransport, bytes]] = []
    for i, raw in enumerate(raw_offsets):
        offsets = sorted(raw)
        ends: list[bool] = []
        stream, transport = make_stream(loop, offsets, ends, start=loop.now + 0.001 * i)
        transport.log = log
        pacer.add(stream)
        streams.append((stream, transport, ends))
    loop.run()
    for stream, transport, ends in streams:
        written = [k for _, data in transport.writes for k in chunk_indexes(data)]
        assert written == list(range(len(stream.offsets_s)))
        for t, data in transport.writes:
            assert t >= stream.start_s + stream.offsets_s[chunk_indexes(data)[0]]  # never early
        assert transport.writes[-1][1].endswith(b"|end")
        assert ends == [False]
    # across streams, writes go out in deadline order (of each write's first chunk)
    by_transport = {id(t): s for s, t, _ in streams}
    deadlines = [by_transport[id(t)].start_s + by_transport[id(t)].offsets_s[chunk_indexes(d)[0]]
                 for t, d in log]
    assert deadlines == sorted(deadlines)
    assert stats.chunks == sum(len(s.offsets_s) for s, _, _ in streams)
    assert len(pacer) == 0


def test_a_late_tick_is_counted_and_the_stream_catches_up_in_one_write() -> None:
    loop = FakeLoop()
    stats = MockStats()
    pacer = Pacer(stats, loop.call_later, loop.clock)
    stream, transport = make_stream(loop, [0.010, 0.020, 0.030, 0.040])
    pacer.add(stream)
    loop.now += 0.0255  # the loop was busy: chunks 0 and 1 are overdue, 2 is not yet due
    loop.fire_now()
    loop.run()
    times = [round(t - stream.start_s, 4) for t, _ in transport.writes]
    assert [chunk_indexes(d) for _, d in transport.writes] == [[0, 1], [2], [3]]
    assert times[0] == 0.0255
    # the rest on time: timers are armed in whole ms rounded up, so at most 1 ms after
    assert 0.030 <= times[1] <= 0.031 and 0.040 <= times[2] <= 0.041
    assert stats.chunks == 4 and stats.late_chunks == 2  # 15.5 ms and 5.5 ms late
    assert abs(stats.max_lateness_s - 0.0155) < 1e-9


def test_a_closed_transport_removes_its_stream_and_only_that_one() -> None:
    loop = FakeLoop()
    stats = MockStats()
    pacer = Pacer(stats, loop.call_later, loop.clock)
    gone_ends: list[bool] = []
    kept_ends: list[bool] = []
    gone, gone_t = make_stream(loop, [0.01 * k for k in range(1, 6)], gone_ends)
    kept, kept_t = make_stream(loop, [0.01 * k for k in range(1, 6)], kept_ends)
    pacer.add(gone)
    pacer.add(kept)
    loop.now += 0.02
    loop.fire_now()
    gone_t.closing = True  # the client hung up after two chunks
    loop.run()
    assert len(gone_t.writes) == 1 and chunk_indexes(gone_t.writes[0][1]) == [0, 1]
    assert gone_ends == [True] and stats.disconnects == 1
    assert len(kept_t.writes) == 4 and kept_ends == [False]
    assert len(pacer) == 0


def test_remove_drops_a_stream_without_ending_it() -> None:
    loop = FakeLoop()
    pacer = Pacer(MockStats(), loop.call_later, loop.clock)
    ends: list[bool] = []
    stream, transport = make_stream(loop, [0.01, 0.02], ends)
    pacer.add(stream)
    pacer.remove(stream)  # its handler was cancelled
    loop.run()
    assert transport.writes == [] and ends == [] and len(pacer) == 0


def test_backpressure_pauses_one_stream_which_then_catches_up() -> None:
    loop = FakeLoop()
    stats = MockStats()
    pacer = Pacer(stats, loop.call_later, loop.clock)
    slow, slow_t = make_stream(loop, [0.001 * k for k in range(10)])
    fast, fast_t = make_stream(loop, [0.001 * k for k in range(10)])
    slow_t.buffered = HIGH_WATER_BYTES + 1
    pacer.add(slow)
    pacer.add(fast)
    while loop.now < slow.start_s + 0.0045:
        loop.fire_now()
        loop.now += 0.0005
    assert slow_t.writes == [] and len(fast_t.writes) == 5
    slow_t.buffered = 0  # the client read its data
    loop.run()
    assert [k for _, d in slow_t.writes for k in chunk_indexes(d)] == list(range(10))
    assert chunk_indexes(slow_t.writes[0][1])[:5] == [0, 1, 2, 3, 4]  # one catch-up write
    assert len(fast_t.writes) == 10 and stats.chunks == 20 and stats.late_chunks >= 2


def test_the_timer_is_never_armed_for_less_than_the_wait() -> None:
    loop = FakeLoop()
    pacer = Pacer(MockStats(), loop.call_later, loop.clock)
    stream, _ = make_stream(loop, [0.0123])
    pacer.add(stream)
    when = loop.timers[-1][0]
    assert isinstance(when, float) and when >= stream.start_s + 0.0123
    assert round((when - loop.now) * 1000, 9) == 13.0  # whole ms for uvloop, rounded up


def test_frame_is_exactly_aiohttps_chunked_framing() -> None:
    bodies = [b"x", b"data: {}\n\n" * 3, bytes(range(256)) * 70]

    async def aiohttp_bytes() -> bytes:
        out: list[bytes] = []
        transport = SimpleNamespace(write=out.append, writelines=lambda parts: out.extend(parts),
                                    is_closing=lambda: False)
        writer = StreamWriter(SimpleNamespace(transport=transport), asyncio.get_running_loop())
        writer.enable_chunking()
        for body in bodies:
            await writer.write(body, drain=False)
        return b"".join(out)

    assert asyncio.run(aiohttp_bytes()) == b"".join(frame(b, True) for b in bodies)
    assert frame(b"abc", False) == b"abc"


def test_poll_writes_only_what_is_due_between_timer_ticks() -> None:
    loop = FakeLoop()
    stats = MockStats()
    pacer = Pacer(stats, loop.call_later, loop.clock)
    stream, transport = make_stream(loop, [0.005, 0.010, 0.015])
    pacer.add(stream)
    pacer.poll()
    assert transport.writes == []  # nothing due yet
    loop.now += 0.0107  # a handler runs while the loop is too busy to fire the timer
    pacer.poll()
    assert [chunk_indexes(d) for _, d in transport.writes] == [[0, 1]]
    assert stats.late_chunks == 1  # chunk 0, 5.7 ms late; chunk 1 only 0.7 ms
    loop.run()
    assert [k for _, d in transport.writes for k in chunk_indexes(d)] == [0, 1, 2]
    assert transport.writes[-1][0] >= stream.start_s + 0.015 and len(pacer) == 0


def test_a_precise_timer_is_armed_for_the_wait_itself() -> None:
    loop = FakeLoop()
    pacer = Pacer(MockStats(), loop.call_later, loop.clock, resolution_s=0.0)
    stream, _ = make_stream(loop, [0.0123])
    pacer.add(stream)
    when = loop.timers[-1][0]
    assert isinstance(when, float) and round((when - loop.now) * 1000, 9) == 12.3  # no rounding to whole ms


def test_a_busy_precise_pacer_shares_wake_ups_on_its_grid_and_is_never_early() -> None:
    loop = FakeLoop()
    stats = MockStats()
    armed: list[tuple[float, int]] = []  # (when, streams in flight) of every timer the pacer armed

    def call_later(delay: float, callback: Callable[[], None]) -> SimpleNamespace:
        armed.append((loop.now + delay, len(pacer)))
        return loop.call_later(delay, callback)

    pacer = Pacer(stats, call_later, loop.clock, resolution_s=0.0)
    rng = random.Random(3)
    streams = [make_stream(loop, [rng.uniform(0.001, 0.003) + k * 0.0005 for k in range(4)])
               for _ in range(2 * SHARE_FROM_STREAMS)]
    for stream, _ in streams:
        pacer.add(stream)
    for _ in range(1000):  # bounded: one timer at a time, as the pacer keeps
        live = [t for t in loop.timers if not t[2]]
        loop.timers = []
        if not live:
            break
        when, callback, _ = live[0]
        assert isinstance(when, float)
        loop.now = max(loop.now, when) + 1e-9  # a real clock has moved on by the time a wake-up runs
        callback()  # type: ignore[operator]
    for stream, transport in streams:
        assert [k for _, d in transport.writes for k in chunk_indexes(d)] == [0, 1, 2, 3]
        dues = [stream.start_s + o for o in stream.offsets_s]
        assert all(at >= dues[k] for at, d in transport.writes for k in chunk_indexes(d))  # never early
    assert stats.chunks == 4 * 2 * SHARE_FROM_STREAMS and stats.late_chunks == 0

    def on_grid(when: float) -> bool:
        return abs(when / GRID_S - round(when / GRID_S)) < 1e-6

    busy = [when for when, n in armed if n >= SHARE_FROM_STREAMS]
    assert busy and all(on_grid(w) for w in busy)  # many streams: wake-ups on the grid, shared
    assert len(set(busy)) <= 4.5e-3 / GRID_S + 1  # at most one per step of the ~4.5 ms the chunks span
    few = [when for when, n in armed if n < SHARE_FROM_STREAMS]
    assert few and not all(on_grid(w) for w in few)  # a few streams: each wake-up exact, at its deadline
