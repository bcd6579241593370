"""Kernel receive stamps: the offset between the clocks, the mapping, and real loopback sockets."""

from __future__ import annotations

import socket
import time

import pytest

from loadbench import rxstamp
from loadbench.rxstamp import ClockMap, Offset, measure_offset

MS = 1_000_000


def test_measure_offset_keeps_the_narrowest_bracket() -> None:
    perf = iter([0, 900, 1_000, 1_100, 5_000, 5_020])  # widths 900, 100, 20
    real = iter([10_400, 11_050, 15_010])
    got = measure_offset(lambda: next(real), lambda: next(perf), tries=3)
    assert got == Offset(offset_ns=15_010 - 5_010, width_ns=20, taken_perf_ns=5_020)


def test_the_map_clamps_a_stamp_into_the_window_it_can_be_in() -> None:
    clock = ClockMap(lambda: Offset(offset_ns=1_000_000, width_ns=50, taken_perf_ns=0))
    assert clock.to_perf_ns(1_000_500, read_ns=900) == 500
    assert clock.to_perf_ns(1_002_000, read_ns=900) == 900  # never after the read that returned it
    assert clock.to_perf_ns(1_000_100, read_ns=900, not_before_ns=300) == 300  # nor before the send


def test_the_map_refreshes_once_a_second() -> None:
    offsets = iter([Offset(1, 1, 0), Offset(2, 1, rxstamp.REFRESH_NS)])
    clock = ClockMap(lambda: next(offsets))
    clock.refresh_if_due(rxstamp.REFRESH_NS - 1)
    assert clock.offset.offset_ns == 1
    clock.refresh_if_due(rxstamp.REFRESH_NS)
    assert clock.offset.offset_ns == 2


def test_the_real_clocks_offset_is_known_to_within_a_few_microseconds() -> None:
    got = measure_offset()
    assert 0 <= got.width_ns < 200_000
    assert abs(time.time_ns() - time.perf_counter_ns() - got.offset_ns) < 5 * MS


def _pair() -> tuple[socket.socket, socket.socket]:
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)
    client = socket.create_connection(srv.getsockname())
    peer, _ = srv.accept()
    srv.close()
    return client, peer


def _warm(client: socket.socket, peer: socket.socket) -> None:
    """Until the kernel stamps this host's receives (it turns stamping on a moment after the first
    socket asks, from a work queue), exchange a byte; bounded to 2 s."""
    for _ in range(200):
        peer.sendall(b".")
        if rxstamp.recv(client, 1)[1] is not None:
            return
        time.sleep(0.01)
    raise AssertionError("the kernel never stamped a receive")


def _send_at_intervals(peer: socket.socket, payloads: list[bytes], gap_s: float, sent_ns: list[int]) -> None:
    for p in payloads:
        sent_ns.append(time.perf_counter_ns())
        peer.sendall(p)
        time.sleep(gap_s)


@pytest.mark.skipif(not rxstamp.supported(), reason="kernel receive stamps need Linux")
def test_a_late_reader_still_learns_when_the_bytes_arrived() -> None:
    client, peer = _pair()
    with client, peer:
        assert rxstamp.enable(client)
        _warm(client, peer)
        clock = ClockMap()
        sent_ns: list[int] = []
        _send_at_intervals(peer, [b"x" * 15], 0.0, sent_ns)
        time.sleep(0.05)  # the reader is busy for 50 ms
        data, stamp = rxstamp.recv(client, 64)
        read_ns = time.perf_counter_ns()
        assert data == b"x" * 15 and stamp is not None
        arrived_ns = clock.to_perf_ns(stamp, read_ns)
        assert -1 * MS < arrived_ns - sent_ns[0] < 10 * MS  # when it came, not when it was read
        assert read_ns - arrived_ns > 40 * MS  # the user-space time would have said 50 ms later


@pytest.mark.skipif(not rxstamp.supported(), reason="kernel receive stamps need Linux")
def test_segments_merged_in_the_queue_carry_the_latest_stamp() -> None:
    """The documented limit: read late, five events that arrived 20 ms apart come back as one read
    stamped with the last one's arrival: later than the first event's truth, earlier than the read."""
    client, peer = _pair()
    with client, peer:
        rxstamp.enable(client)
        _warm(client, peer)
        clock = ClockMap()
        sent_ns: list[int] = []
        _send_at_intervals(peer, [b"e" * 15] * 5, 0.02, sent_ns)
        data, stamp = rxstamp.recv(client, 1024)
        read_ns = time.perf_counter_ns()
        assert data == b"e" * 75 and stamp is not None
        arrived_ns = clock.to_perf_ns(stamp, read_ns)
        assert arrived_ns - sent_ns[-1] > -1 * MS and arrived_ns - sent_ns[0] > 70 * MS
        assert arrived_ns <= read_ns


@pytest.mark.skipif(not rxstamp.supported(), reason="kernel receive stamps need Linux")
def test_without_the_option_there_is_no_stamp_and_the_end_has_none() -> None:
    client, peer = _pair()
    with client:
        peer.sendall(b"abc")
        peer.close()
        time.sleep(0.01)
        assert rxstamp.recv(client, 64) == (b"abc", None)
        assert rxstamp.recv(client, 64) == (b"", None)


def test_enable_says_no_for_an_object_that_is_not_a_socket() -> None:
    assert rxstamp.enable(object()) is False


def test_a_gevent_socket_reads_stamps_too() -> None:
    """The worker's sockets are gevent's: its recvmsg hands the ancillary data through (in a
    subprocess, since gevent's monkey-patching must not reach this interpreter)."""
    import subprocess
    import sys

    code = (
        "from gevent import monkey; monkey.patch_all()\n"
        "import socket, time\n"
        "from loadbench import rxstamp\n"
        "srv = socket.socket(); srv.bind(('127.0.0.1', 0)); srv.listen(1)\n"
        "c = socket.create_connection(srv.getsockname()); p, _ = srv.accept()\n"
        "assert rxstamp.enable(c)\n"
        "for _ in range(200):\n"
        "    p.sendall(b'.')\n"
        "    if rxstamp.recv(c, 1)[1] is not None: break\n"
        "    time.sleep(0.01)\n"
        "t = time.perf_counter_ns(); p.sendall(b'hi'); time.sleep(0.03)\n"
        "clock = rxstamp.ClockMap(); data, stamp = rxstamp.recv(c, 16); now = time.perf_counter_ns()\n"
        "print(data.decode(), (clock.to_perf_ns(stamp, now) - t) // 1000000, (now - t) // 1000000)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    text, arrived_ms, read_ms = out.stdout.split()
    assert text == "hi" and int(arrived_ms) < 10 <= 25 <= int(read_ms)
