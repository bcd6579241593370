"""Seeded draws that depend only on what they are about, never on request order."""

from __future__ import annotations

import hashlib


def unit(*parts: object) -> float:
    """A uniform draw in [0, 1) from a hash of ``parts`` (stable across processes and runs)."""
    digest = hashlib.blake2b(":".join(map(str, parts)).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64
