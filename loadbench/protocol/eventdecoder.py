"""The shape every event-typed stream decoder shares: frames in, one JSON object per event, each event
adding to what the read completed (``Collected``), one ``Decoded`` out per read.

Anthropic, the Responses API and Gemini send SSE whose ``data`` is a JSON object (``JsonEventDecoder``:
the subclass handles one object in ``event``); Bedrock sends binary frames and collects the same way.
"""

from __future__ import annotations

from typing import Any

from loadbench.protocol.chunktemplate import ChunkTemplate
from loadbench.protocol.dialect import INVALID, NOTHING, Channel, Content, Decoded, StreamDecoder, ToolCall, WireError
from loadbench.protocol.jsonscan import loads_object
from loadbench.protocol.sse import SSEDecoder
from loadbench.protocol.toolcalls import ToolCalls
from loadbench.protocol.usage import Usage

# the fast path builds its named tuples with tuple.__new__ (fields in declaration order), as the OpenAI
# decoder does: their own __new__ is a Python-level call that costs about half of a record's build
_new = tuple.__new__


def answer_piece(text: str) -> Content:
    """One piece of the answer, for a decoder's fast path."""
    return _new(Content, (text, "answer"))


def answer_only(pieces: list[Content]) -> Decoded:
    """What a read that completed these answer pieces and nothing else decodes to (a decoder's fast path)."""
    return _new(Decoded, (tuple(pieces), None, None, None, None, False, False, ()))


class Collected:
    """What the events of one read completed, in order of arrival (the first error, the last usage)."""

    __slots__ = ("calls", "content", "done", "error", "finish", "model", "tool", "usage")

    def __init__(self) -> None:
        self.content: list[Content] = []
        self.calls: list[ToolCall] = []
        self.usage: Usage | None = None
        self.model: str | None = None
        self.finish: str | None = None
        self.error: WireError | None = None
        self.tool = self.done = False

    def text(self, text: object, channel: Channel = "answer") -> None:
        """A content event when ``text`` is a non-empty string (an empty delta is never content)."""
        if isinstance(text, str) and text:
            self.content.append(Content(text, channel))

    def arguments(self, tools: ToolCalls, key: object, text: object) -> None:
        """A piece of the arguments of the open tool call ``key``: content on the ``tool`` channel."""
        self.tool = True
        if isinstance(text, str) and text:
            tools.piece(key, text)
            self.content.append(Content(text, "tool"))

    def fail(self, error: WireError) -> None:
        self.error = self.error or error

    def decoded(self) -> Decoded:
        return Decoded(tuple(self.content), self.usage, self.model, self.finish, self.error, self.tool, self.done,
                       tuple(self.calls))


class JsonEventDecoder(StreamDecoder):
    """SSE events carrying JSON objects; ``event`` reads one. An event that is not a JSON object is an
    ``INVALID`` error (the bytes are not the protocol)."""

    counter: bytes | None = None  # the key of the number a protocol puts in each event, one up per event

    def __init__(self) -> None:
        self._sse = SSEDecoder()
        self._template = ChunkTemplate(self.counter)  # the stream's answer event around its text, once learned

    def feed(self, chunk: bytes, end_of_stream: bool = False) -> Decoded:
        # the common read, once per token: one answer event, the same bytes as the last but for its text
        # (an event left incomplete at the end of the stream is dropped (SSE): end_of_stream adds nothing)
        template = self._template
        if template.active and self._sse.idle:
            text = template.text(chunk)
            if text is not None:
                return _new(Decoded, ((_new(Content, (text, "answer")),), None, None, None, None, False, False, ()))
            decoded = self._feed(chunk)
            if self._sse.idle:
                template.after(chunk, decoded, self._reads_as)
            return decoded
        return self._feed(chunk)

    def _reads_as(self, chunk: bytes) -> str | None:
        """The text of ``chunk`` when it is one whole event this decoder reads as an answer piece and
        nothing else (``answer_text``, which changes no state), else None."""
        payloads = SSEDecoder().feed(chunk)
        obj = loads_object(payloads[0]) if len(payloads) == 1 else None
        return self.answer_text(obj) if obj is not None else None

    def _feed(self, chunk: bytes) -> Decoded:
        """``feed``'s general path: SSE events, each parsed whole."""
        payloads = self._sse.feed(chunk) if chunk else ()
        if not payloads:
            return NOTHING
        # the common read: events that are each one piece of the answer and nothing else (once per token);
        # an event of any other kind sends the read to the general path, given the events already parsed
        parsed: list[dict[str, Any] | None] = []
        pieces: list[Content] = []
        for payload in payloads:
            obj = loads_object(payload)
            parsed.append(obj)
            text = self.answer_text(obj) if obj is not None else None
            if not text:
                return self._decode(payloads, parsed)
            pieces.append(answer_piece(text))
        return answer_only(pieces)

    def answer_text(self, obj: dict[str, Any]) -> str | None:
        """The text of an event that carries an answer piece and nothing else ``event`` would collect (no
        model, usage, finish, tool or error, no change to the decoder's state); None for any other event,
        which ``event`` then reads."""
        return None

    def _decode(self, payloads: list[bytes], parsed: list[dict[str, Any] | None] | None = None) -> Decoded:
        """``feed``'s general path: every event of the read through ``event`` (``parsed``: the first
        payloads already parsed, in order)."""
        out = Collected()
        done = len(parsed) if parsed else 0
        for i, payload in enumerate(payloads):
            obj = parsed[i] if parsed and i < done else loads_object(payload)
            if obj is None:
                out.fail(WireError(f"unparsable event: {payload[:80]!r}", INVALID))
            else:
                self.event(obj, out)
        return out.decoded()

    def event(self, obj: dict[str, Any], out: Collected) -> None:
        raise NotImplementedError
