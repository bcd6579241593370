"""The worker's connections: each plain TCP socket is asked for kernel stamps when it is created, on
receive and on send; a send records when its last byte left, and the HTTP client's own reads (the
response head, and the body bytes that came with it) when their bytes arrived (loadbench.rxstamp).

Why here: the HTTP client (geventhttpclient, under Locust's FastHttpSession) sends a request and
waits for the answer's head in one call, and a send stamp must be taken off the socket's error
queue before that wait (a queued stamp makes the socket poll as in error, and the wait would spin).
So the sockets the client's connection pool creates are ``StampedSocket``: its ``sendall`` drains
the stamp as soon as the bytes are handed over. geventhttpclient documents
``ConnectionPool._create_tcp_socket`` as the place to set socket options; ``install`` puts the
worker's own there, once per process. TLS connections keep plain sockets: an SSL socket writes
through its own path, never this ``sendall``, and their sends keep user-space times.

The stamps are handed over per greenlet (``STAMPS``): a Locust user runs in one greenlet, and the
client may already have returned the socket to its pool when it hands back a response whose body
came whole with its head.
"""

from __future__ import annotations

import socket
import time
from typing import Any

import gevent.socket
from gevent.local import local
from geventhttpclient.connectionpool import ConnectionPool, SSLConnectionPool

from loadbench import rxstamp
from loadbench.workers.receive import RECEIVE_CLOCK, ReceiveClock


class SocketStamps(local):
    """The current greenlet's latest send and client read: kernel stamps (realtime ns) and when the
    send began (user space); None: none."""

    sent_ns: int | None = None  # the latest ``sendall``'s last byte, when it left at once (``StampedSocket.sendall``)
    send_began_ns: int | None = None  # perf_counter_ns just before the latest ``sendall``'s first send call
    received_ns: int | None = None  # the latest segment of the latest read made through ``recv``

    def clear(self) -> None:
        self.sent_ns = self.send_began_ns = self.received_ns = None


STAMPS = SocketStamps()


class StampedSocket(gevent.socket.socket):
    """A gevent socket whose ``sendall`` records the kernel's stamp of when its data began to leave and
    whose ``recv`` the stamp of the data it read (in ``STAMPS``)."""

    __slots__ = ("stamps_reads", "stamps_sends")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.stamps_sends = False
        self.stamps_reads = False

    def sendall(self, data: Any, flags: int = 0) -> None:
        """Send all of ``data`` as gevent's ``sendall`` does, recording when it began to leave: in
        ``STAMPS.sent_ns`` the kernel's stamp of its last byte when one call sent it all and the stamp
        was queued when that call returned (the bytes left at once), else None; in
        ``STAMPS.send_began_ns`` the user-space time just before the first call, in every case.

        Why not wait for a later stamp: a request that does not leave at once (larger than the send
        buffer, or held back by the server's receive window) leaves as the server reads it, and that
        wait is the server's, not the client's lateness; the kernel stamps no earlier part of it (TCP
        marks the write queue's tail when a call returns, and a call cut short has pushed it all out
        already). Each stamp is taken off the error queue before a wait for room, which it would
        otherwise end at once, again and again; a stamp that comes later is taken off by the next read
        that finds nothing (``recv``, ``workers.stream._recv_stamped``)."""
        if not self.stamps_sends:
            super().sendall(data, flags)
            return
        view = memoryview(data).cast("B")
        sock, done, calls, waited = self._sock, 0, 0, False
        STAMPS.send_began_ns = time.perf_counter_ns()
        floor_ns = time.time_ns()  # a stamp older than this is a late one from an earlier send
        while done < len(view):
            try:
                done += sock.send(view[done:], flags)
                calls += 1
            except BlockingIOError:
                waited = True
                rxstamp.send_stamp(sock)
                self._wait(self._write_event)  # bounded by the socket's timeout, as gevent's sendall
        STAMPS.sent_ns = rxstamp.send_stamp(sock, floor_ns) if calls == 1 and not waited else None

    def recv(self, size: int, flags: int = 0) -> bytes:
        if not self.stamps_reads or flags:
            return bytes(super().recv(size, flags))
        while True:  # bounded by the socket's timeout: each wait raises it when it runs out
            try:
                data, STAMPS.received_ns = rxstamp.recv(self._sock, size)
                return data
            except BlockingIOError:
                rxstamp.send_stamp(self._sock)  # a late send stamp would wake this wait at once
                self._wait(self._read_event)


def stamped_socket(family: int, socktype: int, protocol: int, clock: ReceiveClock) -> Any:
    """A new TCP socket asked for receive and send stamps where ``clock`` and the kernel allow them."""
    sock = StampedSocket(family, socktype, protocol)
    if socktype == socket.SOCK_STREAM and clock.stamps(sock):
        sock.stamps_reads = True
        sock.stamps_sends = rxstamp.enable_send(sock)
    return sock


_PLAIN_FACTORY = ConnectionPool._create_tcp_socket
_PLAIN_ALIVE = ConnectionPool._is_socket_alive
_PEEK = socket.MSG_PEEK | socket.MSG_DONTWAIT


def idle_and_open(sock: Any) -> bool:
    """Whether a pooled connection is still open and clean, asked without yielding: a one-byte peek
    that finds nothing (alive), the peer's FIN (b"": closed) or stray bytes (not clean)."""
    try:
        if sock.fileno() < 0:
            return False
        sock._sock.recv(1, _PEEK)
    except BlockingIOError:
        return True
    except OSError:
        return False
    return False


def install(clock: ReceiveClock = RECEIVE_CLOCK) -> None:
    """Make the HTTP client's connection pools create the worker's sockets (idempotent), and check
    a pooled one without yielding: geventhttpclient asks gevent's ``select`` with a zero timeout,
    which hands the greenlet to the hub for a whole turn of the event loop, so every request waited
    behind the other users' work before its send (a 44-request/s replay: send delay P50 1.1 ms, P99
    3.7 ms, then inside its TTFT and its send lag)."""
    if not clock.available:
        return

    def create_tcp_socket(pool: ConnectionPool, family: int, socktype: int, protocol: int) -> Any:
        if isinstance(pool, SSLConnectionPool):
            return _PLAIN_FACTORY(pool, family, socktype, protocol)
        return stamped_socket(family, socktype, protocol, clock)

    def is_socket_alive(pool: ConnectionPool, sock: Any) -> bool:
        if isinstance(sock, StampedSocket):
            return idle_and_open(sock)
        return bool(_PLAIN_ALIVE(pool, sock))

    ConnectionPool._create_tcp_socket = create_tcp_socket  # type: ignore[method-assign,assignment]
    ConnectionPool._is_socket_alive = is_socket_alive  # type: ignore[method-assign,assignment]
