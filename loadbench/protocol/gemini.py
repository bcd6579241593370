"""The ``gemini`` dialect: Google's Gemini API (AI Studio) and Vertex AI's, both halves.

- paths: AI Studio ``/v1beta/models/{model}:generateContent`` and ``...:streamGenerateContent?alt=sse``
  (the endpoint kind ``chat_stream``) with ``x-goog-api-key``; Vertex (``vertex(project, location)``)
  ``/v1/projects/{p}/locations/{l}/publishers/google/models/{model}:...`` with a bearer token. A model
  written as a resource name (``models/gemini-...``) loses its ``models/``.
- body: ``contents`` of ``parts`` (``text``, ``functionCall``, ``functionResponse``; the assistant's role
  is ``model``), ``systemInstruction``, ``generationConfig`` (``maxOutputTokens``, ``temperature``),
  ``tools[].functionDeclarations``.
- stream: SSE of whole ``GenerateContentResponse`` objects, each line ended by CRLF as Google writes
  them; no ``[DONE]``: the frame with a ``finishReason`` ends the answer and the body ends the stream.
  Content is a part's non-empty ``text`` (``thought: true``: reasoning) or a ``functionCall`` (its
  arguments on the ``tool`` channel and the whole ``ToolCall`` at once: Gemini sends a call whole).
  A chunk holds many tokens. ``{"error": {...}}`` in the stream is an error with its ``code``.
- usage (``usageMetadata``): ``promptTokenCount`` includes ``cachedContentTokenCount``;
  ``candidatesTokenCount`` excludes ``thoughtsTokenCount``, so completion tokens are their sum.
- finish reasons: ``STOP`` (TOOL_CALLS when the answer called a function), ``MAX_TOKENS`` LENGTH,
  ``SAFETY`` / ``RECITATION`` / ``BLOCKLIST`` / ``PROHIBITED_CONTENT`` / ``SPII`` CONTENT_FILTER; a
  prompt blocked by ``promptFeedback.blockReason`` is CONTENT_FILTER too.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import unquote

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
    passed_through,
    positive_int,
    request_object,
    settings_of,
    with_settings,
)
from loadbench.protocol.sseout import data_event
from loadbench.protocol.streampath import StreamPathDialect
from loadbench.protocol.turns import block_turns, last_user_text, turn_messages
from loadbench.protocol.usage import Usage, count

STATUS_NAME = {400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED", 404: "NOT_FOUND",
               409: "ABORTED", 429: "RESOURCE_EXHAUSTED", 499: "CANCELLED", 500: "INTERNAL", 501: "NOT_IMPLEMENTED",
               503: "UNAVAILABLE", 504: "DEADLINE_EXCEEDED"}
_NAME_STATUS = {name: status for status, name in STATUS_NAME.items()}
FINISH = FinishWords({"STOP": STOP, "MAX_TOKENS": LENGTH, "SAFETY": CONTENT_FILTER, "RECITATION": CONTENT_FILTER,
                      "BLOCKLIST": CONTENT_FILTER, "PROHIBITED_CONTENT": CONTENT_FILTER, "SPII": CONTENT_FILTER,
                      "IMAGE_SAFETY": CONTENT_FILTER},
                     {STOP: "STOP", LENGTH: "MAX_TOKENS", TOOL_CALLS: "STOP", CONTENT_FILTER: "SAFETY"})
_ROLE = {"assistant": "model"}
_METHODS = ("generateContent", "streamGenerateContent")


_MODEL_RE = re.compile(r"(?:models/)?[A-Za-z0-9][A-Za-z0-9._-]*")


def check_model(model: str) -> str:
    """``model`` when it names a Gemini model (``gemini-2.5-flash`` or ``models/gemini-2.5-flash``); an
    ``InputError`` naming the fix otherwise (a URL, a method suffix, a tuned-model or Vertex path)."""
    if not _MODEL_RE.fullmatch(model):
        raise InputError(f"the gemini model {model!r} is not a model name: write it as 'gemini-2.5-flash' "
                         "or 'models/gemini-2.5-flash' (no URL, no ':generateContent')")
    return model


def status_name(status: int) -> str:
    return STATUS_NAME.get(status, "INTERNAL" if status >= 500 else "INVALID_ARGUMENT")


def usage_from(meta: Mapping[str, Any]) -> Usage:
    thoughts = count(meta.get("thoughtsTokenCount"))
    return Usage(prompt_tokens=count(meta.get("promptTokenCount")),
                 completion_tokens=count(meta.get("candidatesTokenCount")) + thoughts,
                 cached_tokens=count(meta.get("cachedContentTokenCount")), reasoning_tokens=thoughts)


def usage_object(usage: Usage) -> dict[str, int]:
    obj = {"promptTokenCount": usage.prompt_tokens,
           "candidatesTokenCount": max(usage.completion_tokens - usage.reasoning_tokens, 0),
           "totalTokenCount": usage.prompt_tokens + usage.completion_tokens}
    if usage.reasoning_tokens:
        obj["thoughtsTokenCount"] = usage.reasoning_tokens
    if usage.cached_tokens:
        obj["cachedContentTokenCount"] = usage.cached_tokens
    return obj


def error_object(message: str, status: int, kind: str | None = None) -> dict[str, Any]:
    return {"error": {"code": status, "message": message, "status": kind or status_name(status)}}


def _error_of(err: object, status: int | None = None) -> WireError:
    if not isinstance(err, dict):
        return WireError(str(err)[:200], "", status)
    name = str(err.get("status") or "")
    code = err.get("code")
    code = code if isinstance(code, int) and not isinstance(code, bool) else _NAME_STATUS.get(name)
    return WireError(str(err.get("message", ""))[:200], name or status_name(status or code or 500), status or code)


def _parts_text(parts: object) -> str:
    """The text of a turn's parts (thoughts left out)."""
    if not isinstance(parts, list):
        return ""
    return "".join(p["text"] for p in parts
                   if isinstance(p, dict) and isinstance(p.get("text"), str) and not p.get("thought"))


