"""A ``Dialect``: one wire protocol, as pure code plus per-provider data.

The verbs follow envoyproxy/ai-gateway's translator: build a request (body and headers) from
loadbench's own ``LLMRequest``; decode a response chunk by chunk (``StreamDecoder.feed(chunk,
end_of_stream)`` returns the content events, usage and model the chunk completed); decode a whole
response (``decode``); map an error (``error``). The server half mirrors them: read a client's
request (``parse_request``), write a stream (``encoder()``: a ``StreamEncoder``) or a whole answer
(``answer_body``) and an error (``error_body``), so the mock and the gateway's ingress answer in the
client's own protocol with the same code that decodes it. The worker, the eval runner and judge, the mock, the
cache and the gateway all speak a protocol through these verbs, so a new protocol is one module
(a ``Dialect`` subclass) plus its ``WireData``, registered by name (``protocol.registry``).

A dialect is pure: bytes in, typed records out; no I/O and no clock. Timing stays with the caller,
which stamps each read when it returns (every event decoded from one read shares that time).

``WireData`` is what differs between providers of one body format (Portkey keeps it in
``src/providers/<name>/api.ts``): the path of each endpoint kind, how a key is presented (``Auth``:
a header with a prefix, e.g. ``Authorization: Bearer``, ``x-api-key``, ``api-key``, or a query-string
parameter), and fixed headers (e.g. ``anthropic-version``). Azure, say, is OpenAI's dialect with other
data. A scheme that signs the whole request (AWS SigV4) needs the body and a clock: it belongs to the
caller, as a signing step after ``request`` with the time passed in, never inside the dialect.
Stream framings (SSE with ``event:`` names, AWS event-stream binary frames, a body that ends without a
marker) are each decoder's own business: ``feed`` gets raw bytes in any split.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, NamedTuple
from urllib.parse import quote

from loadbench.protocol.usage import Usage

Kind = Literal["chat", "completions"]
# "tool": the arguments of a tool call as the model streams them (content: it is generated output)
Channel = Literal["answer", "reasoning", "tool"]

# Finish reasons in loadbench's words: every dialect maps its own onto these (Anthropic's "end_turn" is
# STOP, "max_tokens" LENGTH, "tool_use" TOOL_CALLS; Bedrock's "guardrail_intervened" CONTENT_FILTER...)
# when it decodes, and back when it encodes; a reason with no equivalent passes through verbatim.
STOP, LENGTH, TOOL_CALLS, CONTENT_FILTER = "stop", "length", "tool_calls", "content_filter"


@dataclass(frozen=True, slots=True)
class Tool:
    """A tool the model may call: its name, what it does, and the JSON schema of its arguments."""

    name: str
    description: str = ""
    parameters: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ToolCall:
    """One call the model made: ``arguments`` is the JSON text as the model wrote it (it may be malformed;
    whoever runs the tool validates it)."""

    id: str
    name: str
    arguments: str = "{}"


@dataclass(frozen=True, slots=True)
class Message:
    """One turn. An assistant turn may carry ``tool_calls``; a ``tool`` turn answers the call
    ``tool_call_id`` with ``content`` (each dialect writes these in its own words)."""

    role: str
    content: str
    tool_calls: tuple[ToolCall, ...] = ()
    tool_call_id: str | None = None


@dataclass(frozen=True, slots=True)
class LLMRequest:
    """loadbench's own request, in no protocol's words: a chat (``messages``) or a completion (``prompt``)."""

    model: str
    messages: tuple[Message, ...] = ()
    prompt: str | None = None  # a completion prompt instead of messages
    max_tokens: int | None = None
    temperature: float | None = None
    stream: bool = False
    include_usage: bool = True  # ask a stream to report usage (OpenAI: stream_options.include_usage)
    tools: tuple[Tool, ...] = ()
    extra: Mapping[str, Any] = field(default_factory=dict)  # protocol fields passed through unchanged

    @property
    def kind(self) -> Kind:
        return "completions" if self.prompt is not None else "chat"


@dataclass(frozen=True, slots=True)
class WireRequest:
    path: str  # appended to the target's base URL (a query string included)
    headers: dict[str, str]
    body: bytes


@dataclass(frozen=True, slots=True)
class Auth:
    """How a key is presented: ``header`` (``name: prefix+key``), ``query`` (``?name=key``) or ``none``."""

    scheme: Literal["header", "query", "none"] = "header"
    name: str = "Authorization"
    prefix: str = "Bearer "


@dataclass(frozen=True, slots=True)
class WireData:
    """A provider's data for a dialect: endpoint paths (``{model}`` is filled in), auth, fixed headers."""

    paths: Mapping[str, str]  # endpoint kind ("chat", "completions", "models") -> path template
    auth: Auth = Auth()
    headers: Mapping[str, str] = field(default_factory=dict)


