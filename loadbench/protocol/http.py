"""The one aiohttp glue of the wire layer: routing misses answered as OpenAI errors.

Shared by the gateway and the mock, so an unknown path or a wrong method gets the same JSON error
from both. The message names the status only, never the request's path or bytes.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web

from loadbench.protocol.openai import error_body, error_type

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def openai_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        resp = web.Response(status=exc.status, content_type="application/json",
                            body=error_body(f"{exc.status} {exc.reason}.", error_type(exc.status), exc.status))
        if "Allow" in exc.headers:
            resp.headers["Allow"] = exc.headers["Allow"]
        return resp
