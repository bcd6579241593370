"""OpenAI-style error responses: ``{"error": {"message", "type", "param", "code"}}``."""

from __future__ import annotations

import orjson
from aiohttp import web


def error(status: int, message: str, kind: str, code: str | int | None = None,
          param: str | None = None) -> web.Response:
    body = orjson.dumps({"error": {"message": message, "type": kind, "param": param, "code": code}})
    return web.Response(status=status, body=body, content_type="application/json")