# Content and Decoded are built for every read of every stream in the worker's hot path: typed named
# tuples, immutable like the frozen records elsewhere, at a third of a frozen dataclass's build cost.
class Content(NamedTuple):
    """One content-bearing event: text the model generated (role-only and empty deltas are never one)."""

    text: str
    channel: Channel = "answer"  # "reasoning": thinking streamed apart from the answer (still output)


INVALID = "invalid"  # WireError.kind of bytes that are not the protocol at all


@dataclass(frozen=True, slots=True)
class WireError:
    """An error the protocol reported: an error answer, an error event in a stream, or bytes that are
    not the protocol (``kind`` ``INVALID``)."""

    message: str
    kind: str = ""  # the protocol's error type (OpenAI: "rate_limit_error", ...)
    status: int | None = None


class Decoded(NamedTuple):
    """What one ``feed`` completed, in order of arrival within the chunk."""

    content: tuple[Content, ...] = ()
    usage: Usage | None = None  # the last usage report completed by this chunk
    model: str | None = None  # the model the response names, on the first chunk that names it
    finish_reason: str | None = None
    error: WireError | None = None  # the first error of this chunk
    tool_call: bool = False  # a tool call began or continued (not text)
    done: bool = False  # the protocol's end of answer arrived (OpenAI: data: [DONE])
    # the tool calls this chunk completed, whole (a decoder assembles a call's streamed argument pieces,
    # which it reports as content on the "tool" channel as they arrive, and hands over the call once)
    tool_calls: tuple[ToolCall, ...] = ()


NOTHING = Decoded()


@dataclass(frozen=True, slots=True)
class Answer:
    """A whole (non-streamed) response, decoded."""

    text: str = ""  # the answer's text, every choice joined
    finish_reason: str | None = None  # of the first choice, in loadbench's words (STOP, LENGTH, ...)
    usage: Usage | None = None  # None: the response reported none
    model: str | None = None
    choices: int = 0
    tool_call: bool = False
    error: WireError | None = None  # the body is an error object, or not an answer of this protocol
    tool_calls: tuple[ToolCall, ...] = ()  # the calls the answer makes, in order
    reasoning: str = ""  # thinking returned beside the answer, where the protocol returns it


class StreamDecoder(ABC):
    """Decodes one streamed response; one instance per response (it carries partial events)."""

    @abstractmethod
    def feed(self, chunk: bytes, end_of_stream: bool = False) -> Decoded:
        """Everything ``chunk`` completes; ``end_of_stream`` says no byte follows (an event left
        incomplete then is dropped, as SSE requires)."""


class StreamEncoder(ABC):
    """Writes one streamed response as a server speaking the protocol does (the server half: the mock,
    the gateway answering a client in the client's protocol). One instance per response; the caller
    writes ``head()``, then ``content`` per chunk, then ``tail`` (or ``error`` mid-stream), and owns
    the timing. Every method returns the exact bytes of the body (framing included)."""

    @abstractmethod
    def head(self) -> bytes:
        """What precedes the first content (OpenAI: a role-only delta; Anthropic: ``message_start``);
        may be empty. Never content."""

    @abstractmethod
    def content(self, text: str, channel: Channel = "answer") -> bytes:
        """One chunk carrying ``text`` (the tokens of one chunk) on ``channel``."""

    def tool_call(self, call: ToolCall) -> bytes:
        """One whole tool call (its name and all of its arguments in one chunk)."""
        raise NotImplementedError(f"{type(self).__name__} cannot stream a tool call")

    @abstractmethod
    def tail(self, finish_reason: str, usage: Usage | None) -> bytes:
        """The end: the finish reason (loadbench's words), usage (None: not reported), the end marker."""

    @abstractmethod
    def error(self, error: WireError) -> bytes:
        """An error reported inside a stream that already started."""

    def keepalive(self) -> bytes:
        """A structural event that carries nothing (Anthropic's ``ping``); empty where there is none."""
        return b""


