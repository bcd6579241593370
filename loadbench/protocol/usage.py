"""``Usage``: the tokens one answer used, as every dialect reports them once normalised.

The buckets are disjoint where the protocols allow: ``cached_tokens`` (read from a prompt cache) and
``cache_write_tokens`` (written to it) are parts of ``prompt_tokens``; ``reasoning_tokens`` are part of
``completion_tokens``. A dialect maps its own names onto these (OpenAI's ``prompt_tokens_details``,
Anthropic's ``cache_read_input_tokens``, Bedrock's ``cacheReadInputTokens``...); pricing reads only
this record.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0
    cache_write_tokens: int = 0
    reasoning_tokens: int = 0

    def __add__(self, other: Usage) -> Usage:
        """Bucket by bucket: the usage of several answers (an agent trial's steps)."""
        return Usage(*(getattr(self, k) + getattr(other, k) for k in self.__dataclass_fields__))

    def to_json(self) -> dict[str, int]:
        return {"prompt_tokens": self.prompt_tokens, "completion_tokens": self.completion_tokens,
                "cached_tokens": self.cached_tokens, "cache_write_tokens": self.cache_write_tokens,
                "reasoning_tokens": self.reasoning_tokens}

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> Usage:
        return cls(**{k: count(obj.get(k)) for k in cls.__dataclass_fields__})


NO_USAGE = Usage()


def count(x: object) -> int:
    """A token count as a wire value gives it: a non-negative int, anything else 0."""
    return x if isinstance(x, int) and not isinstance(x, bool) and x >= 0 else 0
