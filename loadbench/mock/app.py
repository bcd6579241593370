"""The mock's aiohttp application: ``create_app(settings) -> web.Application``.

Routes
    POST /v1/chat/completions, POST /v1/completions   streamed (SSE) or not
    POST /v1/embeddings                               deterministic unit vectors
    GET  /v1/models, GET /health
    GET/POST /mock/config                             read / change the live settings
    GET/DELETE /mock/stats                            counters / reset them
    every other protocol's routes (``--protocol``, protocols.py)       its dialect's server half
Per-request overrides: headers ``X-Mock-TTFT-Ms`` and ``X-Mock-ITL-Ms``. The answer options
(``--answers``, ``--judge``, ``--context-window``, ``--agent``; answers.py) answer in every protocol.

Timing: ``t0 = time.monotonic()`` when the handler starts. A stream at once sends its headers
and a first chunk that carries no token (chat: a role-only delta; completions: empty text), then
waits for a ``--max-concurrency`` slot (if it queued, its start moves to when it got the slot),
then hands its content chunks to the process's ``Pacer`` (see ``pacer``), which writes chunk k
at ``start + offsets[k]`` (see ``schedule``) straight to the transport, and awaits the end. The
last content chunk, the finish chunk, the usage chunk and ``[DONE]`` go out in one write; the
handler then ends the chunked body through aiohttp (``write_eof``) so keep-alive stays correct.
A non-streamed response is returned when its last token would have been produced.

With ``--workers N`` each process has its own settings, counters and queue; ``/mock/config``
changes only the process that answered it.
"""

from __future__ import annotations

import asyncio
import math
import os
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import Any

import orjson
from aiohttp import web

from loadbench.errors import ConfigError, InputError
from loadbench.mock import bodies
from loadbench.mock.answers import Answerer, AnswerStream, overflow_body
from loadbench.mock.faults import RATE_LIMITED, FaultServer
from loadbench.mock.gate import FifoGate
from loadbench.mock.pacer import Encoded, PacedStream, Pacer
from loadbench.mock.protocols import (
    EncodedStream,
    EncodedTemplate,
    generation,
    plan_stream,
    uses_encoder,
    whole_body,
)
from loadbench.mock.request import GenerationRequest, parse_embedding_inputs, parse_generation
from loadbench.mock.schedule import ChunkSchedule, chunk_count, last_offset_s
from loadbench.mock.servermodel import ServerModel, prompt_words, server_model
from loadbench.mock.settings import MockSettings, live_view, with_updates
from loadbench.mock.stats import MockStats
from loadbench.mock.timer import TimerFd, precise_timer
from loadbench.mock.tokens import count_words, token_text
from loadbench.protocol.dialect import Dialect, Kind, LLMRequest
from loadbench.protocol.http import add_error_routes
from loadbench.protocol.openai import OPENAI
from loadbench.protocol.registry import dialect

