"""When each content chunk is due. Pure arithmetic; the RNG is injected.

Content chunk ``k`` (0-based) is due ``ttft + k * itl`` after the request's start (its arrival,
or the moment it leaves the ``--max-concurrency`` queue), plus a uniform jitter in
``[-jitter, +jitter]`` drawn per chunk. Offsets are absolute from the start, never accumulated,
so one late wake-up does not delay the chunks after it. Jittered offsets are clamped to be
non-negative and non-decreasing so chunks never reorder.
"""

from __future__ import annotations

import random


def chunk_count(output_tokens: int, tokens_per_chunk: int) -> int:
    """Content chunks needed; every chunk carries ``tokens_per_chunk`` tokens but the last."""
    return -(-output_tokens // tokens_per_chunk)


def chunk_offsets_s(ttft_s: float, itl_s: float, jitter_s: float, n_chunks: int,
                    rng: random.Random | None) -> list[float]:
    """Seconds from the start to each content chunk's deadline."""
    if jitter_s <= 0 or rng is None:
        return [ttft_s + k * itl_s for k in range(n_chunks)]
    offsets: list[float] = []
    floor = 0.0
    uniform = rng.uniform
    for k in range(n_chunks):
        floor = max(floor, ttft_s + k * itl_s + uniform(-jitter_s, jitter_s))
        offsets.append(floor)
    return offsets


def last_offset_s(ttft_s: float, itl_s: float, n_chunks: int) -> float:
    """When the last token would be produced: a non-streamed response is sent then."""
    return ttft_s + (n_chunks - 1) * itl_s
