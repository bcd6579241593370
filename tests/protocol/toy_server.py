"""A server that speaks the toy protocol (tests/protocol/toy_dialect.py), for the tests that send it
real requests: ``POST /v9/toy/{model}/ask?token=KEY``."""

from __future__ import annotations

import asyncio

import orjson
from aiohttp import web

from tests.protocol.toy_dialect import TOY

SECRET = "toy-key"


def toy_app(seen: list[dict[str, object]]) -> web.Application:
    async def note(request: web.Request) -> dict[str, object]:
        body = orjson.loads(await request.read())
        seen.append({"model": request.path.split("/")[3], "token": request.query.get("token"),
                     "content_type": request.headers.get("Content-Type"), "accept": request.headers.get("Accept"),
                     "version": request.headers.get("Toy-Version"), "body": body})
        return body

    async def ask(request: web.Request) -> web.StreamResponse:
        body = await note(request)
        if request.query.get("token") != SECRET:
            return web.Response(status=401, body=TOY.error_body("who are you?", 401))
        if body["ask"] == "fail please":
            return web.Response(status=503, body=TOY.error_body("toy engine is down", 503))
        if not body["stream"]:
            return web.Response(body=orjson.dumps({"say": "forty two", "used": [3, 2]}))
        resp = web.StreamResponse()
        await resp.prepare(request)
        # the decoder must join lines split across writes; a thinking line comes first
        for piece in (b"R hmm\nT for", b"ty\nT  two\nU 3", b" 2\n", b"E\n"):
            await resp.write(piece)
            await asyncio.sleep(0.01)
        return resp

    async def ask_cut(request: web.Request) -> web.StreamResponse:
        await note(request)
        resp = web.StreamResponse()
        await resp.prepare(request)
        await resp.write(b"T only a start\n")
        return resp  # the body ends without E

    app = web.Application()
    app.router.add_post("/v9/toy/cut-model/ask", ask_cut)
    app.router.add_post("/v9/toy/{model}/ask", ask)
    return app


