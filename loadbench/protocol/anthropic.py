"""The ``anthropic`` dialect: Anthropic's Messages API (``POST /v1/messages``), both halves.

- request: ``x-api-key`` and ``anthropic-version`` headers; system turns go in ``system``, tool calls
  and results are ``tool_use`` / ``tool_result`` blocks, ``max_tokens`` is always sent (the API
  requires it); a completion prompt is one user turn.
- stream: SSE whose events name their type (``message_start``, ``content_block_start`` / ``_delta`` /
  ``_stop``, ``message_delta``, ``message_stop``, ``ping``, ``error``). Content is only a delta that
  carries text: ``text_delta`` (answer), ``thinking_delta`` (reasoning), ``input_json_delta`` (tool
  arguments, a whole ``ToolCall`` at the block's stop); ``message_start``, ``ping``, an empty
  ``content_block_start`` and ``signature_delta`` never are. ``message_stop`` is the end marker.
- usage: ``message_start`` carries the input counts, ``message_delta`` the cumulative counts (output,
  and input and cache counts in newer streams): the decoder merges them and reports once, at
  ``message_delta``. ``input_tokens`` excludes cache reads and writes, so prompt tokens are
  ``input_tokens + cache_read_input_tokens + cache_creation_input_tokens``; thinking tokens come from
  ``output_tokens_details.thinking_tokens``.
- finish reasons: ``end_turn`` and ``stop_sequence`` are STOP, ``max_tokens`` LENGTH, ``tool_use``
  TOOL_CALLS, ``refusal`` CONTENT_FILTER; errors ``{"type": "error", "error": {"type", "message"}}``
  with their statuses (``overloaded_error`` is 529).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from loadbench.errors import InputError
from loadbench.protocol.dialect import (
    CONTENT_FILTER,
    INVALID,
    LENGTH,
    STOP,
    TOOL_CALLS,
    Answer,
    Auth,
    Channel,
    Dialect,
    Kind,
    LLMRequest,
    Message,
    StreamDecoder,
    StreamEncoder,
    Tool,
    ToolCall,
    WireData,
    WireError,
)
from loadbench.protocol.eventdecoder import Collected, JsonEventDecoder
from loadbench.protocol.finish import FinishWords
from loadbench.protocol.jsonscan import (
    arguments_object,
    arguments_text,
    last_object,
    loads_object,
    number,
    positive_int,
    request_object,
)
from loadbench.protocol.sseout import named_event
from loadbench.protocol.toolcalls import ToolCalls
from loadbench.protocol.turns import block_turns, last_user_text, turn_messages
from loadbench.protocol.usage import Usage, count

VERSION = "2023-06-01"
DEFAULT_MAX_TOKENS = 4096  # the API refuses a request without max_tokens
ERROR_STATUS = {"invalid_request_error": 400, "authentication_error": 401, "billing_error": 402,
                "permission_error": 403, "not_found_error": 404, "request_too_large": 413,
                "rate_limit_error": 429, "api_error": 500, "timeout_error": 504, "overloaded_error": 529}
_STATUS_ERROR = {status: kind for kind, status in ERROR_STATUS.items()}
FINISH = FinishWords({"end_turn": STOP, "stop_sequence": STOP, "max_tokens": LENGTH, "tool_use": TOOL_CALLS,
                      "refusal": CONTENT_FILTER},
                     {STOP: "end_turn", LENGTH: "max_tokens", TOOL_CALLS: "tool_use", CONTENT_FILTER: "refusal"})
_BLOCK = {"answer": "text", "reasoning": "thinking", "tool": "tool_use"}


def error_type(status: int, kind: str | None = None) -> str:
    """Anthropic's error ``type``: ``kind`` when it is one, else the type of the HTTP status (another
    protocol's error, e.g. a Bedrock ``throttlingException``, becomes ``rate_limit_error``)."""
    if kind in ERROR_STATUS:
        return kind
    return _STATUS_ERROR.get(status, "api_error" if status >= 500 else "invalid_request_error")


