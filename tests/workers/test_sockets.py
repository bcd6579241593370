"""The worker's sockets: a send that leaves at once records the kernel's stamp of its last byte and
takes it off the error queue (so the socket never polls as in error while the client waits for the
answer); one that cannot leave at once is timed from when it began, without spinning; the client's own
reads record their receive stamp; plain where stamps are off or the pool is TLS. Real loopback sockets."""

from __future__ import annotations

import select
import socket
import threading
import time
from collections.abc import Iterator

import pytest
from geventhttpclient.connectionpool import ConnectionPool, SSLConnectionPool

from loadbench import rxstamp
from loadbench.workers import sockets
from loadbench.workers.receive import ReceiveClock
from loadbench.workers.sockets import STAMPS
from tests.test_rxstamp import _warm

pytestmark = pytest.mark.skipif(not rxstamp.supported(), reason="kernel stamps need Linux")


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # small: a large send waits for the reader
    srv.bind(("127.0.0.1", 0))
    srv.listen()
    try:
        yield srv
    finally:
        srv.close()


def _connected(listener: socket.socket, clock: ReceiveClock) -> tuple[sockets.StampedSocket, socket.socket]:
    sock = sockets.stamped_socket(socket.AF_INET, socket.SOCK_STREAM, 0, clock)
    sock.settimeout(5)
    sock.connect(listener.getsockname())
    peer, _ = listener.accept()
    peer.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # each of its small sends leaves at once
    return sock, peer


def _polls_in_error(sock: socket.socket) -> bool:
    poller = select.poll()
    poller.register(sock.fileno(), select.POLLIN)
    return any(events & select.POLLERR for _, events in poller.poll(0))


def test_a_send_records_when_its_last_byte_left_and_leaves_no_error_queued(listener: socket.socket) -> None:
    sock, peer = _connected(listener, ReceiveClock())
    try:
        assert sock.stamps_sends
        _warm(sock._sock, peer)  # the host's receive stamping comes on a moment after the first ask
        stamps = []
        for _ in range(3):
            STAMPS.clear()
            before = time.time_ns()
            sock.sendall(b"POST / HTTP/1.1\r\n\r\n")
            after = time.time_ns()
            assert STAMPS.sent_ns is not None and before <= STAMPS.sent_ns <= after
            assert not _polls_in_error(sock)  # drained: a waiting reader would not spin
            stamps.append(STAMPS.sent_ns)
            peer.recv(1024)
        assert stamps == sorted(stamps) and len(set(stamps)) == 3
        # receive stamps stay one item a read (the send option filters its own out of reads)
        peer.sendall(b"data: x\n\n")
        time.sleep(0.01)
        data, stamp = rxstamp.recv(sock._sock, 1024)
        assert data == b"data: x\n\n" and stamp is not None
        # the HTTP client's own read (the response head) records when its bytes arrived, not when it ran
        arrived_before = time.time_ns()
        peer.sendall(b"HTTP/1.1 200 OK\r\n\r\n")
        arrived_after = time.time_ns()
        time.sleep(0.05)
        assert sock.recv(1024) == b"HTTP/1.1 200 OK\r\n\r\n"
        assert STAMPS.received_ns is not None and arrived_before <= STAMPS.received_ns <= arrived_after
    finally:
        sock.close()
        peer.close()


def _busy_cpu_s(during: object) -> float:
    before = time.process_time()
    during()  # type: ignore[operator]
    return time.process_time() - before


def test_a_send_that_cannot_leave_at_once_is_timed_from_when_it_began_and_waits_without_spinning() -> None:
    """A request larger than the send buffer leaves in parts as the server reads it: that wait is the
    server's, and the kernel stamps no earlier part, so the send is timed from just before its first
    send call (user space) and counts as unstamped. While it waits for room, stamps are taken off the
    error queue (one left there would end every wait at once: a busy loop), and so are the late ones
    by the next read that finds nothing."""
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    srv.bind(("127.0.0.1", 0))
    srv.listen()
    sock = sockets.stamped_socket(socket.AF_INET, socket.SOCK_STREAM, 0, ReceiveClock())
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    sock.settimeout(5)
    sock.connect(srv.getsockname())
    peer, _ = srv.accept()
    peer.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    size = 1 << 20  # far beyond both buffers: most of it waits for the reader
    read_from_ns: list[int] = []

    def read_late_then_answer() -> None:
        time.sleep(0.3)
        read_from_ns.append(time.perf_counter_ns())
        got = 0
        while got < size:
            chunk = peer.recv(1 << 20)
            if not chunk:
                break
            got += len(chunk)
        time.sleep(0.3)  # the client waits for the answer meanwhile
        peer.sendall(b"HTTP/1.1 200 OK\r\n\r\n")

    reader = threading.Thread(target=read_late_then_answer)
    reader.start()
    try:
        STAMPS.clear()
        before_ns = time.perf_counter_ns()
        assert _busy_cpu_s(lambda: sock.sendall(b"x" * size)) < 0.15  # 0.3 s waiting for room
        assert STAMPS.sent_ns is None
        assert STAMPS.send_began_ns is not None and before_ns <= STAMPS.send_began_ns < read_from_ns[0]
        assert _busy_cpu_s(lambda: sock.recv(1024)) < 0.15  # 0.3 s waiting for the answer
        reader.join(timeout=10)
    finally:
        sock.close()
        peer.close()
        srv.close()


def test_without_the_kernel_clock_sends_stay_plain(listener: socket.socket) -> None:
    sock, peer = _connected(listener, ReceiveClock(enabled=False))
    try:
        STAMPS.clear()
        sock.sendall(b"hello")
        peer.sendall(b"hi")
        assert STAMPS.send_began_ns is None
        assert sock.recv(16) == b"hi"
        assert not sock.stamps_sends and not sock.stamps_reads and STAMPS.sent_ns is None
        assert STAMPS.received_ns is None
    finally:
        sock.close()
        peer.close()


def test_install_gives_plain_pools_stamped_sockets_and_tls_pools_plain_ones(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ConnectionPool, "_create_tcp_socket", ConnectionPool._create_tcp_socket)
    sockets.install(ReceiveClock())
    plain = ConnectionPool("127.0.0.1", 1, "127.0.0.1", 1)
    tls = SSLConnectionPool("127.0.0.1", 1, "127.0.0.1", 1)
    a = plain._create_tcp_socket(socket.AF_INET, socket.SOCK_STREAM, 0)
    b = tls._create_tcp_socket(socket.AF_INET, socket.SOCK_STREAM, 0)
    try:
        assert isinstance(a, sockets.StampedSocket) and a.stamps_sends
        assert not isinstance(b, sockets.StampedSocket)
    finally:
        a.close()
        b.close()


def test_a_pooled_connection_is_open_while_idle_and_not_once_closed_or_dirty(listener: socket.socket) -> None:
    sock, peer = _connected(listener, ReceiveClock())
    try:
        assert sockets.idle_and_open(sock)
        peer.sendall(b"stray")  # bytes nobody asked for: the connection is not clean
        time.sleep(0.01)
        assert not sockets.idle_and_open(sock)
        assert sock.recv(16) == b"stray"
        assert sockets.idle_and_open(sock)
        peer.close()  # the server closed it (its FIN is there to read)
        time.sleep(0.01)
        assert not sockets.idle_and_open(sock)
    finally:
        sock.close()
    assert not sockets.idle_and_open(sock)  # closed here: no descriptor
