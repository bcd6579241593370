"""Cache configuration: the only pydantic in ``loadbench.cache`` (validated once, at the config edge).

A gateway has one ``cache:`` block and a virtual model may override fields of it
(``CacheConfig.with_overrides``). Unknown keys are errors, so a typo never silently disables a guard.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import Field

from loadbench.config.validation import StrictModel, validate


class BuiltinEmbedderConfig(StrictModel):
    """Hashed character 3-grams + word unigrams into ``dim`` floats; no download, deterministic."""

    kind: Literal["builtin"] = "builtin"
    # 128 keeps a 100,000-entry partition scan (one float32 matrix-vector product) near 1 ms on a
    # laptop core; bench/cache_bench.py measures it, `python -m loadbench.cache.evaluate` its quality.
    dim: int = Field(default=128, ge=16, le=4096)
    # Texts up to this many characters are embedded inline on the event loop (~0.35 us/char,
    # so <= ~180 us); longer ones go to a thread. The embedder is pure Python, so the thread
    # mostly bounds the loop's stall to the GIL switch interval rather than removing the cost
    # (bench/cache_bench.py measures both).
    inline_max_chars: int = Field(default=512, ge=0)


class OpenAIEmbedderConfig(StrictModel):
    """Any OpenAI-compatible ``POST {base_url}/embeddings`` endpoint."""

    kind: Literal["openai"]
    base_url: str = Field(min_length=1, description="e.g. http://127.0.0.1:8000/v1")
    model: str = Field(min_length=1)
    # The name of an environment variable holding the key; the caller passes the environment in,
    # because loadbench.config is the only place that reads it.
    api_key_env: str | None = None
    # The embedding call sits on the request path of every cache miss; a slow one is abandoned
    # (the request proceeds as a miss) rather than waited for.
    timeout_s: float = Field(default=1.0, gt=0, le=60)


EmbedderConfig = Annotated[BuiltinEmbedderConfig | OpenAIEmbedderConfig, Field(discriminator="kind")]


class CacheConfig(StrictModel):
    mode: Literal["exact", "semantic"] = "exact"
    # Cosine similarity (1 = identical direction), NOT a distance: higher is stricter.
    similarity_threshold: float = Field(default=0.9, gt=0.0, le=1.0)
    # Fixed TTL from the time of storing; a hit does not extend it.
    ttl_s: float = Field(default=3600.0, gt=0.0)
    max_entries: int = Field(default=100_000, ge=1)
    namespace: str = Field(default="default", min_length=1)
    # Requests with more messages than this are never cached (multi-turn / agentic traffic
    # replays stale answers).
    max_messages: int = Field(default=4, ge=1)
    # temperature > 0 (or left out: OpenAI's default is 1) means a fresh sample is expected;
    # caching it replays one sample forever. Operators may opt in, e.g. for load tests.
    cache_nondeterministic: bool = False
    # Let callers pick a shared cache tenant with X-Loadbench-Cache-Namespace. Everyone who sends
    # the same value shares entries, so enable it only among mutually trusted callers.
    allow_namespace_header: bool = False
    # Veto semantic hits whose last messages differ in numbers, negations, entities, content
    # words or direction. Off only for experiments.
    near_miss_guard: bool = True
    # How many neighbours above the threshold are checked by the guard before giving up.
    max_candidates: int = Field(default=8, ge=1, le=1000)
    embedder: EmbedderConfig = Field(default_factory=BuiltinEmbedderConfig)

    def with_overrides(self, overrides: Mapping[str, Any] | None, *, path: str = "<config>",
                       prefix: str = "cache") -> CacheConfig:
        """A per-virtual-model ``cache:`` block applied over the gateway's one (field by field)."""
        if not overrides:
            return self
        merged = self.model_dump()
        merged.update(overrides)
        return load_cache_config(merged, path=path, prefix=prefix)


def load_cache_config(data: Mapping[str, Any] | None, *, path: str = "<config>",
                      prefix: str = "cache") -> CacheConfig:
    """Validate a ``cache:`` mapping; errors become ConfigError naming the file, field and fix
    (the same translator as profiles and scenarios: did-you-mean for unknown keys)."""
    return validate(CacheConfig, dict(data or {}), path, prefix)
