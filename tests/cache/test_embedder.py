"""Embedders: the built-in hashing one, and the OpenAI-compatible one against a real local server."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import numpy as np
import pytest
from aiohttp import web

from loadbench.cache import (
    BuiltinEmbedderConfig,
    CacheConfig,
    CachedAnswer,
    CacheScope,
    HashingEmbedder,
    OpenAIEmbedder,
    ResponseCache,
    load_cache_config,
    make_embedder,
)
from loadbench.errors import TargetError


def test_hashing_embedder_is_normalised_and_deterministic() -> None:
    e = HashingEmbedder(128)
    v = e.embed_sync("How do I reset my password?")
    assert v.dtype == np.float32 and v.shape == (128,)
    assert abs(float(np.linalg.norm(v)) - 1.0) < 1e-5
    assert np.array_equal(v, HashingEmbedder(128).embed_sync("How do I reset my password?"))
    assert float(v @ e.embed_sync("how do i reset my password")) > 0.999  # case-insensitive
    assert float(v @ e.embed_sync("Recipe for banana bread")) < 0.5
    assert not np.any(e.embed_sync("?!"))  # no words: the zero vector, similar to nothing


def test_long_texts_are_embedded_off_the_loop_with_the_same_result() -> None:
    e = HashingEmbedder(64, inline_max_chars=10)
    text = "word " * 100
    assert np.array_equal(asyncio.run(e.embed(text)), e.embed_sync(text))


@asynccontextmanager
async def embeddings_server(behaviour: str = "ok") -> AsyncIterator[tuple[str, list[dict[str, Any]]]]:
    seen: list[dict[str, Any]] = []
    ref = HashingEmbedder(32)

    async def handle(request: web.Request) -> web.Response:
        payload = await request.json()
        seen.append({"auth": request.headers.get("Authorization"), **payload})
        if behaviour == "500":
            return web.json_response({"error": {"message": "boom"}}, status=500)
        if behaviour == "slow":
            await asyncio.sleep(2)
        if behaviour == "garbage":
            return web.json_response({"data": []})
        vec = ref.embed_sync(payload["input"]) * 3.0  # unnormalised on purpose
        return web.json_response({"object": "list", "model": payload["model"],
                                  "data": [{"object": "embedding", "index": 0, "embedding": vec.tolist()}]})

    app = web.Application()
    app.router.add_post("/v1/embeddings", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield f"http://127.0.0.1:{port}/v1", seen
    finally:
        await runner.cleanup()


def test_openai_embedder_against_a_local_server() -> None:
    async def go() -> None:
        async with embeddings_server() as (url, seen):
            cfg = load_cache_config({"embedder": {"kind": "openai", "base_url": url, "model": "emb-1",
                                                  "api_key_env": "EMB_KEY"}})
            emb = make_embedder(cfg.embedder, env={"EMB_KEY": "sk-test"})
            assert isinstance(emb, OpenAIEmbedder) and emb.dim is None
            v = await emb.embed("How do I reset my password?")
            assert emb.dim == 32
            assert abs(float(np.linalg.norm(v)) - 1.0) < 1e-5
            expected = HashingEmbedder(32).embed_sync("How do I reset my password?")
            assert float(v @ expected) > 0.9999
            assert seen[0] == {"auth": "Bearer sk-test", "model": "emb-1",
                               "input": "How do I reset my password?"}
            await emb.aclose()
            await emb.aclose()
    asyncio.run(go())


def test_semantic_cache_through_the_openai_embedder() -> None:
    async def go() -> None:
        async with embeddings_server() as (url, _):
            emb = OpenAIEmbedder(url, "emb-1")
            cache = ResponseCache(CacheConfig(mode="semantic", similarity_threshold=0.8), emb,
                                  clock=lambda: 0.0)
            scope = CacheScope("t", "default", "vm")

            def body(text: str) -> dict[str, Any]:
                return {"model": "m", "temperature": 0, "messages": [{"role": "user", "content": text}]}

            assert await cache.store(scope, body("What is the capital of France?"),
                                     CachedAnswer(text="Paris", finish_reason="stop"))
            hit = await cache.lookup(scope, body("what is the capital of france"))
            assert hit.outcome == "hit-semantic"
            assert (await cache.lookup(scope, body("What is the capital of Germany?"))).outcome == "miss"
            await emb.aclose()
    asyncio.run(go())


@pytest.mark.parametrize("behaviour", ["500", "slow", "garbage"])
def test_openai_embedder_failures_raise_target_error(behaviour: str) -> None:
    async def go() -> None:
        async with embeddings_server(behaviour) as (url, _):
            emb = OpenAIEmbedder(url, "emb-1", timeout_s=0.3)
            with pytest.raises(TargetError):
                await emb.embed("hello")
            await emb.aclose()
    asyncio.run(go())


def test_unreachable_embedder_degrades_cache_to_exact() -> None:
    async def go() -> None:
        emb = OpenAIEmbedder("http://127.0.0.1:9/v1", "emb-1", timeout_s=0.5)  # discard port: refused
        cache = ResponseCache(CacheConfig(mode="semantic"), emb, clock=lambda: 0.0)
        scope = CacheScope("t", "default", "vm")
        req = {"model": "m", "temperature": 0, "messages": [{"role": "user", "content": "hi there"}]}
        assert await cache.store(scope, req, CachedAnswer(text="hello", finish_reason="stop"))
        assert (await cache.lookup(scope, req)).outcome == "hit-exact"
        assert cache.stats().embed_errors == 1
        await emb.aclose()
    asyncio.run(go())


def test_make_embedder_builtin() -> None:
    emb = make_embedder(BuiltinEmbedderConfig(dim=64))
    assert isinstance(emb, HashingEmbedder) and emb.dim == 64
