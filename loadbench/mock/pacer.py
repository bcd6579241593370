"""One scheduler per process that writes every stream's content chunks at their deadlines.

Why: a task per stream that sleeps and then awaits ``StreamResponse.write`` costs a timer, a
task wake-up and aiohttp's writer layers for every chunk (~16 us of CPU per chunk), and at
20k chunks/s the wake-ups queue behind each other and chunks go out late. Here every stream's
next deadline sits in one heap keyed by absolute time; one loop timer, armed for the earliest
deadline, writes everything that is due straight to each stream's transport (bytes framed as
aiohttp frames a chunked body) and pushes the stream's next deadline. The request handler only
awaits the stream's end.

Rules the scheduler keeps:
    never early   a chunk is written only once ``clock() >= deadline``; a timer that fires early
                  (uvloop timers have 1 ms granularity) just re-arms; the mock arms a timerfd
                  to the microsecond where there is one (``timer``)
    no drift      deadlines are ``start + offsets[k]``, absolute, so a late tick delays only the
                  chunks that were due during it; a stream that fell behind catches up in one write
    backpressure  a stream whose transport holds more than ``HIGH_WATER_BYTES`` unsent is paused
                  alone (polled every ``PAUSE_POLL_S``); its chunks then go out late and count so
    disconnect    a closing transport removes its stream (``on_end(True)``)
    lateness      measured per write against the chunk's own deadline with a fresh clock read,
                  counted in ``stats`` (``chunks``, ``late_chunks``, ``max_lateness_s``)
"""

from __future__ import annotations

import heapq
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from loadbench.mock.schedule import ChunkSchedule
from loadbench.mock.stats import LATE_S, MockStats
from loadbench.mock.tokens import token_text

HIGH_WATER_BYTES = 64 * 1024  # aiohttp's own drain limit
PAUSE_POLL_S = 0.001
# With a precise timer (resolution 0) every deadline would get a wake-up of its own: a busy mock (20k
# chunks/s) then spent a third more CPU per chunk than on uvloop's millisecond timers. From this many
# streams on, the pacer puts its wake-ups on a GRID_S grid, so the chunks due within one step share one
# (each still within GRID_S of its deadline); below it, where the ruler's streams are, every chunk
# gets its own exact wake-up.
SHARE_FROM_STREAMS = 16
GRID_S = 0.00025


class Transport(Protocol):
    def write(self, data: bytes) -> None: ...
    def is_closing(self) -> bool: ...
    def get_write_buffer_size(self) -> int: ...


class Timer(Protocol):
    def cancel(self) -> None: ...


CallLater = Callable[[float, Callable[[], None]], Timer]


class Encoded(Protocol):
    """A stream whose chunks a protocol's encoder writes, in order (``protocols.EncodedStream``)."""

    def chunk(self, k: int) -> bytes: ...


def frame(body: bytes, chunked: bool) -> bytes:
    """``body`` as one piece of an HTTP/1.1 chunked body (exactly aiohttp's framing), or as is."""
    if chunked:
        return b"%x\r\n%b\r\n" % (len(body), body)
    return body


@dataclass(slots=True, eq=False)
class PacedStream:
    """One streamed response's content chunks and where they go."""

    transport: Transport
    start_s: float  # clock time the offsets count from
    offsets_s: ChunkSchedule | list[float]  # deadline of chunk k is start_s + offsets_s[k]; non-decreasing
    prefix: bytes  # chunk k is prefix + its tokens' text + suffix
    suffix: bytes
    tail: bytes  # follows the last content chunk in the same write (finish, usage, [DONE])
    n_tokens: int
    tokens_per_chunk: int
    chunked: bool
    on_end: Callable[[bool], None]  # called once, with True when the client went away
    next_k: int = 0
    ended: bool = False
    # chunk k written by a protocol's encoder instead of the template (its last chunk carries the end)
    encoded: Encoded | None = None

    def body(self, k: int) -> bytes:
        """Content chunk ``k`` (plus the tail after the last one), unframed."""
        if self.encoded is not None:
            return self.encoded.chunk(k)
        per = self.tokens_per_chunk
        first = k * per
        text = _token(first) if per == 1 else token_text(first, min(per, self.n_tokens - first)).encode()
        data = self.prefix + text + self.suffix
        if k == len(self.offsets_s) - 1:
            data += self.tail
        return data


_TOKENS: list[bytes] = []  # b" tok{i}", shared by every stream
_TOKEN_CACHE_LIMIT = 1 << 16