def usage_from(usage: Mapping[str, Any]) -> Usage:
    """An Anthropic ``usage`` object as a ``Usage`` (cache reads and writes are part of the prompt)."""
    cached, written = count(usage.get("cache_read_input_tokens")), count(usage.get("cache_creation_input_tokens"))
    details = usage.get("output_tokens_details")
    return Usage(prompt_tokens=count(usage.get("input_tokens")) + cached + written,
                 completion_tokens=count(usage.get("output_tokens")), cached_tokens=cached,
                 cache_write_tokens=written,
                 reasoning_tokens=count(details.get("thinking_tokens")) if isinstance(details, dict) else 0)


def usage_object(usage: Usage) -> dict[str, Any]:
    """``usage`` in Anthropic's words (``input_tokens`` without the cache reads and writes)."""
    obj: dict[str, Any] = {
        "input_tokens": max(usage.prompt_tokens - usage.cached_tokens - usage.cache_write_tokens, 0),
        "output_tokens": usage.completion_tokens, "cache_creation_input_tokens": usage.cache_write_tokens,
        "cache_read_input_tokens": usage.cached_tokens}
    if usage.reasoning_tokens:
        obj["output_tokens_details"] = {"thinking_tokens": usage.reasoning_tokens}
    return obj


def request_key(headers: Mapping[str, str]) -> str | None:
    """The key a client presented (server side): ``x-api-key``, or a bearer token, which newer SDKs
    send instead (``headers`` with lower-case names)."""
    key = headers.get("x-api-key")
    if key:
        return key
    auth = headers.get("authorization", "")
    return auth[7:] if auth[:7].lower() == "bearer " else None


def error_object(message: str, kind: str) -> dict[str, Any]:
    return {"type": "error", "error": {"type": kind, "message": message}}


def _error_of(obj: Mapping[str, Any], status: int | None = None) -> WireError:
    err = obj.get("error")
    if not isinstance(err, dict):
        return WireError(str(err)[:200], "", status)
    kind = str(err.get("type") or "")
    return WireError(str(err.get("message", ""))[:200], kind, status or ERROR_STATUS.get(kind))


def _text(content: object) -> str:
    """A content value's text: a string, or its ``text`` blocks joined."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(b["text"] for b in content
                       if isinstance(b, dict) and b.get("type", "text") == "text" and isinstance(b.get("text"), str))
    return ""


def _tool_result(m: Message) -> dict[str, Any]:
    return {"type": "tool_result", "tool_use_id": m.tool_call_id or "", "content": m.content}


def _tool_use(c: ToolCall) -> dict[str, Any]:
    return {"type": "tool_use", "id": c.id, "name": c.name, "input": arguments_object(c.arguments)}


def messages_body(messages: tuple[Message, ...]) -> tuple[str, list[dict[str, Any]]]:
    """(the system text, the ``messages`` list): tool results are ``tool_result`` blocks of user turns,
    an assistant's calls ``tool_use`` blocks after its text."""
    system, turns = block_turns(messages, text=lambda t: {"type": "text", "text": t}, call=_tool_use,
                                result=_tool_result)
    return system, [{"role": role, "content": blocks} for role, blocks in turns]


def _block_text(b: dict[str, Any]) -> str | None:
    return b["text"] if b.get("type", "text") == "text" and isinstance(b.get("text"), str) else None


def _block_call(b: dict[str, Any]) -> ToolCall | None:
    if b.get("type") != "tool_use":
        return None
    return ToolCall(str(b.get("id", "")), str(b.get("name", "")), arguments_text(b.get("input")))


def _block_result(b: dict[str, Any]) -> Message | None:
    if b.get("type") != "tool_result":
        return None
    return Message("tool", _text(b.get("content")), tool_call_id=str(b.get("tool_use_id", "")))


