"""Faulty upstream behaviours, for testing what a client or a gateway does with a broken target.

``loadbench mock --fault KIND [--fault-rate F]`` answers a seeded fraction ``F`` of the generation
requests with ``KIND`` instead of a normal answer (both are live settings: ``POST /mock/config``).
Every stall is bounded by ``--fault-hold-s`` and ends early when the client leaves.

=====================  ==================================================================
kind                   what the client sees
=====================  ==================================================================
refuse                 the connection is reset at once, no HTTP answer
hang                   the request is read, nothing is ever answered
headers-then-stall     200 headers, then no body
stall-after-role       streams: the role-only chunk, then nothing (whole: as above)
html-200               200 ``text/html`` (a proxy's or captive portal's page)
garbage-200            200 with the requested content type and a body that is neither JSON nor SSE
sse-200                a normal SSE stream, also to a request that did not ask for one
no-done                streams: every chunk but ``[DONE]``, then a clean end; whole: a cut JSON body
endless-event          200 and one event (or whole answer, in the protocol) that grows and never ends
cut-mid-stream         half of the content, then the connection is reset
429-retry-after        429 with ``Retry-After: --fault-retry-after-s`` and an OpenAI error body
html-502               502 ``text/html`` (a load balancer's error page)
=====================  ==================================================================
"""

from __future__ import annotations

import asyncio
import time
from typing import Protocol

from aiohttp import web

from loadbench.mock import bodies
from loadbench.mock.tokens import token_text

FAULTS: tuple[str, ...] = (
    "refuse", "hang", "headers-then-stall", "stall-after-role", "html-200", "garbage-200", "sse-200",
    "no-done", "endless-event", "cut-mid-stream", "429-retry-after", "html-502",
)
_HTML = b"<html><head><title>502 Bad Gateway</title></head><body><h1>Bad Gateway</h1></body></html>"
_WELCOME = b"<html><head><title>Welcome</title></head><body><h1>It works!</h1></body></html>"
_GARBAGE = b"\x00\x17garbage that is neither JSON nor SSE \xff\xfe"
_GROW = b"x" * 16384  # one write of an endless event
_GROW_EVERY_S = 0.005
_POLL_S = 0.05
_SSE = "text/event-stream"
_OPENAI_WHOLE_PREFIX = b'{"choices":[{"message":{"content":"'  # a whole chat answer up to its text
RATE_LIMITED = "injected rate limit (fault 429-retry-after)"


async def hold(request: web.Request, hold_s: float) -> None:
    """Wait ``hold_s``, or less if the client closes its connection first."""
    deadline = time.monotonic() + hold_s
    transport = request.transport
    while time.monotonic() < deadline and transport is not None and not transport.is_closing():
        await asyncio.sleep(_POLL_S)


def _reset(request: web.Request) -> None:
    transport = request.transport
    if transport is not None:
        transport.abort()


class FaultStream(Protocol):
    """The stream a request would have had, in its protocol: what precedes the first token, one
    chunk's bytes, the start of a content event, the end, and the end without its end marker."""

    @property
    def first(self) -> bytes: ...
    @property
    def prefix(self) -> bytes: ...
    @property
    def tail(self) -> bytes: ...
    @property
    def unfinished_tail(self) -> bytes: ...
    def chunk(self, text: str) -> bytes: ...


