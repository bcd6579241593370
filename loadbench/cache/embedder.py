"""Embedders: text -> L2-normalised float32 vector, so cosine similarity is a dot product.

- ``HashingEmbedder`` (``kind: builtin``): word unigrams (plural-stemmed, synonyms folded, function
  words down-weighted) plus character 3-grams of each word, hashed (crc32: stable across processes,
  unlike ``hash()``) into ``dim`` signed buckets. No model, no download, deterministic;
  lexical, so it finds rewordings, not deep paraphrases.
- ``OpenAIEmbedder`` (``kind: openai``): any OpenAI-compatible ``POST /embeddings``.

Both are async because a slow embedder must never run on the event loop's critical path:
the built-in one embeds short texts inline (tens of microseconds, cheaper than a thread hop;
see bench/cache_bench.py) and hands long ones to a thread.
"""

from __future__ import annotations

import asyncio
import re
import zlib
from collections.abc import Mapping
from typing import Any, Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

from loadbench.cache.config import BuiltinEmbedderConfig, OpenAIEmbedderConfig
from loadbench.cache.guard import STOPWORDS, normal_word
from loadbench.errors import TargetError
from loadbench.protocol.openai import OPENAI

Vector = npt.NDArray[np.float32]

_WORD_RE = re.compile(r"[^\W_]+", re.UNICODE)
_NGRAM = 3
_NGRAM_WEIGHT = 0.2  # per 3-gram: spelling variants still score, but whole words dominate
# Function and filler words ("can you", "please") barely move the meaning; weighting them like
# content words made "how do I reset my password" vs "how can i ..." score 0.84.
_STOP_WEIGHT = 0.25
# What the word pattern leaves of "what's", "don't", "we'll": function words, not content.
_CLITIC_PARTS = frozenset({"s", "t", "re", "ll", "ve", "d", "m"})


@runtime_checkable
class Embedder(Protocol):
    @property
    def dim(self) -> int | None:
        """Vector length, or None until the first call (remote embedders)."""

    async def embed(self, text: str) -> Vector:
        """L2-normalised float32 vector for ``text``."""

    async def aclose(self) -> None:
        """Release connections. Idempotent."""


class HashingEmbedder:
    def __init__(self, dim: int = 128, *, inline_max_chars: int = 512, stop_weight: float = _STOP_WEIGHT,
                 ngram_weight: float = _NGRAM_WEIGHT) -> None:
        self._dim = dim
        self._inline_max_chars = inline_max_chars
        self._stop_weight = stop_weight
        self._ngram_weight = ngram_weight

    @property
    def dim(self) -> int:
        return self._dim

    async def embed(self, text: str) -> Vector:
        if len(text) <= self._inline_max_chars:
            return self.embed_sync(text)
        return await asyncio.get_running_loop().run_in_executor(None, self.embed_sync, text)

    def embed_sync(self, text: str) -> Vector:
        dim = self._dim
        idx: list[int] = []
        weights: list[float] = []
        for word in _WORD_RE.findall(text.lower()):
            weight = self._stop_weight if word in STOPWORDS or word in _CLITIC_PARTS else 1.0
            canon = normal_word(word)
            h = zlib.crc32(canon.encode())
            idx.append(h % dim)
            weights.append(weight if h & 0x80000000 else -weight)
            padded = f"<{word}>"
            gram_weight = weight * self._ngram_weight
            for i in range(len(padded) - _NGRAM + 1):
                g = zlib.crc32(padded[i:i + _NGRAM].encode(), 0x9E3779B9)
                idx.append(g % dim)
                weights.append(gram_weight if g & 0x80000000 else -gram_weight)
        vec = np.bincount(np.asarray(idx, dtype=np.intp), weights=weights, minlength=dim).astype(np.float32)
        norm = float(np.linalg.norm(vec))
        if norm > 0.0:
            vec /= norm
        return vec

    async def aclose(self) -> None:
        return None


class OpenAIEmbedder:
    """One aiohttp session, created on first use inside the running loop."""

    def __init__(self, base_url: str, model: str, *, api_key: str | None = None,
                 timeout_s: float = 1.0) -> None:
        self._url = OPENAI.url(base_url, "embeddings")
        self._model = model
        self._api_key = api_key
        self._timeout_s = timeout_s
        self._dim: int | None = None
        self._session: Any = None  # aiohttp.ClientSession, imported lazily

    @property
    def dim(self) -> int | None:
        return self._dim

    async def embed(self, text: str) -> Vector:
        import aiohttp

        if self._session is None:
            self._session = aiohttp.ClientSession(
                headers=OPENAI.auth(self._api_key),
                timeout=aiohttp.ClientTimeout(total=self._timeout_s),
                connector=aiohttp.TCPConnector(limit=64, ttl_dns_cache=300),
            )
        try:
            async with self._session.post(self._url, json={"model": self._model, "input": text}) as resp:
                if resp.status != 200:
                    raise TargetError(f"embeddings endpoint {self._url} answered HTTP {resp.status}")
                payload = await resp.json(content_type=None)
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise TargetError(f"embeddings endpoint {self._url} failed: {type(exc).__name__}") from exc
        try:
            vec = np.asarray(payload["data"][0]["embedding"], dtype=np.float32)
        except (KeyError, IndexError, TypeError, ValueError) as exc:
            raise TargetError(f"embeddings endpoint {self._url} returned no data[0].embedding") from exc
        if vec.ndim != 1 or vec.size == 0 or not np.all(np.isfinite(vec)):
            raise TargetError(f"embeddings endpoint {self._url} returned a malformed vector")
        if self._dim is None:
            self._dim = int(vec.size)
        elif vec.size != self._dim:
            raise TargetError(f"embeddings endpoint {self._url} changed dimension {self._dim} -> {vec.size}")
        norm = float(np.linalg.norm(vec))
        if norm > 0.0:
            vec /= norm
        return vec

    async def aclose(self) -> None:
        if self._session is not None:
            session, self._session = self._session, None
            await session.close()


def make_embedder(config: BuiltinEmbedderConfig | OpenAIEmbedderConfig,
                  env: Mapping[str, str] | None = None) -> HashingEmbedder | OpenAIEmbedder:
    """Build the configured embedder. ``env`` is passed in (the gateway gives ``os.environ``)."""
    if isinstance(config, BuiltinEmbedderConfig):
        return HashingEmbedder(config.dim, inline_max_chars=config.inline_max_chars)
    api_key = (env or {}).get(config.api_key_env) if config.api_key_env else None
    return OpenAIEmbedder(config.base_url, config.model, api_key=api_key, timeout_s=config.timeout_s)
