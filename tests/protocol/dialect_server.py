"""A real HTTP server on 127.0.0.1 that answers every registered dialect with that dialect's server half
(``parse_request``, then ``encoder`` or ``answer_body``), for the tests where a provider's official SDK
is the client: if the SDK rejects the bytes, the bytes are wrong.

It runs in a thread with its own event loop, so a blocking SDK call in the test talks to it over a
socket. ``Script`` says what every answer carries; ``seen`` keeps every request (path, headers, body,
and what ``parse_request`` read from it)."""

from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from loadbench.protocol.dialect import STOP, Answer, Channel, Dialect, LLMRequest, ToolCall, WireError
from loadbench.protocol.registry import dialect, names
from loadbench.protocol.usage import Usage

USAGE = Usage(prompt_tokens=30, completion_tokens=9, cached_tokens=8, cache_write_tokens=2, reasoning_tokens=3)


@dataclass(frozen=True)
class Script:
    pieces: tuple[tuple[str, Channel], ...] = (("let me think", "reasoning"), ("Hello", "answer"), (" world", "answer"))
    tool_calls: tuple[ToolCall, ...] = ()
    finish: str = STOP
    usage: Usage = USAGE
    stream_error: WireError | None = None  # written after the pieces instead of the tail
    status_error: WireError | None = None  # the whole answer is this error, with its status
    keepalives: int = 1  # keep-alive events before the first piece


@dataclass(frozen=True)
class Seen:
    dialect: str
    path: str  # path and query as sent
    headers: dict[str, str]  # names in lower case
    body: bytes
    request: LLMRequest


@dataclass
class DialectServer:
    script: Script = Script()
    seen: list[Seen] = field(default_factory=list)
    url: str = ""

    def __enter__(self) -> DialectServer:
        ready = threading.Event()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._serve, args=(ready,), daemon=True)
        self._thread.start()
        assert ready.wait(10), "the dialect server did not start within 10 s"
        return self

    def __exit__(self, *exc: object) -> None:
        asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    def _serve(self, ready: threading.Event) -> None:
        asyncio.set_event_loop(self._loop)
        app = web.Application()
        for name in names():
            d = dialect(name)
            for method, pattern in d.server_routes:
                app.router.add_route(method, pattern, self._handler(d))
        self._runner = web.AppRunner(app)
        self._loop.run_until_complete(self._runner.setup())
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        self._loop.run_until_complete(site.start())
        host, port = self._runner.addresses[0][:2]
        self.url = f"http://{host}:{port}"
        ready.set()
        self._loop.run_forever()

    def _handler(self, d: Dialect) -> Any:
        async def handle(request: web.Request) -> web.StreamResponse:
            raw = await request.read()
            req = d.parse_request(raw, request.raw_path)
            headers = {k.lower(): v for k, v in request.headers.items()}
            self.seen.append(Seen(d.name, request.raw_path, headers, raw, req))
            s = self.script
            if s.status_error is not None:
                return web.Response(status=s.status_error.status or 500, headers={"Content-Type": d.content_type},
                                    body=d.error_body(s.status_error.message, s.status_error.status or 500,
                                                      s.status_error.kind or None))
            if not req.stream:
                answer = Answer(text="".join(t for t, c in s.pieces if c == "answer"),
                                reasoning="".join(t for t, c in s.pieces if c == "reasoning"),
                                finish_reason=s.finish, usage=s.usage, model=req.model, choices=1,
                                tool_call=bool(s.tool_calls), tool_calls=s.tool_calls)
                return web.Response(headers={"Content-Type": d.content_type},
                                    body=d.answer_body(answer, "resp-1", req.kind))
            resp = web.StreamResponse(headers={"Content-Type": d.stream_content_type})
            await resp.prepare(request)
            enc = d.encoder(req.model or "model-x", "resp-1", req.kind)
            await resp.write(enc.head())
            for _ in range(s.keepalives):
                await resp.write(enc.keepalive())
            for text, channel in s.pieces:
                await resp.write(enc.content(text, channel))
            for call in s.tool_calls:
                await resp.write(enc.tool_call(call))
            await resp.write(enc.error(s.stream_error) if s.stream_error else enc.tail(s.finish, s.usage))
            await resp.write_eof()
            return resp

        return handle
