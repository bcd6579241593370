"""When each content chunk is due. Pure arithmetic; the RNG is injected.

Content chunk ``k`` (0-based) is due ``ttft + k * itl`` after the request's start (its arrival,
or the moment it leaves the ``--max-concurrency`` queue), plus a uniform jitter in
``[-jitter, +jitter]`` drawn per chunk. Offsets are absolute from the start, never accumulated,
so one late wake-up does not delay the chunks after it. Jittered offsets are clamped to be
non-negative and non-decreasing so chunks never reorder.

``ChunkSchedule`` computes them as the pacer asks for them, in order, so a stream holds two
numbers rather than a list as long as its output; ``chunk_offsets_s`` is the same sequence as a list.
"""

from __future__ import annotations

import random
from collections.abc import Iterator


def chunk_count(output_tokens: int, tokens_per_chunk: int) -> int:
    """Content chunks needed; every chunk carries ``tokens_per_chunk`` tokens but the last."""
    return -(-output_tokens // tokens_per_chunk)


class ChunkSchedule:
    """Offsets in seconds of chunks 0..n-1, drawn lazily (index k, then k or k + 1, never back)."""

    __slots__ = ("_floor", "_itl_s", "_jitter_s", "_k", "_prev", "_rng", "_ttft_s", "n")

    def __init__(self, ttft_s: float, itl_s: float, jitter_s: float, n_chunks: int,
                 rng: random.Random | None) -> None:
        self.n = n_chunks
        self._ttft_s = ttft_s
        self._itl_s = itl_s
        self._jitter_s = jitter_s if rng is not None else 0.0
        self._rng = rng
        self._k = -1  # the last index drawn
        self._floor = 0.0  # its offset
        self._prev = 0.0  # the offset of the index before it

    def __len__(self) -> int:
        return self.n

    def __iter__(self) -> Iterator[float]:
        return (self[k] for k in range(self.n))

    def __getitem__(self, k: int) -> float:
        if not 0 <= k < self.n:
            raise IndexError(k)
        if self._jitter_s <= 0:
            return self._ttft_s + k * self._itl_s
        if k == self._k:
            return self._floor
        if k == self._k - 1:
            return self._prev
        if k < self._k:
            raise IndexError(f"chunk {k} was drawn before chunk {self._k}: offsets are read in order")
        assert self._rng is not None
        uniform = self._rng.uniform
        jitter = self._jitter_s
        while self._k < k:
            self._k += 1
            self._prev = self._floor
            self._floor = max(self._floor, self._ttft_s + self._k * self._itl_s + uniform(-jitter, jitter))
        return self._floor


def chunk_offsets_s(ttft_s: float, itl_s: float, jitter_s: float, n_chunks: int,
                    rng: random.Random | None) -> list[float]:
    """Seconds from the start to each content chunk's deadline."""
    return list(ChunkSchedule(ttft_s, itl_s, jitter_s, n_chunks, rng))


def last_offset_s(ttft_s: float, itl_s: float, n_chunks: int) -> float:
    """When the last token would be produced: a non-streamed response is sent then."""
    return ttft_s + (n_chunks - 1) * itl_s
