"""The OpenAI wire format, defined once for the worker, the gateway and the mock.

- ``DONE`` / ``DONE_EVENT``: the end-of-stream sentinel, as a ``data`` payload and as a whole event;
- ``error_body`` / ``error_event``: the OpenAI error object, as a JSON body and as an SSE event;
- the content-delta rule: a chunk carries a token when a choice has a non-empty ``content``,
  ``reasoning_content``, ``reasoning`` (chat) or ``text`` (completions). ``parse_chunk`` applies it
  to parsed JSON (the worker), ``content_deltas`` to raw bytes without parsing (the gateway's
  relay); a role-only chunk or a later ``"content": ""`` is not a token under either.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import orjson

DONE = b"[DONE]"
DONE_EVENT = b"data: " + DONE + b"\n\n"
CONTENT_KEYS = ("content", "reasoning_content", "reasoning", "text")
# Text inside a JSON string has its quotes escaped, so the pattern cannot match generated text.
_CONTENT_RE = re.compile(rb'"(?:' + b"|".join(k.encode() for k in CONTENT_KEYS) + rb')"\s*:\s*"(?!")')
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
    if keys == direct and b'"reasoning' not in raw and b'"text"' not in raw:
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


@dataclass(slots=True)
class ChunkInfo:
    """What one streamed event tells the timer."""

    content: bool  # carries visible text (role-only and empty deltas do not)
    text_len: int
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    error: str | None = None


def _text_of_choice(choice: dict[str, Any]) -> str:
    delta = choice.get("delta")
    if isinstance(delta, dict):
        # reasoning models stream thinking separately; it is still generated output
        for key in CONTENT_KEYS[:3]:
            value = delta.get(key)
            if isinstance(value, str) and value:
                return value
        return ""
    text = choice.get(CONTENT_KEYS[3])
    return text if isinstance(text, str) else ""


def parse_chunk(payload: bytes) -> ChunkInfo:
    """Classify one SSE ``data`` payload (not ``[DONE]``)."""
    try:
        obj = orjson.loads(payload)
    except orjson.JSONDecodeError:
        return ChunkInfo(content=False, text_len=0, error=f"unparsable chunk: {payload[:80]!r}")
    if not isinstance(obj, dict):
        return ChunkInfo(content=False, text_len=0, error="chunk is not a JSON object")
    if "error" in obj:
        err = obj["error"]
        msg = err.get("message") if isinstance(err, dict) else str(err)
        return ChunkInfo(content=False, text_len=0, error=str(msg))
    text_len = 0
    choices = obj.get("choices")
    if isinstance(choices, list) and choices:
        for choice in choices:
            if isinstance(choice, dict):
                text_len += len(_text_of_choice(choice))
    info = ChunkInfo(content=text_len > 0, text_len=text_len)
    usage = obj.get("usage")
    if isinstance(usage, dict):
        info.prompt_tokens = _int_or_none(usage.get("prompt_tokens"))
        info.completion_tokens = _int_or_none(usage.get("completion_tokens"))
    return info


@dataclass(slots=True)
class BodyInfo:
    text_len: int
    prompt_tokens: int | None
    completion_tokens: int | None
    error: str | None = None


def parse_body(body: bytes) -> BodyInfo:
    """Parse a non-streamed completion body."""
    try:
        obj = orjson.loads(body)
    except orjson.JSONDecodeError:
        return BodyInfo(0, None, None, error=f"unparsable body: {body[:80]!r}")
    if not isinstance(obj, dict):
        return BodyInfo(0, None, None, error="body is not a JSON object")
    if "error" in obj:
        err = obj["error"]
        return BodyInfo(0, None, None, error=str(err.get("message") if isinstance(err, dict) else err))
    text_len = 0
    for choice in obj.get("choices") or []:
        if isinstance(choice, dict):
            msg = choice.get("message")
            if isinstance(msg, dict) and isinstance(msg.get("content"), str):
                text_len += len(msg["content"])
            elif isinstance(choice.get("text"), str):
                text_len += len(choice["text"])
    raw_usage = obj.get("usage")
    usage: dict[str, Any] = raw_usage if isinstance(raw_usage, dict) else {}
    return BodyInfo(text_len, _int_or_none(usage.get("prompt_tokens")),
                    _int_or_none(usage.get("completion_tokens")))


def error_message(body: bytes, limit: int = 200) -> str:
    """A short, log-safe message from an error response body."""
    try:
        obj = orjson.loads(body)
        if isinstance(obj, dict) and isinstance(obj.get("error"), dict):
            return str(obj["error"].get("message", ""))[:limit]
    except orjson.JSONDecodeError:
        pass
    return body[:limit].decode("utf-8", "replace")


def _int_or_none(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None
