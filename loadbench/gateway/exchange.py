"""One client request through the gateway: an ``Exchange`` whose methods are the steps, in order.

1. ``authorize``  the presented key's digest (the cache tenant) and, with auth on, the check
2. ``parse``      body (read up to ``limits.max_body_bytes`` within ``body_timeout_s``), model, metadata
3. ``lookup``     the cache hook, when one is installed
4. ``route``      the ordered targets: the route's policy (``policies.py``: plain, experiment, cost, ...)
5. ``call``       attempts with retry and fallback, all before the first content byte reaches the client
6. ``attempt``    one upstream request; an answer that is not OpenAI (HTML, garbage, SSE to a whole
                  request, a stream that stalls or ends before its first token) is a target failure
7. ``relay`` / ``answer_json``  the answer to the client (``relay.StreamRelay`` does the bookkeeping)
8. cache store, in a task of its own
9. ``events.exchange_finished``: whoever listens (the request log, shadows, judges) hears of it

Upstream bytes are relayed as they arrive, after the first token; the relay looks only at what metrics
need. A client that stops reading is cut off after ``client_write_timeout_s`` and costs the target
nothing (``watchdog``).
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass, replace
from time import perf_counter_ns

import aiohttp
import orjson
from aiohttp import web

from loadbench import outcomes
from loadbench.errors import InputError
from loadbench.gateway import auth
from loadbench.gateway import openai_error as oai
from loadbench.gateway.config import RouteTarget
from loadbench.gateway.context import CacheHook, RequestContext, next_request_id
from loadbench.gateway.escalation import escalate
from loadbench.gateway.health import record_failure, record_success
from loadbench.gateway.ingress import kind_of, refuse, response_id, stream_error
from loadbench.gateway.relay import StreamRelay
from loadbench.gateway.state import Gateway, GatewayState
from loadbench.gateway.translate import DialectRelay, translated_request
from loadbench.gateway.upstream import Upstream
from loadbench.gateway.watchdog import Watch
from loadbench.protocol.dialect import Dialect
from loadbench.protocol.keepalive import post
from loadbench.protocol.openai import OPENAI, answer_object, completion_tokens, is_error_body, usage_from, usage_in

log = logging.getLogger("loadbench.gateway")

CONNECT_ERROR = 502  # a connection error counts as this status for retry/fallback lists
TIMEOUT = 504  # a timeout counts as this status
INVALID = 502  # a 200 that is not an OpenAI answer counts as this status
MAX_ERROR_BODY_BYTES = 64 * 1024  # an upstream error body relayed to the client
_SSE_HEADERS = {"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
Outgoing = tuple[str, Mapping[str, str], bytes]  # an attempt's (url, headers, body)
HIGH_WATER_BYTES = 64 * 1024  # unsent bytes to a client above which the relay waits for it (aiohttp's limit)


class _SseResponse(web.StreamResponse):
    # the headers leave with the first bytes, in one send (as in the mock)
    _send_headers_immediately = False


async def _drained(transport: asyncio.Transport) -> None:
    """Wait until the client has taken most of what was written (the watchdog bounds the wait)."""
    delay_s = 0.001
    while transport.get_write_buffer_size() > HIGH_WATER_BYTES and not transport.is_closing():
        await asyncio.sleep(delay_s)
        delay_s = min(2 * delay_s, 0.05)
    if transport.is_closing():
        raise ConnectionResetError("the client went away")


@dataclass(slots=True)
class _Failure:
    """Why an attempt did not produce a response (before any byte went to the client)."""

    status: int  # upstream status, or CONNECT_ERROR / TIMEOUT / INVALID
    outcome: str  # metric label: the status, or outcomes.TIMEOUT / CONNECTION_ERROR / INVALID_ANSWER
    body: bytes  # an upstream OpenAI error body to pass through, or b"" (the gateway writes one)
    message: str
    retry_after: str | None = None


async def _read_capped(resp: aiohttp.ClientResponse, cap: int) -> bytes | None:
    """The whole body, or None when it is longer than ``cap`` (reading stops there)."""
    if resp.content_length is not None:
        return None if resp.content_length > cap else await resp.read()
    parts: list[bytes] = []
    size = 0
    while chunk := await resp.content.readany():
        size += len(chunk)
        if size > cap:
            return None
        parts.append(chunk)
    return b"".join(parts)


def _too_large(limit: int) -> web.Response:
    return oai.refuse(413, f"Request body is larger than {limit} bytes.")


class Exchange:
    __slots__ = ("cache", "ctx", "gw", "metrics", "request", "state")

    def __init__(self, request: web.Request, kind: str, gw: Gateway, cache: CacheHook | None,
                 ingress: Dialect = OPENAI) -> None:
        assert gw.state is not None
        self.request = request
        self.gw = gw
        self.state: GatewayState = gw.state  # one snapshot for the whole exchange (reloads swap it)
        self.metrics = gw.metrics
        self.cache = cache
        self.ctx = RequestContext(next_request_id(), perf_counter_ns(), kind, request.headers)
        if ingress is not OPENAI:
            self.ctx.ingress = ingress

    async def run(self) -> web.StreamResponse:
        ctx = self.ctx
        early = self.authorize() or await self.parse()
        if early is None and self.state.spec.rate_limits is not None:  # without limits: no coroutine at all
            early = await self.admit()
        if early is not None:
            self.metrics.inc("requests", ctx.route.name if ctx.route else "", str(early.status))
            return early
        route = ctx.route
        assert route is not None
        cache = self.cache
        if cache is not None:
            cached = await cache.lookup(ctx)
            if cached is not None:
                self.metrics.inc("requests", route.name, str(cached.status))
                return cached
        order = self.route()
        if not order:
            self.metrics.inc("requests", route.name, "400")
            return refuse(ctx, 400, f"No target of `{route.name}` matches the request metadata.",
                          "invalid_request_error")
        response = await self.call(order)
        if route.cost is not None and route.cost.escalate:
            response = await escalate(ctx, order, response, route.cost, self.call,
                                      self.gw.events.exchange_finished.fire)
        self.metrics.inc("requests", route.name, str(response.status))
        self.charge()
        if cache is not None and ctx.capture and response.status == 200 and ctx.captured:
            if not response.prepared:
                # A non-streamed answer: send it before storing, so the client never waits for the cache.
                try:
                    await response.prepare(self.request)
                    await response.write_eof()
                except ConnectionResetError:
                    return response
            # A task of its own: the client may close the connection as soon as it has the answer,
            # which cancels this handler, and a remote embedder call must not die with it.
            self.gw.spawn(cache.store(ctx, 200, b"".join(ctx.captured)))
        return response

    # ------------------------------------------------------------------ steps 1 to 4

    def authorize(self) -> web.Response | None:
        digest = auth.key_digest_of(self.request.headers)
        if not auth.admitted(digest, self.state.spec.client_key_digests):
            return refuse(self.ctx, 401, "Invalid or missing API key.", "invalid_request_error", "invalid_api_key")
        self.ctx.client_key_digest = digest
        return None

    async def _body(self) -> bytes | web.Response:
        limits = self.state.spec.limits
        limit = limits.max_body_bytes
        request = self.request
        length = request.content_length
        if length is not None and length > limit:
            return _too_large(limit)
        content = request.content
        if content.is_eof():  # the body arrived with the head: all of it is buffered, no timer or await
            raw = content.read_nowait()
            return raw if len(raw) <= limit else _too_large(limit)
        try:
            async with asyncio.timeout(limits.body_timeout_s):
                return await self._collect(limit)
        except TimeoutError:
            return oai.refuse(408, f"Request body not received within {limits.body_timeout_s:g} s.")

    async def _collect(self, limit: int) -> bytes | web.Response:
        content = self.request.content
        parts: list[bytes] = []
        size = 0
        while part := await content.readany():
            size += len(part)
            if size > limit:
                return _too_large(limit)
            parts.append(part)
        return parts[0] if len(parts) == 1 else b"".join(parts)

    async def parse(self) -> web.Response | None:
        raw = await self._body()
        if isinstance(raw, web.Response):
            return raw
        ctx = self.ctx
        if ctx.ingress is not OPENAI:
            return self._parse_foreign(raw)
        try:
            body = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            return oai.error(400, f"Request body is not valid JSON: {exc}", "invalid_request_error")
        if not isinstance(body, dict):
            return oai.error(400, "Request body must be a JSON object.", "invalid_request_error")
        return self._admit(body, body.get("model"))

    def _parse_foreign(self, raw: bytes) -> web.Response | None:
        """A client speaking another protocol: its request read by its dialect; ``ctx.body`` is the
        same request in OpenAI's words (what the cache, the log, shadows and judges read)."""
        ctx = self.ctx
        try:
            req = ctx.ingress.parse_request(raw, self.request.path_qs)
        except InputError as exc:
            return refuse(ctx, 400, str(exc), "invalid_request_error")
        ctx.request = req
        ctx.kind = req.kind  # a route of one protocol may take chats and completions
        body = orjson.loads(OPENAI.body(replace(req, extra={})))
        return self._admit(body, req.model)

    def _admit(self, body: dict[str, object], model: object) -> web.Response | None:
        ctx = self.ctx
        if not isinstance(model, str) or not model:
            return refuse(ctx, 400, "You must provide a model parameter.", "invalid_request_error", param="model")
        route = self.state.spec.routes.get(model)
        if route is None:
            return refuse(ctx, 404, f"The model `{model}` does not exist.", "invalid_request_error",
                          "model_not_found", param="model")
        raw_meta = self.request.headers.get("X-Loadbench-Metadata")
        if raw_meta:
            try:
                meta = orjson.loads(raw_meta)
            except orjson.JSONDecodeError:
                meta = None
            if not isinstance(meta, dict) or not all(isinstance(v, str) for v in meta.values()):
                return refuse(ctx, 400, "X-Loadbench-Metadata must be a JSON object of strings.",
                              "invalid_request_error")
            ctx.metadata = meta
        ctx.body = body
        ctx.stream = body.get("stream") is True
        ctx.route = route
        return None

    async def admit(self) -> web.Response | None:
        """The key's rate limits (``ratelimit.py``): a 429 with ``Retry-After`` when a bucket is empty."""
        limits = self.state.spec.rate_limits
        assert limits is not None
        refused = await self.gw.limiter.admit(self.ctx.client_key_digest, limits.of(self.ctx.client_key_digest))
        if refused is None:
            return None
        self.metrics.inc("rate_limited", refused.limit)
        resp = refuse(self.ctx, 429, f"Rate limit reached for {refused.limit} per minute on this key; retry"
                                     f" after {refused.retry_after_s:.1f} s.", refused.limit, "rate_limit_exceeded")
        resp.headers["Retry-After"] = str(max(1, math.ceil(refused.retry_after_s)))
        return resp

    def charge(self) -> None:
        """An answered request's tokens, to its key's tokens-per-minute bucket."""
        limits = self.state.spec.rate_limits
        ctx = self.ctx
        if limits is None or not ctx.target:
            return
        limit = limits.of(ctx.client_key_digest)
        if limit.tokens_per_minute is not None:
            usage = ctx.usage or (usage_in(ctx.usage_tail) if ctx.usage_tail else None)
            tokens = usage.prompt_tokens + (usage.completion_tokens or ctx.tokens) if usage else ctx.tokens
            self.gw.limiter.charge(ctx.client_key_digest, limit, tokens, self.gw.spawn)

    def route(self) -> list[RouteTarget]:
        route = self.ctx.route
        assert route is not None
        return self.gw.policies[route.policy].order(route, self.ctx, self.state)

    # ------------------------------------------------------------------ steps 5 and 6

    def _payload(self, rt: RouteTarget, upstream_model: str) -> bytes:
        body = self.ctx.body
        if rt.override_params:
            body = {**body, **rt.override_params}
        if body.get("model") != upstream_model:
            body = {**body, "model": upstream_model}
        return orjson.dumps(body)

    def _outgoing(self, rt: RouteTarget, up: Upstream) -> Outgoing:
        """(url, headers, body) of the request to ``up``: an OpenAI client's body as it came to an
        OpenAI target, else the request the target's dialect builds."""
        ctx = self.ctx
        if up.native and ctx.ingress is OPENAI:
            url = up.chat_url if ctx.kind == "chat" else up.completions_url
            return url, up.headers, self._payload(rt, up.spec.model)
        return up.wire(translated_request(ctx, rt.override_params, up))

    async def call(self, order: list[RouteTarget]) -> web.StreamResponse:
        ctx = self.ctx
        route = ctx.route
        assert route is not None
        metrics = self.metrics
        failure: _Failure | None = None
        for index, rt in enumerate(order):
            if index:
                metrics.inc("fallbacks", route.name)
            up = self.state.upstreams[rt.target]
            outgoing = self._outgoing(rt, up)
            for retry in range(route.retry_attempts + 1):
                if retry:
                    metrics.inc("retries", rt.target)
                    t0 = perf_counter_ns()
                    await asyncio.sleep(route.retry_delay_s)
                    ctx.failed_ns += perf_counter_ns() - t0
                ctx.attempts += 1
                result = await self.attempt(up, outgoing)
                if not isinstance(result, _Failure):
                    return result
                failure = result
                if failure.status not in route.retry_status_codes:
                    break
            assert failure is not None
            if failure.status not in route.fallback_status_codes:
                break
        assert failure is not None
        headers = {"x-loadbench-attempts": str(ctx.attempts), "x-request-id": ctx.request_id}
        if failure.retry_after:
            headers["Retry-After"] = failure.retry_after
        if ctx.extra_headers:
            headers.update(ctx.extra_headers)
        if failure.body:
            return web.Response(status=failure.status, body=failure.body, headers=headers,
                                content_type="application/json")
        resp = refuse(ctx, failure.status, failure.message, "upstream_error")
        resp.headers.update(headers)
        return resp

    def _count_failure(self, up: Upstream, status: int | None) -> None:
        spec = up.spec
        if status is not None and status not in spec.failure_status_codes:
            return
        now_ns = perf_counter_ns()
        if record_failure(self.state.health[spec.name], now_ns, spec.allowed_failures_per_minute,
                          round(spec.cooldown_period_s * 1e9)):
            self.metrics.inc("cooldowns", spec.name)
            log.warning("target %s cooled down for %.1fs", spec.name, spec.cooldown_period_s)
            self.gw.events.target_health_changed.fire(spec.name, False, f"cooled down for {spec.cooldown_period_s:g} s")

    def _back(self, name: str) -> None:
        """A success ended ``name``'s probation (called only then: a success costs no call)."""
        self.gw.events.target_health_changed.fire(name, True, "probation passed")

    def _failed(self, up: Upstream, send_ns: int, status: int, outcome: str, message: str, *,
                counted_status: int | None = None, body: bytes = b"", retry_after: str | None = None) -> _Failure:
        self.metrics.inc("attempts", up.spec.name, outcome)
        self._count_failure(up, counted_status)
        self.ctx.failed_ns += perf_counter_ns() - send_ns
        return _Failure(status, outcome, body, message, retry_after)

    async def _error_answer(self, up: Upstream, resp: aiohttp.ClientResponse, send_ns: int) -> _Failure:
        """A non-200 upstream answer: an OpenAI error body is passed on to an OpenAI client, another
        protocol's error is re-written in the client's; anything else is wrapped."""
        name = up.spec.name
        status = resp.status
        try:
            body = await _read_capped(resp, MAX_ERROR_BODY_BYTES) or b""
        except aiohttp.ClientError:
            body = b""
        message = f"upstream {name} answered {status}"
        ingress = self.ctx.ingress
        if up.native and ingress is OPENAI:
            if not is_error_body(body):
                body = b""  # an HTML error page or garbage: the client gets an OpenAI error with the same status
        else:
            err = up.dialect.error(status, body)
            message = f"{message}: {err.message}" if err.message else message
            body = b"" if ingress is OPENAI else ingress.error_body(message, status)
        return self._failed(up, send_ns, status, str(status), message,
                            counted_status=status, body=body, retry_after=resp.headers.get("Retry-After"))

    def _relay_for(self, up: Upstream) -> StreamRelay | DialectRelay:
        """The bookkeeping of one streamed attempt: OpenAI bytes to an OpenAI client as they came,
        another protocol decoded (and re-written, unless the client speaks it too)."""
        ctx = self.ctx
        limit = self.state.spec.limits.max_event_bytes
        capture: list[bytes] | None = [] if ctx.capture or ctx.keep_answer else None
        ingress = ctx.ingress
        if up.native and ingress is OPENAI:
            return StreamRelay(limit, capture)
        target = up.dialect
        rid = response_id(ctx)
        kind = kind_of(ctx)
        if ingress is OPENAI:
            options = ctx.body.get("stream_options")
            wants_usage = isinstance(options, dict) and options.get("include_usage") is True
        else:
            wants_usage = True  # the other protocols report usage unasked (Anthropic's message_delta)
        return DialectRelay(target.decoder(),
                            None if target is ingress else (lambda model: ingress.encoder(model, rid, kind)),
                            up.spec.model, target.end_marker, limit, capture, wants_usage,
                            sse=target.stream_content_type == "text/event-stream")

    async def attempt(self, up: Upstream, outgoing: Outgoing) -> web.StreamResponse | _Failure:
        """One upstream attempt; a _Failure means nothing has been sent to the client yet."""
        ctx = self.ctx
        name = up.spec.name
        url, headers, payload = outgoing
        send_ns = perf_counter_ns()
        up.in_flight += 1
        resp: aiohttp.ClientResponse | None = None
        watch: Watch | None = None
        relay: StreamRelay | DialectRelay | None = None  # streams only: a whole answer needs no relay bookkeeping
        first = body = b""
        done = False
        try:
            try:
                if ctx.stream:
                    # first_token_s runs from the send: to the headers here, then to the first content
                    # delta under the watchdog (the relay moves the deadline to idle_s gaps after it)
                    async with asyncio.timeout(up.spec.timeouts.first_token_s):
                        resp = await post(up.session, url, payload, headers)
                else:
                    resp = await post(up.session, url, payload, headers)
                if resp.status != 200:
                    return await self._error_answer(up, resp, send_ns)
                if ctx.stream:
                    # another protocol's stream is judged by its decoder (what is not the protocol
                    # fails it before the first token)
                    if up.native and resp.content_type != "text/event-stream":
                        return self._failed(up, send_ns, INVALID, outcomes.INVALID_ANSWER,
                                            f"upstream {name} answered {resp.content_type} to a streamed request")
                    watch = self.gw.watchdog.watch(resp, send_ns + up.first_token_ns)
                    relay = self._relay_for(up)
                    first = await self._first_token(relay, resp)
                    if relay.error:
                        status = relay.error_status if isinstance(relay, DialectRelay) else None
                        return self._failed(up, send_ns, status or INVALID,
                                            str(status) if status else outcomes.INVALID_ANSWER,
                                            f"upstream {name} {relay.error} before the first token",
                                            counted_status=status)
                elif up.native and ctx.ingress is OPENAI:
                    whole = await self._whole(up, resp)
                    if whole is None:
                        return self._failed(up, send_ns, INVALID, outcomes.INVALID_ANSWER,
                                            f"upstream {name} did not answer with an OpenAI completion")
                    body = whole
                else:
                    translated = await self._translated(up, resp, send_ns)
                    if isinstance(translated, _Failure):
                        return translated
                    body = translated
            except (TimeoutError, aiohttp.ServerTimeoutError):
                return self._failed(up, send_ns, TIMEOUT, outcomes.TIMEOUT, f"upstream {name} timed out")
            except aiohttp.ClientError as exc:
                if watch is not None and watch.timed_out:
                    return self._failed(up, send_ns, TIMEOUT, outcomes.TIMEOUT, f"upstream {name} timed out")
                return self._failed(up, send_ns, CONNECT_ERROR, outcomes.CONNECTION_ERROR,
                                    f"upstream {name} connection failed: {type(exc).__name__}")
            self.metrics.inc("attempts", name, "200")
            ctx.target = name
            if watch is not None:
                assert relay is not None
                out = await self.relay(up, resp, watch, relay, first, send_ns)
            else:
                out = self.answer_json(up, resp, body, send_ns)
            done = True
            return out
        finally:
            up.in_flight -= 1
            if watch is not None:
                self.gw.watchdog.done(watch)
            if resp is not None:
                if done and resp.content.is_eof():
                    resp.release()
                else:
                    resp.close()  # cancels the upstream request (client gone, break, or error)

    async def _first_token(self, relay: StreamRelay | DialectRelay, resp: aiohttp.ClientResponse) -> bytes:
        """Read until the first content delta (or the end); returns the bytes then due to the client."""
        content = resp.content
        while True:
            chunk = await content.readany()
            if not chunk:
                return relay.end()
            out = relay.feed(chunk, perf_counter_ns())
            if relay.committed or relay.error:
                return out

    async def _read_whole(self, resp: aiohttp.ClientResponse) -> bytes | None:
        """A non-streamed answer up to ``max_upstream_body_bytes`` (None: longer, or a stream or a page)."""
        if resp.content_type in ("text/event-stream", "text/html"):
            return None
        cap = self.state.spec.limits.max_upstream_body_bytes
        length = resp.content_length
        if length is not None:  # _read_capped's first case without its coroutine layer
            return None if length > cap else await resp.read()
        return await _read_capped(resp, cap)

    async def _whole(self, up: Upstream, resp: aiohttp.ClientResponse) -> bytes | None:
        """A non-streamed OpenAI answer; None if it is not one. Its usage comes from the parse that
        checks it (``ctx.usage``), so neither ``answer_json`` nor the log's writer reads it again from
        the bytes (``usage_in`` costs about three times the few dict reads here)."""
        body = await self._read_whole(resp)
        answer = answer_object(body) if body is not None else None
        if answer is None:
            return None
        usage = answer.get("usage")
        self.ctx.usage = usage_from(usage) if isinstance(usage, dict) else None
        return body

    async def _translated(self, up: Upstream, resp: aiohttp.ClientResponse, send_ns: int) -> bytes | _Failure:
        """A non-streamed answer in the target's protocol, decoded, as the client's protocol writes it."""
        ctx = self.ctx
        name = up.spec.name
        raw = await self._read_whole(resp)
        answer = up.dialect.decode(raw) if raw is not None else None
        if answer is None or answer.error is not None:
            status = answer.error.status if answer is not None and answer.error is not None else None
            return self._failed(up, send_ns, status or INVALID, str(status) if status else outcomes.INVALID_ANSWER,
                                f"upstream {name} did not answer with a {up.dialect.name} answer",
                                counted_status=status)
        ctx.usage = answer.usage
        if ctx.ingress is up.dialect:
            return raw or b""
        if not answer.model:
            answer = replace(answer, model=up.spec.model)
        return ctx.ingress.answer_body(answer, response_id(ctx), kind_of(ctx))

    # ------------------------------------------------------------------ step 7

    def _headers(self, overhead_ns: int) -> dict[str, str]:
        ctx = self.ctx
        headers = {"x-loadbench-target": ctx.target, "x-loadbench-attempts": str(ctx.attempts),
                   "x-loadbench-overhead-ms": f"{max(0, overhead_ns) / 1e6:.3f}", "x-request-id": ctx.request_id}
        if ctx.extra_headers:
            headers.update(ctx.extra_headers)
        return headers

    def answer_json(self, up: Upstream, resp: aiohttp.ClientResponse, body: bytes, send_ns: int) -> web.Response:
        ctx = self.ctx
        end_ns = perf_counter_ns()
        name = up.spec.name
        if record_success(self.state.health[name], end_ns):
            self._back(name)
        usage = ctx.usage
        if usage is not None:
            tokens: int | None = usage.completion_tokens
        else:
            tokens = completion_tokens(body[-400:]) if b'"usage"' in body else None
        timings = self.metrics.target(name)
        timings.ttft.record((end_ns - send_ns) / 1e9)
        if tokens:
            tpot_ms = (end_ns - send_ns) / 1e6 / tokens
            timings.tpot.record(tpot_ms / 1e3)
            self.state.windows[name].add(end_ns, tpot_ms)
        if ctx.capture or ctx.keep_answer:
            ctx.captured.append(body)
        ctx.first_ns = ctx.last_ns = end_ns
        ctx.tokens = tokens or 0
        ctx.usage_tail = body
        overhead_ns = (perf_counter_ns() - ctx.arrival_ns) - (end_ns - send_ns) - ctx.failed_ns
        content_type = resp.content_type if up.native and ctx.ingress is OPENAI else ctx.ingress.content_type
        return web.Response(status=200, body=body, headers=self._headers(overhead_ns),
                            content_type=content_type or "application/json")

    async def relay(self, up: Upstream, resp: aiohttp.ClientResponse, watch: Watch, relay: StreamRelay | DialectRelay,
                    data: bytes, send_ns: int) -> web.StreamResponse:
        ctx = self.ctx
        name = up.spec.name
        metrics = self.metrics
        ingress = ctx.ingress
        out = _SseResponse(status=200, headers=_SSE_HEADERS if ingress is OPENAI else
                           {"Content-Type": ingress.stream_content_type, "Cache-Control": "no-cache"})
        first_ns = relay.first_ns or perf_counter_ns()  # a stream may end without any token
        overhead_ns = (perf_counter_ns() - ctx.arrival_ns) - (first_ns - send_ns) - ctx.failed_ns
        out.headers.update(self._headers(overhead_ns))
        if relay.capture is not None:
            ctx.captured = relay.capture
        content = resp.content
        idle_ns = up.idle_ns
        client_ns = round(self.state.spec.limits.client_write_timeout_s * 1e9)
        watch.client = self.request.protocol
        watch.client_ns = client_ns
        broke = ""
        now_ns = perf_counter_ns()
        try:
            await out.prepare(self.request)
            await out.write(data)  # the headers and the bytes held until the first token, in one send
            transport = self.request.transport
            if transport is None:
                raise ConnectionResetError("the client went away")
            # later reads go straight to the transport, framed as aiohttp frames them (as the mock's
            # pacer does): two coroutine layers less per chunk; write_eof still ends the body
            chunked = out.chunked or out.headers.get("Transfer-Encoding") == "chunked"
            data = b""
            while True:
                if data:
                    if transport.is_closing():
                        raise ConnectionResetError("the client went away")
                    transport.write(b"%x\r\n%b\r\n" % (len(data), data) if chunked else data)
                    if transport.get_write_buffer_size() > HIGH_WATER_BYTES:
                        # blocked on the client: its time (see watchdog); the upstream's idle time
                        # starts after it
                        await _drained(transport)
                        now_ns = perf_counter_ns()
                watch.deadline_ns = now_ns + idle_ns
                try:
                    chunk = await content.readany()
                except (TimeoutError, aiohttp.ServerTimeoutError):
                    broke = "timed out"
                    break
                except aiohttp.ClientError as exc:
                    broke = "timed out" if watch.timed_out else f"connection failed ({type(exc).__name__})"
                    break
                if not chunk:
                    data = relay.end()
                    broke = relay.error
                    if data:
                        await out.write(data)
                    break
                now_ns = perf_counter_ns()
                data = relay.feed(chunk, now_ns)
                if relay.error:
                    if data:
                        await out.write(data)  # what came before the error event
                    broke = relay.error
                    break
            timings = metrics.target(name)
            for gap_ns in relay.gaps_ns:
                timings.itl.record(gap_ns / 1e9)
            if broke:
                if relay.carry:
                    await out.write(b"\n\n")  # terminate the partial event before ours
                metrics.inc("stream_breaks", name)
                status = relay.error_status if isinstance(relay, DialectRelay) else None
                self._count_failure(up, status)
                if not (isinstance(relay, DialectRelay) and relay.error_forwarded):
                    await out.write(stream_error(ctx, f"upstream {name} {broke} after the stream started",
                                                 status or 502))
                ctx.capture = False
                ctx.outcome = outcomes.STREAM_CUT
            else:
                end_ns = perf_counter_ns()
                if record_success(self.state.health[name], end_ns):
                    self._back(name)
                if relay.first_ns:
                    timings.ttft.record((relay.first_ns - send_ns) / 1e9)
                count = relay.usage_tokens() or relay.tokens
                ctx.first_ns, ctx.last_ns, ctx.tokens = relay.first_ns, relay.last_ns, count
                if isinstance(relay, StreamRelay):
                    ctx.usage_tail = relay.prev + relay.last
                else:
                    ctx.usage = relay.usage
                if count >= 2 and relay.last_ns > relay.first_ns:
                    tpot_ms = (relay.last_ns - relay.first_ns) / 1e6 / (count - 1)
                    timings.tpot.record(tpot_ms / 1e3)
                    self.state.windows[name].add(end_ns, tpot_ms)
            await out.write_eof()
        except asyncio.CancelledError:
            metrics.inc("slow_clients" if watch.slow_client else "client_disconnects", name)
            raise
        except ConnectionResetError:
            metrics.inc("slow_clients" if watch.slow_client else "client_disconnects", name)
            ctx.capture = False
        return out


async def handle(request: web.Request, kind: str, gw: Gateway, cache: CacheHook | None,
                 ingress: Dialect = OPENAI) -> web.StreamResponse:
    finished = gw.events.exchange_finished
    if not finished:  # nobody listens: no bookkeeping at all
        return await Exchange(request, kind, gw, cache, ingress).run()
    exchange = Exchange(request, kind, gw, cache, ingress)
    started = gw.events.exchange_started
    if started:
        started.fire(exchange.ctx)
    status = 499  # the client went away (the handler was cancelled)
    try:
        response = await exchange.run()
        status = response.status
        return response
    finally:
        finished.fire(exchange.ctx, status)
