"""The stream relay's bookkeeping: what to forward, when the client is committed, token timing. Pure.

``StreamRelay.feed(chunk, now_ns)`` takes upstream bytes as they arrive and returns the bytes to
send to the client now. It forwards complete SSE events byte for byte and holds back an incomplete
one (so an error event can never land inside it). Everything before the first token (the role-only
chunk, comments, garbage) is held too: until a content delta arrives nothing has been promised to
the client, so a stream that stalls, ends or breaks before it can still fall back to another target.
Token timing follows the one content-delta rule of ``loadbench.protocol.openai``; a stream whose first
token is a compact ``content`` (or ``reasoning_content``) delta, as most servers write them, is counted
with two byte counts per read from then on (``content_deltas_compact``). An incomplete event
or held prefix larger than ``max_event_bytes`` fails the stream: an event that never ends must not be
re-copied on every read.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from loadbench.protocol.openai import DONE, completion_tokens, content_deltas, content_deltas_compact
from loadbench.protocol.sse import complete_end


@dataclass(slots=True)
class StreamRelay:
    max_event_bytes: int
    capture: list[bytes] | None = None  # receives every forwarded byte (for a cache)
    committed: bool = False  # a content delta arrived: bytes went (or may go) to the client
    compact: bool = False  # the first token was a compact delta: count later reads the cheap way
    tokens: int = 0  # content deltas seen
    first_ns: int = 0  # arrival of the first content delta (0: none yet)
    last_ns: int = 0
    gaps_ns: list[int] = field(default_factory=list)  # between reads that carried content
    error: str = ""  # why the stream failed ("" while it is fine)
    carry: bytes = b""
    held: list[bytes] = field(default_factory=list)
    held_bytes: int = 0
    prev: bytes = b""  # the two last complete reads (for [DONE] and usage)
    last: bytes = b""

    def feed(self, chunk: bytes, now_ns: int) -> bytes:
        """Bytes for the client now (b"" while nothing is complete or nothing is committed)."""
        if self.compact and not self.carry and chunk[-2:] == b"\n\n":
            # the common read of a committed compact stream: whole events, content_deltas_compact inlined
            n = chunk.count(b'content":"')
            if n and (n := n - chunk.count(b'content":""')):
                self.gaps_ns.append(now_ns - self.last_ns)
                self.last_ns = now_ns
                self.tokens += n
            self.prev = self.last
            self.last = chunk
            if self.capture is not None:
                self.capture.append(chunk)
            return chunk
        return self._feed(chunk, now_ns)

    def _feed(self, chunk: bytes, now_ns: int) -> bytes:
        if self.carry:
            chunk = self.carry + chunk
            self.carry = b""
        if not chunk.endswith(b"\n\n"):
            cut = complete_end(chunk)
            if cut < len(chunk):
                self.carry = chunk[cut:]
                chunk = chunk[:cut]
                if len(self.carry) > self.max_event_bytes:
                    self.error = f"sent an event larger than {self.max_event_bytes} bytes"
                    return b""
        if not chunk:
            return b""
        n = content_deltas_compact(chunk) if self.compact else content_deltas(chunk)
        if n:
            if self.first_ns:
                self.gaps_ns.append(now_ns - self.last_ns)
            else:
                self.first_ns = now_ns
            self.last_ns = now_ns
            self.tokens += n
        self.prev = self.last
        self.last = chunk
        if self.capture is not None:
            self.capture.append(chunk)
        if self.committed:
            return chunk
        if not n:
            self.held.append(chunk)
            self.held_bytes += len(chunk)
            if self.held_bytes > self.max_event_bytes:
                self.error = f"sent more than {self.max_event_bytes} bytes before the first token"
            return b""
        self.committed = True
        self.compact = content_deltas_compact(chunk) == n
        if self.held:
            chunk = b"".join(self.held) + chunk
            self.held.clear()
        return chunk

    def end(self) -> bytes:
        """The upstream closed cleanly: the bytes still to send, or b"" with ``error`` set."""
        if not self.error and DONE not in self.prev + self.last + self.carry:
            self.error = "closed the stream before [DONE]"
        if self.error:
            return b""
        self.committed = True
        out = b"".join(self.held) + self.carry
        self.held.clear()
        if self.carry and self.capture is not None:
            self.capture.append(self.carry)
        self.carry = b""
        return out

    def usage_tokens(self) -> int | None:
        """``usage.completion_tokens`` when the stream reported it."""
        tail = self.prev + self.last
        return completion_tokens(tail) if b'"usage"' in tail else None
