"""The ``bedrock`` dialect: Amazon Bedrock's Converse API, both halves.

- paths: ``/model/{modelId}/converse`` (whole) and ``/model/{modelId}/converse-stream`` (streamed; the
  endpoint kind ``chat_stream``), the model id percent-encoded; the body names no model and no
  ``stream``. Requests are signed with SigV4 by the caller after ``request`` (``protocol.aws.sign``).
- body: ``messages`` of content blocks (``text``, ``toolUse``, ``toolResult``), ``system`` blocks,
  ``inferenceConfig`` (``maxTokens``, ``temperature``), ``toolConfig.tools[].toolSpec``.
- stream: ``application/vnd.amazon.eventstream`` frames (CRCs checked, ``protocol.aws``), each event a
  JSON payload named by ``:event-type``: ``messageStart``, ``contentBlockStart`` (a tool call's id and
  name), ``contentBlockDelta`` (``text`` answer, ``reasoningContent.text`` reasoning, ``toolUse.input``
  tool arguments; a whole ``ToolCall`` at ``contentBlockStop``), ``messageStop`` (the stop reason: the
  end marker), ``metadata`` (usage, the only place it arrives). Every payload may carry a padding
  field ``p``, never content. A frame with ``:message-type: exception`` is an error named by
  ``:exception-type`` (``throttlingException`` 429, ``modelStreamErrorException`` 424, ...).
- usage: ``inputTokens`` excludes ``cacheReadInputTokens`` and ``cacheWriteInputTokens``, so prompt
  tokens are their sum.
- finish reasons: ``end_turn`` / ``stop_sequence`` STOP, ``max_tokens`` LENGTH, ``tool_use`` TOOL_CALLS,
  ``guardrail_intervened`` / ``content_filtered`` CONTENT_FILTER.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import unquote

import orjson
from orjson import JSONDecodeError, loads

from loadbench.errors import InputError
from loadbench.protocol.aws import Frame, FrameError, FrameReader, frame
from loadbench.protocol.dialect import (
    CONTENT_FILTER,
    INVALID,
    LENGTH,
    NOTHING,
    STOP,
    TOOL_CALLS,
    Answer,
    Auth,
    Channel,
    Content,
    Decoded,
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
from loadbench.protocol.eventdecoder import Collected, answer_only
from loadbench.protocol.finish import FinishWords
from loadbench.protocol.jsonscan import (
    arguments_object,
    arguments_text,
    last_object,
    loads_object,
    number,
    passed_through,
    positive_int,
    request_object,
    settings_of,
    with_settings,
)
from loadbench.protocol.streampath import StreamPathDialect
from loadbench.protocol.toolcalls import ToolCalls
from loadbench.protocol.turns import block_turns, last_user_text, turn_messages
from loadbench.protocol.usage import Usage, count

EVENT_STREAM = "application/vnd.amazon.eventstream"
# exception names as stream frames spell them (an error answer's x-amzn-ErrorType capitalises the first letter)
EXCEPTION_STATUS = {"throttlingException": 429, "modelStreamErrorException": 424, "validationException": 400,
                    "internalServerException": 500, "serviceUnavailableException": 503,
                    "modelTimeoutException": 408, "modelNotReadyException": 429, "accessDeniedException": 403,
                    "resourceNotFoundException": 404, "modelErrorException": 424,
                    "serviceQuotaExceededException": 400}
_STATUS_EXCEPTION = {429: "throttlingException", 424: "modelStreamErrorException", 400: "validationException",
                     500: "internalServerException", 503: "serviceUnavailableException",
                     408: "modelTimeoutException", 403: "accessDeniedException", 404: "resourceNotFoundException",
                     502: "serviceUnavailableException", 529: "serviceUnavailableException"}
FINISH = FinishWords({"end_turn": STOP, "stop_sequence": STOP, "max_tokens": LENGTH, "tool_use": TOOL_CALLS,
                      "guardrail_intervened": CONTENT_FILTER, "content_filtered": CONTENT_FILTER},
                     {STOP: "end_turn", LENGTH: "max_tokens", TOOL_CALLS: "tool_use",
                      CONTENT_FILTER: "guardrail_intervened"})
# AWS pads each event with a random-length prefix of this alphabet, so sizes do not reveal the text
_ERRORS = ("exception", "error")  # the :message-type of a frame that reports an error
_PADDING = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"


_new = tuple.__new__  # a named tuple built without its Python-level __new__ (fields in order)

_REGION_RE = re.compile(r"[a-z]{2}(?:-gov|-iso[a-z]?)?-[a-z]+-\d")


def check_region(region: str | None) -> str:
    """``region`` when it is an AWS region (``us-east-1``); an ``InputError`` naming the fix otherwise:
    a Bedrock endpoint and its signature both name the region."""
    if not region:
        raise InputError("a bedrock target needs a region: set the target's 'region' or AWS_REGION, "
                         "e.g. us-east-1")
    if not _REGION_RE.fullmatch(region):
        raise InputError(f"{region!r} is not an AWS region: write it like 'us-east-1'")
    return region


def exception_kind(name: str) -> str:
    """An exception name as stream frames spell it (``ThrottlingException`` -> ``throttlingException``;
    an ``x-amzn-ErrorType`` value may carry a ``:namespace`` suffix)."""
    name = name.split(":", 1)[0]
    return name[:1].lower() + name[1:]


def exception_status(name: str) -> int | None:
    return EXCEPTION_STATUS.get(exception_kind(name))


def error_kind(status: int, kind: str | None = None) -> str:
    """The exception (as stream frames spell it): ``kind`` when it is one, else the exception of the HTTP
    status (another protocol's error, e.g. Anthropic's ``overloaded_error``, becomes
    ``serviceUnavailableException``)."""
    if kind and exception_kind(kind) in EXCEPTION_STATUS:
        return exception_kind(kind)
    return _STATUS_EXCEPTION.get(status, "internalServerException" if status >= 500 else "validationException")


def usage_from(usage: Mapping[str, Any]) -> Usage:
    cached, written = count(usage.get("cacheReadInputTokens")), count(usage.get("cacheWriteInputTokens"))
    return Usage(prompt_tokens=count(usage.get("inputTokens")) + cached + written,
                 completion_tokens=count(usage.get("outputTokens")), cached_tokens=cached, cache_write_tokens=written)


def usage_object(usage: Usage) -> dict[str, int]:
    plain = max(usage.prompt_tokens - usage.cached_tokens - usage.cache_write_tokens, 0)
    return {"inputTokens": plain, "outputTokens": usage.completion_tokens,
            "totalTokens": usage.prompt_tokens + usage.completion_tokens,
            "cacheReadInputTokens": usage.cached_tokens, "cacheWriteInputTokens": usage.cache_write_tokens}


def _tool_use(c: ToolCall) -> dict[str, Any]:
    return {"toolUse": {"toolUseId": c.id, "name": c.name, "input": arguments_object(c.arguments)}}


def _tool_result(m: Message) -> dict[str, Any]:
    return {"toolResult": {"toolUseId": m.tool_call_id or "", "content": [{"text": m.content}]}}


def _texts(blocks: object) -> str:
    if not isinstance(blocks, list):
        return ""
    return "".join(b["text"] for b in blocks if isinstance(b, dict) and isinstance(b.get("text"), str))


def _block_call(b: dict[str, Any]) -> ToolCall | None:
    use = b.get("toolUse")
    if not isinstance(use, dict):
        return None
    return ToolCall(str(use.get("toolUseId", "")), str(use.get("name", "")), arguments_text(use.get("input")))


def _block_result(b: dict[str, Any]) -> Message | None:
    res = b.get("toolResult")
    if not isinstance(res, dict):
        return None
    return Message("tool", _texts(res.get("content")), tool_call_id=str(res.get("toolUseId", "")))


def _block_text(b: dict[str, Any]) -> str | None:
    return b["text"] if isinstance(b.get("text"), str) else None


def model_path(path: str) -> tuple[str, bool]:
    """(the model id, streamed) a Converse path names; ``InputError`` for another path."""
    parts = path.split("?", 1)[0].strip("/").split("/")
    if len(parts) != 3 or parts[0] != "model" or parts[2] not in ("converse", "converse-stream"):
        raise InputError("the path must be /model/{modelId}/converse or /model/{modelId}/converse-stream")
    return unquote(parts[1]), parts[2] == "converse-stream"


class BedrockStreamDecoder(StreamDecoder):
    """Event-stream frames (CRCs checked), one JSON event each; a bad frame ends the decoding with an
    ``INVALID`` error (nothing after it can be trusted)."""

    __slots__ = ("_answer_headers", "_broken", "_reader", "_tools")

    def __init__(self) -> None:
        self._reader = FrameReader()
        self._tools = ToolCalls()
        self._broken = False
        # the reader's headers dict of this stream's contentBlockDelta events (it keeps one per header
        # section), once seen: a frame with that dict needs no header looked at
        self._answer_headers: Mapping[str, Any] | None = None

    def feed(self, chunk: bytes, end_of_stream: bool = False) -> Decoded:
        if not chunk or self._broken:
            return NOTHING
        # the common read, once per token: exactly one contentBlockDelta frame with answer text
        one = self._reader.whole(chunk)
        if one is not None:
            text = self._answer_text(one[0], one[1])
            if text is None:
                return self._decode([one], None)
            # built as JsonEventDecoder.feed builds it: answer_only's and answer_piece's calls cost a third of it
            return _new(Decoded, ((_new(Content, (text, "answer")),), None, None, None, None, False, False, ()))
        frames, bad = self._reader.feed(chunk)
        if not frames:
            if bad is None:
                return NOTHING
        elif bad is None:
            # several frames in one read (a reader that fell behind): answer deltas and nothing else, or
            # the general path for the whole read
            pieces = []
            for headers, payload in frames:
                text = self._answer_text(headers, payload)
                if text is None:
                    break
                pieces.append(_new(Content, (text, "answer")))
            else:
                return answer_only(pieces)
        return self._decode(frames, bad)

    def _answer_text(self, headers: Mapping[str, Any], payload: bytes) -> str | None:
        """The text of a contentBlockDelta event whose delta is answer text and nothing else ``_message``
        would collect; None for any other frame, which ``_message`` then reads."""
        if headers is not self._answer_headers:
            if headers.get(":event-type") != "contentBlockDelta" or headers.get(":message-type") in _ERRORS:
                return None
            self._answer_headers = headers
        # parsed whole: orjson reads this small payload faster than Python can cut out its one field;
        # anything but an object whose "delta" is an object with a "text" raises (orjson builds plain
        # dicts, lists and scalars: a subscript of a non-dict raises TypeError)
        try:
            text = loads(payload)["delta"]["text"]
        except (JSONDecodeError, KeyError, TypeError):
            return None
        return text if type(text) is str and text else None

    def _decode(self, frames: list[Frame], bad: FrameError | None) -> Decoded:
        """``feed``'s general path: every frame of the read, then the bad frame's error."""
        out = Collected()
        for headers, payload in frames:
            self._message(headers, payload, out)
        if bad is not None:
            self._broken = True
            out.fail(WireError(str(bad)[:200], INVALID))
        return out.decoded()

    def _message(self, headers: Mapping[str, Any], payload: bytes, out: Collected) -> None:
        kind = headers.get(":message-type")
        if kind in _ERRORS:
            name = str(headers.get(":exception-type") or headers.get(":error-code") or "")
            said = loads_object(payload) or {}
            message = str(said.get("message") or said.get("Message") or headers.get(":error-message") or name)
            out.fail(WireError(message[:200], exception_kind(name), exception_status(name)))
            return
        obj = loads_object(payload)
        if obj is None:
            out.fail(WireError(f"unparsable event payload: {payload[:80]!r}", INVALID))
            return
        event = headers.get(":event-type")
        index = obj.get("contentBlockIndex")
        if event == "contentBlockDelta":
            delta = obj.get("delta")
            if not isinstance(delta, dict):
                return
            if "text" in delta:
                out.text(delta["text"])
            elif isinstance(delta.get("reasoningContent"), dict):
                out.text(delta["reasoningContent"].get("text"), "reasoning")
            elif isinstance(delta.get("toolUse"), dict):
                out.arguments(self._tools, index, delta["toolUse"].get("input"))
        elif event == "contentBlockStart":
            start = obj.get("start")
            use = start.get("toolUse") if isinstance(start, dict) else None
            if isinstance(use, dict):
                out.tool = True
                self._tools.start(index, str(use.get("toolUseId", "")), str(use.get("name", "")))
        elif event == "contentBlockStop":
            call = self._tools.finish(index)
            if call is not None:
                out.calls.append(call)
        elif event == "messageStop":
            out.finish = FINISH.ours(obj.get("stopReason")) or out.finish
            out.done = True
        elif event == "metadata" and isinstance(obj.get("usage"), dict):
            out.usage = usage_from(obj["usage"])
        # messageStart and event types added later carry nothing we use


class BedrockStreamEncoder(StreamEncoder):
    """A ConverseStream as Bedrock writes it: ``messageStart``; per block its deltas (a tool block opens
    with ``contentBlockStart``) and ``contentBlockStop``; ``messageStop``; ``metadata`` with usage.
    ``padding``: each payload carries a ``p`` field whose length varies, as AWS's do."""

    def __init__(self, *, padding: bool = True, latency_ms: int = 0) -> None:
        self._padding, self._latency_ms = padding, latency_ms
        self._events = 0
        self._index = -1
        self._open: Channel | None = None

    def _event(self, kind: str, payload: dict[str, Any]) -> bytes:
        if self._padding:
            payload["p"] = _PADDING[:1 + (self._events * 7) % len(_PADDING)]
        self._events += 1
        return frame({":event-type": kind, ":content-type": "application/json", ":message-type": "event"},
                     orjson.dumps(payload))

    def head(self) -> bytes:
        return self._event("messageStart", {"role": "assistant"})

    def _close(self) -> bytes:
        if self._open is None:
            return b""
        out = b""
        if self._open == "reasoning":
            out = self._event("contentBlockDelta", {"contentBlockIndex": self._index,
                                                    "delta": {"reasoningContent": {"signature": ""}}})
        self._open = None
        return out + self._event("contentBlockStop", {"contentBlockIndex": self._index})

    def content(self, text: str, channel: Channel = "answer") -> bytes:
        if channel == "tool":
            if self._open != "tool":
                raise ValueError("tool arguments stream inside a tool call: write it with tool_call()")
            delta: dict[str, Any] = {"toolUse": {"input": text}}
            return self._event("contentBlockDelta", {"contentBlockIndex": self._index, "delta": delta})
        out = b""
        if self._open != channel:
            out = self._close()
            self._index += 1
            self._open = channel
        delta = {"text": text} if channel == "answer" else {"reasoningContent": {"text": text}}
        return out + self._event("contentBlockDelta", {"contentBlockIndex": self._index, "delta": delta})

    def tool_call(self, call: ToolCall) -> bytes:
        out = self._close()
        self._index += 1
        out += self._event("contentBlockStart", {"contentBlockIndex": self._index, "start": {
            "toolUse": {"toolUseId": call.id, "name": call.name}}})
        self._open = "tool"
        return out + self.content(call.arguments, "tool") + self._close()

    def tail(self, finish_reason: str, usage: Usage | None) -> bytes:
        out = self._close() + self._event("messageStop", {"stopReason": FINISH.theirs(finish_reason)})
        return out + self._event("metadata", {"usage": usage_object(usage or Usage()),
                                              "metrics": {"latencyMs": self._latency_ms}})

    def error(self, error: WireError) -> bytes:
        name = error_kind(error.status or 500, error.kind)
        return frame({":exception-type": name, ":content-type": "application/json", ":message-type": "exception"},
                     orjson.dumps({"message": error.message}))


