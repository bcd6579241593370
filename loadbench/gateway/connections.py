"""The client connections: a limit with a clear refusal, and OpenAI errors for what the parser rejects.

aiohttp answers a request its parser rejects (a malformed request line or header, an oversized
head) itself, in ``text/plain`` that quotes the offending bytes, and logs them at ERROR, which can put
a client's key or prompt in the log and in the reply. ``GuardedServer`` answers those as OpenAI JSON
that names only the status, and logs one rate-limited line per rejection without header values or
bodies. It also refuses connections beyond ``limits.max_connections`` with a 503 at once, so a crowd
of idle sockets cannot use up the descriptors. Idle connections (before the first request, between
requests, or a head that never completes) are closed by aiohttp's keep-alive timer, which runs from
the connection's start: ``runner_options`` sets it to ``limits.idle_timeout_s``.
"""

from __future__ import annotations

import asyncio
import logging
import resource
import time
from http import HTTPStatus
from typing import Any, cast

from aiohttp import web
from aiohttp.web_protocol import RequestHandler
from aiohttp.web_request import BaseRequest

from loadbench.gateway.config import Limits
from loadbench.protocol.openai import error_body, error_type

log = logging.getLogger("loadbench.gateway")
LOG_EVERY_S = 1.0
REFUSED_HOLD_S = 2.0  # how long a refused connection waits for its client to close after the 503
_FULL = error_body("The gateway has too many open connections; retry later.", "server_error", 503)
_REFUSAL = (b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nConnection: close\r\n"
            b"Content-Length: " + str(len(_FULL)).encode() + b"\r\n\r\n" + _FULL)


class RejectLog:
    """One log line per rejected request, at most one per ``every_s``; the rest are counted in it."""

    def __init__(self, every_s: float = LOG_EVERY_S, clock: Any = time.monotonic) -> None:
        self.every_s = every_s
        self.clock = clock
        self.next_s = 0.0
        self.suppressed = 0
        self.total = 0

    def note(self, reason: str) -> bool:
        """Record one rejection; True when it was logged."""
        self.total += 1
        now_s = self.clock()
        if now_s < self.next_s:
            self.suppressed += 1
            return False
        more = f" (+{self.suppressed} more since the last line)" if self.suppressed else ""
        log.warning("rejected a request: %s%s", reason, more)
        self.suppressed = 0
        self.next_s = now_s + self.every_s
        return True


def raise_descriptor_limit() -> int:
    """Raise this process's open-file soft limit to its hard limit (children forked later inherit it);
    the soft limit now in force. A shell's default soft limit (1,024) would otherwise cap a gateway's
    clients far below what the host allows."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            soft = hard
        except (ValueError, OSError) as exc:
            log.warning("could not raise the open-file limit from %s to %s: %s", soft, hard, exc)
    return soft if soft != resource.RLIM_INFINITY else 65536


def default_max_connections() -> int:
    """Half the descriptor limit: the other half is for upstream pools, files and the listener."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    return max(16, (soft if soft != resource.RLIM_INFINITY else 65536) // 2)


def max_connections(limits: Limits) -> int:
    """The client connections served at once: the configured limit, kept below what the descriptor
    limit allows (half of it: the rest is for upstream pools, files and the listener), so a crowd of
    idle sockets meets a 503 instead of resets once descriptors run out."""
    allowed = default_max_connections()
    configured = limits.max_connections or allowed
    if configured > allowed:
        log.warning("limits.max_connections %d is above what the open-file limit allows; serving at most %d "
                    "(raise the hard limit, ulimit -Hn, to serve more)", configured, allowed)
    return min(configured, allowed)


def guarded_server(limits: Limits, rejects: RejectLog) -> type[web.Server]:
    """A ``web.Server`` class whose connections apply ``limits`` and report to ``rejects``."""
    max_connections_ = max_connections(limits)

    holding = [0]  # refused connections still open, waiting for their client to close
    hold_max = max(8, max_connections_ // 4)

    class GuardedHandler(RequestHandler):
        __slots__ = ("_refused",)

        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            self._refused = 0
            super().connection_made(transport)
            manager = self._manager
            if manager is not None and len(manager.connections) > max_connections_:
                rejects.note(f"503 connection limit ({max_connections_}) reached")
                # no isinstance check: uvloop's transports do not derive from asyncio.Transport
                transport = cast(asyncio.Transport, transport)
                transport.write(_REFUSAL)
                # Half-close, then drain: closing with the client's request unread in the receive
                # buffer makes the kernel send a reset, which a client sees before it reads the 503.
                # The client closes once it has read the answer; a silent one is closed after
                # REFUSED_HOLD_S. A flood of refusals would hold descriptors that way, so beyond
                # hold_max of them at once a refusal closes at once (a client may then see a reset).
                if holding[0] < hold_max and transport.can_write_eof():
                    self._refused = 2
                    holding[0] += 1
                    transport.write_eof()
                    asyncio.get_running_loop().call_later(REFUSED_HOLD_S, transport.close)
                else:
                    self._refused = 1
                    transport.close()

        def connection_lost(self, exc: BaseException | None) -> None:
            if self._refused == 2:
                holding[0] -= 1
                self._refused = 1
            super().connection_lost(exc)

        def data_received(self, data: bytes) -> None:
            if not self._refused:
                super().data_received(data)

        def eof_received(self) -> None:
            if self._refused and self.transport is not None:
                self.transport.close()
                return
            super().eof_received()

        def handle_error(self, request: BaseRequest, status: int = 500, exc: BaseException | None = None,
                         message: str | None = None) -> web.StreamResponse:
            rejects.note(f"{status} {type(exc).__name__ if exc else 'error'}")
            if request.writer.output_size > 0:
                raise ConnectionError("response already started; the connection is closed")
            try:
                phrase = HTTPStatus(status).phrase
            except ValueError:
                phrase = "Error"
            resp = web.Response(status=status, content_type="application/json",
                                body=error_body(f"{status} {phrase}.", error_type(status), status))
            resp.force_close()
            return resp

        def log_exception(self, *args: Any, **kw: Any) -> None:
            exc = kw.get("exc_info")
            rejects.note(f"unhandled {type(exc).__name__ if isinstance(exc, BaseException) else 'error'}")

    class GuardedServer(web.Server):
        def __call__(self) -> RequestHandler:
            return GuardedHandler(self, loop=self._loop, **self._kwargs)

    return GuardedServer


def runner_options(limits: Limits) -> dict[str, Any]:
    """``AppRunner`` keyword arguments that apply ``limits``.

    No lingering: after an early answer (413, 408) aiohttp would otherwise keep reading and
    discarding the rest of the body for 10 s; the connection is closed instead."""
    return {"keepalive_timeout": limits.idle_timeout_s, "lingering_time": 0}


class GuardedRunner(web.AppRunner):
    """An ``AppRunner`` whose server is ``guarded_server(limits, rejects)``."""

    __slots__ = ("_server_class",)

    def __init__(self, app: web.Application, limits: Limits, rejects: RejectLog, **kwargs: Any) -> None:
        super().__init__(app, **runner_options(limits), **kwargs)
        self._server_class = guarded_server(limits, rejects)

    async def _make_server(self) -> web.Server:
        server = await super()._make_server()
        server.__class__ = self._server_class
        return server
