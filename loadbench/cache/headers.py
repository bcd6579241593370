"""HTTP edge of the cache: request directives in, scope from identity, status headers out."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass

from loadbench.cache.config import CacheConfig

CACHE_HEADER = "x-loadbench-cache"
SIMILARITY_HEADER = "x-loadbench-cache-similarity"
NAMESPACE_HEADER = "x-loadbench-cache-namespace"


@dataclass(slots=True, frozen=True)
class CacheScope:
    """A hard partition: entries are only ever found by a lookup with an equal scope."""

    tenant: str
    namespace: str
    virtual_model: str


def parse_cache_control(header: str | None) -> tuple[bool, bool]:
    """``Cache-Control`` request header -> (lookup, store).

    ``no-cache`` and ``max-age=0`` skip the lookup (force a fresh answer, which may be stored);
    ``no-store`` skips storing (a stored answer may still be served, as RFC 9111 allows).
    """
    lookup = store = True
    for part in (header or "").split(","):
        name, _, value = part.strip().partition("=")
        name = name.strip().lower()
        if name == "no-cache":
            lookup = False
        elif name == "no-store":
            store = False
        elif name == "max-age" and value.strip().strip('"') == "0":
            lookup = False
    return lookup, store


def tenant_from_api_key(api_key: str | None) -> str:
    """A stable, non-reversible tenant id, so raw keys never sit in cache memory or stats."""
    if not api_key:
        return "anonymous"
    return "key:" + hashlib.blake2b(api_key.encode(), digest_size=12).hexdigest()


def scope_for(config: CacheConfig, *, virtual_model: str, api_key: str | None = None,
              key_digest: bytes | None = None, headers: Mapping[str, str] | None = None) -> CacheScope:
    """The scope of a request. The tenant is the caller's identity: ``key_digest`` (a digest the
    gateway already computed, e.g. ``RequestContext.client_key_digest``) or else ``api_key``.
    With ``allow_namespace_header`` and the header present, callers presenting the same namespace
    share one tenant ("ns:" so it can never equal a key's id)."""
    tenant = "key:" + key_digest.hex() if key_digest else tenant_from_api_key(api_key)
    if config.allow_namespace_header and headers is not None:
        shared = _get(headers, NAMESPACE_HEADER)
        if shared:
            tenant = "ns:" + shared.strip()
    return CacheScope(tenant=tenant, namespace=config.namespace, virtual_model=virtual_model)


def response_headers(outcome: str, similarity: float | None = None) -> dict[str, str]:
    """Headers for a response: ``x-loadbench-cache`` (hit-exact | hit-semantic | miss | bypass),
    the similarity on semantic hits, and an RFC 9211 ``Cache-Status``."""
    headers = {CACHE_HEADER: outcome}
    if outcome == "hit-semantic" and similarity is not None:
        headers[SIMILARITY_HEADER] = f"{similarity:.4f}"
    if outcome.startswith("hit"):
        headers["Cache-Status"] = "loadbench; hit"
    else:
        headers["Cache-Status"] = f"loadbench; fwd={'bypass' if outcome == 'bypass' else 'miss'}"
    return headers


def _get(headers: Mapping[str, str], name: str) -> str | None:
    value = headers.get(name)
    if value is None:
        for key, val in headers.items():
            if key.lower() == name:
                return val
    return value
