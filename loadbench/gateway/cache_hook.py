"""The gateway's response cache: ``loadbench.cache.ResponseCache`` behind the ``CacheHook`` protocol.

Lookup runs after auth and parsing, before routing. A hit is answered here, in the format the
request asks for (SSE when streamed, with usage when ``stream_options.include_usage``), never
touching a target; it says ``x-loadbench-target: cache`` so load tests and per-target metrics never
mix cache hits into a model's latency. A miss carries ``x-loadbench-cache: miss`` on the routed
answer and, when storing is allowed, asks the relay to keep the bytes; ``store`` then parses them
(``StreamCapture`` / ``answer_from_json``) after the answer has gone out, and keeps only complete,
successful answers. With ``state: {backend: redis}`` an exact miss also asks the entries the other
replicas stored (``sharedcache.py``), and each answer stored here is written there too (a semantic one
with its vector, which the other replicas adopt into their own indexes: ``cachefeed.py``). A client of
another protocol (Anthropic Messages, ...) shares the entries: its request is keyed in OpenAI's words,
its answer is stored from what its dialect decodes and replayed by its dialect's encoder.

The tenant is the digest of the key the caller presents (``RequestContext.client_key_digest``, auth
on or off; only callers presenting no key share the anonymous tenant), or the
``X-Loadbench-Cache-Namespace`` header when the operator allows it (``allow_namespace_header``).
Anyone who knows a namespace's name could read its entries, so ``auth.namespaces`` can bind each
namespace to the keys that may use it; the header of any other key is then ignored.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from time import perf_counter_ns

import orjson
from aiohttp import web

from loadbench.cache import (
    CachedAnswer,
    CacheLookup,
    CacheScope,
    ResponseCache,
    StreamCapture,
    answer_from_json,
    replay_json,
    replay_sse,
    scope_for,
)
from loadbench.cache.answer import Format, is_cacheable
from loadbench.cache.headers import NAMESPACE_HEADER, response_headers
from loadbench.gateway.context import RequestContext
from loadbench.gateway.ingress import kind_of, response_id
from loadbench.gateway.state import Gateway
from loadbench.protocol.dialect import STOP, Answer
from loadbench.protocol.openai import OPENAI
from loadbench.protocol.usage import Usage

CACHE_TARGET = "cache"  # x-loadbench-target of an answer served from the cache


@dataclass(slots=True)
class _Pending:
    """What ``store`` needs from the lookup of the same request."""

    cache: ResponseCache
    scope: CacheScope
    found: CacheLookup


class GatewayCache:
    def __init__(self, gw: Gateway) -> None:
        self.gw = gw

    @staticmethod
    def _may_use_namespace(ctx: RequestContext, bound: dict[str, frozenset[bytes]]) -> bool:
        if not bound:
            return True
        namespace = ctx.headers.get(NAMESPACE_HEADER, "").strip()
        return not namespace or (ctx.client_key_digest is not None
                                 and ctx.client_key_digest in bound.get(namespace, frozenset()))

    async def lookup(self, ctx: RequestContext) -> web.StreamResponse | None:
        route = ctx.route
        state = self.gw.state
        if route is None or state is None:
            return None
        cache = state.caches.get(route.name)
        if cache is None:
            return None
        scope = scope_for(cache.config, virtual_model=route.name, key_digest=ctx.client_key_digest,
                          headers=ctx.headers if self._may_use_namespace(ctx, state.spec.namespace_digests) else None)
        found = await cache.lookup(scope, ctx.body, cache_control=ctx.headers.get("Cache-Control"))
        metrics = self.gw.metrics
        entry = found.entry
        shared = self.gw.shared_cache
        if entry is None and shared is not None and found.outcome == "miss" and found.prepared is not None:
            answer = await shared.get(scope, found.prepared.exact_digest)
            if answer is not None:  # another replica paid for it: kept here too, served as an exact hit
                metrics.inc("cache_shared", route.name, "hit")
                if found.store_allowed:
                    await cache.store(scope, ctx.body, answer, lookup=found)
                metrics.inc("cache_lookups", route.name, "hit-exact")
                return self._serve(ctx, answer, response_headers("hit-exact", 1.0))
        metrics.inc("cache_lookups", route.name, found.outcome)
        if entry is None:
            ctx.extra_headers.update(found.headers())
            if found.store_allowed:
                ctx.capture = True
                ctx.cache_state = _Pending(cache, scope, found)
            return None
        return self._serve(ctx, entry.answer, found.headers())

    def _serve(self, ctx: RequestContext, answer: CachedAnswer, headers: dict[str, str]) -> web.Response:
        """A hit, in the format the request asks for."""
        self.gw.metrics.add("cache_model_tokens_saved", answer.tokens, ctx.route.name if ctx.route else "")
        chat = ctx.kind == "chat"
        fmt: Format = "chat" if chat else "completions"
        model = answer.model or str(ctx.body.get("model", ""))
        response_id = ("chatcmpl-" if chat else "cmpl-") + ctx.request_id
        created_s = int(time.time())
        headers["x-loadbench-target"] = CACHE_TARGET
        headers["x-loadbench-attempts"] = "0"
        headers["x-request-id"] = ctx.request_id
        if ctx.ingress is not OPENAI:
            payload, content_type = foreign_replay(ctx, answer, model)
        elif ctx.stream:
            options = ctx.body.get("stream_options")
            include_usage = isinstance(options, dict) and options.get("include_usage") is True
            # The whole replay in one write: it is all known now, and one write is one syscall.
            payload = b"".join(replay_sse(answer, fmt=fmt, model=model, response_id=response_id,
                                          created_s=created_s, include_usage=include_usage))
            content_type = "text/event-stream"
        else:
            payload = orjson.dumps(replay_json(answer, fmt=fmt, model=model, response_id=response_id,
                                               created_s=created_s))
            content_type = "application/json"
        headers["x-loadbench-overhead-ms"] = f"{(perf_counter_ns() - ctx.arrival_ns) / 1e6:.3f}"
        return web.Response(body=payload, headers=headers, content_type=content_type)

    async def store(self, ctx: RequestContext, status: int, body: bytes) -> None:
        pending = ctx.cache_state
        if status != 200 or not isinstance(pending, _Pending):
            return
        if ctx.ingress is not OPENAI:
            answer = foreign_answer(ctx, body)
        elif ctx.stream:
            capture = StreamCapture()
            capture.feed(body)
            answer = capture.result()
        else:
            try:
                obj = orjson.loads(body)
            except orjson.JSONDecodeError:
                obj = None
            answer = answer_from_json(obj) if isinstance(obj, dict) else None
        model = ctx.route.name if ctx.route is not None else ""
        stored = answer is not None and await pending.cache.store(pending.scope, ctx.body, answer,
                                                                  lookup=pending.found)
        self.gw.metrics.inc("cache_captures", model, "stored" if stored else "refused")
        shared, prepared = self.gw.shared_cache, pending.found.prepared
        if stored and answer is not None and shared is not None and prepared is not None:
            portable = pending.cache.portable(pending.scope, prepared.exact_digest)  # a semantic entry
            if await shared.put(pending.scope, prepared.exact_digest, answer, pending.cache.config,
                                round(time.time() * 1000), portable):
                self.gw.metrics.inc("cache_shared", model, "stored")


def foreign_replay(ctx: RequestContext, answer: CachedAnswer, model: str) -> tuple[bytes, str]:
    """A cached answer in the protocol of a client that does not speak OpenAI's (body, content type)."""
    wire = ctx.ingress
    usage = Usage(prompt_tokens=answer.usage.get("prompt_tokens", 0),
                  completion_tokens=answer.usage.get("completion_tokens", 0))
    if ctx.stream:
        enc = wire.encoder(model, response_id(ctx), kind_of(ctx))
        return enc.head() + enc.content(answer.text) + enc.tail(answer.finish_reason, usage), wire.stream_content_type
    whole = Answer(text=answer.text, finish_reason=answer.finish_reason, usage=usage, model=model, choices=1)
    return wire.answer_body(whole, response_id(ctx), kind_of(ctx)), wire.content_type


def foreign_answer(ctx: RequestContext, body: bytes) -> CachedAnswer | None:
    """What to keep of the bytes a client of another protocol was sent (None: not a clean text answer)."""
    wire = ctx.ingress
    if ctx.stream:
        decoded = wire.decoder().feed(body, end_of_stream=True)
        complete = decoded.done and decoded.error is None and not decoded.tool_call
        text = "".join(c.text for c in decoded.content if c.channel == "answer")
        finish, usage, model = decoded.finish_reason or (STOP if complete else ""), decoded.usage, decoded.model
    else:
        whole = wire.decode(body)
        complete = whole.error is None and not whole.tool_call
        text, finish, usage, model = whole.text, whole.finish_reason or "", whole.usage, whole.model
    counts = {} if usage is None else {"prompt_tokens": usage.prompt_tokens,
                                       "completion_tokens": usage.completion_tokens,
                                       "total_tokens": usage.prompt_tokens + usage.completion_tokens}
    answer = CachedAnswer(text=text, finish_reason=finish, usage=counts, model=model or "", complete=complete)
    return answer if is_cacheable(answer) else None
