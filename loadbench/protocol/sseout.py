"""Writing Server-Sent Events: a typed event (``event:`` name + JSON ``data``), as Anthropic and the
Responses API write every event, or a bare ``data`` event, with LF or CRLF line ends (Google writes CRLF)."""

from __future__ import annotations

import orjson


def named_event(name: str, obj: object) -> bytes:
    """``event: NAME`` and ``data: JSON``, one event."""
    return b"event: " + name.encode() + b"\ndata: " + orjson.dumps(obj) + b"\n\n"


def data_event(obj: object, *, crlf: bool = False) -> bytes:
    """``data: JSON``, one event, its lines ended by CRLF when ``crlf``."""
    return b"data: " + orjson.dumps(obj) + (b"\r\n\r\n" if crlf else b"\n\n")
