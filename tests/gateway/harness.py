"""The gateway tests' shared harness: scripted in-process upstreams, a gateway around them, and the
real ``loadbench mock`` / ``loadbench gateway`` processes (the ``servers`` fixture is in conftest.py)."""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import yaml
from aiohttp import web

from loadbench.gateway.app import create_app
from loadbench.gateway.config import compile_model, parse_model
from loadbench.gateway.connections import GuardedRunner, RejectLog
from loadbench.gateway.state import Gateway
from loadbench.procs import ServerProcess, start_server

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def chunk(text: str) -> bytes:
    return b"data: " + orjson.dumps({"choices": [{"index": 0, "delta": {"content": text}}]}) + b"\n\n"


ROLE = b'data: {"choices":[{"index":0,"delta":{"role":"assistant","content":""}}]}\n\n'
USAGE = b'data: {"choices":[],"usage":{"prompt_tokens":1,"completion_tokens":3,"total_tokens":4}}\n\n'
DONE = b"data: [DONE]\n\n"
WHOLE = orjson.dumps(
    {
        "object": "chat.completion",
        "choices": [{"message": {"content": "ok"}}],
        "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
    }
)


class Upstream:
    """A scripted upstream: ``behave`` decides each answer; every request body is recorded."""

    def __init__(self, behave: Callable[[Upstream, web.Request, dict[str, Any]], Awaitable[web.StreamResponse]]):
        self.behave = behave
        self.bodies: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        self.disconnected = asyncio.Event()

    async def handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        self.bodies.append(body)
        self.headers.append(dict(request.headers))
        return await self.behave(self, request, body)


async def ok(up: Upstream, request: web.Request, body: dict[str, Any]) -> web.StreamResponse:
    if not body.get("stream"):
        return web.Response(body=WHOLE, content_type="application/json")
    resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
    await resp.prepare(request)
    for part in (ROLE, chunk("a"), chunk("b"), chunk("c"), USAGE, DONE):
        await resp.write(part)
    return resp


def failing(status: int) -> Callable[[Upstream, web.Request, dict[str, Any]], Awaitable[web.StreamResponse]]:
    async def behave(up: Upstream, request: web.Request, body: dict[str, Any]) -> web.StreamResponse:
        return web.Response(
            status=status,
            body=orjson.dumps({"error": {"message": f"no ({status})"}}),
            content_type="application/json",
        )

    return behave


@contextlib.asynccontextmanager
async def serve(app: web.Application, runner: web.AppRunner | None = None) -> AsyncIterator[str]:
    runner = runner or web.AppRunner(app, handler_cancellation=True)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


@contextlib.asynccontextmanager
async def upstream(up: Upstream) -> AsyncIterator[str]:
    app = web.Application()
    app.router.add_post("/v1/chat/completions", up.handle)
    app.router.add_post("/v1/completions", up.handle)
    async with serve(app) as url:
        yield url + "/v1"


@contextlib.asynccontextmanager
async def gateway(config: dict[str, Any], env: dict[str, str] | None = None) -> AsyncIterator[tuple[str, Gateway]]:
    spec = compile_model(parse_model(config, "test.yaml"), "test.yaml",
                         env={"UP_KEY": "sk-up", "GW_KEYS": "k1,k2", **(env or {})})
    gw = Gateway(spec, seed=1)
    app = create_app(gw)
    # the runner `loadbench gateway` uses: connection limits, timeouts and parser-level errors apply
    async with serve(app, GuardedRunner(app, spec.limits, RejectLog(), handler_cancellation=True)) as url:
        yield url, gw


def one_target(url: str, **vm: Any) -> dict[str, Any]:
    return {
        "targets": [{"name": "t", "url": url, "model": "up-model"}],
        "virtual_models": [{"name": "vm", "targets": [{"target": "t"}], **vm}],
    }


def two_targets(
    first: tuple[str, str], second: tuple[str, str], route_targets: list[dict[str, Any]], **vm: Any
) -> dict[str, Any]:
    """A config with two targets (name, url) serving upstream model "m" behind virtual model "vm"."""
    return {
        "targets": [{"name": name, "url": url, "model": "m"} for name, url in (first, second)],
        "virtual_models": [{"name": "vm", "targets": route_targets, **vm}],
    }


def priority_pair(first: tuple[str, str], good_url: str) -> dict[str, Any]:
    """Priority routing: ``first`` (name, url) and then a target named "good"."""
    route_targets = [{"target": first[0]}, {"target": "good", "priority": 1}]
    return two_targets(first, ("good", good_url), route_targets, routing="priority")


@contextlib.asynccontextmanager
async def single(
    up: Upstream, timeouts: dict[str, float] | None = None, **extra: Any
) -> AsyncIterator[tuple[str, Gateway, aiohttp.ClientSession]]:
    """One scripted upstream behind a one-target gateway (with these timeouts), and a client session."""
    async with upstream(up) as up_url:
        cfg = {**one_target(up_url), **extra}
        if timeouts:
            cfg["targets"][0]["timeouts"] = timeouts
        async with gateway(cfg) as (url, gw), aiohttp.ClientSession() as s:
            yield url, gw, s


async def post(
    session: aiohttp.ClientSession,
    url: str,
    body: Any,
    headers: dict[str, str] | None = None,
    raw: bytes | None = None,
) -> tuple[int, dict[str, str], bytes]:
    data = raw if raw is not None else orjson.dumps(body)
    async with session.post(url + "/v1/chat/completions", data=data, headers=headers or {}) as resp:
        return resp.status, dict(resp.headers), await resp.read()


CHAT = {"model": "vm", "messages": [{"role": "user", "content": "hi"}]}


def run(coro: Awaitable[None]) -> None:
    asyncio.run(asyncio.wait_for(coro, 30))  # type: ignore[arg-type]



def start_mock(servers: list[ServerProcess], *extra: str) -> ServerProcess:
    s = start_server(
        ["mock", "--port", "0", "--ttft-ms", "2", "--itl-ms", "1", "--output-tokens", "6", *extra]
    )
    servers.append(s)
    return s


def start_gateway(
    servers: list[ServerProcess],
    tmp_path: Path,
    config: dict[str, Any],
    *extra: str,
    env: dict[str, str] | None = None,
) -> tuple[ServerProcess, Path]:
    path = tmp_path / "gateway.yaml"
    path.write_text(yaml.safe_dump(config))
    s = start_server(
        ["gateway", "--config", str(path), "--port", "0", *extra], env={**os.environ, **(env or {})}
    )
    servers.append(s)
    return s, path
