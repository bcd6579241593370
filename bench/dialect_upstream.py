"""A paced upstream answering in every registered protocol with a server half, for the gateway's
translation bench: the same answer (``--tokens`` chunks of one token, the first after ``--ttft-ms``,
then one every ``--itl-ms``, usage at the end) on each protocol's own routes, written by its dialect's
encoder. Each stream sleeps to absolute deadlines (arrival + ttft + k x itl), so a late wake-up is
never carried into the next token.

    python -m bench.dialect_upstream [--port 0] [--ttft-ms 50] [--itl-ms 5] [--tokens 64]

Prints ``listening on http://127.0.0.1:PORT`` once it serves.
"""

from __future__ import annotations

import argparse
import asyncio
import time

from aiohttp import web

from loadbench.protocol.dialect import STOP, Answer, Dialect
from loadbench.protocol.registry import dialect, names
from loadbench.protocol.usage import Usage


def app(ttft_s: float, itl_s: float, tokens: int) -> web.Application:
    usage = Usage(prompt_tokens=12, completion_tokens=tokens)

    def handler(d: Dialect):  # type: ignore[no-untyped-def]
        async def answer(request: web.Request) -> web.StreamResponse:
            start = time.monotonic()
            req = d.parse_request(await request.read(), request.path_qs)
            if not req.stream:
                await asyncio.sleep(ttft_s + (tokens - 1) * itl_s)
                body = d.answer_body(Answer(text="tok " * tokens, finish_reason=STOP, usage=usage,
                                            model=req.model, choices=1), "resp-1", req.kind)
                return web.Response(body=body, content_type=d.content_type)
            resp = web.StreamResponse(headers={"Content-Type": d.stream_content_type})
            await resp.prepare(request)
            enc = d.encoder(req.model, "resp-1", req.kind)
            await resp.write(enc.head())
            for k in range(tokens):
                await asyncio.sleep(max(0.0, start + ttft_s + k * itl_s - time.monotonic()))
                await resp.write(enc.content("tok "))
            await resp.write(enc.tail(STOP, usage))
            await resp.write_eof()
            return resp
        return answer

    application = web.Application()
    for name in names():
        d = dialect(name)
        for method, pattern in d.server_routes:
            application.router.add_route(method, pattern, handler(d))
    return application


async def serve(port: int, ttft_ms: float, itl_ms: float, tokens: int) -> None:
    runner = web.AppRunner(app(ttft_ms / 1000, itl_ms / 1000, tokens))
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    host, bound = runner.addresses[0][:2]
    print(f"listening on http://{host}:{bound}", flush=True)
    await asyncio.Event().wait()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--ttft-ms", type=float, default=50.0)
    p.add_argument("--itl-ms", type=float, default=5.0)
    p.add_argument("--tokens", type=int, default=64)
    args = p.parse_args(argv)
    try:
        import uvloop
        uvloop.install()
    except ImportError:  # the bench runs without it, a little slower
        pass
    asyncio.run(serve(args.port, args.ttft_ms, args.itl_ms, args.tokens))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