def _call_of(part: Mapping[str, Any]) -> ToolCall | None:
    call = part.get("functionCall")
    if not isinstance(call, dict):
        return None
    name = str(call.get("name", ""))
    return ToolCall(str(call.get("id") or name), name, arguments_text(call.get("args")))


def _result_of(part: Mapping[str, Any]) -> Message | None:
    res = part.get("functionResponse")
    if not isinstance(res, dict):
        return None
    response = res.get("response")
    result = response.get("result") if isinstance(response, dict) and len(response) == 1 else None
    text = result if isinstance(result, str) else arguments_text(response)
    return Message("tool", text, tool_call_id=str(res.get("id") or res.get("name", "")))


def _text_of(part: Mapping[str, Any]) -> str | None:
    return part["text"] if isinstance(part.get("text"), str) and not part.get("thought") else None


def read_response(obj: Mapping[str, Any], out: Collected, called: bool = False) -> bool:
    """One ``GenerateContentResponse`` (a stream frame or a whole answer) into ``out``; returns whether
    the answer has called a function so far (``called``: it had before this frame)."""
    if "error" in obj:
        out.fail(_error_of(obj["error"]))
        return called
    candidates = obj.get("candidates")
    candidate = candidates[0] if isinstance(candidates, list) and candidates else None
    if isinstance(candidate, dict):
        content = candidate.get("content")
        parts = content.get("parts") if isinstance(content, dict) else None
        for part in parts if isinstance(parts, list) else ():
            if not isinstance(part, dict):
                continue
            call = _call_of(part)
            if call is not None:
                out.tool = called = True
                out.text(call.arguments, "tool")
                out.calls.append(call)
            else:
                out.text(part.get("text"), "reasoning" if part.get("thought") else "answer")
        reason = FINISH.ours(candidate.get("finishReason"))
        if reason is not None:
            out.finish, out.done = (TOOL_CALLS if reason == STOP and called else reason), True
    feedback = obj.get("promptFeedback")
    if isinstance(feedback, dict) and feedback.get("blockReason"):
        out.finish, out.done = CONTENT_FILTER, True
    meta = obj.get("usageMetadata")
    if isinstance(meta, dict):
        out.usage = usage_from(meta)
    return called


class GeminiStreamDecoder(JsonEventDecoder):
    """SSE (CRLF or LF) of whole response objects; the answer ends at the frame with a finish reason."""

    def __init__(self) -> None:
        super().__init__()
        self._called = False
        self._model = False

    def answer_text(self, obj: dict[str, Any]) -> str | None:
        # one text part of the first candidate and nothing else read_response reads; the model reported
        if not self._model or "error" in obj or "usageMetadata" in obj or "promptFeedback" in obj:
            return None
        candidates = obj.get("candidates")
        candidate = candidates[0] if type(candidates) is list and candidates else None
        if type(candidate) is dict and not candidate.get("finishReason"):
            content = candidate.get("content")
            parts = content.get("parts") if type(content) is dict else None
            if type(parts) is list and len(parts) == 1:
                part = parts[0]
                if type(part) is dict and "functionCall" not in part and not part.get("thought"):
                    text = part.get("text")
                    return text if type(text) is str else None
        return None

    def event(self, obj: dict[str, Any], out: Collected) -> None:
        self._called = read_response(obj, out, self._called)
        if not self._model and isinstance(obj.get("modelVersion"), str):  # every frame repeats it: report it once
            out.model, self._model = obj["modelVersion"], True