def _parse_messages(raw: object) -> list[Message]:
    if not isinstance(raw, list):
        raise InputError("'messages' must be a list")
    out: list[Message] = []
    for m in raw:
        if not isinstance(m, dict):
            raise InputError("every message must be an object")
        role, content = str(m.get("role", "user")), m.get("content")
        if isinstance(content, list):
            out += turn_messages(role, content, text=_block_text, call=_block_call, result=_block_result)
        else:
            out.append(Message(role, _text(content)))
    return out


class AnthropicStreamDecoder(JsonEventDecoder):
    """SSE events typed by their ``type``; one instance per response."""

    def __init__(self) -> None:
        super().__init__()
        self._tools = ToolCalls()
        self._usage: dict[str, Any] = {}
        self._model = False

    def answer_text(self, obj: dict[str, Any]) -> str | None:
        if obj.get("type") == "content_block_delta":
            delta = obj.get("delta")
            if type(delta) is dict and delta.get("type") == "text_delta":
                text = delta.get("text")
                return text if type(text) is str else None
        return None

    def event(self, obj: dict[str, Any], out: Collected) -> None:
        kind = obj.get("type")
        if kind == "content_block_delta":
            delta = obj.get("delta")
            if not isinstance(delta, dict):
                return
            dtype = delta.get("type")
            if dtype == "text_delta":
                out.text(delta.get("text"))
            elif dtype == "thinking_delta":
                out.text(delta.get("thinking"), "reasoning")
            elif dtype == "input_json_delta":
                out.arguments(self._tools, obj.get("index"), delta.get("partial_json"))
        elif kind == "content_block_start":
            block = obj.get("content_block")
            if not isinstance(block, dict):
                return
            btype = block.get("type")
            if btype == "tool_use":
                out.tool = True
                self._tools.start(obj.get("index"), str(block.get("id", "")), str(block.get("name", "")))
            elif btype == "text":
                out.text(block.get("text"))
            elif btype == "thinking":
                out.text(block.get("thinking"), "reasoning")
        elif kind == "content_block_stop":
            call = self._tools.finish(obj.get("index"))
            if call is not None:
                out.calls.append(call)
        elif kind == "message_start":
            message = obj.get("message")
            if isinstance(message, dict):
                if isinstance(message.get("usage"), dict):
                    self._usage.update(message["usage"])
                if not self._model and message.get("model"):
                    out.model, self._model = str(message["model"]), True
        elif kind == "message_delta":
            delta = obj.get("delta")
            if isinstance(delta, dict):
                out.finish = FINISH.ours(delta.get("stop_reason")) or out.finish
            reported = obj.get("usage")
            if isinstance(reported, dict):
                self._usage.update({k: v for k, v in reported.items() if v is not None})
                out.usage = usage_from(self._usage)
        elif kind == "message_stop":
            out.done = True
        elif kind == "error":
            out.fail(_error_of(obj))
        # ping and event types added later carry nothing we use