def _token(i: int) -> bytes:
    if i < len(_TOKENS):
        return _TOKENS[i]
    if i >= _TOKEN_CACHE_LIMIT:
        return token_text(i, 1).encode()
    _TOKENS.extend(token_text(j, 1).encode() for j in range(len(_TOKENS), i + 1))
    return _TOKENS[i]


class Pacer:
    """The per-process heap of stream deadlines and the timer that drains it."""

    def __init__(self, stats: MockStats, call_later: CallLater,
                 clock: Callable[[], float] = time.monotonic, resolution_s: float = 0.001) -> None:
        self.stats = stats  # replaced by DELETE /mock/stats
        self._call_later = call_later
        self._clock = clock
        self._resolution_s = resolution_s  # of call_later's delays (timer.py): 0 takes them as they are
        self._heap: list[tuple[float, int, PacedStream]] = []
        self._seq = 0  # ties on a deadline go in arrival order
        self._timer: Timer | None = None
        self._timer_due = math.inf

    def __len__(self) -> int:
        return len(self._heap)

    def add(self, stream: PacedStream) -> None:
        """Schedule ``stream`` from its ``next_k`` on (it must have a chunk left)."""
        due = stream.start_s + stream.offsets_s[stream.next_k]
        self._seq += 1
        heapq.heappush(self._heap, (due, self._seq, stream))
        if due < self._timer_due:
            self._arm(due)

    def remove(self, stream: PacedStream) -> None:
        """Drop ``stream`` without calling ``on_end`` (its handler is gone); lazy, O(1)."""
        stream.ended = True

    def _arm(self, due: float) -> None:
        if self._timer is not None:
            self._timer.cancel()
        # Rounded up to the timer's resolution (uvloop's: whole ms, to the nearest): never early.
        if self._resolution_s > 0:
            per_s = 1.0 / self._resolution_s
            delay_s = math.ceil(max(0.0, due - self._clock()) * per_s) / per_s
        else:
            if len(self._heap) >= SHARE_FROM_STREAMS:  # on the grid: chunks due within a step share it
                due = math.ceil(due / GRID_S) * GRID_S
            delay_s = max(0.0, due - self._clock())
        self._timer = self._call_later(delay_s, self._tick)
        self._timer_due = due

    def poll(self) -> None:
        """Write whatever is due now. Request handlers call this between their steps: a burst of
        new requests can hold the loop for milliseconds, and the timer only runs between them."""
        heap = self._heap
        if heap and heap[0][0] <= self._clock():
            self._drain()
            if heap and heap[0][0] < self._timer_due:
                self._arm(heap[0][0])

    def _tick(self) -> None:
        self._timer = None
        self._timer_due = math.inf
        try:
            self._drain()
        finally:
            if self._heap:
                self._arm(self._heap[0][0])

    def _drain(self) -> None:
        heap = self._heap
        clock = self._clock
        while heap:
            due, seq, stream = heap[0]
            now = clock()
            if due > now:
                break
            if stream.ended:
                heapq.heappop(heap)
                continue
            transport = stream.transport
            if transport.is_closing():
                heapq.heappop(heap)
                self._end(stream, disconnected=True)
                continue
            if transport.get_write_buffer_size() > HIGH_WATER_BYTES:
                heapq.heapreplace(heap, (now + PAUSE_POLL_S, seq, stream))
                continue
            next_due = self._write_due(stream, now)
            if next_due is None:
                heapq.heappop(heap)
                self._end(stream, disconnected=False)
            else:
                heapq.heapreplace(heap, (next_due, seq, stream))

    def _write_due(self, stream: PacedStream, now: float) -> float | None:
        """Write every chunk of ``stream`` due by ``now`` in one write; its next deadline or None."""
        stats = self.stats
        start, offsets = stream.start_s, stream.offsets_s
        n = len(offsets)
        k = stream.next_k
        parts: list[bytes] = []
        while True:
            lateness = now - start - offsets[k]
            if lateness > LATE_S:
                stats.late_chunks += 1
                if lateness > stats.max_lateness_s:
                    stats.max_lateness_s = lateness
            parts.append(stream.body(k))
            k += 1
            if k == n or start + offsets[k] > now:
                break
        written = k - stream.next_k
        stream.next_k = k
        try:
            body = parts[0] if len(parts) == 1 else b"".join(parts)
            stream.transport.write(frame(body, stream.chunked))
        except (OSError, RuntimeError):
            stream.next_k = n
            self._end(stream, disconnected=True)
            return None
        stats.chunks += written
        return None if k == n else start + offsets[k]

    def _end(self, stream: PacedStream, *, disconnected: bool) -> None:
        if stream.ended:
            return
        stream.ended = True
        if disconnected:
            self.stats.disconnects += 1
        stream.on_end(disconnected)