class Dialect(ABC):
    """One wire protocol. Subclasses set ``name`` and ``data`` and implement the abstract verbs; the
    server half (``parse_request``, ``encoder``, ``answer_body``) is implemented by the dialects a
    server (the mock, the gateway's ingress) speaks."""

    name: str
    data: WireData
    content_type = "application/json"
    stream_accept = "text/event-stream"
    stream_content_type = "text/event-stream"  # what a server answers a streamed request with
    # the server half's routes: (method, aiohttp path pattern) a server speaking this dialect answers on,
    # relative to the host (a pattern may hold {model} or {tail:.*}: parse_request gets the actual path)
    server_routes: tuple[tuple[str, str], ...] = ()
    end_marker = "its end marker"  # how a complete stream ends, as an error message names it

    def path(self, kind: str, model: str = "") -> str:
        return self.data.paths[kind].replace("{model}", quote(model, safe=""))

    def headers(self, api_key: str | None, *, stream: bool = True,
                extra: Mapping[str, str] | None = None) -> dict[str, str]:
        """The headers of every request: content type, accept (``stream``), the provider's fixed
        headers, the target's own ``extra`` headers, then the key (which wins over an extra header)."""
        headers = {"Content-Type": self.content_type}
        if stream:
            headers["Accept"] = self.stream_accept
        headers.update(self.data.headers)
        if extra:
            headers.update(extra)
        headers.update(self.auth(api_key))
        return headers

    def auth(self, api_key: str | None) -> dict[str, str]:
        """The header that presents ``api_key`` ({} when there is none or it goes in the query)."""
        auth = self.data.auth
        return {auth.name: auth.prefix + api_key} if api_key and auth.scheme == "header" else {}

    def url(self, base_url: str, kind: str, model: str = "", api_key: str | None = None) -> str:
        """``base_url`` + the endpoint's path (+ the key when this provider takes it in the query)."""
        return base_url.rstrip("/") + self._keyed(self.path(kind, model), api_key)

    def request(self, req: LLMRequest, api_key: str | None = None) -> WireRequest:
        return WireRequest(self._keyed(self.path(req.kind, req.model), api_key),
                           self.headers(api_key, stream=req.stream), self.body(req))

    def _keyed(self, path: str, api_key: str | None) -> str:
        auth = self.data.auth
        if not api_key or auth.scheme != "query":
            return path
        return path + ("&" if "?" in path else "?") + f"{auth.name}={quote(api_key, safe='')}"

    @abstractmethod
    def body(self, req: LLMRequest) -> bytes:
        """The request body in this protocol."""

    @abstractmethod
    def decoder(self) -> StreamDecoder:
        """A fresh decoder for one streamed response."""

    @abstractmethod
    def decode(self, body: bytes) -> Answer:
        """A whole response body."""

    @abstractmethod
    def error(self, status: int, body: bytes) -> WireError:
        """The error an error answer (``status`` >= 400) carries; the message is short and log-safe."""

    @abstractmethod
    def error_body(self, message: str, status: int, kind: str | None = None) -> bytes:
        """An error answer in this protocol (what a server speaking it sends)."""

    @abstractmethod
    def usage_in(self, tail: bytes) -> Usage | None:
        """The usage a finished response reported, read from its last bytes (a whole body, or a
        stream's last events) without decoding the rest; None when it reported none."""

    @abstractmethod
    def question(self, body: Mapping[str, Any]) -> str:
        """The text a request asks about (the last user message, or the prompt), from its parsed body."""

    # ------------------------------------------------------------------ the server half
    def parse_request(self, body: bytes, path: str = "") -> LLMRequest:
        """A client's request in this protocol as loadbench's own (``path``: the request's path and
        query, which names the model or streaming in some protocols). Raises ``InputError`` with a
        message fit for a 400 answer."""
        raise NotImplementedError(f"the {self.name} dialect has no server half")

    def encoder(self, model: str, response_id: str, kind: Kind = "chat") -> StreamEncoder:
        """A fresh encoder for one streamed response."""
        raise NotImplementedError(f"the {self.name} dialect has no server half")

    def answer_body(self, answer: Answer, response_id: str, kind: Kind = "chat") -> bytes:
        """A whole (non-streamed) response carrying ``answer``."""
        raise NotImplementedError(f"the {self.name} dialect has no server half")
