"""Send one request and time every chunk of its response (runs inside a gevent worker).

Timing rules (see loadbench.metrics.timing): timestamps are on ``time.perf_counter_ns()``. Every event
decoded from one read shares that read's time: the kernel's receive stamp of the read (when its bytes
reached the host, mapped onto ``perf_counter_ns``; see loadbench.rxstamp) where the connection stamps,
else the time the read returned in user space. The user-space time is kept beside it, per event: their
difference is the client's own read delay. Body bytes that came with the response head (read by the
HTTP client itself) carry the stamp of that read (loadbench.workers.sockets); reads the kernel left
unstamped keep their user-space time.
A request is timed from when it left: the kernel's stamp of its last byte where the connection stamps
sends and the request left at once (loadbench.workers.sockets); else the user-space time just before
the connection's first send call; else (another HTTP client's socket) when ``measure`` began. The time
from ``measure``'s start to a kernel send stamp is the client's own send delay: its work before the
bytes leave (and any preemption in it).
The body is read as bytes arrive — never ``iter_content(n)``, which waits for n bytes and made TTFT
read late.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass, field
from typing import Any

import gevent
from geventhttpclient.response import HTTPConnectionClosed

from loadbench import outcomes, rxstamp
from loadbench.protocol.dialect import Dialect
from loadbench.protocol.openai import OPENAI
from loadbench.protocol.usage import Usage
from loadbench.units import ns_to_ms
from loadbench.workers.receive import RECEIVE_CLOCK, ReceiveClock
from loadbench.workers.sockets import STAMPS

perf_ns = time.perf_counter_ns


class StreamCut(Exception):
    """The connection closed before the response was complete."""


@dataclass(slots=True)
class Measured:
    outcome: str
    status: int
    sent_ns: int  # when the request left (the module's docstring says from which clock)
    first_byte_ns: int | None = None
    token_times_ns: list[int] = field(default_factory=list)
    end_ns: int = 0
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    error: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    first_answer_ns: int | None = None  # the first content of the answer channel (after any thinking)
    usage: Usage | None = None  # the server's last usage report, every kind (cached, cache write, reasoning)
    error_kind: str | None = None  # the protocol's error type of an error event in the stream
    error_status: int | None = None  # the status that error event stands for (throttling: 429, overloaded: 529)
    # when the client read each content event (user space), beside token_times_ns (kernel stamp where known)
    read_times_ns: list[int] = field(default_factory=list)
    read_end_ns: int = 0  # when the client read the end of the response (user space)
    stamping: bool = False  # the connection's reads carry kernel receive stamps
    stamped_chunks: int = 0  # content events timed by a kernel stamp (the rest kept their user-space time)
    started_ns: int = 0  # when the client began to send the request (user space)
    send_stamped: bool = False  # sent_ns is the kernel's send stamp
    head_stamp: int | None = None  # kernel stamp (realtime ns) of the read that completed the response head


_KEEP_HEADERS = ("x-loadbench-target", "x-loadbench-cache", "x-loadbench-attempts", "retry-after")
ERROR_BODY_MAX_BYTES = 64 * 1024  # enough for any error message; an error body is never kept whole


def drop_connection(session: Any, raw: Any) -> None:
    """Close the connection of a request that ended without a complete response, and the user's
    connection pool with it: its one slot may still be taken by the abandoned request, and a
    pooled socket after a timeout is in an unknown state. The next request opens a fresh one."""
    sock = getattr(raw, "_sock", None)
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.close()
        raw._sock = None
    pool = getattr(getattr(session, "client", None), "clientpool", None)
    if pool is not None:
        with contextlib.suppress(Exception):
            pool.close()


def _error_body(resp: Any, raw: Any) -> bytes:
    """The body of an error answer. Locust has usually read it already (to build its own error),
    so it is taken from the response's cache; otherwise read here, up to ERROR_BODY_MAX_BYTES."""
    cached = getattr(resp, "_cached_content", None)
    if isinstance(cached, bytes | bytearray):
        return bytes(cached[:ERROR_BODY_MAX_BYTES])
    chunks: list[bytes] = []
    size = 0
    while size < ERROR_BODY_MAX_BYTES and (chunk := _read_available(raw)[0]):
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks)[:ERROR_BODY_MAX_BYTES]


