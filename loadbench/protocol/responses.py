"""The ``openai-responses`` dialect: OpenAI's Responses API (``POST /v1/responses``), both halves.

- request: ``input`` items (messages, ``function_call`` and ``function_call_output`` items) or a prompt
  string, ``max_output_tokens``, function ``tools`` written flat (``{"type": "function", "name", ...}``);
  ``Authorization: Bearer``. Usage is always reported.
- stream: SSE with typed events. Content is ``response.output_text.delta`` (answer; a refusal's
  ``response.refusal.delta`` too), ``response.reasoning_summary_text.delta`` and
  ``response.reasoning_text.delta`` (reasoning), ``response.function_call_arguments.delta`` (tool
  arguments; the whole ``ToolCall`` at the item's ``response.output_item.done``). ``response.created``,
  ``response.in_progress``, item and part events are structure. ``response.completed``,
  ``response.incomplete`` and ``response.failed`` end the answer (there is no ``[DONE]``).
- usage (``response.completed``): ``input_tokens`` includes ``input_tokens_details.cached_tokens`` and
  ``cache_write_tokens``, ``output_tokens`` includes ``output_tokens_details.reasoning_tokens``.
- finish reasons: the API has none; a completed response is STOP (TOOL_CALLS when it called a
  function), an incomplete one LENGTH (``max_output_tokens``) or CONTENT_FILTER (``content_filter``).
- errors: OpenAI's error object; the stream's ``error`` event carries ``code`` and ``message``.
"""

from __future__ import annotations

import time
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
from loadbench.protocol.jsonscan import last_object, loads_object, number, positive_int, request_object
from loadbench.protocol.openai import error_body, error_type
from loadbench.protocol.sseout import named_event
from loadbench.protocol.toolcalls import ToolCalls
from loadbench.protocol.usage import Usage, count

# the status an error code of a stream's error event (or a failed response) stands for
CODE_STATUS = {"rate_limit_exceeded": 429, "insufficient_quota": 429, "rate_limit_error": 429,
               "server_error": 500, "server_is_overloaded": 503, "slow_down": 503, "invalid_prompt": 400,
               "context_length_exceeded": 400, "invalid_request_error": 400, "authentication_error": 401}
_STATUS_CODE = {429: "rate_limit_exceeded", 503: "server_is_overloaded", 529: "server_is_overloaded"}
_INCOMPLETE = {"max_output_tokens": LENGTH, "content_filter": CONTENT_FILTER}
_REASON = {LENGTH: "max_output_tokens", CONTENT_FILTER: "content_filter"}
_ANSWER_DELTAS = ("response.output_text.delta", "response.refusal.delta")
_REASONING_DELTAS = ("response.reasoning_summary_text.delta", "response.reasoning_text.delta")
_ENDS = ("response.completed", "response.incomplete", "response.failed")


def usage_from(usage: Mapping[str, Any]) -> Usage:
    """A Responses ``usage`` object as a ``Usage``."""
    details = usage.get("input_tokens_details")
    details = details if isinstance(details, dict) else {}
    out = usage.get("output_tokens_details")
    return Usage(prompt_tokens=count(usage.get("input_tokens")), completion_tokens=count(usage.get("output_tokens")),
                 cached_tokens=count(details.get("cached_tokens")),
                 cache_write_tokens=count(details.get("cache_write_tokens")),
                 reasoning_tokens=count(out.get("reasoning_tokens")) if isinstance(out, dict) else 0)


def usage_object(usage: Usage) -> dict[str, Any]:
    return {"input_tokens": usage.prompt_tokens,
            "input_tokens_details": {"cached_tokens": usage.cached_tokens,
                                     "cache_write_tokens": usage.cache_write_tokens},
            "output_tokens": usage.completion_tokens,
            "output_tokens_details": {"reasoning_tokens": usage.reasoning_tokens},
            "total_tokens": usage.prompt_tokens + usage.completion_tokens}