class AnthropicStreamEncoder(StreamEncoder):
    """A Messages stream as the API writes it: ``message_start``; per block ``content_block_start``,
    deltas and ``content_block_stop`` (a block opens with the first chunk of its channel, a thinking
    block closes with its ``signature_delta``); ``message_delta`` with the cumulative usage;
    ``message_stop``. ``usage``: the input counts ``message_start`` reports (zero when not given:
    ``message_delta`` reports them all again at the end)."""

    def __init__(self, model: str, response_id: str, usage: Usage | None = None) -> None:
        self._model, self._id, self._usage = model, response_id, usage
        self._index = -1
        self._open: str | None = None  # the type of the open block

    def head(self) -> bytes:
        usage = usage_object(self._usage or Usage())
        usage["output_tokens"] = 1 if self._usage else 0
        return named_event("message_start", {"type": "message_start", "message": {
            "id": self._id, "type": "message", "role": "assistant", "model": self._model, "content": [],
            "stop_reason": None, "stop_sequence": None, "usage": usage}})

    def _start(self, block: dict[str, Any]) -> bytes:
        out = self._close()
        self._index += 1
        self._open = block["type"]
        return out + named_event("content_block_start", {"type": "content_block_start", "index": self._index,
                                                         "content_block": block})

    def _delta(self, delta: dict[str, Any]) -> bytes:
        return named_event("content_block_delta", {"type": "content_block_delta", "index": self._index,
                                                   "delta": delta})

    def _close(self) -> bytes:
        if self._open is None:
            return b""
        out = self._delta({"type": "signature_delta", "signature": ""}) if self._open == "thinking" else b""
        self._open = None
        return out + named_event("content_block_stop", {"type": "content_block_stop", "index": self._index})

    def content(self, text: str, channel: Channel = "answer") -> bytes:
        block = _BLOCK[channel]
        if block == "tool_use":
            if self._open != "tool_use":
                raise ValueError("tool arguments stream inside a tool call: write it with tool_call()")
            return self._delta({"type": "input_json_delta", "partial_json": text})
        out = b"" if self._open == block else self._start(
            {"type": "text", "text": ""} if block == "text" else {"type": "thinking", "thinking": "", "signature": ""})
        key = "text" if block == "text" else "thinking"
        return out + self._delta({"type": f"{key}_delta", key: text})

    def tool_call(self, call: ToolCall) -> bytes:
        out = self._start({"type": "tool_use", "id": call.id, "name": call.name, "input": {}})
        out += self._delta({"type": "input_json_delta", "partial_json": call.arguments})
        return out + self._close()

    def tail(self, finish_reason: str, usage: Usage | None) -> bytes:
        reported = usage_object(usage) if usage is not None else {"output_tokens": 0}
        return self._close() + named_event("message_delta", {
            "type": "message_delta", "delta": {"stop_reason": FINISH.theirs(finish_reason),
                                               "stop_sequence": None},
            "usage": reported}) + named_event("message_stop", {"type": "message_stop"})

    def error(self, error: WireError) -> bytes:
        return named_event("error", error_object(error.message, error_type(error.status or 500, error.kind)))

    def keepalive(self) -> bytes:
        return named_event("ping", {"type": "ping"})