class GeminiStreamEncoder(StreamEncoder):
    """A ``streamGenerateContent?alt=sse`` stream as Google writes it: one whole response object per
    chunk, ``crlf`` line ends (Google's; False writes LF), the last chunk with the finish reason and
    the usage. There is no head and no end marker."""

    def __init__(self, model: str, response_id: str, *, crlf: bool = True) -> None:
        self._model, self._id, self._crlf = model, response_id, crlf

    def _frame(self, candidate: dict[str, Any], **more: Any) -> bytes:
        return data_event({"candidates": [{**candidate, "index": 0}], **more, "modelVersion": self._model,
                           "responseId": self._id}, crlf=self._crlf)

    def head(self) -> bytes:
        return b""

    def content(self, text: str, channel: Channel = "answer") -> bytes:
        if channel == "tool":
            raise ValueError("Gemini sends a function call whole: write it with tool_call()")
        part: dict[str, Any] = {"text": text, "thought": True} if channel == "reasoning" else {"text": text}
        return self._frame({"content": {"parts": [part], "role": "model"}})

    def tool_call(self, call: ToolCall) -> bytes:
        return self._frame({"content": {"parts": [_function_call(call)], "role": "model"}})

    def tail(self, finish_reason: str, usage: Usage | None) -> bytes:
        more = {"usageMetadata": usage_object(usage)} if usage is not None else {}
        return self._frame({"finishReason": FINISH.theirs(finish_reason)}, **more)

    def error(self, error: WireError) -> bytes:
        status = error.status or 500
        kind = error.kind if error.kind in _NAME_STATUS else None
        return data_event(error_object(error.message, status, kind), crlf=self._crlf)


def _function_call(c: ToolCall) -> dict[str, Any]:
    return {"functionCall": {"id": c.id, "name": c.name, "args": arguments_object(c.arguments)}}


def model_path(path: str) -> tuple[str, bool]:
    """(the model, streamed) a request path names (``.../models/{model}:{method}``); ``InputError``
    for another path, or a stream not asked as SSE."""
    route, _, query = path.partition("?")
    head, _, method = route.rpartition(":")
    if "models/" not in head or method not in _METHODS:
        raise InputError("the path must be .../models/{model}:generateContent or :streamGenerateContent?alt=sse")
    stream = method == "streamGenerateContent"
    if stream and "alt=sse" not in query.split("&"):
        raise InputError("a stream is served as server-sent events only: add ?alt=sse")
    return unquote(head.rsplit("models/", 1)[1]), stream


