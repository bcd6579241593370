"""The floor for this stack: a bare aiohttp pass-through relay (no parsing, no routing, no metrics).

``python -m bench.bare_relay --upstream http://127.0.0.1:PORT [--port 0]`` forwards every POST to
the same path upstream over one sized pool and relays the answer's bytes as they arrive. The
gateway benchmark measures it in the same run so the gateway's CPU cost is read as a ratio to it.
Prints ``bare relay listening on http://HOST:PORT`` once bound.
"""

from __future__ import annotations

import argparse
import asyncio
import socket

import aiohttp
from aiohttp import web


def make_app(upstream: str) -> web.Application:
    app = web.Application()
    state: dict[str, aiohttp.ClientSession] = {}

    async def start(app: web.Application) -> None:
        state["s"] = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=1024, limit_per_host=1024), auto_decompress=False
        )

    async def stop(app: web.Application) -> None:
        await state["s"].close()

    async def relay(request: web.Request) -> web.StreamResponse:
        body = await request.read()
        async with state["s"].post(
            upstream + request.path, data=body, headers={"Content-Type": "application/json"}
        ) as up:
            if up.content_type != "text/event-stream":
                return web.Response(status=up.status, body=await up.read(), content_type=up.content_type)
            out = web.StreamResponse(status=up.status, headers={"Content-Type": "text/event-stream"})
            await out.prepare(request)
            async for chunk in up.content.iter_any():
                await out.write(chunk)
            await out.write_eof()
            return out

    app.on_startup.append(start)
    app.on_cleanup.append(stop)
    app.router.add_post("/{tail:.*}", relay)
    return app


async def serve(upstream: str, host: str, port: int) -> None:
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    runner = web.AppRunner(make_app(upstream.rstrip("/")), access_log=None, handler_cancellation=True)
    await runner.setup()
    await web.SockSite(runner, sock).start()
    print(f"bare relay listening on http://{host}:{sock.getsockname()[1]}", flush=True)
    await asyncio.Event().wait()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--upstream", required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    import uvloop

    uvloop.run(serve(args.upstream, args.host, args.port))


if __name__ == "__main__":
    main()
