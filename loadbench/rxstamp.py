"""Kernel timestamps: when a socket's bytes arrived, and when a request's last byte left, as the
kernel saw them, on our clock.

Why: every other timestamp loadbench takes is read in user space when a read returns, so anything
that delays the reading loop (a busy event loop, a CPU hog on the core) delays the measurement too.
With ``SO_TIMESTAMPNS`` set, Linux stamps each received segment (``CLOCK_REALTIME``, software stamp
at the receive path) and hands the stamp of the data a ``recvmsg`` returns as ancillary data.

What a stamp means: TCP merges segments that wait in the receive queue, and the merged data carries
the stamp of the latest of them. A read that returns within one inter-chunk gap of the data's arrival
gets that data's own stamp; a read later than that gets the stamp of the last segment that joined it,
which is never earlier than the true arrival and never later than the user-space read time. So a
stamp is an upper bound on the arrival no worse than the user-space time, and exact when the reader
keeps up.

The stamps are on ``CLOCK_REALTIME``; loadbench measures on ``time.perf_counter_ns`` (on Linux,
``CLOCK_MONOTONIC``). ``ClockMap`` holds the offset between the two: it reads the realtime clock
between two monotonic reads, keeps the narrowest of a few tries (the offset is then known to within
that read's width, a few hundred nanoseconds), and is refreshed every ``REFRESH_NS`` because the
realtime clock is slewed by NTP (at most 500 ppm: 0.5 ms over a second, hence a refresh each second).

A read may still come back without a stamp: the kernel turns receive stamping on for the whole
host only once some socket asks for it, and it does so a moment later, from a work queue, so the
first segments after the first ``enable`` go unstamped. A read without a stamp keeps its user-space
time, and the run counts such reads.

Where the option does not exist (another OS, a socket type without it) ``enable`` returns False and
the caller keeps user-space stamps; it says so in the run's manifest.

Send stamps (``SO_TIMESTAMPING`` with software transmit stamps): TCP stamps the last byte of each
send when it is handed to the network device, and queues the stamp on the socket's error queue,
which ``send_stamp`` drains. Why: a request's life before its bytes leave (building it, a client
preempted between taking its start time and sending) is the client's, not the server's; measured
from the send stamp, a busy client no longer inflates TTFT on the send side either. On loopback and
on most devices the stamp is queued within the send itself; where the window holds the last byte
back it comes later, and the caller waits for it (a queued stamp makes the socket report an error
condition to poll, so it must not be left there while the caller waits for the answer).
``OPT_RX_FILTER`` keeps the transmit option from adding a second stamp to every read (Linux 6.2 and
later; where it is refused, ``enable_send`` returns False and sends keep user-space times).
"""

from __future__ import annotations

import socket
import struct
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

# Linux's value; Python exposes the name only on some builds.
SO_TIMESTAMPNS: int = getattr(socket, "SO_TIMESTAMPNS", 35)
SCM_TIMESTAMPNS = SO_TIMESTAMPNS
_TIMESPEC = struct.Struct("@qq")  # struct timespec on 64-bit Linux: tv_sec, tv_nsec
_TIMESPEC_BYTES = _TIMESPEC.size
_unpack_timespec = _TIMESPEC.unpack_from
_SOL_SOCKET = socket.SOL_SOCKET
ANCILLARY_BYTES = socket.CMSG_SPACE(_TIMESPEC.size) if hasattr(socket, "CMSG_SPACE") else 32
# Send stamps: the option, its flags (linux/net_tstamp.h) and the error queue's read.
SO_TIMESTAMPING: int = getattr(socket, "SO_TIMESTAMPING", 37)
SCM_TIMESTAMPING = SO_TIMESTAMPING
_TX_SOFTWARE, _SOFTWARE, _OPT_TSONLY, _OPT_RX_FILTER = 1 << 1, 1 << 4, 1 << 11, 1 << 17
SEND_STAMP_FLAGS = _TX_SOFTWARE | _SOFTWARE | _OPT_TSONLY | _OPT_RX_FILTER
MSG_ERRQUEUE: int = getattr(socket, "MSG_ERRQUEUE", 0x2000)
_ERRQUEUE_READ = MSG_ERRQUEUE | getattr(socket, "MSG_DONTWAIT", 0x40)
# one queued stamp: SCM_TIMESTAMPING (3 timespecs), SCM_TIMESTAMPNS, and IP(V6)_RECVERR with the address
ERRQUEUE_ANCILLARY_BYTES = 256
ERRQUEUE_MAX_READS = 16  # stamps queued since the last drain (one a send; a retransmission may add one)
REFRESH_NS = 1_000_000_000
OFFSET_TRIES = 5


def supported() -> bool:
    """This platform can stamp received data (Linux; ``recvmsg`` exists)."""
    return sys.platform.startswith("linux") and hasattr(socket.socket, "recvmsg")


