"""OpenAI chat/completions stream chunks and bodies, reduced to what timing needs."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

DONE = b"[DONE]"


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
        content = delta.get("content")
        if isinstance(content, str) and content:
            return content
        # reasoning models stream thinking separately; it is still generated output
        reasoning = delta.get("reasoning_content") or delta.get("reasoning")
        if isinstance(reasoning, str):
            return reasoning
        return ""
    text = choice.get("text")
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
