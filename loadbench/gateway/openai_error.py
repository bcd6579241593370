"""OpenAI-style error responses (the body is ``loadbench.protocol.openai.error_body``)."""

from __future__ import annotations

from aiohttp import web

from loadbench.protocol.openai import error_body, error_type


def error(status: int, message: str, kind: str, code: str | int | None = None,
          param: str | None = None) -> web.Response:
    return web.Response(status=status, body=error_body(message, kind, code, param), content_type="application/json")


def refuse(status: int, message: str) -> web.Response:
    """An error after which the connection is closed (the client may still be sending a body)."""
    resp = error(status, message, error_type(status))
    resp.force_close()
    return resp