class BedrockDialect(StreamPathDialect):
    """Bedrock Converse and ConverseStream."""

    name = "bedrock"
    end_marker = "a messageStop event"
    stream_accept = EVENT_STREAM
    stream_content_type = EVENT_STREAM
    server_routes = (("POST", "/model/{model}/converse"), ("POST", "/model/{model}/converse-stream"))

    def __init__(self, data: WireData) -> None:
        self.data = data

    def body(self, req: LLMRequest) -> bytes:
        messages = req.messages if req.prompt is None else (Message("user", req.prompt),)
        system, turns = block_turns(messages, text=lambda t: {"text": t}, call=_tool_use, result=_tool_result)
        extra, config = with_settings(req.extra, "inferenceConfig", maxTokens=req.max_tokens,
                                      temperature=req.temperature)
        body: dict[str, Any] = {"messages": [{"role": role, "content": blocks} for role, blocks in turns]}
        if system:
            body["system"] = [{"text": system}]
        if config:
            body["inferenceConfig"] = config
        if req.tools:
            body["toolConfig"] = {"tools": [{"toolSpec": {"name": t.name, "description": t.description,
                                                          "inputSchema": {"json": dict(t.parameters)}}}
                                            for t in req.tools]}
        body.update(extra)
        return orjson.dumps(body)

    def decoder(self) -> StreamDecoder:
        return BedrockStreamDecoder()

    def decode(self, body: bytes) -> Answer:
        obj = loads_object(body)
        if obj is None:
            return Answer(error=WireError(f"not a JSON object: {body[:80]!r}", INVALID))
        output = obj.get("output")
        message = output.get("message") if isinstance(output, dict) else None
        if not isinstance(message, dict):
            if "message" in obj or "Message" in obj:  # an error answer
                return Answer(error=self._error_of(obj, None))
            return Answer(error=WireError("the body has no 'output.message'", INVALID))
        text, reasoning, calls = [], [], []
        for b in message.get("content") or ():
            if not isinstance(b, dict):
                continue
            if isinstance(b.get("text"), str):
                text.append(b["text"])
            elif isinstance(b.get("reasoningContent"), dict):
                part = b["reasoningContent"].get("reasoningText")
                if isinstance(part, dict) and isinstance(part.get("text"), str):
                    reasoning.append(part["text"])
            elif (call := _block_call(b)) is not None:
                calls.append(call)
        usage = obj.get("usage")
        return Answer(text="".join(text), finish_reason=FINISH.ours(obj.get("stopReason")),
                      usage=usage_from(usage) if isinstance(usage, dict) else None, choices=1,
                      tool_call=bool(calls), tool_calls=tuple(calls), reasoning="".join(reasoning))

    @staticmethod
    def _error_of(obj: Mapping[str, Any], status: int | None) -> WireError:
        name = str(obj.get("__type") or obj.get("code") or "")
        kind = exception_kind(name) if name else (error_kind(status) if status else "")
        return WireError(str(obj.get("message") or obj.get("Message") or "")[:200], kind,
                         status or exception_status(name))

    def error(self, status: int, body: bytes) -> WireError:
        obj = loads_object(body)
        if obj is None:
            return WireError(body[:200].decode("utf-8", "replace"), error_kind(status), status)
        return self._error_of(obj, status)

    def error_body(self, message: str, status: int, kind: str | None = None) -> bytes:
        # botocore reads the error code from __type when the x-amzn-ErrorType header is absent
        name = error_kind(status, kind)
        return orjson.dumps({"message": message, "__type": name[:1].upper() + name[1:]})

    def usage_in(self, tail: bytes) -> Usage | None:
        obj = last_object(tail, b"usage")
        return usage_from(obj) if obj is not None and "outputTokens" in obj else None

    def question(self, body: Mapping[str, Any]) -> str:
        return last_user_text(body.get("messages"), _texts)

    # ------------------------------------------------------------------ the server half
    def parse_request(self, body: bytes, path: str = "") -> LLMRequest:
        model, stream = model_path(path)
        obj = request_object(body)
        raw = obj.get("messages")
        if not isinstance(raw, list):
            raise InputError("'messages' must be a list")
        messages: list[Message] = []
        system = _texts(obj.get("system"))
        if system:
            messages.append(Message("system", system))
        for m in raw:
            if not isinstance(m, dict) or not isinstance(m.get("content"), list):
                raise InputError("every message must be an object with a 'content' list")
            messages += turn_messages(str(m.get("role", "user")), m["content"], text=_block_text, call=_block_call,
                                      result=_block_result)
        config = settings_of(obj, "inferenceConfig")
        tool_config = obj.get("toolConfig")
        raw_tools = tool_config.get("tools") if isinstance(tool_config, dict) else None
        tools = tuple(Tool(str(spec.get("name", "")), str(spec.get("description") or ""),
                           (spec.get("inputSchema") or {}).get("json") or {})
                      for t in raw_tools if isinstance(t, dict)
                      for spec in (t.get("toolSpec"),) if isinstance(spec, dict)) if isinstance(raw_tools, list) else ()
        extra = passed_through(obj, ("messages", "system", "toolConfig"), "inferenceConfig", config,
                               ("maxTokens", "temperature"))
        return LLMRequest(model=model, messages=tuple(messages), max_tokens=positive_int(config, "maxTokens",
                                                                                           "inferenceConfig."),
                          temperature=number(config.get("temperature")), stream=stream, tools=tools, extra=extra)

    def encoder(self, model: str, response_id: str, kind: Kind = "chat") -> StreamEncoder:
        return BedrockStreamEncoder()

    def answer_body(self, answer: Answer, response_id: str, kind: Kind = "chat") -> bytes:
        blocks: list[dict[str, Any]] = []
        if answer.reasoning:
            blocks.append({"reasoningContent": {"reasoningText": {"text": answer.reasoning, "signature": ""}}})
        if answer.text or not answer.tool_calls:
            blocks.append({"text": answer.text})
        blocks += [_tool_use(c) for c in answer.tool_calls]
        finish = answer.finish_reason or STOP
        return orjson.dumps({"output": {"message": {"role": "assistant", "content": blocks}},
                             "stopReason": FINISH.theirs(finish),
                             "usage": usage_object(answer.usage or Usage()), "metrics": {"latencyMs": 0}})


BEDROCK_DATA = WireData(paths={"chat": "/model/{model}/converse", "chat_stream": "/model/{model}/converse-stream",
                               "completions": "/model/{model}/converse"},
                        auth=Auth("none"))
BEDROCK = BedrockDialect(BEDROCK_DATA)
