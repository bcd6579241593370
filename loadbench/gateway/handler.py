"""The completion pipeline, one step per function, in this order:

1. request id and timing  (``RequestContext``)
2. auth                   (``_authorize``)
3. body, model, metadata  (``_parse``)
4. [cache lookup]         (``CacheHook.lookup``, when a cache is installed)
5. route selection        (``routing.plan``)
6. upstream call with retry and fallback (``_call``), all before the first byte reaches the client
7. relay                  (``_finish_json`` or ``_relay_stream``)
8. [cache store]          (``CacheHook.store``)

Upstream bytes are relayed as they arrive; the relay looks only at what metrics need (see ``sse``).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from dataclasses import dataclass
from time import perf_counter_ns

import aiohttp
import orjson
from aiohttp import web

from loadbench.gateway import openai_error as oai
from loadbench.gateway.config import Route, RouteTarget
from loadbench.gateway.context import CacheHook, RequestContext, next_request_id
from loadbench.gateway.health import record_failure, record_success
from loadbench.gateway.routing import plan
from loadbench.gateway.sse import DONE, complete_end, completion_tokens, error_event
from loadbench.gateway.state import Gateway, GatewayState
from loadbench.gateway.upstream import Upstream
from loadbench.gateway.watchdog import Watch

log = logging.getLogger("loadbench.gateway")

CONNECT_ERROR = 502  # a connection error counts as this status for retry/fallback lists
TIMEOUT = 504  # a timeout counts as this status
_SSE_HEADERS = {"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
_C1 = b'"content":"'
_C2 = b'"content": "'
_E1 = b'"content":""'
_E2 = b'"content": ""'


@dataclass(slots=True)
class _Failure:
    """Why an attempt did not produce a response (before any byte went to the client)."""

    status: int  # upstream status, or CONNECT_ERROR / TIMEOUT
    outcome: str  # metric label: the status, "timeout" or "connect_error"
    body: bytes  # upstream error body to pass through, or b"" for network failures
    content_type: str
    message: str


# ------------------------------------------------------------------ steps 2 and 3


def _authorize(request: web.Request, state: GatewayState, ctx: RequestContext) -> web.Response | None:
    digests = state.spec.client_key_digests
    if not digests:
        return None
    header = request.headers.get("Authorization", "")
    key = header[7:].strip() if header[:7].lower() == "bearer " else request.headers.get("api-key", "")
    digest = hashlib.sha256(key.encode()).digest()
    if not key or digest not in digests:
        return oai.error(401, "Invalid or missing API key.", "invalid_request_error", "invalid_api_key")
    ctx.client_key_digest = digest
    return None


async def _parse(request: web.Request, state: GatewayState, ctx: RequestContext) -> web.Response | None:
    limit = state.spec.max_body_bytes
    if request.content_length is not None and request.content_length > limit:
        return oai.error(413, f"Request body is larger than {limit} bytes.", "invalid_request_error")
    raw = await request.read()
    if len(raw) > limit:
        return oai.error(413, f"Request body is larger than {limit} bytes.", "invalid_request_error")
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        return oai.error(400, f"Request body is not valid JSON: {exc}", "invalid_request_error")
    if not isinstance(body, dict):
        return oai.error(400, "Request body must be a JSON object.", "invalid_request_error")
    model = body.get("model")
    if not isinstance(model, str) or not model:
        return oai.error(400, "You must provide a model parameter.", "invalid_request_error", param="model")
    route = state.spec.routes.get(model)
    if route is None:
        return oai.error(404, f"The model `{model}` does not exist.", "invalid_request_error",
                         "model_not_found", param="model")
    raw_meta = request.headers.get("X-Loadbench-Metadata")
    if raw_meta:
        try:
            meta = orjson.loads(raw_meta)
        except orjson.JSONDecodeError:
            meta = None
        if not isinstance(meta, dict) or not all(isinstance(v, str) for v in meta.values()):
            return oai.error(400, "X-Loadbench-Metadata must be a JSON object of strings.",
                             "invalid_request_error")
        ctx.metadata = meta
    ctx.body = body
    ctx.stream = body.get("stream") is True
    ctx.route = route
    return None


# ------------------------------------------------------------------ the pipeline


async def handle(request: web.Request, kind: str, gw: Gateway, cache: CacheHook | None) -> web.StreamResponse:
    ctx = RequestContext(next_request_id(), perf_counter_ns(), kind, request.headers)
    state = gw.state
    assert state is not None
    metrics = gw.metrics
    early = _authorize(request, state, ctx) or await _parse(request, state, ctx)
    if early is not None:
        metrics.inc("requests", ctx.route.name if ctx.route else "", str(early.status))
        return early
    route = ctx.route
    assert route is not None
    if cache is not None:
        cached = await cache.lookup(ctx)
        if cached is not None:
            metrics.inc("requests", route.name, str(cached.status))
            return cached
    now_ns = perf_counter_ns()
    order = plan(route, ctx.metadata, state.health, state.windows, state.spec.latency, state.spec.sla,
                 now_ns, gw.rng)
    if not order:
        metrics.inc("requests", route.name, "400")
        return oai.error(400, f"No target of `{route.name}` matches the request metadata.",
                         "invalid_request_error")
    response = await _call(request, ctx, state, gw, route, order)
    metrics.inc("requests", route.name, str(response.status))
    if cache is not None and ctx.capture and response.status == 200 and ctx.captured:
        if not response.prepared:
            # A non-streamed answer: send it before storing, so the client never waits for the cache.
            try:
                await response.prepare(request)
                await response.write_eof()
            except ConnectionResetError:
                return response
        # A task of its own: the client may close the connection as soon as it has the answer,
        # which cancels this handler, and a remote embedder call must not die with it.
        gw.spawn(cache.store(ctx, 200, b"".join(ctx.captured)))
    return response


def _payload(ctx: RequestContext, rt: RouteTarget, upstream_model: str) -> bytes:
    body = ctx.body
    if rt.override_params:
        body = {**body, **rt.override_params}
    if body.get("model") != upstream_model:
        body = {**body, "model": upstream_model}
    return orjson.dumps(body)


async def _call(request: web.Request, ctx: RequestContext, state: GatewayState, gw: Gateway, route: Route,
                order: list[RouteTarget]) -> web.StreamResponse:
    metrics = gw.metrics
    failure: _Failure | None = None
    for index, rt in enumerate(order):
        if index:
            metrics.inc("fallbacks", route.name)
        up = state.upstreams[rt.target]
        payload = _payload(ctx, rt, up.spec.model)
        for retry in range(route.retry_attempts + 1):
            if retry:
                metrics.inc("retries", rt.target)
                t0 = perf_counter_ns()
                await asyncio.sleep(route.retry_delay_s)
                ctx.failed_ns += perf_counter_ns() - t0
            ctx.attempts += 1
            result = await _attempt(request, ctx, state, gw, up, payload)
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
    if ctx.extra_headers:
        headers.update(ctx.extra_headers)
    if failure.body:
        return web.Response(status=failure.status, body=failure.body, headers=headers,
                            content_type=failure.content_type or "application/json")
    resp = oai.error(failure.status, failure.message, "upstream_error")
    resp.headers.update(headers)
    return resp


def _count_failure(state: GatewayState, gw: Gateway, up: Upstream, status: int | None) -> None:
    spec = up.spec
    if status is not None and status not in spec.failure_status_codes:
        return
    now_ns = perf_counter_ns()
    if record_failure(state.health[spec.name], now_ns, spec.allowed_failures_per_minute,
                      round(spec.cooldown_period_s * 1e9)):
        gw.metrics.inc("cooldowns", spec.name)
        log.warning("target %s cooled down for %.1fs", spec.name, spec.cooldown_period_s)


async def _attempt(request: web.Request, ctx: RequestContext, state: GatewayState, gw: Gateway,
                   up: Upstream, payload: bytes) -> web.StreamResponse | _Failure:
    """One upstream attempt; a _Failure means nothing has been sent to the client yet."""
    metrics = gw.metrics
    name = up.spec.name
    url = up.chat_url if ctx.kind == "chat" else up.completions_url
    send_ns = perf_counter_ns()
    up.in_flight += 1
    resp: aiohttp.ClientResponse | None = None
    watch: Watch | None = None
    done = False
    try:
        try:
            if ctx.stream:
                # first_token_s runs from the send: to the headers here, then to the first content
                # chunk under the watchdog (the relay moves the deadline to idle_s gaps after it)
                async with asyncio.timeout(up.spec.timeouts.first_token_s):
                    resp = await up.session.post(url, data=payload, headers=up.headers)
            else:
                resp = await up.session.post(url, data=payload, headers=up.headers)
            if resp.status != 200:
                err_body = await resp.read()
                metrics.inc("attempts", name, str(resp.status))
                _count_failure(state, gw, up, resp.status)
                ctx.failed_ns += perf_counter_ns() - send_ns
                return _Failure(resp.status, str(resp.status), err_body, resp.content_type,
                                f"upstream {name} answered {resp.status}")
            if ctx.stream:
                watch = gw.watchdog.watch(resp, send_ns + up.first_token_ns)
                first = await resp.content.readany()
                if not first:
                    raise aiohttp.ClientPayloadError("upstream closed the stream before any byte")
            else:
                first = await resp.read()
        except (TimeoutError, aiohttp.ServerTimeoutError):
            metrics.inc("attempts", name, "timeout")
            _count_failure(state, gw, up, None)
            ctx.failed_ns += perf_counter_ns() - send_ns
            return _Failure(TIMEOUT, "timeout", b"", "", f"upstream {name} timed out")
        except aiohttp.ClientError as exc:
            if watch is not None and watch.timed_out:
                metrics.inc("attempts", name, "timeout")
                _count_failure(state, gw, up, None)
                ctx.failed_ns += perf_counter_ns() - send_ns
                return _Failure(TIMEOUT, "timeout", b"", "", f"upstream {name} timed out")
            metrics.inc("attempts", name, "connect_error")
            _count_failure(state, gw, up, None)
            ctx.failed_ns += perf_counter_ns() - send_ns
            return _Failure(CONNECT_ERROR, "connect_error", b"", "",
                            f"upstream {name} connection failed: {type(exc).__name__}")
        metrics.inc("attempts", name, "200")
        ctx.target = name
        if watch is not None:
            out = await _relay_stream(request, ctx, state, gw, up, resp, watch, first, send_ns)
        else:
            out = _finish_json(ctx, state, gw, up, resp, first, send_ns)
        done = True
        return out
    finally:
        up.in_flight -= 1
        if watch is not None:
            gw.watchdog.done(watch)
        if resp is not None:
            if done and resp.content.is_eof():
                resp.release()
            else:
                resp.close()  # cancels the upstream request (client gone, break, or error)


def _headers(ctx: RequestContext, overhead_ns: int) -> dict[str, str]:
    headers = {"x-loadbench-target": ctx.target, "x-loadbench-attempts": str(ctx.attempts),
               "x-loadbench-overhead-ms": f"{max(0, overhead_ns) / 1e6:.3f}", "x-request-id": ctx.request_id}
    if ctx.extra_headers:
        headers.update(ctx.extra_headers)
    return headers


def _finish_json(ctx: RequestContext, state: GatewayState, gw: Gateway, up: Upstream,
                 resp: aiohttp.ClientResponse, body: bytes, send_ns: int) -> web.Response:
    end_ns = perf_counter_ns()
    name = up.spec.name
    record_success(state.health[name], end_ns)
    tokens = completion_tokens(body[-400:]) if b'"usage"' in body else None
    timings = gw.metrics.target(name)
    timings.ttft.record((end_ns - send_ns) / 1e9)
    if tokens:
        tpot_ms = (end_ns - send_ns) / 1e6 / tokens
        timings.tpot.record(tpot_ms / 1e3)
        state.windows[name].add(end_ns, tpot_ms)
    if ctx.capture:
        ctx.captured.append(body)
    overhead_ns = (perf_counter_ns() - ctx.arrival_ns) - (end_ns - send_ns) - ctx.failed_ns
    return web.Response(status=200, body=body, headers=_headers(ctx, overhead_ns),
                        content_type=resp.content_type or "application/json")


async def _relay_stream(request: web.Request, ctx: RequestContext, state: GatewayState, gw: Gateway,
                        up: Upstream, resp: aiohttp.ClientResponse, watch: Watch, first: bytes,
                        send_ns: int) -> web.StreamResponse:
    name = up.spec.name
    first_ns = perf_counter_ns()
    out = web.StreamResponse(status=200, headers=_SSE_HEADERS)
    overhead_ns = (perf_counter_ns() - ctx.arrival_ns) - (first_ns - send_ns) - ctx.failed_ns
    out.headers.update(_headers(ctx, overhead_ns))
    await out.prepare(request)
    metrics = gw.metrics
    timings = metrics.target(name)
    itl = timings.itl
    capture = ctx.captured if ctx.capture else None
    content = resp.content
    idle_ns = up.idle_ns
    chunk = first
    now_ns = first_ns
    carry = b""
    prev = b""
    last = b""
    tok_first_ns = 0
    tok_last_ns = 0
    tokens = 0
    broke = ""
    try:
        while True:
            if carry:
                chunk = carry + chunk
                carry = b""
            if not chunk.endswith(b"\n\n"):
                # hold back an incomplete event so an error event can never land inside one
                cut = complete_end(chunk)
                if cut < len(chunk):
                    carry = chunk[cut:]
                    chunk = chunk[:cut]
            if chunk:
                await out.write(chunk)
                if capture is not None:
                    capture.append(chunk)
                n = chunk.count(_C1) + chunk.count(_C2)
                if n:
                    if tok_first_ns == 0:
                        n -= chunk.count(_E1) + chunk.count(_E2)  # role-only first delta
                    if n > 0:
                        if tok_first_ns == 0:
                            tok_first_ns = now_ns
                        else:
                            itl.record((now_ns - tok_last_ns) / 1e9)
                        tok_last_ns = now_ns
                        tokens += n
                prev = last
                last = chunk
            if tok_first_ns:
                watch.deadline_ns = now_ns + idle_ns  # after the first token, each gap gets idle_s
            try:
                chunk = await content.readany()
            except (TimeoutError, aiohttp.ServerTimeoutError):
                broke = "timed out"
                break
            except aiohttp.ClientError as exc:
                broke = "timed out" if watch.timed_out else f"connection failed ({type(exc).__name__})"
                break
            if not chunk:
                break
            now_ns = perf_counter_ns()
        tail = prev + last + carry
        if not broke and DONE not in tail:
            broke = "closed the stream before [DONE]"
        if broke:
            if carry:
                await out.write(b"\n\n")  # terminate the partial event before ours
            metrics.inc("stream_breaks", name)
            _count_failure(state, gw, up, None)
            await out.write(error_event(f"upstream {name} {broke} after the stream started", 502))
            ctx.capture = False
        else:
            if carry:
                await out.write(carry)
            end_ns = perf_counter_ns()
            record_success(state.health[name], end_ns)
            if tok_first_ns:
                timings.ttft.record((tok_first_ns - send_ns) / 1e9)
                usage = completion_tokens(tail) if b'"usage"' in tail else None
                count = usage if usage else tokens
                if count >= 2 and tok_last_ns > tok_first_ns:
                    tpot_ms = (tok_last_ns - tok_first_ns) / 1e6 / (count - 1)
                    timings.tpot.record(tpot_ms / 1e3)
                    state.windows[name].add(end_ns, tpot_ms)
        await out.write_eof()
    except asyncio.CancelledError:
        metrics.inc("client_disconnects", name)
        raise
    except ConnectionResetError:
        metrics.inc("client_disconnects", name)
        ctx.capture = False
    return out