class GeminiDialect(StreamPathDialect):
    """Gemini ``generateContent`` and ``streamGenerateContent`` (AI Studio's or Vertex's paths)."""

    name = "gemini"
    end_marker = "a frame with a finishReason"
    server_routes = (("POST", "/v1beta/models/{tail:.*}"), ("POST", "/v1/models/{tail:.*}"),
                     ("POST", "/v1/projects/{tail:.*}"), ("POST", "/v1beta1/projects/{tail:.*}"))

    def __init__(self, data: WireData) -> None:
        self.data = data

    def path(self, kind: str, model: str = "") -> str:
        return super().path(kind, model.removeprefix("models/"))

    def body(self, req: LLMRequest) -> bytes:
        messages = req.messages if req.prompt is None else (Message("user", req.prompt),)
        names = {c.id: c.name for m in messages for c in m.tool_calls}

        def result(m: Message) -> dict[str, Any]:
            call_id = m.tool_call_id or ""
            return {"functionResponse": {"id": call_id, "name": names.get(call_id, call_id),
                                         "response": {"result": m.content}}}

        system, turns = block_turns(messages, text=lambda t: {"text": t}, call=_function_call, result=result)
        extra, config = with_settings(req.extra, "generationConfig", maxOutputTokens=req.max_tokens,
                                      temperature=req.temperature)
        body: dict[str, Any] = {"contents": [{"role": _ROLE.get(role, role), "parts": parts} for role, parts in turns]}
        if system:
            body["systemInstruction"] = {"parts": [{"text": system}]}
        if config:
            body["generationConfig"] = config
        if req.tools:
            body["tools"] = [{"functionDeclarations": [{"name": t.name, "description": t.description,
                                                        "parameters": dict(t.parameters)} for t in req.tools]}]
        body.update(extra)
        return orjson.dumps(body)

    def decoder(self) -> StreamDecoder:
        return GeminiStreamDecoder()

    def decode(self, body: bytes) -> Answer:
        obj = loads_object(body)
        if obj is None:
            return Answer(error=WireError(f"not a JSON object: {body[:80]!r}", INVALID))
        if "candidates" not in obj and "error" not in obj and "promptFeedback" not in obj:
            return Answer(error=WireError("the body has no 'candidates'", INVALID))
        out = Collected()
        read_response(obj, out)
        if out.error is not None:
            return Answer(error=out.error)
        return Answer(text="".join(c.text for c in out.content if c.channel == "answer"), finish_reason=out.finish,
                      usage=out.usage, model=str(obj["modelVersion"]) if obj.get("modelVersion") else None,
                      choices=len(obj.get("candidates") or ()),
                      tool_call=out.tool, tool_calls=tuple(out.calls),
                      reasoning="".join(c.text for c in out.content if c.channel == "reasoning"))

    def error(self, status: int, body: bytes) -> WireError:
        obj = loads_object(body)
        if obj is not None and isinstance(obj.get("error"), dict):
            return _error_of(obj["error"], status)
        return WireError(body[:200].decode("utf-8", "replace"), status_name(status), status)

    def error_body(self, message: str, status: int, kind: str | None = None) -> bytes:
        return orjson.dumps(error_object(message, status, kind if kind in _NAME_STATUS else None))

    def usage_in(self, tail: bytes) -> Usage | None:
        obj = last_object(tail, b"usageMetadata")
        return usage_from(obj) if obj is not None else None

    def question(self, body: Mapping[str, Any]) -> str:
        return last_user_text(body.get("contents"), _parts_text, "parts")

    # ------------------------------------------------------------------ the server half
    def parse_request(self, body: bytes, path: str = "") -> LLMRequest:
        model, stream = model_path(path)
        obj = request_object(body)
        contents = obj.get("contents")
        if not isinstance(contents, list):
            raise InputError("'contents' must be a list")
        messages: list[Message] = []
        system = obj.get("systemInstruction")
        if isinstance(system, dict) and _parts_text(system.get("parts")):
            messages.append(Message("system", _parts_text(system.get("parts"))))
        for turn in contents:
            if not isinstance(turn, dict) or not isinstance(turn.get("parts"), list):
                raise InputError("every content must be an object with a 'parts' list")
            role = "assistant" if turn.get("role") == "model" else str(turn.get("role", "user"))
            messages += turn_messages(role, turn["parts"], text=_text_of, call=_call_of, result=_result_of)
        config = settings_of(obj, "generationConfig")
        raw_tools = obj.get("tools")
        tools = tuple(Tool(str(f.get("name", "")), str(f.get("description") or ""), f.get("parameters") or {})
                      for t in (raw_tools if isinstance(raw_tools, list) else ()) if isinstance(t, dict)
                      for f in t.get("functionDeclarations") or () if isinstance(f, dict))
        extra = passed_through(obj, ("contents", "systemInstruction", "tools"), "generationConfig", config,
                               ("maxOutputTokens", "temperature"))
        return LLMRequest(model=model, messages=tuple(messages),
                          max_tokens=positive_int(config, "maxOutputTokens", "generationConfig."),
                          temperature=number(config.get("temperature")), stream=stream, tools=tools, extra=extra)

    def encoder(self, model: str, response_id: str, kind: Kind = "chat") -> StreamEncoder:
        return GeminiStreamEncoder(model, response_id)

    def answer_body(self, answer: Answer, response_id: str, kind: Kind = "chat") -> bytes:
        parts: list[dict[str, Any]] = [{"text": answer.reasoning, "thought": True}] if answer.reasoning else []
        if answer.text or not answer.tool_calls:
            parts.append({"text": answer.text})
        parts += [_function_call(c) for c in answer.tool_calls]
        body: dict[str, Any] = {"candidates": [{"content": {"parts": parts, "role": "model"},
                                                "finishReason": FINISH.theirs(answer.finish_reason or STOP),
                                                "index": 0}],
                                "modelVersion": answer.model or "", "responseId": response_id}
        if answer.usage is not None:
            body["usageMetadata"] = usage_object(answer.usage)
        return orjson.dumps(body)


GEMINI_DATA = WireData(paths={"chat": "/v1beta/models/{model}:generateContent",
                              "chat_stream": "/v1beta/models/{model}:streamGenerateContent?alt=sse",
                              "completions": "/v1beta/models/{model}:generateContent"},
                       auth=Auth("header", "x-goog-api-key", ""))
GEMINI = GeminiDialect(GEMINI_DATA)


def vertex_data(project: str, location: str) -> WireData:
    """Vertex AI's paths for ``project`` and ``location`` (its host is ``{location}-aiplatform.googleapis.com``),
    with a bearer token (an OAuth access token)."""
    base = f"/v1/projects/{project}/locations/{location}/publishers/google/models/{{model}}"
    return WireData(paths={"chat": base + ":generateContent", "chat_stream": base + ":streamGenerateContent?alt=sse",
                           "completions": base + ":generateContent"},
                    auth=Auth("header", "Authorization", "Bearer "))


def vertex(project: str, location: str) -> GeminiDialect:
    """The gemini dialect on Vertex AI's paths."""
    return GeminiDialect(vertex_data(project, location))
