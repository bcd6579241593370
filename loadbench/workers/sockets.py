"""The worker's connections: each plain TCP socket is asked for kernel stamps when it is created, on
receive and on send, and a send records when its last byte left (loadbench.rxstamp).

Why here: the HTTP client (geventhttpclient, under Locust's FastHttpSession) sends a request and
waits for the answer's head in one call, and a send stamp must be taken off the socket's error
queue before that wait (a queued stamp makes the socket poll as in error, and the wait would spin).
So the sockets the client's connection pool creates are ``StampedSocket``: its ``sendall`` drains
the stamp as soon as the bytes are handed over. geventhttpclient documents
``ConnectionPool._create_tcp_socket`` as the place to set socket options; ``install`` puts the
worker's own there, once per process. TLS connections keep plain sockets: an SSL socket writes
through its own path, never this ``sendall``, and their sends keep user-space times.
"""

from __future__ import annotations

import socket
import time
from typing import Any

import gevent.socket
from geventhttpclient.connectionpool import ConnectionPool, SSLConnectionPool

from loadbench import rxstamp
from loadbench.workers.receive import RECEIVE_CLOCK, ReceiveClock

# A send whose stamp is not queued when it returns (the window held its last byte back) waits for the
# stamp: at most this many wake-ups (each bounded by the socket's own timeout), then goes unstamped.
SEND_STAMP_WAITS = 4


class StampedSocket(gevent.socket.socket):
    """A gevent socket whose ``sendall`` records the kernel's stamp of the last byte it sent."""

    __slots__ = ("sent_stamp_ns", "stamps_sends")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.sent_stamp_ns: int | None = None  # realtime ns of the last sendall's last byte (None: unknown)
        self.stamps_sends = False

    def sendall(self, data: Any, flags: int = 0) -> None:
        if not self.stamps_sends:
            super().sendall(data, flags)
            return
        floor_ns = time.time_ns()  # a stamp older than this is a late one from an earlier send
        super().sendall(data, flags)
        self.sent_stamp_ns = self._await_stamp(floor_ns)

    def _await_stamp(self, floor_ns: int) -> int | None:
        stamp = rxstamp.send_stamp(self._sock)
        waits = 0
        while (stamp is None or stamp < floor_ns) and waits < SEND_STAMP_WAITS:
            waits += 1
            try:
                self._wait(self._read_event)  # a queued stamp (or an early answer) wakes a reader
            except OSError:  # the socket's timeout: leave the send unstamped, the request goes on
                return None
            stamp = rxstamp.send_stamp(self._sock)
        return stamp if stamp is not None and stamp >= floor_ns else None


def stamped_socket(family: int, socktype: int, protocol: int, clock: ReceiveClock) -> Any:
    """A new TCP socket asked for receive and send stamps where ``clock`` and the kernel allow them."""
    sock = StampedSocket(family, socktype, protocol)
    if socktype == socket.SOCK_STREAM and clock.stamps(sock):
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
