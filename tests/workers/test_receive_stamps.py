"""The worker times every chunk from the kernel's receive stamp of the read that carried it.

Real mock (its own process), the worker's real ``measure`` with Locust's FastHttpSession in a gevent
process of its own (tests/workers/receive_probe.py), real loopback sockets."""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
from collections.abc import Iterator
from itertools import pairwise
from typing import Any

import pytest

from loadbench import rxstamp
from loadbench.procs import ServerProcess, start_server
from loadbench.workers.receive import ReceiveClock

pytestmark = pytest.mark.skipif(not rxstamp.supported(), reason="kernel receive stamps need Linux")

MS = 1_000_000
ITL_MS = 20.0


@pytest.fixture(scope="module")
def mock() -> Iterator[ServerProcess]:
    server = start_server(["mock", "--port", "0", "--ttft-ms", "40", "--itl-ms", str(ITL_MS)])
    try:
        yield server
    finally:
        server.stop()


def _probe(base_url: str, count: int, mode: str, stream: bool = True) -> list[dict[str, Any]]:
    out = subprocess.run([sys.executable, "-m", "tests.workers.receive_probe", base_url, str(count), mode,
                          "stream" if stream else "whole"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-3000:]
    got: list[dict[str, Any]] = json.loads(out.stdout)
    assert [r["outcome"] for r in got] == ["ok"] * count
    return got


def _gaps_ms(times: list[int]) -> list[float]:
    return [(b - a) / MS for a, b in pairwise(times)]


def test_every_chunk_carries_a_kernel_time_no_later_than_its_read(mock: ServerProcess) -> None:
    got = _probe(mock.base_url, 4, "calm")
    assert all(r["stamping"] for r in got)
    chunks = sum(len(r["times"]) for r in got)
    # the first reads on a host may come unstamped while the kernel turns stamping on: most are stamped
    assert chunks == 4 * 8 and sum(r["stamped"] for r in got) >= chunks // 2
    for r in got:
        times, reads = r["times"], r["reads"]
        assert r["send_stamped"] and r["started"] <= r["sent"]
        assert len(times) == len(reads) == 8
        assert times == sorted(times) and reads == sorted(reads)
        assert all(r["sent"] <= t <= u for t, u in zip(times, reads, strict=True))
        assert times[-1] <= r["end"] <= r["read_end"]


def test_a_request_on_a_pooled_connection_is_sent_without_giving_way_to_other_greenlets(
        mock: ServerProcess) -> None:
    """The connection pool's check of a kept-alive connection (gevent's zero-timeout ``select`` in the
    HTTP client) handed the greenlet to the event loop before every send: behind a busy loop each
    request waited a whole turn (the ``busy`` probe's 12 ms spins) before it left. The worker's check
    peeks without yielding: from ``measure``'s start to the send, no switch."""
    got = _probe(mock.base_url, 4, "busy")
    assert [r["switches_before_send"] for r in got[1:]] == [0, 0, 0]  # the first one opens its connection
    assert all(r["sent"] - r["started"] < 5 * MS for r in got[1:])  # no 12 ms spin before a send


def test_a_whole_answer_that_came_with_the_head_carries_the_head_reads_stamp(mock: ServerProcess) -> None:
    """The mock writes a non-streamed answer with its head; the HTTP client reads the head itself (and
    releases the connection once the message is complete: nothing is left to read). The worker's
    socket makes that read a stamped one, so the body's time is when its bytes arrived, no later than
    the user-space read, and each request is timed from its send stamp, after the client's start."""
    got = _probe(mock.base_url, 3, "calm", stream=False)
    assert sum(r["stamped"] for r in got) >= 2  # the host's very first read may precede stamping
    for r in got:
        assert r["send_stamped"] and r["started"] <= r["sent"] <= r["first_byte"]
        assert r["times"] == [r["end"]] and r["reads"] == [r["read_end"]] and r["end"] <= r["read_end"]
        if r["stamped"]:
            assert r["end"] < r["read_end"]  # the arrival, not the read's return


@pytest.mark.alone
def test_a_busy_loop_delays_the_reads_but_not_the_kernel_times(mock: ServerProcess) -> None:
    """A greenlet spins the CPU 12 ms at a time without yielding: the user-space read times drift
    behind the chunks' arrival, the kernel times do not (beyond coalescing: a chunk that waited while
    the next one arrived carries the later stamp)."""
    got = _probe(mock.base_url, 10, "busy")
    assert sum(r["stamped"] for r in got) >= 70
    delays_ms = [(u - t) / MS for r in got for t, u in zip(r["times"], r["reads"], strict=True)]
    assert statistics.mean(delays_ms) > 2.0 and max(delays_ms) > 5.0  # the measured read delay
    kernel_gaps = [g for r in got for g in _gaps_ms(r["times"])]
    user_gaps = [g for r in got for g in _gaps_ms(r["reads"])]
    kernel_near = sum(abs(g - ITL_MS) <= 2.5 for g in kernel_gaps)
    user_near = sum(abs(g - ITL_MS) <= 2.5 for g in user_gaps)
    assert kernel_near >= user_near + 10, (kernel_near, user_near)


def test_a_calm_loop_reads_within_a_millisecond_of_the_kernel(mock: ServerProcess) -> None:
    got = _probe(mock.base_url, 4, "calm")
    delays_ms = [(u - t) / MS for r in got for t, u in zip(r["times"], r["reads"], strict=True)]
    assert statistics.median(delays_ms) < 1.0


def test_a_tls_socket_or_a_platform_without_the_option_is_not_stamped() -> None:
    import socket

    from gevent.ssl import SSLSocket

    assert ReceiveClock(enabled=False).stamps(socket.socket()) is False
    assert ReceiveClock().stamps(None) is False
    tls = SSLSocket.__new__(SSLSocket)  # a TLS socket's reads cannot hand over ancillary data
    assert ReceiveClock().stamps(tls) is False
    plain = socket.socket()
    clock = ReceiveClock()
    with plain:
        assert clock.stamps(plain) is True
        assert plain.getsockopt(socket.SOL_SOCKET, rxstamp.SO_TIMESTAMPNS) == 1
        assert clock.stamps(plain) is True  # asked once; the answer is kept with the socket
