"""The mock in every protocol: a request read by the dialect's server half, an answer written by its
``StreamEncoder`` (streamed) or ``answer_body`` (whole), on the routes the dialect names.

OpenAI's plain stream keeps its prefix + text + suffix template (``bodies.stream_template``: no JSON
encoding per chunk, the mock's hot path); any other protocol, and OpenAI with a knob only an encoder
writes (a thinking block, a mid-stream error), goes through ``EncodedStream``, which writes chunk k
with the encoder when the pacer asks for it. The timing is the same in both: chunk k of the schedule
is due at ``start + offsets[k]``; a thinking block's chunks come first and are chunks of the schedule
like any other (TTFT is the first thinking chunk, the answer starts ``thinking chunks x ITL`` later).

Knobs (``MockSettings``): ``pings`` keepalive events (Anthropic's ``ping``) before the first token,
written with the head; ``thinking_tokens`` of reasoning before the answer; ``tokens_per_chunk``;
``filter_every`` content-filter frames (Azure's empty-choices frames) after every N chunks;
``stream_error_after`` chunks then an error event of status ``stream_error_status`` (the protocol's
own error type: Anthropic 529 ``overloaded_error``, Bedrock 429 ``throttlingException``) ending the
stream. ``--error-rate`` and ``--fault`` answer in the protocol too (``EncodedTemplate``), and so do
``--answers``, ``--judge``, ``--context-window`` and ``--agent`` (``answers.AnswerStream``, the dialect's
``answer_body``).
"""

from __future__ import annotations

from dataclasses import dataclass

from loadbench.errors import InputError
from loadbench.mock.request import GenerationRequest
from loadbench.mock.settings import MockSettings
from loadbench.mock.tokens import count_words, token_text
from loadbench.protocol.dialect import LENGTH, Answer, Dialect, Kind, LLMRequest, StreamEncoder, WireError
from loadbench.protocol.usage import Usage

STREAM_ERROR_MESSAGE = "injected mid-stream error"


def generation(req: LLMRequest, s: MockSettings) -> GenerationRequest:
    """The facts the mock needs of a request in any protocol (prompt tokens: words of every turn)."""
    prompt = sum(count_words(m.content) for m in req.messages) + count_words(req.prompt or "")
    output = req.max_tokens if req.max_tokens is not None else s.output_tokens
    if output > s.max_output_tokens:
        raise InputError(f"max_tokens is {output}, above this mock's limit of {s.max_output_tokens} "
                         "(start it with a larger --max-output-tokens)")
    return GenerationRequest(model=req.model or s.model, prompt_tokens=prompt, output_tokens=output,
                             stream=req.stream, include_usage=req.include_usage)


def uses_encoder(wire: Dialect, s: MockSettings) -> bool:
    """Whether a stream needs the encoder: every protocol but plain OpenAI, which keeps its template."""
    return wire.name != "openai" or bool(s.thinking_tokens or s.stream_error_after)


def usage_of(g: GenerationRequest, s: MockSettings) -> Usage:
    """What the answer used: its thinking tokens are output tokens too, and reported as reasoning."""
    return Usage(prompt_tokens=g.prompt_tokens, completion_tokens=g.output_tokens + s.thinking_tokens,
                 cached_tokens=g.cached_tokens or 0, reasoning_tokens=s.thinking_tokens)


@dataclass(frozen=True, slots=True)
class StreamPlan:
    """How a stream's chunks divide: ``thinking_chunks`` of reasoning, then the answer's."""

    thinking_chunks: int
    answer_chunks: int
    error_at: int | None  # the chunk that is an error event instead (None: no error)

    @property
    def content_chunks(self) -> int:
        """The chunks of the whole answer (thinking and answer), as a whole answer is timed."""
        return self.thinking_chunks + self.answer_chunks

    @property
    def chunks(self) -> int:
        """The chunks the stream writes (it ends at its error event, if any)."""
        total = self.content_chunks
        return total if self.error_at is None else min(total, self.error_at + 1)


