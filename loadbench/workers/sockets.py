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

# A send whose stamp is not queued when it returns (the window held its last byte back) waits for the
# stamp: at most this many wake-ups (each bounded by the socket's own timeout), then goes unstamped.
SEND_STAMP_WAITS = 4


class SocketStamps(local):
    """The kernel stamps (realtime ns) of the current greenlet's latest send and client read; None: none."""

    sent_ns: int | None = None  # the last byte of the latest ``sendall``
    received_ns: int | None = None  # the latest segment of the latest read made through ``recv``

    def clear(self) -> None:
        self.sent_ns = self.received_ns = None


STAMPS = SocketStamps()


class StampedSocket(gevent.socket.socket):
    """A gevent socket whose ``sendall`` records the kernel's stamp of the last byte it sent and whose
    ``recv`` the stamp of the data it read (in ``STAMPS``)."""

    __slots__ = ("stamps_reads", "stamps_sends")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.stamps_sends = False
        self.stamps_reads = False

    def sendall(self, data: Any, flags: int = 0) -> None:
        if not self.stamps_sends:
            super().sendall(data, flags)
            return
        floor_ns = time.time_ns()  # a stamp older than this is a late one from an earlier send
        super().sendall(data, flags)
        STAMPS.sent_ns = self._await_stamp(floor_ns)

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

    def _await_stamp(self, floor_ns: int) -> int | None:
        stamp = rxstamp.send_stamp(self._sock, floor_ns)
        waits = 0
        while stamp is None and waits < SEND_STAMP_WAITS:
            waits += 1
            try:
                self._wait(self._read_event)  # a queued stamp (or an early answer) wakes a reader
            except OSError:  # the socket's timeout: leave the send unstamped, the request goes on
                return None
            stamp = rxstamp.send_stamp(self._sock, floor_ns)
        return stamp


def stamped_socket(family: int, socktype: int, protocol: int, clock: ReceiveClock) -> Any:
    """A new TCP socket asked for receive and send stamps where ``clock`` and the kernel allow them."""
    sock = StampedSocket(family, socktype, protocol)
    if socktype == socket.SOCK_STREAM and clock.stamps(sock):
        sock.stamps_reads = True
        sock.stamps_sends = rxstamp.enable_send(sock)
    return sock


_PLAIN_FACTORY = ConnectionPool._create_tcp_socket


def install(clock: ReceiveClock = RECEIVE_CLOCK) -> None:
    """Make the HTTP client's connection pools create the worker's sockets (idempotent)."""
    if not clock.available:
        return

    def create_tcp_socket(pool: ConnectionPool, family: int, socktype: int, protocol: int) -> Any:
        if isinstance(pool, SSLConnectionPool):
            return _PLAIN_FACTORY(pool, family, socktype, protocol)
        return stamped_socket(family, socktype, protocol, clock)

    ConnectionPool._create_tcp_socket = create_tcp_socket  # type: ignore[method-assign,assignment]
