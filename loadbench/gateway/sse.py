"""Byte-level helpers for relaying an OpenAI SSE stream without parsing each chunk's JSON.

The relay forwards bytes as they arrive; these helpers only look for what metrics need: whether
a read carries content (for TTFT/ITL), how many content deltas it carries (a token estimate when
the client did not ask for usage), where the last complete event ends (so an error event never
lands in the middle of one), and the usage numbers in the tail of the stream.
"""

from __future__ import annotations

import re

import orjson

_CONTENT = (b'"content":"', b'"content": "')
_EMPTY_CONTENT = (b'"content":""', b'"content": ""')
_USAGE_RE = re.compile(rb'"usage"\s*:\s*\{[^{}]*?"completion_tokens"\s*:\s*(\d+)')
DONE = b"data: [DONE]"


def content_deltas(chunk: bytes) -> int:
    """Number of non-empty ``content`` strings in a read (role-only and empty deltas do not count).

    Text inside a JSON string has its quotes escaped, so the pattern cannot match generated text.
    """
    n = chunk.count(_CONTENT[0]) + chunk.count(_CONTENT[1])
    if n:
        n -= chunk.count(_EMPTY_CONTENT[0]) + chunk.count(_EMPTY_CONTENT[1])
    return n


def complete_end(buf: bytes) -> int:
    """Index just past the last complete SSE event in ``buf`` (0 if none is complete)."""
    i = buf.rfind(b"\n\n")
    j = buf.rfind(b"\r\n\r\n")
    if j >= 0 and j + 4 > i + 2:
        return j + 4
    return i + 2 if i >= 0 else 0


def completion_tokens(tail: bytes) -> int | None:
    """``usage.completion_tokens`` from the end of a stream or a whole JSON body, if present."""
    found = _USAGE_RE.findall(tail)
    return int(found[-1]) if found else None


def error_event(message: str, code: int, kind: str = "upstream_error") -> bytes:
    """An SSE event the OpenAI clients raise as an error (``data: {"error": ...}``)."""
    body = orjson.dumps({"error": {"message": message, "type": kind, "code": code}})
    return b"data: " + body + b"\n\n"