class FaultServer:
    """One faulty answer; ``tpl`` is the stream the request would have had, ``itl_s`` its pace.
    ``stream_type``, ``rate_limited`` and ``whole_prefix`` are the protocol's stream content type, its 429
    body and the bytes of its whole answer up to the text (where an endless answer grows)."""

    def __init__(self, request: web.Request, tpl: FaultStream, whole: bytes, *, stream: bool,
                 n_tokens: int, itl_s: float, hold_s: float, retry_after_s: int, stream_type: str = "",
                 rate_limited: bytes = b"", whole_prefix: bytes = _OPENAI_WHOLE_PREFIX) -> None:
        self.request = request
        self.tpl = tpl
        self.whole = whole
        self.stream = stream
        self.n_tokens = n_tokens
        self.itl_s = itl_s
        self.hold_s = hold_s
        self.retry_after_s = retry_after_s
        self.sse = stream_type or _SSE
        self.rate_limited = rate_limited or bodies.error_body(429, RATE_LIMITED)
        self.whole_prefix = whole_prefix

    async def serve(self, kind: str) -> web.StreamResponse:
        method = getattr(self, "_" + kind.replace("-", "_"))
        response: web.StreamResponse = await method()
        return response

    async def _open(self, content_type: str) -> web.StreamResponse | None:
        """Send 200 headers of a body of unknown length; None when the client already left."""
        resp = web.StreamResponse(headers={"Content-Type": content_type, "Cache-Control": "no-cache"})
        try:
            await resp.prepare(self.request)
        except ConnectionResetError:
            return None
        return resp

    async def _content(self, resp: web.StreamResponse, count: int) -> bool:
        """Write ``count`` content chunks at the mock's pace; False when the client left."""
        try:
            await resp.write(self.tpl.first)
            for i in range(count):
                await asyncio.sleep(self.itl_s)
                await resp.write(self.tpl.chunk(token_text(i, 1)))
        except ConnectionResetError:
            return False
        return True

    async def _stalled(self, resp: web.StreamResponse | None) -> web.StreamResponse:
        await hold(self.request, self.hold_s)
        _reset(self.request)
        return resp if resp is not None else web.Response()

    async def _refuse(self) -> web.StreamResponse:
        _reset(self.request)
        return web.Response()

    async def _hang(self) -> web.StreamResponse:
        return await self._stalled(None)

    async def _headers_then_stall(self) -> web.StreamResponse:
        return await self._stalled(await self._open(self.sse if self.stream else "application/json"))

    async def _stall_after_role(self) -> web.StreamResponse:
        if not self.stream:
            return await self._headers_then_stall()
        resp = await self._open(self.sse)
        if resp is not None:
            try:
                await resp.write(self.tpl.first)
            except ConnectionResetError:
                return resp
        return await self._stalled(resp)

    async def _html_200(self) -> web.StreamResponse:
        return web.Response(body=_WELCOME, content_type="text/html")

    async def _garbage_200(self) -> web.StreamResponse:
        return web.Response(body=_GARBAGE, headers={"Content-Type": self.sse if self.stream else "application/json"})

    async def _sse_200(self) -> web.StreamResponse:
        resp = await self._open(self.sse)
        if resp is None or not await self._content(resp, self.n_tokens):
            return resp or web.Response()
        return await self._end(resp, self.tpl.tail)

    async def _no_done(self) -> web.StreamResponse:
        if not self.stream:
            return web.Response(body=self.whole[: len(self.whole) // 2], content_type="application/json")
        resp = await self._open(self.sse)
        if resp is None or not await self._content(resp, self.n_tokens):
            return resp or web.Response()
        return await self._end(resp, self.tpl.unfinished_tail)

    async def _end(self, resp: web.StreamResponse, tail: bytes) -> web.StreamResponse:
        try:
            await resp.write(tail)
            await resp.write_eof()
        except ConnectionResetError:
            pass
        return resp

    async def _endless_event(self) -> web.StreamResponse:
        resp = await self._open(self.sse if self.stream else "application/json")
        if resp is None:
            return web.Response()
        deadline = time.monotonic() + self.hold_s
        try:
            if self.stream:
                await resp.write(self.tpl.first)
            await resp.write(self.tpl.prefix if self.stream else self.whole_prefix)
            while time.monotonic() < deadline:
                await resp.write(_GROW)
                await asyncio.sleep(_GROW_EVERY_S)
        except ConnectionResetError:
            return resp
        _reset(self.request)
        return resp

    async def _cut_mid_stream(self) -> web.StreamResponse:
        if not self.stream:
            resp = web.StreamResponse(headers={"Content-Type": "application/json"})
            resp.content_length = len(self.whole)
            try:
                await resp.prepare(self.request)
                await resp.write(self.whole[: len(self.whole) // 2])
            except ConnectionResetError:
                return resp
            _reset(self.request)
            return resp
        opened = await self._open(self.sse)
        if opened is not None and await self._content(opened, max(1, self.n_tokens // 2)):
            _reset(self.request)
        return opened or web.Response()

    async def _429_retry_after(self) -> web.StreamResponse:
        return web.Response(status=429, body=self.rate_limited, content_type="application/json",
                            headers={"Retry-After": str(self.retry_after_s)})

    async def _html_502(self) -> web.StreamResponse:
        return web.Response(status=502, body=_HTML, content_type="text/html")
