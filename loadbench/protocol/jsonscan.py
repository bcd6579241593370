"""Reading one JSON object out of raw bytes without parsing the rest, and parsing a request body.

``last_object`` serves every dialect's ``usage_in``: a usage report sits near the end of a whole answer
or of a stream, and the answer's text around it can be long. Text inside a JSON string has its quotes
escaped, so a key with bare quotes (``"usage"``) is a key, and the object ends at the ``}`` that
balances its ``{`` (braces inside strings are rare in a usage object; an unbalanced one is refused).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from loadbench.errors import InputError


def last_object(tail: bytes, key: bytes) -> dict[str, Any] | None:
    """The JSON object that the last ``"key":`` of ``tail`` names (None when there is none)."""
    quoted = b'"' + key + b'"'
    at = tail.rfind(quoted)
    if at < 0:
        return None
    after = at + len(quoted)
    begin = tail.find(b"{", after)
    if begin < 0 or tail[after:begin].strip(b" \t\r\n:"):  # "usage": null, or no object follows
        return None
    end = tail.find(b"}", begin)
    while end > 0 and tail.count(b"{", begin, end) > tail.count(b"}", begin, end + 1):
        end = tail.find(b"}", end + 1)
    if end < 0:
        return None
    try:
        obj = orjson.loads(tail[begin:end + 1])
    except orjson.JSONDecodeError:
        return None
    return obj if isinstance(obj, dict) else None


def loads_object(raw: bytes) -> dict[str, Any] | None:
    """``raw`` parsed, when it is a JSON object (None otherwise)."""
    try:
        obj = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
    return obj if isinstance(obj, dict) else None


def request_object(raw: bytes) -> dict[str, Any]:
    """A request body that must be a JSON object; ``InputError`` (fit for a 400 answer) otherwise."""
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InputError(f"malformed JSON body: {exc}") from None
    if not isinstance(body, dict):
        raise InputError("the request body must be a JSON object")
    return body


def positive_int(obj: dict[str, Any], key: str, where: str = "") -> int | None:
    """``obj[key]`` when present: an integer >= 1, else ``InputError`` naming ``where`` + ``key``."""
    value = obj.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InputError(f"'{where}{key}' must be an integer >= 1, got {value!r}")
    return value


def number(value: object) -> float | None:
    """A JSON number as a float (None for anything else, booleans included)."""
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def arguments_object(arguments: str) -> Any:
    """A tool call's JSON arguments as a value, for protocols that carry them parsed (a malformed text
    is carried as a string rather than lost)."""
    try:
        return orjson.loads(arguments or "{}")
    except orjson.JSONDecodeError:
        return arguments


def arguments_text(value: object) -> str:
    """A protocol's parsed tool arguments as the JSON text ``ToolCall.arguments`` holds."""
    return value if isinstance(value, str) else orjson.dumps(value if value is not None else {}).decode()


def with_settings(extra: Mapping[str, Any], key: str, **settings: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """(``extra`` without ``key``, the settings object ``key`` names): the fields ``extra`` passes
    through under ``key`` (``inferenceConfig``, ``generationConfig``) with the non-None ``settings``
    loadbench sets itself."""
    rest = dict(extra)
    config = dict(rest.pop(key, None) or {})
    config.update({k: v for k, v in settings.items() if v is not None})
    return rest, config


def settings_of(obj: Mapping[str, Any], key: str) -> dict[str, Any]:
    """The settings object ``obj[key]`` ({} when absent); ``InputError`` when it is not an object."""
    config = obj.get(key) or {}
    if not isinstance(config, dict):
        raise InputError(f"'{key}' must be an object")
    return config


def passed_through(obj: Mapping[str, Any], known: tuple[str, ...], key: str, config: Mapping[str, Any],
                   config_known: tuple[str, ...]) -> dict[str, Any]:
    """The fields of a request body loadbench does not read (its ``extra``), the unread settings of
    ``config`` kept under ``key``."""
    extra = {k: v for k, v in obj.items() if k not in known and k != key}
    rest = {k: v for k, v in config.items() if k not in config_known}
    if rest:
        extra[key] = rest
    return extra
