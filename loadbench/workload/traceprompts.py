"""Prompt text for a trace's requests: the trace's token counts, and its prefix sharing.

A Mooncake request lists ``hash_ids``: its prompt's blocks of ``block_tokens`` tokens, named so that
two requests whose lists start alike had the same prompt prefix. Block ``h``'s text is drawn from an
RNG seeded by (seed, h) only, so every request (in every worker) that lists ``h`` at a position sends
the same words there, and a prefix cache sees the reuse the original traffic had. The prompt is the
blocks' text in order, the last cut to the request's length; words beyond the listed blocks (or a
request without ``hash_ids``) are drawn from (seed, request index), shared with nothing.

Sizes are in words: ``round(tokens x prompt_scale)``, the calibration of the synthetic prompts
(``workload.requests``); a block is ``round(block_tokens x prompt_scale)`` words.
"""

from __future__ import annotations

import functools
import random

from loadbench.config.trace import TraceRequest
from loadbench.workload.prompts import words as draw_words


class TracePrompts:
    __slots__ = ("_block", "_block_words", "_scale", "_seed")

    def __init__(self, *, seed: int, block_tokens: int, prompt_scale: float) -> None:
        self._seed = seed
        self._scale = prompt_scale
        self._block = max(1, round(block_tokens * prompt_scale))
        self._block_words = functools.lru_cache(maxsize=16_384)(self._draw_block)

    def _draw_block(self, hash_id: int) -> tuple[str, ...]:
        return tuple(draw_words(random.Random(f"loadbench-trace-block:{self._seed}:{hash_id}"), self._block))

    def words(self, req: TraceRequest) -> int:
        return max(1, round(req.prompt_tokens * self._scale))

    def text(self, req: TraceRequest, index: int) -> str:
        """Exactly ``words(req)`` words: the listed blocks' text, then this request's own words."""
        total = self.words(req)
        parts: list[str] = []
        used = 0
        for hash_id in req.hash_ids:
            if used >= total:
                break
            block = self._block_words(hash_id)[:total - used]
            parts.extend(block)
            used += len(block)
        if used < total:
            parts.extend(draw_words(random.Random(f"loadbench-trace-own:{self._seed}:{index}"), total - used))
        return " ".join(parts)