def error_code(status: int, kind: str | None = None) -> str:
    """A stream error event's ``code``: ``kind`` when it is one, else the code of the HTTP status (another
    protocol's error, e.g. Anthropic's ``overloaded_error``, becomes ``server_is_overloaded``)."""
    if kind in CODE_STATUS:
        return kind
    return _STATUS_CODE.get(status, "server_error" if status >= 500 else "invalid_request_error")


def _finish(response: Mapping[str, Any], called: bool) -> str | None:
    status = response.get("status")
    if status == "incomplete":
        details = response.get("incomplete_details")
        reason = details.get("reason") if isinstance(details, dict) else None
        return _INCOMPLETE.get(reason, str(reason)) if reason else LENGTH
    if status == "completed":
        return TOOL_CALLS if called else STOP
    return None


def _error_of(err: object, status: int | None = None) -> WireError:
    if not isinstance(err, dict):
        return WireError(str(err)[:200], "", status)
    code = err.get("code")  # a stream's error event names its code; an error answer's code may be its status
    kind = code if isinstance(code, str) and code else str(err.get("type") or "")
    return WireError(str(err.get("message", ""))[:200], kind, status or CODE_STATUS.get(kind))


def _parts_text(content: object) -> str:
    """A message item's content: a string, or the text of its parts joined."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(p["text"] for p in content if isinstance(p, dict) and isinstance(p.get("text"), str))
    return ""


def input_items(messages: tuple[Message, ...]) -> list[dict[str, Any]]:
    """Messages as ``input`` items: a tool turn is a ``function_call_output``, an assistant's calls
    ``function_call`` items after its message."""
    items: list[dict[str, Any]] = []
    for m in messages:
        if m.role == "tool":
            items.append({"type": "function_call_output", "call_id": m.tool_call_id or "", "output": m.content})
            continue
        if m.content or not m.tool_calls:
            items.append({"role": m.role, "content": m.content})
        items += [{"type": "function_call", "call_id": c.id, "name": c.name, "arguments": c.arguments}
                  for c in m.tool_calls]
    return items


def _parse_input(raw: object) -> list[Message]:
    if isinstance(raw, str):
        return [Message("user", raw)]
    if not isinstance(raw, list):
        raise InputError("'input' must be a string or a list of items")
    out: list[Message] = []
    for item in raw:
        if not isinstance(item, dict):
            raise InputError("every input item must be an object")
        kind = item.get("type", "message")
        if kind == "function_call":
            call = ToolCall(str(item.get("call_id", "")), str(item.get("name", "")), str(item.get("arguments", "{}")))
            if out and out[-1].role == "assistant":
                last = out[-1]
                out[-1] = Message(last.role, last.content, (*last.tool_calls, call))
            else:
                out.append(Message("assistant", "", (call,)))
        elif kind == "function_call_output":
            out.append(Message("tool", _parts_text(item.get("output")), tool_call_id=str(item.get("call_id", ""))))
        elif kind == "message":
            out.append(Message(str(item.get("role", "user")), _parts_text(item.get("content"))))
    return out


class ResponsesStreamDecoder(JsonEventDecoder):
    counter = b'"sequence_number":'

    def __init__(self) -> None:
        super().__init__()
        self._tools = ToolCalls()
        self._model = self._called = False

    def answer_text(self, obj: dict[str, Any]) -> str | None:
        if obj.get("type") in _ANSWER_DELTAS:
            text = obj.get("delta")
            return text if type(text) is str else None
        return None

    def event(self, obj: dict[str, Any], out: Collected) -> None:
        kind = obj.get("type")
        if kind in _ANSWER_DELTAS:
            out.text(obj.get("delta"))
        elif kind in _REASONING_DELTAS:
            out.text(obj.get("delta"), "reasoning")
        elif kind == "response.function_call_arguments.delta":
            out.arguments(self._tools, obj.get("item_id"), obj.get("delta"))
        elif kind in ("response.output_item.added", "response.output_item.done"):
            item = obj.get("item")
            if isinstance(item, dict) and item.get("type") == "function_call":
                out.tool = self._called = True
                if kind.endswith("added"):
                    self._tools.start(item.get("id"), str(item.get("call_id", "")), str(item.get("name", "")))
                else:
                    args = item.get("arguments")
                    call = self._tools.finish(item.get("id"), args if isinstance(args, str) else None)
                    if call is not None:
                        out.calls.append(call)
        elif kind == "error":
            out.fail(_error_of(obj))
        elif isinstance(kind, str) and kind.startswith("response."):
            response = obj.get("response")
            if not isinstance(response, dict):
                return
            if not self._model and response.get("model"):
                out.model, self._model = str(response["model"]), True
            if kind in _ENDS:
                out.done = True
                out.finish = _finish(response, self._called) or out.finish
                if isinstance(response.get("usage"), dict):
                    out.usage = usage_from(response["usage"])
                if kind == "response.failed":
                    out.fail(_error_of(response.get("error") or "the response failed"))


class ResponsesStreamEncoder(StreamEncoder):
    """A Responses stream as OpenAI writes it: ``response.created`` and ``response.in_progress``; per output
    item ``response.output_item.added``, its part, its deltas and their ``.done`` events (an item opens
    with the first chunk of its channel); ``response.completed`` (or ``response.incomplete``) carrying
    the whole response with its usage. Every event has its ``sequence_number``."""

    def __init__(self, model: str, response_id: str, created_at: int | None = None) -> None:
        self._model, self._id = model, response_id
        self._created = int(time.time()) if created_at is None else created_at
        self._seq = 0
        self._items: list[dict[str, Any]] = []
        self._open: dict[str, Any] | None = None

    def _event(self, kind: str, **fields: Any) -> bytes:
        self._seq += 1
        return named_event(kind, {"type": kind, "sequence_number": self._seq - 1, **fields})

    def _response(self, status: str, **more: Any) -> dict[str, Any]:
        return {"id": self._id, "object": "response", "created_at": self._created, "status": status,
                "model": self._model, "output": list(self._items), "parallel_tool_calls": True,
                "tool_choice": "auto", "tools": [], "error": None, "incomplete_details": None, "usage": None,
                **more}

    def head(self) -> bytes:
        return (self._event("response.created", response=self._response("in_progress"))
                + self._event("response.in_progress", response=self._response("in_progress")))

    def _add(self, item: dict[str, Any]) -> bytes:
        out = self._close()
        self._items.append(item)
        self._open = item
        return out + self._event("response.output_item.added", output_index=len(self._items) - 1,
                                 item={**item, "status": "in_progress"})

    def _where(self) -> dict[str, Any]:
        assert self._open is not None
        return {"item_id": self._open["id"], "output_index": len(self._items) - 1}

    def _close(self) -> bytes:
        item = self._open
        if item is None:
            return b""
        out = b""
        if item["type"] == "message":
            part = item["content"][0]
            out = (self._event("response.output_text.done", **self._where(), content_index=0, text=part["text"],
                               logprobs=[])
                   + self._event("response.content_part.done", **self._where(), content_index=0, part=part))
        elif item["type"] == "reasoning":
            part = item["summary"][0]
            out = (self._event("response.reasoning_summary_text.done", **self._where(), summary_index=0,
                               text=part["text"])
                   + self._event("response.reasoning_summary_part.done", **self._where(), summary_index=0, part=part))
        elif item["type"] == "function_call":
            out = self._event("response.function_call_arguments.done", **self._where(), arguments=item["arguments"])
        item["status"] = "completed"
        out += self._event("response.output_item.done", output_index=len(self._items) - 1, item=item)
        self._open = None
        return out

    def content(self, text: str, channel: Channel = "answer") -> bytes:
        item, n, out = self._open, len(self._items), b""
        if channel == "answer":
            if item is None or item["type"] != "message":
                out = self._add({"id": f"msg_{n}", "type": "message", "role": "assistant", "content": []})
                part = {"type": "output_text", "text": "", "annotations": []}
                out += self._event("response.content_part.added", **self._where(), content_index=0, part=part)
                assert self._open is not None
                self._open["content"].append(dict(part))
            assert self._open is not None
            self._open["content"][0]["text"] += text
            return out + self._event("response.output_text.delta", **self._where(), content_index=0, delta=text,
                                     logprobs=[])
        if channel == "reasoning":
            if item is None or item["type"] != "reasoning":
                out = self._add({"id": f"rs_{n}", "type": "reasoning", "summary": []})
                part = {"type": "summary_text", "text": ""}
                out += self._event("response.reasoning_summary_part.added", **self._where(), summary_index=0,
                                   part=part)
                assert self._open is not None
                self._open["summary"].append(dict(part))
            assert self._open is not None
            self._open["summary"][0]["text"] += text
            return out + self._event("response.reasoning_summary_text.delta", **self._where(), summary_index=0,
                                     delta=text)
        if item is None or item["type"] != "function_call":
            raise ValueError("tool arguments stream inside a tool call: write it with tool_call()")
        item["arguments"] += text
        return self._event("response.function_call_arguments.delta", **self._where(), delta=text)

    def tool_call(self, call: ToolCall) -> bytes:
        out = self._add({"id": f"fc_{len(self._items)}", "type": "function_call", "call_id": call.id,
                         "name": call.name, "arguments": ""})
        return out + self.content(call.arguments, "tool") + self._close()

    def _final(self, finish_reason: str, usage: Usage | None) -> tuple[str, dict[str, Any]]:
        reason = _REASON.get(finish_reason)
        status = "incomplete" if reason else "completed"
        return status, self._response(status, usage=usage_object(usage) if usage is not None else None,
                                      incomplete_details={"reason": reason} if reason else None)

    def tail(self, finish_reason: str, usage: Usage | None) -> bytes:
        out = self._close()
        status, response = self._final(finish_reason, usage)
        return out + self._event(f"response.{status}", response=response)

    def whole(self, finish_reason: str, usage: Usage | None) -> dict[str, Any]:
        """The response the stream written so far makes, as a whole (non-streamed) answer."""
        self._close()
        return self._final(finish_reason, usage)[1]

    def error(self, error: WireError) -> bytes:
        return self._event("error", code=error_code(error.status or 500, error.kind), message=error.message,
                           param=None)


class ResponsesDialect(Dialect):
    """OpenAI Responses (``/responses`` on the ``/v1`` base URL)."""

    name = "openai-responses"
    end_marker = "event: response.completed"
    server_routes = (("POST", "/v1/responses"),)

    def __init__(self, data: WireData) -> None:
        self.data = data

    def body(self, req: LLMRequest) -> bytes:
        body: dict[str, Any] = {"model": req.model,
                                "input": req.prompt if req.prompt is not None else input_items(req.messages)}
        if req.stream:
            body["stream"] = True
        if req.max_tokens is not None:
            body["max_output_tokens"] = req.max_tokens
        if req.temperature is not None:
            body["temperature"] = req.temperature
        if req.tools:
            body["tools"] = [{"type": "function", "name": t.name, "description": t.description,
                              "parameters": dict(t.parameters)} for t in req.tools]
        body.update(req.extra)
        return orjson.dumps(body)

    def decoder(self) -> StreamDecoder:
        return ResponsesStreamDecoder()

    def decode(self, body: bytes) -> Answer:
        obj = loads_object(body)
        if obj is None:
            return Answer(error=WireError(f"not a JSON object: {body[:80]!r}", INVALID))
        if obj.get("error"):
            return Answer(error=_error_of(obj["error"]))
        output = obj.get("output")
        if not isinstance(output, list):
            return Answer(error=WireError("the body has no 'output' list", INVALID))
        text, reasoning, calls = [], [], []
        for item in output:
            if not isinstance(item, dict):
                continue
            if item.get("type") == "message":
                text += [p["text"] for p in item.get("content") or () if isinstance(p, dict)
                         and p.get("type") == "output_text" and isinstance(p.get("text"), str)]
            elif item.get("type") == "reasoning":
                reasoning += [p["text"] for p in (item.get("summary") or []) + (item.get("content") or [])
                              if isinstance(p, dict) and isinstance(p.get("text"), str)]
            elif item.get("type") == "function_call":
                calls.append(ToolCall(str(item.get("call_id", "")), str(item.get("name", "")),
                                      str(item.get("arguments") or "{}")))
        usage = obj.get("usage")
        return Answer(text="".join(text), finish_reason=_finish(obj, bool(calls)),
                      usage=usage_from(usage) if isinstance(usage, dict) else None,
                      model=str(obj["model"]) if obj.get("model") else None, choices=1, tool_call=bool(calls),
                      tool_calls=tuple(calls), reasoning="".join(reasoning))

    def error(self, status: int, body: bytes) -> WireError:
        obj = loads_object(body)
        err = obj.get("error") if obj is not None else None
        if isinstance(err, dict):
            return WireError(str(err.get("message", ""))[:200], str(err.get("type") or error_type(status)), status)
        return WireError(body[:200].decode("utf-8", "replace"), error_type(status), status)

    def error_body(self, message: str, status: int, kind: str | None = None) -> bytes:
        return error_body(message, kind or error_type(status), status)

    def usage_in(self, tail: bytes) -> Usage | None:
        obj = last_object(tail, b"usage")
        return usage_from(obj) if obj is not None else None

    def question(self, body: Mapping[str, Any]) -> str:
        try:
            messages = _parse_input(body.get("input", ""))
        except InputError:
            return ""
        users = [m.content for m in messages if m.role == "user"]
        return users[-1] if users else ""

    # ------------------------------------------------------------------ the server half
    def parse_request(self, body: bytes, path: str = "") -> LLMRequest:
        obj = request_object(body)
        stream = obj.get("stream", False)
        if not isinstance(stream, bool):
            raise InputError("'stream' must be true or false")
        messages = _parse_input(obj.get("input", ""))
        instructions = obj.get("instructions")
        if isinstance(instructions, str) and instructions:
            messages.insert(0, Message("system", instructions))
        raw_tools = obj.get("tools")
        tools = tuple(Tool(str(t.get("name", "")), str(t.get("description") or ""), t.get("parameters") or {})
                      for t in raw_tools if isinstance(t, dict) and t.get("type") == "function") \
            if isinstance(raw_tools, list) else ()
        model = obj.get("model")
        known = {"model", "input", "instructions", "stream", "max_output_tokens", "temperature", "tools"}
        return LLMRequest(model=model if isinstance(model, str) else "", messages=tuple(messages),
                          max_tokens=positive_int(obj, "max_output_tokens"), temperature=number(obj.get("temperature")),
                          stream=stream, tools=tools, extra={k: v for k, v in obj.items() if k not in known})

    def encoder(self, model: str, response_id: str, kind: Kind = "chat") -> StreamEncoder:
        return ResponsesStreamEncoder(model, response_id)

    def answer_body(self, answer: Answer, response_id: str, kind: Kind = "chat") -> bytes:
        enc = ResponsesStreamEncoder(answer.model or "", response_id)
        if answer.reasoning:
            enc.content(answer.reasoning, "reasoning")
        if answer.text or not answer.tool_calls:
            enc.content(answer.text)
        for call in answer.tool_calls:
            enc.tool_call(call)
        return orjson.dumps(enc.whole(answer.finish_reason or STOP, answer.usage))


RESPONSES_DATA = WireData(paths={"chat": "/responses", "completions": "/responses"},
                          auth=Auth("header", "Authorization", "Bearer "))
RESPONSES = ResponsesDialect(RESPONSES_DATA)
