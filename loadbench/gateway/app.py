"""The aiohttp application: OpenAI routes, every other registered protocol's routes (Anthropic
Messages at ``/v1/messages``, ...), /health and /metrics, over one ``Gateway``.

Every error is OpenAI JSON, also an unknown path or a wrong method (never an echo of the request).
With auth on, ``/v1/models`` and ``/metrics`` need a client key, and ``/health`` tells a caller
without one only that the gateway is alive (target names and health are for key holders).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from time import perf_counter_ns

import orjson
from aiohttp import web

from loadbench.gateway import auth
from loadbench.gateway import openai_error as oai
from loadbench.gateway.admin import add_admin_routes
from loadbench.gateway.cache_hook import GatewayCache
from loadbench.gateway.context import CacheHook
from loadbench.gateway.exchange import handle
from loadbench.gateway.feedback import add_feedback_routes
from loadbench.gateway.health import cooldown_remaining_s, is_healthy
from loadbench.gateway.state import Gateway
from loadbench.protocol import registry
from loadbench.protocol.dialect import Dialect
from loadbench.protocol.http import add_error_routes

GATEWAY_KEY = web.AppKey("gateway", Gateway)
# aiohttp's own cap; the configured limit (checked per request, reloadable) is applied below it
_HARD_BODY_CAP = 256 * 1024 * 1024


_UNAUTHORIZED = "Invalid or missing API key."


def create_app(gw: Gateway, cache: CacheHook | None = None) -> web.Application:
    """``cache``: a custom hook; by default the virtual models' ``cache:`` config (GatewayCache)."""
    app = web.Application(client_max_size=_HARD_BODY_CAP)

    def admitted(request: web.Request) -> bool:
        assert gw.state is not None
        return auth.admitted(auth.key_digest_of(request.headers), gw.state.spec.client_key_digests)
    default_cache = cache is None
    hook: CacheHook = GatewayCache(gw) if cache is None else cache
    app[GATEWAY_KEY] = gw

    def hook_for() -> CacheHook | None:
        # The default hook finds nothing without a cached virtual model: skip its call (a reload
        # that adds ``cache:`` fills ``state.caches`` and brings it back)
        assert gw.state is not None
        return hook if gw.state.caches or not default_cache else None

    async def chat(request: web.Request) -> web.StreamResponse:
        return await handle(request, "chat", gw, hook_for())

    async def completions(request: web.Request) -> web.StreamResponse:
        return await handle(request, "completions", gw, hook_for())

    async def models(request: web.Request) -> web.Response:
        assert gw.state is not None
        if not admitted(request):
            return oai.error(401, _UNAUTHORIZED, "invalid_request_error", "invalid_api_key")
        data = [{"id": name, "object": "model", "created": 0, "owned_by": "loadbench-gateway"}
                for name in gw.state.spec.routes]
        return web.Response(body=orjson.dumps({"object": "list", "data": data}),
                            content_type="application/json")

    async def health(request: web.Request) -> web.Response:
        assert gw.state is not None
        if gw.state.spec.client_key_digests and not admitted(request):
            return web.Response(body=b'{"status":"ok"}', content_type="application/json")
        now_ns = perf_counter_ns()
        targets = {name: {"healthy": is_healthy(h, now_ns),
                          "cooldown_remaining_s": round(cooldown_remaining_s(h, now_ns), 3),
                          "cooldowns": h.cooldowns}
                   for name, h in gw.state.health.items()}
        return web.Response(body=orjson.dumps({"status": "ok", "targets": targets}),
                            content_type="application/json")

    async def metrics(request: web.Request) -> web.Response:
        assert gw.state is not None
        if not admitted(request):
            return oai.error(401, _UNAUTHORIZED, "invalid_request_error", "invalid_api_key")
        now_ns = perf_counter_ns()
        healthy = {name: is_healthy(h, now_ns) for name, h in gw.state.health.items()}
        shared: dict[int, list[str]] = {}
        by_id = {}
        for name, rc in gw.state.caches.items():
            shared.setdefault(id(rc), []).append(name)
            by_id[id(rc)] = rc
        caches = {",".join(names): by_id[key].stats().as_dict() for key, names in shared.items()}
        sections = gw.events.metrics_sections.render(gw.metrics.worker)
        text = gw.metrics.render(healthy, caches) + ("\n".join(sections) + "\n" if sections else "")
        return web.Response(body=text.encode(),
                            headers={"Content-Type": "text/plain; version=0.0.4; charset=utf-8"})

    async def on_startup(app: web.Application) -> None:
        if gw.state is None:
            await gw.start()

    async def on_cleanup(app: web.Application) -> None:
        await gw.close()

    app.on_startup.append(on_startup)
    app.on_cleanup.append(on_cleanup)
    app.router.add_post("/v1/chat/completions", chat)
    app.router.add_post("/v1/completions", completions)
    add_ingress_routes(app, gw, hook_for)
    app.router.add_get("/v1/models", models)
    app.router.add_get("/health", health)
    app.router.add_get("/metrics", metrics)
    add_admin_routes(app, gw)
    add_feedback_routes(app, gw)
    add_error_routes(app)
    return app


def add_ingress_routes(app: web.Application, gw: Gateway, hook_for: Callable[[], CacheHook | None]) -> None:
    """A client of any registered protocol with a server half reaches the gateway on that protocol's
    own routes and is answered in it (the OpenAI routes are added apart), the response cache included."""
    taken = {("POST", "/v1/chat/completions"), ("POST", "/v1/completions")}
    for name in registry.names():
        found = registry.dialect(name)
        if name == registry.DEFAULT or not found.server_routes:
            continue
        for method, pattern in found.server_routes:
            if (method, pattern) in taken:
                continue
            taken.add((method, pattern))
            app.router.add_route(method, pattern, _ingress_handler(gw, found, hook_for))


def _ingress_handler(gw: Gateway, ingress: Dialect, hook_for: Callable[[], CacheHook | None]
                     ) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    async def answer(request: web.Request) -> web.StreamResponse:
        return await handle(request, "chat", gw, hook_for(), ingress)
    return answer
