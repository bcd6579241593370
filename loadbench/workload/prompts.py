"""Synthetic prompts: seeded text with an exact word count.

Words come from a vocabulary of common English words, most of which are a single token in
BPE tokenizers, so words ~= tokens on real servers and words == tokens on the mock (which counts
whitespace-separated words). The remaining gap is closed by calibration (``calibrate``).

Shared prefixes: group g's prefix is drawn from an RNG seeded by (seed, g) only, so every worker
and every request of that group sends the same leading text and prefix caches can hit.
A nonce is one unique word per request placed after the prefix: it defeats response caches keyed
on the whole body while keeping prefix caching measurable.
"""

from __future__ import annotations

import random

_WORDS = """
    the of and to in is was for on are with as his they at be this from have or by one had not but
    what all were when we there can an your which their said if do will each about how up out them then
    she many some so these would other into has more her two like him see time could no make than first
    been its who now people my made over did down only way find use may water long little very after
    words called just where most know get through back much before go good new write our used me man
    too any day same right look think also around another came come work three word must because does
    part even place well such here take why things help put years different away again off went old
    number great tell men say small every found still between name should home big give air line set
    own under read last never us left end along while might next sound below saw something thought both
    few those always looked show large often together asked house world going want school important
    until form food keep children feet land side without boy once animals life enough took sometimes
    four head above kind began almost live page got earth need far hand high year mother light parts
    country father let night following picture being study second eyes soon times story boys since
    white days ever paper hard near sentence better best across during today others however sure means
    knew try told young miles sun ways thing whole hear example heard several change answer room sea
    against top turned learn point city play toward five using himself usually money seen car morning
    river fox crow lion mouse grapes wolf lamb tortoise hare ant summer winter field stone bird tree
"""
VOCABULARY: tuple[str, ...] = tuple(dict.fromkeys(_WORDS.split()))


def words(rng: random.Random, count: int) -> list[str]:
    return rng.choices(VOCABULARY, k=count)


def text(rng: random.Random, count: int) -> str:
    """``count`` seeded words separated by single spaces (exactly ``count`` whitespace-separated words)."""
    return " ".join(rng.choices(VOCABULARY, k=count))


class PromptBuilder:
    """Builds prompt texts: [group prefix] [nonce] body, with an exact total word count."""

    __slots__ = ("_nonce", "_nonce_prefix", "_prefix_words", "_prefixes", "_seed")

    def __init__(
        self, *, seed: int, prefix_words: int, prefix_groups: int, nonce: bool, stream_index: int
    ) -> None:
        self._seed = seed
        self._prefix_words = prefix_words
        self._nonce = nonce
        self._nonce_prefix = f"n{seed:x}s{stream_index:x}r"
        self._prefixes: tuple[str, ...] = (
            tuple(
                text(random.Random(f"loadbench-prefix:{seed}:{g}"), prefix_words)
                for g in range(prefix_groups)
            )
            if prefix_words > 0
            else ()
        )

    @property
    def min_words(self) -> int:
        return self._prefix_words + (1 if self._nonce else 0) + 1

    def build(self, rng: random.Random, total_words: int, request_no: int) -> str:
        """Exactly ``max(total_words, min_words)`` words; the group is drawn from ``rng``."""
        parts: list[str] = []
        body = max(total_words, self.min_words) - self._prefix_words
        if self._prefixes:
            parts.append(self._prefixes[rng.randrange(len(self._prefixes))])
        if self._nonce:
            parts.append(f"{self._nonce_prefix}{request_no:x}")
            body -= 1
        parts.append(text(rng, body))
        return " ".join(parts)