def plan_stream(g: GenerationRequest, s: MockSettings) -> StreamPlan:
    per = s.tokens_per_chunk
    thinking = -(-s.thinking_tokens // per)
    answer = -(-g.output_tokens // per)
    return StreamPlan(thinking, answer, s.stream_error_after if s.stream_error_after else None)


class EncodedStream:
    """A stream's chunks written by the protocol's encoder, one at a time and in order (an encoder
    is stateful: it opens and closes blocks). ``chunk(k)`` for the last k carries the tail too."""

    __slots__ = ("_encoder", "_filter_every", "_g", "_per", "_plan", "_s", "_usage")

    def __init__(self, encoder: StreamEncoder, g: GenerationRequest, s: MockSettings, plan: StreamPlan) -> None:
        self._encoder, self._g, self._s, self._plan = encoder, g, s, plan
        self._per = s.tokens_per_chunk
        self._filter_every = s.filter_every if hasattr(encoder, "filter_frame") else 0
        self._usage = usage_of(g, s) if g.include_usage and not s.no_usage else None

    def head(self) -> bytes:
        """What precedes the first token: the protocol's head and the keepalive pings."""
        return self._encoder.head() + self._encoder.keepalive() * self._s.pings

    def chunk(self, k: int) -> bytes:
        plan, encoder = self._plan, self._encoder
        if k == plan.error_at:
            status = self._s.stream_error_status
            return encoder.error(WireError(STREAM_ERROR_MESSAGE, "", status))
        per = self._per
        if k < plan.thinking_chunks:
            first = k * per
            out = encoder.content(token_text(first, min(per, self._s.thinking_tokens - first)), "reasoning")
        else:
            first = (k - plan.thinking_chunks) * per
            out = encoder.content(token_text(first, min(per, self._g.output_tokens - first)))
        if self._filter_every and (k + 1) % self._filter_every == 0:
            out += encoder.filter_frame()  # type: ignore[attr-defined]
        if k == plan.content_chunks - 1:
            out += encoder.tail(LENGTH, self._usage)
        return out


def whole_body(wire: Dialect, g: GenerationRequest, s: MockSettings, response_id: str, kind: Kind) -> bytes:
    """A whole answer in the protocol: the answer's text, the thinking beside it, the usage."""
    answer = Answer(text=token_text(0, g.output_tokens), finish_reason=LENGTH,
                    usage=None if s.no_usage else usage_of(g, s), model=g.model, choices=1,
                    reasoning=token_text(0, s.thinking_tokens) if s.thinking_tokens else "")
    return wire.answer_body(answer, response_id, kind)


_SPLICE = "@@loadbench-fault-splice@@"


class EncodedTemplate:
    """A fault's view of the stream a request would have had, written by the protocol's encoder (the
    faults of ``faults.FaultServer`` in any protocol): its head, chunks, the start of a content event,
    and its end with and without the last event (the protocol's end marker)."""

    def __init__(self, wire: Dialect, g: GenerationRequest, s: MockSettings, response_id: str, kind: Kind) -> None:
        self._wire, self._g, self._s, self._id, self._kind = wire, g, s, response_id, kind
        self._encoder = wire.encoder(g.model, response_id, kind)
        self.first = self._encoder.head()

    def chunk(self, text: str) -> bytes:
        return self._encoder.content(text)

    @property
    def prefix(self) -> bytes:
        """The bytes of a content event up to its text (from a fresh encoder: this one's state is kept)."""
        fresh = self._wire.encoder(self._g.model, self._id, self._kind)
        fresh.head()
        written = fresh.content(_SPLICE)
        return written[:written.index(_SPLICE.encode())]

    @property
    def whole_prefix(self) -> bytes:
        """The bytes of the whole answer up to its text (where an endless answer grows)."""
        answer = Answer(text=_SPLICE, finish_reason=LENGTH, model=self._g.model, choices=1)
        written = self._wire.answer_body(answer, self._id, self._kind)
        return written[:written.index(_SPLICE.encode())]

    @property
    def tail(self) -> bytes:
        usage = usage_of(self._g, self._s) if self._g.include_usage and not self._s.no_usage else None
        return self._encoder.tail(LENGTH, usage)

    @property
    def unfinished_tail(self) -> bytes:
        """The tail without its last events, as many as carry the protocol's end (Bedrock's
        ``messageStop`` precedes its ``metadata``): the stream ends without its end."""
        cut = self.tail
        for _ in range(8):  # bounded: a tail holds a few events
            cut = without_last_event(cut, self._wire.stream_content_type)
            if not cut or not self._wire.decoder().feed(cut, end_of_stream=True).done:
                return cut
        return b""


def without_last_event(data: bytes, content_type: str) -> bytes:
    """``data`` (whole events) without its last one: SSE events end with a blank line; AWS event-stream
    frames start with their total length."""
    if content_type == "application/vnd.amazon.eventstream":
        at = last = 0
        while at + 4 <= len(data):
            last, at = at, at + int.from_bytes(data[at:at + 4], "big")
        return data[:last]
    separator = b"\r\n\r\n" if data.endswith(b"\r\n\r\n") else b"\n\n"
    body = data[: -len(separator)] if data.endswith(separator) else data
    cut = body.rfind(separator)
    return body[: cut + len(separator)] if cut >= 0 else b""
