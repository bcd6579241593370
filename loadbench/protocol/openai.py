"""The ``openai`` dialect (chat and text completions), the one home of OpenAI's wire format for the
worker, the gateway, the mock, the cache, the eval runner and the judge.

- ``OPENAI``: the registered ``Dialect`` (request body and headers, ``StreamDecoder``, whole-answer
  decoding, error mapping, usage, question text); ``OPENAI_DATA``: its paths and ``Bearer`` auth;
- ``DONE`` / ``DONE_EVENT``: the end-of-stream sentinel, as a ``data`` payload and as a whole event;
- ``error_body`` / ``error_event`` / ``error_message``: the OpenAI error object, as a JSON body, as an
  SSE event, and read back from a body; ``is_error_body`` / ``is_answer``: a body's shape at a glance;
- usage: ``usage_from`` (a parsed ``usage`` object), ``usage_in`` and ``completion_tokens`` (raw bytes);
- answer text: ``choice_text`` (one choice of a chunk or of a whole answer), ``answer_text`` (a whole
  answer), ``stream_text`` (a stream's raw bytes); question text: ``question_text`` (a request body);
- the content-delta rule: a chunk carries a token when a choice has a non-empty ``content``,
  ``reasoning_content``, ``reasoning`` (chat), ``text`` (completions) or tool-call ``arguments`` (chat:
  a tool call's arguments are generated output, on the "tool" channel). ``choice_text`` applies it
  to parsed JSON (the decoder, hence the worker and eval), ``content_deltas`` to raw bytes without
  parsing (the gateway's relay); a role-only chunk or a later ``"content": ""`` is not a token under
  either.
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping
from typing import Any

import orjson

from loadbench.errors import InputError
from loadbench.protocol.chunktemplate import ChunkTemplate, sole_answer
from loadbench.protocol.dialect import (
    INVALID,
    NOTHING,
    Answer,
    Auth,
    Channel,
    Content,
    Decoded,
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
from loadbench.protocol.jsonscan import last_object, loads_object, positive_int, request_object
from loadbench.protocol.sse import SSEDecoder
from loadbench.protocol.usage import Usage, count

DONE = b"[DONE]"
DONE_EVENT = b"data: " + DONE + b"\n\n"
CONTENT_KEYS = ("content", "reasoning_content", "reasoning", "text")
# Text inside a JSON string has its quotes escaped, so the pattern cannot match generated text.
TOOL_ARGUMENTS_KEY = "arguments"  # inside a streamed tool call's ``function``
_CONTENT_RE = re.compile(rb'"(?:' + b"|".join(k.encode() for k in (*CONTENT_KEYS, TOOL_ARGUMENTS_KEY))
                         + rb')"\s*:\s*"(?!")')
_SPLICE = "\x00loadbench-splice\x00"  # where a content chunk's text goes in its template
_USAGE_RE = re.compile(rb'"usage"\s*:\s*\{[^{}]*?"completion_tokens"\s*:\s*(\d+)')
_ERROR_TYPES = {400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
                404: "not_found_error", 405: "invalid_request_error", 408: "invalid_request_error",
                413: "invalid_request_error", 429: "rate_limit_error"}


def content_deltas(raw: bytes) -> int:
    """How many token-carrying deltas the raw SSE bytes hold (the rule above, without parsing).

    The relay calls this on every read, so the common shape (every ``"content"`` key followed
    directly by ``:"``, no reasoning or text keys) is counted with three byte counts; anything else
    goes through the regular expression, which gives the same answer for the common shape too."""
    keys = raw.count(b'"content"')
    direct = raw.count(b'"content":"')
    if keys == direct and b'"reasoning' not in raw and b'"text"' not in raw and b'"arguments"' not in raw:
        return direct - raw.count(b'"content":""')
    return content_deltas_slow(raw)


def content_deltas_compact(raw: bytes) -> int:
    """``content_deltas`` for compact ``content`` / ``reasoning_content`` deltas (two byte counts).

    Exact when every token-carrying key of ``raw`` is one of those two written as ``KEY":"``; the
    relay checks that on a stream's first token and uses the full rule otherwise."""
    n = raw.count(b'content":"')
    return n - raw.count(b'content":""') if n else 0


def content_deltas_slow(raw: bytes) -> int:
    """``content_deltas`` for any shape (whitespace around the colon, reasoning and text keys)."""
    return len(_CONTENT_RE.findall(raw))


def completion_tokens(tail: bytes) -> int | None:
    """``usage.completion_tokens`` from the end of a stream or a whole JSON body, if present."""
    found = _USAGE_RE.findall(tail)
    return int(found[-1]) if found else None


def error_type(status: int) -> str:
    """The OpenAI error ``type`` for an HTTP status."""
    return _ERROR_TYPES.get(status, "server_error" if status >= 500 else "invalid_request_error")


def error_body(message: str, kind: str, code: str | int | None = None, param: str | None = None) -> bytes:
    """``{"error": {"message", "type", "param", "code"}}``, what OpenAI clients raise as an error."""
    return orjson.dumps({"error": {"message": message, "type": kind, "param": param, "code": code}})


def error_event(message: str, code: int, kind: str = "upstream_error") -> bytes:
    """The error object as an SSE event: how a stream that already started reports a failure."""
    return b"data: " + error_body(message, kind, code) + b"\n\n"


def error_message(body: bytes, limit: int = 200) -> str:
    """A short, log-safe message from an error response body."""
    try:
        obj = orjson.loads(body)
        if isinstance(obj, dict) and isinstance(obj.get("error"), dict):
            return str(obj["error"].get("message", ""))[:limit]
    except orjson.JSONDecodeError:
        pass
    return body[:limit].decode("utf-8", "replace")


def is_error_body(body: bytes) -> bool:
    """The body is an OpenAI error object (``{"error": {...}}`` or ``{"error": "..."}``)."""
    obj = loads_object(body)
    return obj is not None and isinstance(obj.get("error"), dict | str)


def is_answer(body: bytes) -> bool:
    """The body is an OpenAI answer (a JSON object with a ``choices`` list)."""
    return answer_object(body) is not None


def answer_object(body: bytes) -> dict[str, Any] | None:
    """The parsed body when it is an OpenAI answer (``is_answer``), else None: a caller that checks an
    answer and then reads its fields (its usage) parses it once."""
    obj = loads_object(body)
    return obj if obj is not None and isinstance(obj.get("choices"), list) else None


def usage_from(usage: object) -> Usage:
    """A parsed ``usage`` object as a ``Usage`` (cached and reasoning tokens from their details)."""
    if not isinstance(usage, dict):
        return Usage()
    details = usage.get("prompt_tokens_details") or {}
    out_details = usage.get("completion_tokens_details") or {}
    return Usage(
        prompt_tokens=count(usage.get("prompt_tokens")), completion_tokens=count(usage.get("completion_tokens")),
        cached_tokens=count(details.get("cached_tokens") if isinstance(details, dict) else 0),
        cache_write_tokens=count(usage.get("cache_creation_input_tokens")
                                 or (details.get("cache_write_tokens") if isinstance(details, dict) else 0)),
        reasoning_tokens=count(out_details.get("reasoning_tokens") if isinstance(out_details, dict) else 0))


def _reported(usage: object) -> Usage | None:
    """A usage report: a ``usage`` object with an integer ``completion_tokens`` (else the server gave
    none, and tokens are estimated)."""
    if isinstance(usage, dict) and isinstance(usage.get("completion_tokens"), int):
        return usage_from(usage)
    return None


def usage_in(tail: bytes) -> Usage | None:
    """The last ``usage`` object in a whole answer or in a stream's last events (None: there is none).

    Only that object is parsed, not the answer around it (a whole answer's text can be long): a JSON
    string escapes its quotes, so ``"usage"`` with bare quotes is a key, and the object ends at the
    ``}`` that balances its ``{``."""
    obj = last_object(tail, b"usage")
    return None if obj is None else usage_from(obj)


def choice_text(choice: object) -> tuple[str, str]:
    """(answer text, reasoning text) of one choice: a stream chunk's ``delta`` (``content``; reasoning
    models stream thinking apart as ``reasoning_content`` or ``reasoning``, still generated output),
    a whole answer's ``message.content``, or a completion's ``text``. Either may be ""."""
    if not isinstance(choice, dict):
        return "", ""
    delta = choice.get("delta")
    if isinstance(delta, dict):
        text = delta.get("content")
        if isinstance(text, str) and text:
            return text, ""
        for key in CONTENT_KEYS[1:3]:
            value = delta.get(key)
            if isinstance(value, str) and value:
                return "", value
        return "", ""
    message = choice.get("message")
    text = message.get("content") if isinstance(message, dict) else choice.get(CONTENT_KEYS[3])
    return (text, "") if isinstance(text, str) else ("", "")


def has_tool_call(choice: dict[str, Any]) -> bool:
    """The choice (a chunk's delta or a whole message) calls a tool rather than answering in text."""
    part = choice.get("delta")
    if not isinstance(part, dict):
        part = choice.get("message")
    return isinstance(part, dict) and bool(part.get("tool_calls") or part.get("function_call"))


def _error_of(err: object) -> WireError:
    """The ``error`` member of a body or an event (an object, or a bare message)."""
    if isinstance(err, dict):
        return WireError(str(err.get("message")), str(err.get("type") or ""))
    return WireError(str(err))


def answer_text(body: bytes) -> str | None:
    """The text of a whole chat or text completion, every choice joined (None when it is not one)."""
    answer = OPENAI.decode(body)
    return None if answer.error is not None or not is_answer(body) else answer.text


def stream_text(raw: bytes) -> str:
    """The answer text of a whole stream's bytes, joined (events that are not JSON chunks are skipped)."""
    decoded = OPENAI.decoder().feed(raw, end_of_stream=True)
    return "".join(c.text for c in decoded.content if c.channel == "answer")


def question_text(body: Mapping[str, Any]) -> str:
    """The last user message (chat) or the prompt (completions) of a parsed request body ("" if none
    or not a string)."""
    messages = body.get("messages")
    if isinstance(messages, list):
        users = [m.get("content") for m in messages if isinstance(m, dict) and m.get("role") == "user"]
        text: object = users[-1] if users else ""
    else:
        text = body.get("prompt")
    return text if isinstance(text, str) else ""


def _choices(choices: list[Any]) -> tuple[Content | None, str | None, bool]:
    """(the content event, finish reason, tool call) of a chunk's choices, any number of them."""
    answer = reasoning = ""
    finish: str | None = None
    tool = False
    for choice in choices:
        a, r = choice_text(choice)
        answer, reasoning = answer + a, reasoning + r
        if isinstance(choice, dict):
            if choice.get("finish_reason"):
                finish = str(choice["finish_reason"])
            tool = tool or has_tool_call(choice)
    piece = Content(answer) if answer else Content(reasoning, "reasoning") if reasoning else None
    return piece, finish, tool


# The decoder builds its named tuples with tuple.__new__: their own __new__ is a Python-level call that
# cost about half of a record's build, once per token in the worker (fields in declaration order).
_new = tuple.__new__


class OpenAIStreamDecoder(StreamDecoder):
    """SSE framing, JSON chunks, ``data: [DONE]`` at the end. Several choices' text in one chunk is one
    content event (a load test asks for one choice; the worker times a chunk once)."""

    __slots__ = ("_calls", "_model", "_sse", "_template")

    def __init__(self) -> None:
        self._sse = SSEDecoder()
        self._model = False  # the model was reported (once: every chunk repeats it)
        self._calls: dict[int, _PartialCall] = {}  # tool calls under way, by their index
        self._template = ChunkTemplate()  # the stream's answer chunk around its text, once learned

    def feed(self, chunk: bytes, end_of_stream: bool = False) -> Decoded:
        # the common read, once per token: one answer chunk, the same bytes as the last but for its text
        template = self._template
        if template.active and self._sse.idle and not end_of_stream:
            text = template.text(chunk)
            if text is not None:
                return _new(Decoded, ((_new(Content, (text, "answer")),), None, None, None, None, False, False,
                                      ()))
            decoded = self._feed(chunk, end_of_stream)
            if self._sse.idle:
                template.after(chunk, decoded, _reads_as)
            return decoded
        return self._feed(chunk, end_of_stream)

    def _feed(self, chunk: bytes, end_of_stream: bool) -> Decoded:
        """``feed``'s general path: SSE events, each chunk parsed whole."""
        # An event left incomplete at the end of the stream is dropped (SSE); tool calls still under way
        # then are handed over as they stand (a stream cut before its finish chunk).
        payloads = self._sse.feed(chunk) if chunk else ()
        if not payloads:
            if end_of_stream and self._calls:
                return Decoded(tool_calls=self._completed())
            return NOTHING
        content: list[Content] = []
        usage: Usage | None = None
        model: str | None = None
        finish: str | None = None
        error: WireError | None = None
        tool = done = False
        for payload in payloads:
            if payload == DONE:
                done = True
                continue
            try:
                obj = orjson.loads(payload)
            except orjson.JSONDecodeError:
                error = error or WireError(f"unparsable chunk: {payload[:80]!r}", INVALID)
                continue
            if not isinstance(obj, dict):
                error = error or WireError("chunk is not a JSON object", INVALID)
                continue
            if "error" in obj:
                error = error or _error_of(obj["error"])
                continue
            choices = obj.get("choices")
            if choices and type(choices) is list:
                choice = choices[0]
                delta = choice.get("delta") if len(choices) == 1 and type(choice) is dict else None
                if type(delta) is dict:
                    # the common chunk (one choice, a delta), read inline: this runs for every token
                    text = delta.get("content")
                    if text and type(text) is str:
                        content.append(_new(Content, (text, "answer")))
                    else:
                        _, reasoning = choice_text(choice)
                        if reasoning:
                            content.append(Content(reasoning, "reasoning"))
                    if "tool_calls" in delta or "function_call" in delta:
                        tool = tool or has_tool_call(choice)
                        self._take_calls(delta, content)
                    reason = choice.get("finish_reason")
                    if reason:
                        finish = str(reason)
                else:
                    piece, reason, called = _choices(choices)
                    if piece is not None:
                        content.append(piece)
                    finish = reason or finish
                    tool = tool or called
            raw_usage = obj.get("usage")
            if raw_usage is not None:
                usage = _reported(raw_usage) or usage
            if not self._model:
                name = obj.get("model")
                if name:
                    model, self._model = (name if type(name) is str else str(name)), True
        calls = self._completed() if self._calls and (finish or done or end_of_stream) else ()
        return _new(Decoded, (tuple(content) if content else (), usage, model, finish, error, tool, done, calls))

    def _take_calls(self, delta: dict[str, Any], content: list[Content]) -> None:
        """Collect a delta's tool-call pieces (OpenAI streams a call's id and name first, then its
        arguments in pieces, keyed by ``index``; the legacy ``function_call`` has no index)."""
        parts = delta.get("tool_calls")
        pieces = [(p.get("index", i), p.get("id"), p.get("function")) for i, p in enumerate(parts)
                  if isinstance(p, dict)] if isinstance(parts, list) else []
        legacy = delta.get("function_call")
        if isinstance(legacy, dict):
            pieces.append((-1, None, legacy))
        for index, call_id, function in pieces:
            call = self._calls.setdefault(index if isinstance(index, int) else -1, _PartialCall())
            if isinstance(call_id, str) and call_id:
                call.id = call_id
            if isinstance(function, dict):
                name, args = function.get("name"), function.get(TOOL_ARGUMENTS_KEY)
                if isinstance(name, str) and name:
                    call.name = name
                if isinstance(args, str) and args:
                    call.arguments.append(args)
                    content.append(Content(args, "tool"))

    def _completed(self) -> tuple[ToolCall, ...]:
        """The calls under way, whole, in index order (each handed over once)."""
        calls = tuple(ToolCall(c.id or f"call_{i}", c.name, "".join(c.arguments) or "{}")
                      for i, c in sorted(self._calls.items()))
        self._calls.clear()
        return calls


def _reads_as(chunk: bytes) -> str | None:
    """The text of ``chunk`` when a stream's general path reads it as one answer piece and nothing else
    (a fresh decoder reports the model, which a stream under way has reported already)."""
    return sole_answer(OpenAIStreamDecoder()._feed(chunk, False)._replace(model=None))


class _PartialCall:
    """A streamed tool call being assembled."""

    __slots__ = ("arguments", "id", "name")

    def __init__(self) -> None:
        self.id = ""
        self.name = ""
        self.arguments: list[str] = []


def _message_calls(message: object) -> tuple[ToolCall, ...]:
    """The tool calls of a whole answer's ``message`` (``tool_calls``, or the legacy ``function_call``)."""
    if not isinstance(message, dict):
        return ()
    raw = message.get("tool_calls")
    items = [(c.get("id"), c.get("function")) for c in raw if isinstance(c, dict)] if isinstance(raw, list) else []
    if isinstance(message.get("function_call"), dict):
        items.append((None, message["function_call"]))
    calls = []
    for i, (call_id, function) in enumerate(items):
        fn = function if isinstance(function, dict) else {}
        args = fn.get(TOOL_ARGUMENTS_KEY)
        calls.append(ToolCall(call_id if isinstance(call_id, str) and call_id else f"call_{i}",
                              str(fn.get("name") or ""),
                              args if isinstance(args, str) else orjson.dumps(args).decode() if args else "{}"))
    return tuple(calls)


def _message_object(m: Message) -> dict[str, Any]:
    obj: dict[str, Any] = {"role": m.role, "content": m.content}
    if m.tool_calls:
        obj["tool_calls"] = [_tool_call_object(c) for c in m.tool_calls]
    if m.tool_call_id is not None:
        obj["tool_call_id"] = m.tool_call_id
    return obj


class OpenAIDialect(Dialect):
    """OpenAI chat completions and text completions (``/chat/completions``, ``/completions``)."""

    name = "openai"
    end_marker = "data: [DONE]"
    server_routes = (("POST", "/v1/chat/completions"), ("POST", "/v1/completions"))

    def __init__(self, data: WireData) -> None:
        self.data = data

    def body(self, req: LLMRequest) -> bytes:
        body: dict[str, Any] = {"model": req.model, "stream": req.stream}
        if req.prompt is not None:
            body["prompt"] = req.prompt
        else:
            body["messages"] = [_message_object(m) for m in req.messages]
            if req.tools:
                body["tools"] = [{"type": "function", "function": {
                    "name": t.name, "description": t.description, "parameters": dict(t.parameters)}}
                    for t in req.tools]
        if req.max_tokens is not None:
            body["max_tokens"] = req.max_tokens
        if req.temperature is not None:
            body["temperature"] = req.temperature
        if req.stream and req.include_usage:
            body["stream_options"] = {"include_usage": True}
        body.update(req.extra)
        return orjson.dumps(body)

    def decoder(self) -> StreamDecoder:
        return OpenAIStreamDecoder()

    def decode(self, body: bytes) -> Answer:
        try:
            obj = orjson.loads(body)
        except orjson.JSONDecodeError:
            return Answer(error=WireError(f"unparsable body: {body[:80]!r}", INVALID))
        if not isinstance(obj, dict):
            return Answer(error=WireError("body is not a JSON object", INVALID))
        if "error" in obj:
            return Answer(error=_error_of(obj["error"]))
        raw_choices = obj.get("choices")
        choices = raw_choices if isinstance(raw_choices, list) else []
        parts = [choice_text(c)[0] for c in choices]
        first = choices[0] if choices and isinstance(choices[0], dict) else {}
        finish = first.get("finish_reason")
        return Answer(text="".join(parts), finish_reason=finish if isinstance(finish, str) else None,
                      usage=_reported(obj.get("usage")),
                      model=str(obj["model"]) if obj.get("model") else None, choices=len(choices),
                      tool_call=any(has_tool_call(c) for c in choices if isinstance(c, dict)),
                      tool_calls=_message_calls(first.get("message")))

    def error(self, status: int, body: bytes) -> WireError:
        obj = loads_object(body)
        err = obj.get("error") if obj is not None else None
        kind = str(err.get("type") or "") if isinstance(err, dict) else ""
        return WireError(error_message(body), kind or error_type(status), status)

    def error_body(self, message: str, status: int, kind: str | None = None) -> bytes:
        return error_body(message, kind or error_type(status), status)

    def usage_in(self, tail: bytes) -> Usage | None:
        return usage_in(tail)

    def question(self, body: Mapping[str, Any]) -> str:
        return question_text(body)

    # ------------------------------------------------------------------ the server half
    def parse_request(self, body: bytes, path: str = "") -> LLMRequest:
        route = path.split("?", 1)[0].rstrip("/")
        text_completion = route.endswith("/completions") and not route.endswith("/chat/completions")
        return parse_request(body, chat=not text_completion)

    def encoder(self, model: str, response_id: str, kind: Kind = "chat") -> StreamEncoder:
        return OpenAIStreamEncoder(model, response_id, chat=kind == "chat")

    def answer_body(self, answer: Answer, response_id: str, kind: Kind = "chat") -> bytes:
        return answer_body(answer, response_id, chat=kind == "chat")


def sse(obj: object) -> bytes:
    """One SSE event carrying ``obj`` as JSON."""
    return b"data: " + orjson.dumps(obj) + b"\n\n"


def usage_object(usage: Usage) -> dict[str, Any]:
    """``usage`` in OpenAI's words (details only when they are not zero)."""
    obj: dict[str, Any] = {"prompt_tokens": usage.prompt_tokens, "completion_tokens": usage.completion_tokens,
                           "total_tokens": usage.prompt_tokens + usage.completion_tokens}
    if usage.cached_tokens:
        obj["prompt_tokens_details"] = {"cached_tokens": usage.cached_tokens}
    if usage.reasoning_tokens:
        obj["completion_tokens_details"] = {"reasoning_tokens": usage.reasoning_tokens}
    return obj


def _tool_call_object(call: ToolCall, index: int | None = None) -> dict[str, Any]:
    obj: dict[str, Any] = {"id": call.id, "type": "function",
                           "function": {"name": call.name, "arguments": call.arguments}}
    if index is not None:
        obj["index"] = index
    return obj


class OpenAIStreamEncoder(StreamEncoder):
    """A chat (``chat.completion.chunk``) or text completion (``text_completion``) stream, as OpenAI
    writes it: a role-only first chunk (chat), one chunk per content piece, a finish chunk, a usage
    chunk with empty ``choices`` (when usage is given), ``data: [DONE]``."""

    def __init__(self, model: str, response_id: str, *, chat: bool = True, created: int | None = None) -> None:
        self._chat = chat
        self._head = {"id": response_id, "object": "chat.completion.chunk" if chat else "text_completion",
                      "created": int(time.time()) if created is None else created, "model": model}
        self._tools = 0
        # channel -> (the bytes before a content chunk's JSON text, the bytes after it), built at its first chunk
        self._templates: dict[str, tuple[bytes, bytes] | None] = {}

    def _chunk(self, choice: dict[str, Any]) -> bytes:
        return sse({**self._head, "choices": [{"index": 0, **choice}]})

    def head(self) -> bytes:
        if self._chat:
            return self._chunk({"delta": {"role": "assistant", "content": ""}, "finish_reason": None})
        return self._chunk({"text": "", "logprobs": None, "finish_reason": None})

    def content(self, text: str, channel: Channel = "answer") -> bytes:
        # every content chunk of a stream is one JSON text but for its text: the chunk is cut once from the
        # general path's bytes and each chunk is the two halves around the text encoded (the mock's way)
        templates = self._templates
        if channel not in templates:
            templates[channel] = self._template(channel)
        template = templates[channel]
        if template is not None:
            return template[0] + orjson.dumps(text) + template[1]
        return self._content(text, channel)

    def _template(self, channel: Channel) -> tuple[bytes, bytes] | None:
        """The chunk of ``channel`` around its text, cut from ``_content``'s own bytes (None: the cut is
        not unique, say a model named like the splice, and ``_content`` writes every chunk)."""
        parts = self._content(_SPLICE, channel).split(orjson.dumps(_SPLICE))
        return (parts[0], parts[1]) if len(parts) == 2 else None

    def _content(self, text: str, channel: Channel = "answer") -> bytes:
        """``content``'s general path: the chunk object built and encoded."""
        if not self._chat:
            return self._chunk({"text": text, "logprobs": None, "finish_reason": None})
        key = "reasoning_content" if channel == "reasoning" else "content"
        return self._chunk({"delta": {key: text}, "finish_reason": None})

    def tool_call(self, call: ToolCall) -> bytes:
        self._tools += 1
        return self._chunk({"delta": {"tool_calls": [_tool_call_object(call, self._tools - 1)]},
                            "finish_reason": None})

    def tail(self, finish_reason: str, usage: Usage | None) -> bytes:
        last: dict[str, Any] = ({"delta": {}, "finish_reason": finish_reason} if self._chat
                                else {"text": "", "logprobs": None, "finish_reason": finish_reason})
        out = self._chunk(last)
        if usage is not None:
            out += sse({**self._head, "choices": [], "usage": usage_object(usage)})
        return out + DONE_EVENT

    def error(self, error: WireError) -> bytes:
        return error_event(error.message, error.status or 500, error.kind or "upstream_error")


def answer_body(answer: Answer, response_id: str, *, chat: bool = True, created: int | None = None) -> bytes:
    """A whole chat completion (``chat.completion``) or text completion carrying ``answer``."""
    finish = answer.finish_reason or "stop"
    if chat:
        message: dict[str, Any] = {"role": "assistant", "content": answer.text}
        if answer.tool_calls:
            message["tool_calls"] = [_tool_call_object(c) for c in answer.tool_calls]
        if answer.reasoning:
            message["reasoning_content"] = answer.reasoning
        choice: dict[str, Any] = {"index": 0, "message": message, "finish_reason": finish}
        obj = "chat.completion"
    else:
        choice = {"index": 0, "text": answer.text, "logprobs": None, "finish_reason": finish}
        obj = "text_completion"
    body: dict[str, Any] = {"id": response_id, "object": obj,
                            "created": int(time.time()) if created is None else created,
                            "model": answer.model or "", "choices": [choice]}
    if answer.usage is not None:
        body["usage"] = usage_object(answer.usage)
    return orjson.dumps(body)


def _content_text(content: object) -> str:
    """A message's ``content``: a string, or a list of parts whose ``text`` parts are joined."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(p["text"] for p in content if isinstance(p, dict) and isinstance(p.get("text"), str))
    return ""


def parse_request(raw: bytes, *, chat: bool) -> LLMRequest:
    """A client's chat or completion request as loadbench's own; ``InputError`` names what is wrong."""
    body = request_object(raw)
    max_tokens = positive_int(body, "max_completion_tokens")
    if max_tokens is None:
        max_tokens = positive_int(body, "max_tokens")
    stream = body.get("stream", False)
    if not isinstance(stream, bool):
        raise InputError("'stream' must be true or false")
    options = body.get("stream_options")
    if options is not None and not isinstance(options, dict):
        raise InputError("'stream_options' must be an object")
    temperature = body.get("temperature")
    model = body.get("model")
    messages: list[Message] = []
    prompt: str | None = None
    if chat:
        raw_messages = body.get("messages")
        if not isinstance(raw_messages, list):
            raise InputError("'messages' must be a list")
        for m in raw_messages:
            if not isinstance(m, dict):
                raise InputError("every message must be an object")
            calls = tuple(ToolCall(str(c.get("id", "")), str((c.get("function") or {}).get("name", "")),
                                   str((c.get("function") or {}).get("arguments", "{}")))
                          for c in m.get("tool_calls") or () if isinstance(c, dict))
            call_id = m.get("tool_call_id")
            messages.append(Message(str(m.get("role", "user")), _content_text(m.get("content")), calls,
                                    call_id if isinstance(call_id, str) else None))
    else:
        raw_prompt = body.get("prompt", "")
        prompt = raw_prompt if isinstance(raw_prompt, str) else " ".join(map(str, raw_prompt)) \
            if isinstance(raw_prompt, list) else ""
    tools = tuple(Tool(str(f.get("name", "")), str(f.get("description", "")), f.get("parameters") or {})
                  for t in body.get("tools") or () if isinstance(t, dict)
                  for f in (t.get("function") or {},) if isinstance(f, dict))
    known = {"model", "messages", "prompt", "max_tokens", "max_completion_tokens", "temperature", "stream",
             "stream_options", "tools"}
    return LLMRequest(model=model if isinstance(model, str) else "", messages=tuple(messages), prompt=prompt,
                      max_tokens=max_tokens,
                      temperature=float(temperature) if isinstance(temperature, int | float)
                      and not isinstance(temperature, bool) else None,
                      stream=stream, include_usage=bool(options.get("include_usage")) if options else False,
                      tools=tools, extra={k: v for k, v in body.items() if k not in known})


OPENAI_DATA = WireData(paths={"chat": "/chat/completions", "completions": "/completions", "models": "/models",
                              "embeddings": "/embeddings"},
                       auth=Auth("header", "Authorization", "Bearer "))
OPENAI = OpenAIDialect(OPENAI_DATA)