def _read_available(raw: Any, stamped: bool = False, queued: bool = False,
                    buffered_stamp: int | None = None) -> tuple[bytes, int | None]:
    """Return the body bytes available now, reading the socket once if none are buffered, and the
    kernel's receive stamp (realtime ns) of the last socket read made here; for bytes already buffered,
    ``buffered_stamp`` (the stamp of the read that brought them, as the response head's for the bytes
    that came with it); None when the kernel gave no stamp.
    ``queued``: the next bytes are likely there already, so a stamped read tries before it waits.

    Returns b"" at the end of the message; raises StreamCut if the peer closed mid-message.
    """
    buf = raw._body_buffer
    stamp = buffered_stamp if buf else None
    while not buf:
        if raw.message_complete:
            return b"", stamp
        sock = raw._sock
        if sock is None:
            raise StreamCut("connection closed")
        if stamped:
            data, stamp = rxstamp.recv(sock, raw.block_size) if queued else _recv_stamped(sock, raw.block_size)
            queued = False
        else:
            data = sock.recv(raw.block_size)
        if not data:
            raw.release()
            raise StreamCut("connection closed mid-response")
        raw.feed(data)  # parses chunked framing; may complete the message and release the socket
    out = bytes(buf)
    del buf[:]
    return out, stamp


def _recv_stamped(sock: Any, size: int) -> tuple[bytes, int | None]:
    """``rxstamp.recv`` on a plain (not TLS) gevent socket the reader has just drained: wait until it is
    readable, then read. gevent's own read tries first and waits only when the read fails, and a reader
    that keeps up finds nothing there on every chunk: that failed read (a syscall, an exception raised
    and caught) cost 6-7 us a chunk with its wake-up (``bench/generator_bench.py --reads``). A reader a
    whole inter-chunk gap behind finds the next chunk there, and waiting first would cost it about as
    much: ``_read_stream`` then tries first (``queued``). The request's deadline bounds the wait."""
    ready = sock._read_event
    while True:  # a readable socket with nothing to read (a spurious wake) waits again
        sock._wait(ready)
        try:
            return rxstamp.recv(sock._sock, size)
        except BlockingIOError:
            rxstamp.send_stamp(sock._sock)  # a late send stamp would wake the wait again at once
            continue


def measure(client: Any, url: str, body: bytes, headers: dict[str, str], *, stream: bool,
            timeout_s: float, dialect: Dialect = OPENAI, receive: ReceiveClock = RECEIVE_CLOCK) -> Measured:
    """POST ``body`` to ``url`` with the Locust FastHttpSession ``client`` and time the response,
    decoded in ``dialect`` (the target's wire protocol), from ``receive``'s kernel stamps where the
    connection has them."""
    started = perf_ns()
    m = Measured(outcome=outcomes.OK, status=0, sent_ns=started, started_ns=started)
    stamps = STAMPS
    stamps.clear()
    timer = gevent.Timeout(timeout_s)
    timer.start()
    raw: Any = None
    try:
        rcm = client.request("POST", url, data=body, headers=headers, stream=True, catch_response=True,
                             name="stream" if stream else "request")
        with rcm as resp:
            head_read = m.first_byte_ns = perf_ns()
            m.status = resp.status_code or 0
            raw = resp._response
            if stamps.sent_ns is not None:
                m.sent_ns = receive.to_perf_ns(stamps.sent_ns, head_read, started)
                m.send_stamped = True
            elif stamps.send_began_ns is not None:  # it did not leave at once: from when it began to
                m.sent_ns = min(max(started, stamps.send_began_ns), head_read)
            if stamps.received_ns is not None:
                m.head_stamp = stamps.received_ns
                m.first_byte_ns = receive.to_perf_ns(stamps.received_ns, head_read, m.sent_ns)
            if raw is None or m.status == 0:
                err = getattr(resp, "error", None)
                # our deadline fired inside the HTTP client, which wraps it (RetriesExceeded)
                timed_out = isinstance(err, TimeoutError) or not timer.pending
                m.outcome = outcomes.TIMEOUT if timed_out else outcomes.CONNECTION_ERROR
                m.error = (f"no response within {timeout_s:g} s" if timed_out
                           else f"{type(err).__name__}: {err}"[:200] if err else "no response")
                m.end_ns = perf_ns()
                rcm.failure(m.error)
                drop_connection(client, raw)
                return m
            for name in _KEEP_HEADERS:
                value = raw.get(name)
                if value:
                    m.headers[name] = value if isinstance(value, str) else value[0]
            if m.status >= 400:
                wire_error = dialect.error(m.status, _error_body(resp, raw))
                message = wire_error.message or _REASONS.get(m.status, "")
                m.error_kind = wire_error.kind or None
                m.end_ns = perf_ns()
                m.outcome = outcomes.HTTP_ERROR
                m.error = f"HTTP {m.status}: {message}" if message else f"HTTP {m.status}"
                rcm.failure(m.error)
                return m
            m.stamping = receive.stamps(raw._sock)
            if stream:
                _read_stream(raw, m, dialect, receive)
            else:
                _read_body(raw, m, dialect, receive)
            rcm.request_meta["response_time"] = ns_to_ms(m.end_ns - started)
            if m.outcome == outcomes.OK:
                rcm.success()
            else:
                rcm.failure(m.error or m.outcome)
    except gevent.Timeout as t:
        if t is not timer:
            raise
        m.outcome = outcomes.TIMEOUT
        m.error = f"no complete response within {timeout_s:g} s"
        m.end_ns = perf_ns()
        drop_connection(client, raw)
    except (StreamCut, HTTPConnectionClosed, ConnectionError, OSError) as exc:
        m.outcome = outcomes.STREAM_CUT if m.first_byte_ns is not None else outcomes.CONNECTION_ERROR
        m.error = f"{type(exc).__name__}: {exc}"[:200]
        m.end_ns = perf_ns()
        drop_connection(client, raw)
    finally:
        timer.close()
    return m