_SSE_HEADERS = {"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}

class _SseResponse(web.StreamResponse):
    # The role chunk is written right after prepare(): let aiohttp hold the headers until then
    # so both leave in one send (one syscall and one client wake-up less per stream). Only an
    # optimisation: an aiohttp without this attribute sends the headers first, as before.
    _send_headers_immediately = False




def _json(body: bytes, status: int = 200) -> web.Response:
    return web.Response(body=body, status=status, content_type="application/json")


def _error(status: int, message: str) -> web.Response:
    return _json(bodies.error_body(status, message), status)


def _header_ms(request: web.Request, name: str, default_s: float) -> float:
    raw = request.headers.get(name)
    if raw is None:
        return default_s
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not 0.0 <= value <= 3_600_000.0:
        raise InputError(f"header {name} must be milliseconds >= 0, got {raw!r}")
    return value / 1000.0


class MockServer:
    """The handlers and the per-process state they share."""

    def __init__(self, settings: MockSettings, worker: int = 0) -> None:
        self.settings = settings
        self.stats = MockStats()
        self.gate = FifoGate(settings.max_concurrency)
        # Separate streams so the error sequence does not depend on the jitter setting.
        self._error_rng = random.Random(f"{settings.seed}:{worker}:errors")
        self._jitter_rng = random.Random(f"{settings.seed}:{worker}:jitter")
        self._fault_rng = random.Random(f"{settings.seed}:{worker}:faults")
        self._id_prefix = f"{os.getpid():x}{worker:x}-"
        self._next_id = 0
        self._pacer: Pacer | None = None  # made on the first stream, inside the running loop
        self._timer: TimerFd | None = None  # the pacer's timerfd, where it has one
        self._answerer = Answerer.from_settings(settings)
        self.model: ServerModel | None = server_model(settings)  # None: no term of servermodel is on

    def _get_pacer(self, loop: asyncio.AbstractEventLoop) -> Pacer:
        if self._pacer is None:
            call_later, resolution_s, self._timer = precise_timer(loop)
            self._pacer = Pacer(self.stats, call_later, resolution_s=resolution_s)
        return self._pacer

    async def close(self, app: web.Application) -> None:
        """At the application's cleanup: the timerfd goes with it."""
        if self._timer is not None:
            self._timer.close()
            self._timer = None

    def _injected_error(self, s: MockSettings) -> web.Response | None:
        """The ``--error-rate`` draw (seeded): an error response, or None to serve normally."""
        if s.error_rate > 0 and self._error_rng.random() < s.error_rate:
            self.stats.count(s.error_status)
            return _error(s.error_status, f"injected error (error_rate={s.error_rate:g})")
        return None

    # --- inference ---------------------------------------------------------------------

    async def chat(self, request: web.Request) -> web.StreamResponse:
        return await self._generate(request, chat=True)

    async def completions(self, request: web.Request) -> web.StreamResponse:
        return await self._generate(request, chat=False)

    async def _generate(self, request: web.Request, *, chat: bool) -> web.StreamResponse:
        loop = asyncio.get_running_loop()
        t0 = time.monotonic()
        if self._pacer is not None:
            self._pacer.poll()  # chunks due while the loop was parsing this burst of requests
        s = self.settings  # a snapshot: live changes apply to later requests
        stats = self.stats
        stats.arrived(request.protocol)
        try:
            raw = await request.read()
            body = orjson.loads(raw)
            g = parse_generation(body, chat=chat,
                                 default_model=s.model, default_output_tokens=s.output_tokens,
                                 max_output_tokens=s.max_output_tokens)
            ttft_s = _header_ms(request, "X-Mock-TTFT-Ms", s.ttft_ms / 1000.0)
            itl_s = _header_ms(request, "X-Mock-ITL-Ms", s.itl_ms / 1000.0)
            # the answers read the request as every protocol's is read: through its dialect
            req = OPENAI.parse_request(raw, request.path) if self._answerer is not None else None
        except orjson.JSONDecodeError as exc:
            stats.count(400)
            return _error(400, f"malformed JSON body: {exc}")
        except InputError as exc:
            stats.count(400)
            return _error(400, str(exc))
        if s.fault and self._fault_rng.random() < s.fault_rate:
            return await self._fault(request, s, g, chat, itl_s)
        injected = self._injected_error(s)
        if injected is not None:
            return injected
        if req is not None:  # --answers / --judge / --context-window / --agent (answers.py)
            return await self._answer(request, loop, t0, s, OPENAI, req, g, "chat" if chat else "completions",
                                      ttft_s, itl_s)
        stats.count(200)
        if self.model is not None:
            g, ttft_s = self._arrive(g, ttft_s, lambda: prompt_words(body, chat=chat))
        self._next_id += 1
        response_id = ("chatcmpl-" if chat else "cmpl-") + self._id_prefix + f"{self._next_id:x}"
        stats.in_flight += 1
        stats.max_in_flight = max(stats.max_in_flight, stats.in_flight)
        try:
            if g.stream:
                return await self._stream(request, loop, t0, s, g, chat, response_id, ttft_s, itl_s)
            return await self._whole(loop, t0, s, g, chat, response_id, ttft_s, itl_s)
        finally:
            stats.in_flight -= 1

    async def _fault(self, request: web.Request, s: MockSettings, g: GenerationRequest, chat: bool,
                     itl_s: float) -> web.StreamResponse:
        """Answer with the configured fault (see ``faults``) instead of a generation."""
        self.stats.faults += 1
        created = int(time.time())
        tpl = bodies.stream_template(
            chat=chat, response_id="fault", created=created, model=g.model, prompt_tokens=g.prompt_tokens,
            completion_tokens=g.output_tokens, include_usage=g.include_usage and not s.no_usage)
        whole = bodies.completion_body(
            chat=chat, response_id="fault", created=created, model=g.model, text=token_text(0, g.output_tokens),
            prompt_tokens=g.prompt_tokens, completion_tokens=g.output_tokens, with_usage=not s.no_usage)
        server = FaultServer(request, tpl, whole, stream=g.stream, n_tokens=g.output_tokens, itl_s=itl_s,
                             hold_s=s.fault_hold_s, retry_after_s=s.fault_retry_after_s)
        return await server.serve(s.fault)

    async def _admit(self, loop: asyncio.AbstractEventLoop, t0: float) -> float:
        """Wait for a concurrency slot; returns when the request's clock starts."""
        if self.gate.try_acquire():
            return t0
        await self.gate.wait()
        return time.monotonic()

    def _arrive(self, g: GenerationRequest, ttft_s: float,
                words: Callable[[], list[str]]) -> tuple[GenerationRequest, float]:
        """The server model meets a request: its TTFT grows by the prefill of what the prefix cache did
        not hold, and its usage reports the cached tokens (only when there is a cache)."""
        assert self.model is not None
        caching = self.model.cache is not None
        admission = self.model.arrive(words() if caching else None, g.prompt_tokens)
        return (replace(g, cached_tokens=admission.cached_tokens) if caching else g), ttft_s + admission.prefill_s

    def _decode_itl_s(self, itl_s: float) -> float:
        """The request got its slot: its content gap (the server model's decode slowdown)."""
        return itl_s if self.model is None else self.model.start(itl_s)

    def _release(self) -> None:
        self.gate.release()
        if self.model is not None:
            self.model.end()

    async def _stream(self, request: web.Request, loop: asyncio.AbstractEventLoop, t0: float,
                      s: MockSettings, g: GenerationRequest, chat: bool, response_id: str,
                      ttft_s: float, itl_s: float) -> web.StreamResponse:
        if uses_encoder(OPENAI, s):  # a knob only the encoder writes: the protocols' path, in OpenAI
            return await self._encoded(request, loop, t0, s, g, OPENAI, "chat" if chat else "completions",
                                       response_id, ttft_s, itl_s)
        n_tokens = g.output_tokens
        tpl = bodies.stream_template(
            chat=chat, response_id=response_id, created=int(time.time()), model=g.model,
            prompt_tokens=g.prompt_tokens, completion_tokens=n_tokens,
            include_usage=g.include_usage and not s.no_usage, cached_tokens=g.cached_tokens)
        return await self._paced(request, loop, t0, s, ttft_s, itl_s, chunk_count(n_tokens, s.tokens_per_chunk),
                                 tpl.first, _SSE_HEADERS, tpl.prefix, tpl.suffix, tpl.tail, n_tokens, None)

    async def _encoded(self, request: web.Request, loop: asyncio.AbstractEventLoop, t0: float,
                       s: MockSettings, g: GenerationRequest, wire: Dialect, kind: Kind, response_id: str,
                       ttft_s: float, itl_s: float) -> web.StreamResponse:
        """A stream the protocol's encoder writes, chunk by chunk at the same deadlines."""
        plan = plan_stream(g, s)
        stream = EncodedStream(wire.encoder(g.model, response_id, kind), g, s, plan)
        headers = {"Content-Type": wire.stream_content_type, "Cache-Control": "no-cache"}
        return await self._paced(request, loop, t0, s, ttft_s, itl_s, plan.chunks, stream.head(), headers,
                                 b"", b"", b"", g.output_tokens, stream)

    async def _paced(self, request: web.Request, loop: asyncio.AbstractEventLoop, t0: float, s: MockSettings,
                     ttft_s: float, itl_s: float, n_chunks: int, first: bytes, headers: dict[str, str],
                     prefix: bytes, suffix: bytes, tail: bytes, n_tokens: int,
                     encoded: Encoded | None) -> web.StreamResponse:
        """Send the headers and ``first`` (no token) at once, wait for a slot, then hand the chunks
        to the pacer and await the stream's end."""
        resp = _SseResponse(headers=headers)
        try:
            await resp.prepare(request)
            await resp.write(first)
        except ConnectionResetError:
            self.stats.disconnects += 1
            return resp
        start = await self._admit(loop, t0)
        offsets = ChunkSchedule(ttft_s, self._decode_itl_s(itl_s), s.jitter_ms / 1000.0, n_chunks, self._jitter_rng)
        ended: asyncio.Future[bool] = loop.create_future()

        def on_end(disconnected: bool) -> None:
            if not ended.done():
                ended.set_result(disconnected)

        transport = request.transport
        if transport is None or transport.is_closing():
            self._release()
            self.stats.disconnects += 1
            return resp
        paced = PacedStream(
            transport=transport, start_s=start, offsets_s=offsets, prefix=prefix,
            suffix=suffix, tail=tail, n_tokens=n_tokens, tokens_per_chunk=s.tokens_per_chunk,
            chunked=resp.headers.get("Transfer-Encoding") == "chunked", on_end=on_end, encoded=encoded)
        pacer = self._get_pacer(loop)
        try:
            pacer.add(paced)
            pacer.poll()
            if await ended:
                return resp  # the client left; the pacer counted it
        except asyncio.CancelledError:
            # aiohttp cancels the handler when the client leaves if handler_cancellation is on
            if not paced.ended and transport.is_closing():
                self.stats.disconnects += 1
            raise
        finally:
            pacer.remove(paced)  # a no-op unless this handler was cancelled
            self._release()
        try:
            await resp.write_eof()
        except ConnectionResetError:
            self.stats.disconnects += 1
        return resp

    async def _whole(self, loop: asyncio.AbstractEventLoop, t0: float, s: MockSettings,
                     g: GenerationRequest, chat: bool, response_id: str, ttft_s: float,
                     itl_s: float) -> web.Response:
        n_tokens = g.output_tokens
        if s.thinking_tokens:
            body = whole_body(OPENAI, g, s, response_id, "chat" if chat else "completions")
        else:
            body = bodies.completion_body(
                chat=chat, response_id=response_id, created=int(time.time()), model=g.model,
                text=token_text(0, n_tokens), prompt_tokens=g.prompt_tokens,
                completion_tokens=n_tokens, with_usage=not s.no_usage, cached_tokens=g.cached_tokens)
        return await self._answer_when_done(loop, t0, s, plan_stream(g, s).content_chunks, ttft_s, itl_s, body,
                                            "application/json")

    async def _answer_when_done(self, loop: asyncio.AbstractEventLoop, t0: float, s: MockSettings, n_chunks: int,
                                ttft_s: float, itl_s: float, body: bytes, content_type: str) -> web.Response:
        """A whole answer, returned when its last chunk would have been produced."""
        start = await self._admit(loop, t0)
        offset = last_offset_s(ttft_s, self._decode_itl_s(itl_s), n_chunks)
        if s.jitter_ms > 0:
            offset = max(0.0, offset + self._jitter_rng.uniform(-s.jitter_ms, s.jitter_ms) / 1000.0)
        try:
            delay = start + offset - time.monotonic()
            if delay > 0:  # whole ms, rounded up: uvloop rounds to the nearest ms
                await asyncio.sleep(math.ceil(delay * 1000.0) / 1000.0)
        finally:
            self._release()
        return web.Response(body=body, content_type=content_type)

    async def _answer(self, request: web.Request, loop: asyncio.AbstractEventLoop, t0: float, s: MockSettings,
                      wire: Dialect, req: LLMRequest, g: GenerationRequest, kind: Kind, ttft_s: float,
                      itl_s: float) -> web.StreamResponse:
        """The answer options' reply (answers.py) in ``wire``'s protocol: a whole answer after the TTFT,
        a stream paced like any other."""
        answerer = self._answerer
        assert answerer is not None
        stats = self.stats
        self._next_id += 1
        response_id = f"ans-{self._next_id:x}"
        overflow = answerer.overflow(g)
        if overflow is not None:
            stats.count(400)
            return web.Response(body=overflow_body(wire, overflow), status=400, content_type=wire.content_type)
        if answerer.agent is not None:  # a tool-calling request: the agent plays it (agent.py)
            played = await answerer.agent.respond(request, wire, req, g, response_id, ttft_s, itl_s, stats)
            if played is not None:
                return played
        stats.count(200)
        reply = answerer.reply(req, g)
        if not g.stream:
            await asyncio.sleep(max(0.0, t0 + ttft_s - time.monotonic()))
            return web.Response(body=wire.answer_body(reply.answer(g.model), response_id, kind),
                                content_type=wire.content_type)
        usage = reply.usage if g.include_usage and not s.no_usage else None
        stream = AnswerStream(wire.encoder(g.model, response_id, kind), reply, usage)
        headers = {"Content-Type": wire.stream_content_type, "Cache-Control": "no-cache"}
        return await self._paced(request, loop, t0, s, ttft_s, itl_s, len(stream), stream.head(), headers,
                                 b"", b"", b"", reply.completion_tokens, stream)

    # --- other protocols (protocols.py) --------------------------------------------------

    def protocol_handler(self, wire: Dialect) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        async def handle(request: web.Request) -> web.StreamResponse:
            return await self._speak(request, wire)
        return handle

    async def _speak(self, request: web.Request, wire: Dialect) -> web.StreamResponse:
        """A generation request in ``wire``'s protocol, answered in it (errors too)."""
        loop = asyncio.get_running_loop()
        t0 = time.monotonic()
        if self._pacer is not None:
            self._pacer.poll()
        s = self.settings
        stats = self.stats
        stats.arrived(request.protocol)
        try:
            req = wire.parse_request(await request.read(), request.path_qs)
            g = generation(req, s)
            ttft_s = _header_ms(request, "X-Mock-TTFT-Ms", s.ttft_ms / 1000.0)
            itl_s = _header_ms(request, "X-Mock-ITL-Ms", s.itl_ms / 1000.0)
        except InputError as exc:
            stats.count(400)
            return web.Response(body=wire.error_body(str(exc), 400), status=400, content_type=wire.content_type)
        self._next_id += 1
        response_id = f"msg-{self._id_prefix}{self._next_id:x}"
        kind: Kind = req.kind
        if s.fault and self._fault_rng.random() < s.fault_rate:
            self.stats.faults += 1
            template = EncodedTemplate(wire, g, s, response_id, kind)
            return await FaultServer(
                request, template, whole_body(wire, g, s, response_id, kind),
                stream=g.stream, n_tokens=g.output_tokens, itl_s=itl_s, hold_s=s.fault_hold_s,
                retry_after_s=s.fault_retry_after_s, stream_type=wire.stream_content_type,
                rate_limited=wire.error_body(RATE_LIMITED, 429), whole_prefix=template.whole_prefix).serve(s.fault)
        if s.error_rate > 0 and self._error_rng.random() < s.error_rate:
            stats.count(s.error_status)
            return web.Response(body=wire.error_body(f"injected error (error_rate={s.error_rate:g})",
                                                     s.error_status),
                                status=s.error_status, content_type=wire.content_type)
        if self._answerer is not None:
            return await self._answer(request, loop, t0, s, wire, req, g, kind, ttft_s, itl_s)
        stats.count(200)
        if self.model is not None:
            g, ttft_s = self._arrive(g, ttft_s, lambda: [w for m in req.messages for w in m.content.split()]
                                     + (req.prompt or "").split())
        stats.in_flight += 1
        stats.max_in_flight = max(stats.max_in_flight, stats.in_flight)
        try:
            if g.stream:
                return await self._encoded(request, loop, t0, s, g, wire, kind, response_id, ttft_s, itl_s)
            return await self._answer_when_done(loop, t0, s, plan_stream(g, s).content_chunks, ttft_s, itl_s,
                                                whole_body(wire, g, s, response_id, kind), wire.content_type)
        finally:
            stats.in_flight -= 1

    async def embeddings(self, request: web.Request) -> web.StreamResponse:
        s = self.settings
        self.stats.arrived(request.protocol)
        try:
            body = orjson.loads(await request.read())
            texts, fmt = parse_embedding_inputs(body)
        except orjson.JSONDecodeError as exc:
            self.stats.count(400)
            return _error(400, f"malformed JSON body: {exc}")
        except InputError as exc:
            self.stats.count(400)
            return _error(400, str(exc))
        injected = self._injected_error(s)
        if injected is not None:
            return injected
        self.stats.count(200)
        model = body.get("model")
        return _json(bodies.embeddings_body(
            texts, dim=s.embedding_dim, model=model if isinstance(model, str) and model else s.model,
            prompt_tokens=sum(count_words(t) for t in texts), encoding_format=fmt))

    # --- plain endpoints ---------------------------------------------------------------

    async def models(self, request: web.Request) -> web.StreamResponse:
        return _json(bodies.models_body(self.settings.model, 0))

    async def health(self, request: web.Request) -> web.StreamResponse:
        return _json(b'{"status":"ok"}')

    async def get_config(self, request: web.Request) -> web.StreamResponse:
        return _json(orjson.dumps(live_view(self.settings)))

    async def post_config(self, request: web.Request) -> web.StreamResponse:
        try:
            self.settings = with_updates(self.settings, orjson.loads(await request.read()))
        except orjson.JSONDecodeError as exc:
            return _error(400, f"malformed JSON body: {exc}")
        except ConfigError as exc:
            return _error(400, str(exc))
        return _json(orjson.dumps(live_view(self.settings)))

    def stats_view(self) -> dict[str, Any]:
        st = self.stats
        return {
            "pid": os.getpid(), "requests": st.requests, "connections": st.connections, "in_flight": st.in_flight,
            "max_in_flight": st.max_in_flight, "queued": self.gate.queued,
            "by_status": {str(k): v for k, v in sorted(st.by_status.items())},
            "disconnects": st.disconnects, "faults": st.faults, "chunks": st.chunks, "late_chunks": st.late_chunks,
            "max_lateness_ms": round(st.max_lateness_s * 1000.0, 3),
        }

    async def get_stats(self, request: web.Request) -> web.StreamResponse:
        return _json(orjson.dumps(self.stats_view()))

    async def reset_stats(self, request: web.Request) -> web.StreamResponse:
        in_flight = self.stats.in_flight
        self.stats = MockStats(in_flight=in_flight, max_in_flight=in_flight)
        if self._pacer is not None:
            self._pacer.stats = self.stats
        return _json(orjson.dumps(self.stats_view()))


MOCK_KEY = web.AppKey("loadbench_mock", MockServer)


def create_app(settings: MockSettings, worker: int = 0) -> web.Application:
    mock = MockServer(settings, worker)
    app = web.Application()
    app[MOCK_KEY] = mock
    app.on_cleanup.append(mock.close)
    if "openai" in settings.protocols:
        app.router.add_post("/v1/chat/completions", mock.chat)
        app.router.add_post("/v1/completions", mock.completions)
    for name in settings.protocols:
        if name != "openai":
            wire = dialect(name)
            for method, path in wire.server_routes:
                app.router.add_route(method, path, mock.protocol_handler(wire))
    app.router.add_post("/v1/embeddings", mock.embeddings)
    app.router.add_get("/v1/models", mock.models)
    app.router.add_get("/health", mock.health)
    app.router.add_get("/mock/config", mock.get_config)
    app.router.add_post("/mock/config", mock.post_config)
    app.router.add_get("/mock/stats", mock.get_stats)
    app.router.add_delete("/mock/stats", mock.reset_stats)
    add_error_routes(app)
    return app
