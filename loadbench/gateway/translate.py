"""The stream relay between two protocols: a target's stream decoded, re-written in the client's. Pure.

``DialectRelay.feed(chunk, now_ns)`` takes the target's bytes as they arrive (decoded by the target
dialect's ``StreamDecoder``) and returns the bytes to send to the client now, written by the client
dialect's ``StreamEncoder``: its head and the first content once the first content event arrives,
then each content event and each whole tool call, and the tail (finish reason, usage) when the target
has closed its stream (``end``): usage arrives last in several protocols (Bedrock's ``metadata``), so
the tail waits for the end of the body, never for a guess. ``encoder`` None relays the target's
own bytes unchanged (client and target speak one protocol that is not OpenAI's, whose byte relay is
``relay.StreamRelay``), cut at SSE event boundaries so that an error event can never land inside one.

It has ``StreamRelay``'s bookkeeping (``committed``, ``first_ns``, ``gaps_ns``, ``tokens``, ``error``,
``capture``) so the exchange drives both alike. Nothing is promised to the client before the first
content: an error event, a stall or an end before it fails the attempt, which falls back like any
other failure (``error_status``: the status the target's error maps to, e.g. 529 for Anthropic's
``overloaded_error``, 429 for Bedrock's ``throttlingException``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import orjson

from loadbench.protocol.dialect import STOP, Decoded, LLMRequest, StreamDecoder, StreamEncoder
from loadbench.protocol.openai import OPENAI
from loadbench.protocol.sse import complete_end
from loadbench.protocol.usage import Usage

if TYPE_CHECKING:
    from loadbench.gateway.context import RequestContext
    from loadbench.gateway.upstream import Upstream


@dataclass(slots=True)
class DialectRelay:
    decoder: StreamDecoder
    # model name -> the client's encoder (built at the first content, when the target has named its
    # model); None: pass the target's bytes through
    encoder: Callable[[str], StreamEncoder] | None
    model: str  # the model named to the client until the target names its own
    end_marker: str  # how the target's stream ends, for the error of a stream that does not
    max_event_bytes: int
    capture: list[bytes] | None = None  # receives every byte sent to the client (for a cache, the log)
    usage_to_client: bool = True  # the client asked for usage (OpenAI: stream_options.include_usage)
    sse: bool = True  # the passed-through bytes are SSE (cut at event boundaries)
    committed: bool = False
    tokens: int = 0  # content events seen
    first_ns: int = 0
    last_ns: int = 0
    gaps_ns: list[int] = field(default_factory=list)
    error: str = ""
    error_status: int | None = None  # the status the target's error event maps to (None: not one)
    error_kind: str = ""
    error_forwarded: bool = False  # pass-through: the target's own error event went to the client
    usage: Usage | None = None
    finish: str | None = None
    done: bool = False
    carry: bytes = b""  # pass-through: an incomplete event held back
    held: list[bytes] = field(default_factory=list)  # pass-through: bytes before the first content
    held_bytes: int = 0
    _enc: StreamEncoder | None = None

    def feed(self, chunk: bytes, now_ns: int, end_of_stream: bool = False) -> bytes:
        """Bytes for the client now (b"" while nothing is committed or complete)."""
        decoded = self.decoder.feed(chunk, end_of_stream)
        enc = self._enc
        if enc is not None:
            # the common read of a committed translated stream: answer pieces and nothing else (once per
            # token, or per few when reads fall behind: its fields read once, no other branch taken)
            content, usage, _, finish, error, _, done, calls = decoded
            if content and usage is None and finish is None and error is None and not done and not calls:
                if len(content) == 1:
                    text, channel = content[0]
                    out = enc.content(text) if channel == "answer" else None
                else:
                    out = b"".join([enc.content(c[0]) for c in content]) \
                        if all(c[1] == "answer" for c in content) else None
                if out is not None:
                    self.gaps_ns.append(now_ns - self.last_ns)
                    self.last_ns = now_ns
                    self.tokens += len(content)
                    if out and self.capture is not None:
                        self.capture.append(out)
                    return out
        return self._general(decoded, chunk, now_ns)

    def _general(self, decoded: Decoded, chunk: bytes, now_ns: int) -> bytes:
        if decoded.model and not self.committed:
            self.model = decoded.model
        if decoded.usage is not None:
            self.usage = decoded.usage
        if decoded.finish_reason:
            self.finish = decoded.finish_reason
        if decoded.done:
            self.done = True
        if decoded.error is not None and not self.error:
            err = decoded.error
            self.error = f"sent an error event ({err.kind or 'error'}: {err.message[:120]})"
            self.error_status, self.error_kind = err.status, err.kind
        content = decoded.content
        if content:
            if self.first_ns:
                self.gaps_ns.append(now_ns - self.last_ns)
            else:
                self.first_ns = now_ns
            self.last_ns = now_ns
            self.tokens += len(content)
        if self.encoder is None:
            out = self._pass(chunk, bool(content) or bool(decoded.tool_calls))
            if decoded.error is not None and self.committed:
                self.error_forwarded = True  # in the client's own protocol already
            return out
        out = b""
        if (content or decoded.tool_calls) and not self.committed and not self.error:
            self.committed = True
            self._enc = self.encoder(self.model)
            out = self._enc.head()
        enc = self._enc
        if enc is None:
            self.held_bytes += len(chunk)
            if self.held_bytes > self.max_event_bytes and not self.error:
                self.error = f"sent more than {self.max_event_bytes} bytes before the first token"
            return b""
        for piece in content:
            if piece.channel != "tool":  # a tool call's arguments go out whole, with the call
                out += enc.content(piece.text, piece.channel)
        for call in decoded.tool_calls:
            out += enc.tool_call(call)
        if out and self.capture is not None:
            self.capture.append(out)
        return out

    def _pass(self, chunk: bytes, carries: bool) -> bytes:
        if self.sse:
            if self.carry:
                chunk = self.carry + chunk
                self.carry = b""
            cut = complete_end(chunk)
            if cut < len(chunk):
                self.carry = chunk[cut:]
                chunk = chunk[:cut]
                if len(self.carry) > self.max_event_bytes and not self.error:
                    self.error = f"sent an event larger than {self.max_event_bytes} bytes"
                    return b""
        if self.committed or (carries and not self.error):
            if not self.committed:
                self.committed = True
                chunk = b"".join(self.held) + chunk
                self.held.clear()
            if chunk and self.capture is not None:
                self.capture.append(chunk)
            return chunk
        self.held.append(chunk)
        self.held_bytes += len(chunk)
        if self.held_bytes > self.max_event_bytes and not self.error:
            self.error = f"sent more than {self.max_event_bytes} bytes before the first token"
        return b""

    def end(self, now_ns: int = 0) -> bytes:
        """The target closed its stream: the bytes still to send (the tail), or b"" with ``error`` set."""
        out = self.feed(b"", now_ns, end_of_stream=True)
        if not self.error and not self.done:
            self.error = f"closed the stream before {self.end_marker}"
        if self.error:
            return b""
        if self.encoder is None:
            out += b"".join(self.held) + self.carry
            self.held.clear()
            if self.carry and self.capture is not None:
                self.capture.append(self.carry)
            self.carry = b""
            self.committed = True
            return out
        enc = self._enc
        rest = b""
        if enc is None:  # an answer without any content: still a well-formed (empty) answer
            enc = self._enc = self.encoder(self.model)
            rest = enc.head()
        self.committed = True
        rest += enc.tail(self.finish or STOP, self.usage if self.usage_to_client else None)
        if self.capture is not None:
            self.capture.append(rest)
        return out + rest

    def usage_tokens(self) -> int | None:
        return self.usage.completion_tokens if self.usage is not None and self.usage.completion_tokens else None


def translated_request(ctx: RequestContext, override_params: Mapping[str, Any], up: Upstream) -> LLMRequest:
    """The client's request for a target of another protocol (or a client of another protocol than
    OpenAI's): a client's own fields beyond the common ones (``LLMRequest.extra``) travel only to a
    target of its own protocol; the target is always asked for usage (the log and cost need it)."""
    req = ctx.request
    if req is not None and up.dialect is ctx.ingress:
        extra = {**req.extra, **override_params} if override_params else req.extra
        return replace(req, model=up.spec.model, extra=extra)
    body = {**ctx.body, **override_params} if override_params else ctx.body
    req = OPENAI.parse_request(orjson.dumps(body), "/v1/completions" if ctx.kind == "completions" else "")
    return replace(req, model=up.spec.model, include_usage=True, extra={})