# Said when an error answer carries no message of its own (an empty or non-JSON body).
_REASONS = {400: "bad request", 401: "unauthorized", 403: "forbidden", 404: "not found",
            408: "request timeout", 413: "payload too large", 429: "too many requests",
            500: "internal server error", 502: "bad gateway", 503: "service unavailable",
            504: "gateway timeout"}


def _read_stream(raw: Any, m: Measured, dialect: Dialect, receive: ReceiveClock = RECEIVE_CLOCK) -> None:
    decoder = dialect.decoder()
    times, reads = m.token_times_ns, m.read_times_ns
    stamped, sent = m.stamping, m.sent_ns
    arrived: int | None = None  # the kernel time of the latest bytes, None while they came unstamped
    queued = False  # the last read came a whole inter-chunk gap late: the next chunk is likely there
    done = False
    head = m.head_stamp  # the bytes that came with the head, buffered, carry its read's stamp
    while True:
        data, stamp = _read_available(raw, stamped, queued, head)
        head = None
        now = perf_ns()
        if stamp is not None:
            at = receive.to_perf_ns(stamp, now, sent)
            queued = arrived is not None and now - at >= at - arrived
            arrived = at
        else:
            at = now
            if data:
                arrived = None
        fed = decoder.feed(data, not data)
        content = fed.content
        if content:
            for _ in content:
                times.append(at)
                reads.append(now)
            if stamp is not None:
                m.stamped_chunks += len(content)
            if m.first_answer_ns is None and any(c[1] == "answer" for c in content):
                m.first_answer_ns = at
        if fed.error is not None:
            m.outcome = outcomes.HTTP_ERROR if m.error is None else m.outcome
            m.error = fed.error.message[:200]
            m.error_kind, m.error_status = fed.error.kind or None, fed.error.status
        usage = fed.usage
        if usage is not None:
            m.completion_tokens = usage.completion_tokens
            m.prompt_tokens = usage.prompt_tokens or None
            m.usage = usage
        done = done or fed.done
        if not data:
            break
    m.read_end_ns = perf_ns()
    m.end_ns = arrived if arrived is not None else m.read_end_ns
    if m.outcome != outcomes.OK:
        return
    if not done:
        m.outcome = outcomes.STREAM_CUT
        m.error = f"stream ended without {dialect.end_marker}"
    elif not times:
        m.outcome = outcomes.EMPTY
        m.error = "stream carried no content token"


def _read_body(raw: Any, m: Measured, dialect: Dialect, receive: ReceiveClock) -> None:
    chunks = []
    stamped = m.stamping
    last: int | None = None  # the kernel stamp of the latest bytes, None while they came unstamped
    head = m.head_stamp  # the bytes that came with the head, buffered, carry its read's stamp
    while True:
        chunk, stamp = _read_available(raw, stamped, buffered_stamp=head)
        head = None
        if stamp is not None:
            last = stamp
        elif chunk:
            last = None
        if not chunk:
            break
        chunks.append(chunk)
    m.read_end_ns = perf_ns()
    m.end_ns = m.read_end_ns if last is None else receive.to_perf_ns(last, m.read_end_ns, m.sent_ns)
    answer = dialect.decode(b"".join(chunks))
    if answer.error is not None:
        m.outcome, m.error = outcomes.HTTP_ERROR, answer.error.message[:200]
        m.error_kind, m.error_status = answer.error.kind or None, answer.error.status
        return
    if answer.usage is not None:
        m.prompt_tokens, m.completion_tokens = answer.usage.prompt_tokens or None, answer.usage.completion_tokens
        m.usage = answer.usage
    if not answer.text and not m.completion_tokens:
        m.outcome, m.error = outcomes.EMPTY, "response carried no content"
        return
    # Non-streamed: the first token (of the answer too) becomes visible with the whole body.
    m.token_times_ns.append(m.end_ns)
    m.read_times_ns.append(m.read_end_ns)
    m.stamped_chunks = int(last is not None)
    m.first_answer_ns = m.end_ns if answer.text or answer.tool_calls else None
