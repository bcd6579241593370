"""Semantic response cache core: pure, in-memory, no aiohttp.web (the gateway wires it in).

Gateway integration, per request (see docs/cache.md):

    scope = scope_for(config, api_key=key, virtual_model=vm, headers=request.headers)
    found = await cache.lookup(scope, body, cache_control=request.headers.get("Cache-Control"))
    if found.hit:   replay_sse(found.entry.answer, ...) or replay_json(...), headers found.headers()
    else:           relay upstream, feeding a StreamCapture (or answer_from_json for non-stream);
                    on a clean end: await cache.store(scope, body, capture.result(), lookup=found)
"""

from loadbench.cache.answer import (
    CachedAnswer,
    StreamCapture,
    answer_from_json,
    is_cacheable,
    replay_json,
    replay_sse,
)
from loadbench.cache.cache import CacheEntry, CacheLookup, CacheStats, PortableEntry, ResponseCache
from loadbench.cache.config import (
    BuiltinEmbedderConfig,
    CacheConfig,
    OpenAIEmbedderConfig,
    load_cache_config,
)
from loadbench.cache.embedder import Embedder, HashingEmbedder, OpenAIEmbedder, make_embedder
from loadbench.cache.headers import (
    CACHE_HEADER,
    NAMESPACE_HEADER,
    SIMILARITY_HEADER,
    CacheScope,
    parse_cache_control,
    response_headers,
    scope_for,
    tenant_from_api_key,
)

__all__ = [
    "CACHE_HEADER",
    "NAMESPACE_HEADER",
    "SIMILARITY_HEADER",
    "BuiltinEmbedderConfig",
    "CacheConfig",
    "CacheEntry",
    "CacheLookup",
    "CacheScope",
    "CacheStats",
    "CachedAnswer",
    "Embedder",
    "HashingEmbedder",
    "OpenAIEmbedder",
    "OpenAIEmbedderConfig",
    "PortableEntry",
    "ResponseCache",
    "StreamCapture",
    "answer_from_json",
    "is_cacheable",
    "load_cache_config",
    "make_embedder",
    "parse_cache_control",
    "replay_json",
    "replay_sse",
    "response_headers",
    "scope_for",
    "tenant_from_api_key",
]