class AnthropicDialect(Dialect):
    """Anthropic Messages (``/v1/messages``; a completion prompt is sent as one user turn)."""

    name = "anthropic"
    end_marker = "event: message_stop"
    server_routes = (("POST", "/v1/messages"),)

    def __init__(self, data: WireData) -> None:
        self.data = data

    def body(self, req: LLMRequest) -> bytes:
        messages = req.messages if req.prompt is None else (Message("user", req.prompt),)
        system, turns = messages_body(messages)
        body: dict[str, Any] = {"model": req.model, "max_tokens": req.max_tokens or DEFAULT_MAX_TOKENS,
                                "messages": turns}
        if system:
            body["system"] = system
        if req.stream:
            body["stream"] = True
        if req.temperature is not None:
            body["temperature"] = req.temperature
        if req.tools:
            body["tools"] = [{"name": t.name, "description": t.description, "input_schema": dict(t.parameters)}
                             for t in req.tools]
        body.update(req.extra)
        return orjson.dumps(body)

    def decoder(self) -> StreamDecoder:
        return AnthropicStreamDecoder()

    def decode(self, body: bytes) -> Answer:
        obj = loads_object(body)
        if obj is None:
            return Answer(error=WireError(f"not a JSON object: {body[:80]!r}", INVALID))
        if obj.get("type") == "error" or "error" in obj:
            return Answer(error=_error_of(obj))
        blocks = obj.get("content")
        if not isinstance(blocks, list):
            return Answer(error=WireError("the body has no 'content' list", INVALID))
        text, reasoning, calls = [], [], []
        for b in blocks:
            if not isinstance(b, dict):
                continue
            if b.get("type") == "text" and isinstance(b.get("text"), str):
                text.append(b["text"])
            elif b.get("type") == "thinking" and isinstance(b.get("thinking"), str):
                reasoning.append(b["thinking"])
            elif (call := _block_call(b)) is not None:
                calls.append(call)
        usage = obj.get("usage")
        return Answer(text="".join(text), finish_reason=FINISH.ours(obj.get("stop_reason")),
                      usage=usage_from(usage) if isinstance(usage, dict) else None,
                      model=str(obj["model"]) if obj.get("model") else None, choices=1, tool_call=bool(calls),
                      tool_calls=tuple(calls), reasoning="".join(reasoning))

    def error(self, status: int, body: bytes) -> WireError:
        obj = loads_object(body)
        if obj is not None and isinstance(obj.get("error"), dict):
            err = _error_of(obj, status)
            return WireError(err.message, err.kind or error_type(status), status)
        return WireError(body[:200].decode("utf-8", "replace"), error_type(status), status)

    def error_body(self, message: str, status: int, kind: str | None = None) -> bytes:
        return orjson.dumps(error_object(message, error_type(status, kind)))

    def usage_in(self, tail: bytes) -> Usage | None:
        # a stream's last usage is message_delta's (cumulative: in current streams it repeats the input
        # counts); a whole answer has one usage object
        obj = last_object(tail, b"usage")
        return usage_from(obj) if obj is not None and "output_tokens" in obj else None

    def question(self, body: Mapping[str, Any]) -> str:
        return last_user_text(body.get("messages"), _text)

    # ------------------------------------------------------------------ the server half
    def parse_request(self, body: bytes, path: str = "") -> LLMRequest:
        obj = request_object(body)
        max_tokens = positive_int(obj, "max_tokens")
        if max_tokens is None:
            raise InputError("'max_tokens' is required")
        stream = obj.get("stream", False)
        if not isinstance(stream, bool):
            raise InputError("'stream' must be true or false")
        system = obj.get("system")
        messages = _parse_messages(obj.get("messages"))
        if system:
            messages.insert(0, Message("system", _text(system)))
        raw_tools = obj.get("tools")
        tools = tuple(Tool(str(t.get("name", "")), str(t.get("description", "")), t.get("input_schema") or {})
                      for t in raw_tools if isinstance(t, dict)) if isinstance(raw_tools, list) else ()
        model = obj.get("model")
        known = {"model", "max_tokens", "messages", "system", "stream", "temperature", "tools"}
        return LLMRequest(model=model if isinstance(model, str) else "", messages=tuple(messages),
                          max_tokens=max_tokens, temperature=number(obj.get("temperature")), stream=stream,
                          tools=tools, extra={k: v for k, v in obj.items() if k not in known})

    def encoder(self, model: str, response_id: str, kind: Kind = "chat") -> StreamEncoder:
        return AnthropicStreamEncoder(model, response_id)

    def answer_body(self, answer: Answer, response_id: str, kind: Kind = "chat") -> bytes:
        blocks: list[dict[str, Any]] = []
        if answer.reasoning:
            blocks.append({"type": "thinking", "thinking": answer.reasoning, "signature": ""})
        if answer.text or not answer.tool_calls:
            blocks.append({"type": "text", "text": answer.text})
        blocks += [_tool_use(c) for c in answer.tool_calls]
        finish = answer.finish_reason or STOP
        return orjson.dumps({"id": response_id, "type": "message", "role": "assistant", "model": answer.model or "",
                             "content": blocks, "stop_reason": FINISH.theirs(finish),
                             "stop_sequence": None, "usage": usage_object(answer.usage or Usage())})


ANTHROPIC_DATA = WireData(paths={"chat": "/v1/messages", "completions": "/v1/messages"},
                          auth=Auth("header", "x-api-key", ""), headers={"anthropic-version": VERSION})
ANTHROPIC = AnthropicDialect(ANTHROPIC_DATA)