def enable(sock: Any) -> bool:
    """Ask the kernel to stamp ``sock``'s received data; False where it cannot (the caller falls back)."""
    if not supported():
        return False
    try:
        sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
    except (OSError, AttributeError):
        return False
    return True


def stamp_of(ancillary: list[tuple[int, int, bytes]]) -> int | None:
    """The receive time (realtime ns) in ``recvmsg``'s ancillary data, None when there is none."""
    for level, kind, data in ancillary:
        if level == socket.SOL_SOCKET and kind == SCM_TIMESTAMPNS and len(data) >= _TIMESPEC.size:
            sec, nsec = _TIMESPEC.unpack_from(data)
            return sec * 1_000_000_000 + nsec
    return None


def recv(sock: Any, size: int) -> tuple[bytes, int | None]:
    """Read up to ``size`` bytes like ``sock.recv`` and the kernel's receive time of the last segment
    in them (realtime ns; None when the kernel gave none: option off, or the end of the stream)."""
    data, ancillary, _flags, _addr = sock.recvmsg(size, ANCILLARY_BYTES)
    if not data or not ancillary:
        return data, None
    # the common read, once per chunk: the stamp is the one ancillary item (stamp_of, inline)
    if len(ancillary) == 1:
        level, kind, raw = ancillary[0]
        if kind == SCM_TIMESTAMPNS and level == _SOL_SOCKET and len(raw) >= _TIMESPEC_BYTES:
            sec, nsec = _unpack_timespec(raw)
            return data, sec * 1_000_000_000 + nsec
    return data, stamp_of(ancillary)


def enable_send(sock: Any) -> bool:
    """Ask the kernel to stamp the last byte of each send on ``sock``; False where it cannot."""
    if not supported():
        return False
    try:
        sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPING, SEND_STAMP_FLAGS)
    except (OSError, AttributeError):
        return False
    return True


def send_stamp(sock: Any, not_before_ns: int = 0) -> int | None:
    """The first send stamp (realtime ns) on ``sock``'s error queue that is not older than
    ``not_before_ns``, the older ones drained on the way; None when the queue held none. Stops at that
    stamp: a send queues one, so the common call is one read, without the failing read that would
    confirm the queue is empty (one more syscall and an exception)."""
    for _ in range(ERRQUEUE_MAX_READS):
        try:
            _data, ancillary, _flags, _addr = sock.recvmsg(0, ERRQUEUE_ANCILLARY_BYTES, _ERRQUEUE_READ)
        except OSError:  # BlockingIOError: the queue is empty
            return None
        for level, kind, raw in ancillary:
            if kind == SCM_TIMESTAMPING and level == _SOL_SOCKET and len(raw) >= _TIMESPEC_BYTES:
                sec, nsec = _unpack_timespec(raw)  # the first of three: the software stamp
                stamp = sec * 1_000_000_000 + nsec
                if stamp >= not_before_ns:
                    return stamp
    return None


@dataclass(frozen=True, slots=True)
class Offset:
    """``realtime_ns - perf_ns`` at ``taken_perf_ns``, known to within ``width_ns``."""

    offset_ns: int
    width_ns: int
    taken_perf_ns: int


def measure_offset(realtime_ns: Callable[[], int] = time.time_ns,
                   perf_ns: Callable[[], int] = time.perf_counter_ns, tries: int = OFFSET_TRIES) -> Offset:
    """The offset between the two clocks: the realtime read bracketed by two monotonic reads, the
    narrowest bracket of ``tries`` kept (a preempted try is wide and loses), its midpoint taken."""
    best: Offset | None = None
    for _ in range(max(1, tries)):
        before = perf_ns()
        real = realtime_ns()
        after = perf_ns()
        width = after - before
        if best is None or width < best.width_ns:
            best = Offset(real - (before + after) // 2, width, after)
    assert best is not None
    return best


class ClockMap:
    """Maps kernel receive stamps (realtime ns) onto ``perf_counter_ns``, refreshed as time goes by.

    ``to_perf_ns`` clamps a mapped stamp to ``[not_before, read_ns]``: a stamp cannot be later than
    the read that returned it, nor earlier than the request it answers was sent (either would be the
    offset's error, never information)."""

    __slots__ = ("_measure", "_offset", "_perf_ns")

    def __init__(self, measure: Callable[[], Offset] = measure_offset,
                 perf_ns: Callable[[], int] = time.perf_counter_ns) -> None:
        self._measure = measure
        self._perf_ns = perf_ns
        self._offset = measure()

    @property
    def offset(self) -> Offset:
        return self._offset

    def refresh_if_due(self, now_perf_ns: int) -> None:
        if now_perf_ns - self._offset.taken_perf_ns >= REFRESH_NS:
            self._offset = self._measure()

    def to_perf_ns(self, stamp_realtime_ns: int, read_ns: int, not_before_ns: int = 0) -> int:
        mapped = stamp_realtime_ns - self._offset.offset_ns
        if mapped > read_ns:
            return read_ns
        return not_before_ns if mapped < not_before_ns else mapped
