"""The one aiohttp glue of the wire layer: routing misses answered as OpenAI errors.

Shared by the gateway and the mock, so an unknown path or a wrong method gets the same JSON error
from both. The message names the status only, never the request's path or bytes. A catch-all route
rather than a middleware: a middleware wraps every request, this costs nothing until a miss.
"""

from __future__ import annotations

from aiohttp import web

from loadbench.protocol.openai import error_body, error_type


def openai_error_response(status: int, reason: str) -> web.Response:
    return web.Response(status=status, content_type="application/json",
                        body=error_body(f"{status} {reason}.", error_type(status), status))


def add_error_routes(app: web.Application) -> None:
    """Every path no route serves answers 404, a served path asked with another method 405."""

    async def miss(request: web.Request) -> web.StreamResponse:
        # routes added after this one are still found first (exact paths resolve before "/")
        allowed = sorted({route.method for route in app.router.routes()
                          if route.resource is not None and route.method != "*"
                          and route.resource.canonical == request.path})
        if not allowed:
            return openai_error_response(404, "Not Found")
        resp = openai_error_response(405, "Method Not Allowed")
        resp.headers["Allow"] = ",".join(allowed)
        return resp

    app.router.add_route("*", "/{tail:.*}", miss)
