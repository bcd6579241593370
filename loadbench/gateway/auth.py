"""Who the caller is: the digest of the key it presents (never the key), and whether auth admits it.

The digest is computed whenever a key is presented, auth on or off: it is the cache tenant, so two
callers presenting different keys never share cached answers even on a gateway without auth. Only
callers presenting no key share the anonymous tenant.
"""

from __future__ import annotations

from collections.abc import Mapping

from loadbench.gateway.config import key_digest


def presented_key(headers: Mapping[str, str]) -> str:
    """The key from ``Authorization: Bearer KEY``, ``api-key: KEY`` (Azure's clients) or ``x-api-key: KEY``
    (Anthropic's) ("" when none)."""
    header = headers.get("Authorization", "")
    if header[:7].lower() == "bearer ":
        return header[7:].strip()
    return (headers.get("api-key") or headers.get("x-api-key", "")).strip()


def key_digest_of(headers: Mapping[str, str]) -> bytes | None:
    key = presented_key(headers)
    return key_digest(key) if key else None


def admitted(digest: bytes | None, accepted: frozenset[bytes]) -> bool:
    """True when auth is off (no accepted keys) or the presented key is one of them."""
    return not accepted or (digest is not None and digest in accepted)
