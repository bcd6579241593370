"""The mock's server model: what a request costs beyond the fixed TTFT and ITL. Every term is off by default.

Why: multi-turn sessions, trace replay and saturation detection need a target whose answer to a
shared prefix, a long prompt or a crowd is known exactly, so a test can compare what loadbench
measured with what the server did. Real engines are not exact; this model is.

Terms (``docs/mock.md`` has the user's view):
    prefill         ``prefill_ms_per_token`` x the prompt tokens the prefix cache did not hold,
                    added to the TTFT
    prefix cache    an LRU of ``prefix_cache_blocks`` prompt blocks of ``prefix_block_tokens``
                    tokens, shared by every request of the process. A block is named by a chained
                    hash of the token text up to its end (vLLM's scheme), so block i hits only when
                    the whole prompt up to it was seen before. Only full blocks are cached. The
                    leading blocks that hit cost nothing and are reported as
                    ``usage.prompt_tokens_details.cached_tokens``; the prompt's full blocks are
                    then stored (most recently used last) and the oldest evicted beyond capacity.
                    Looked up when the request arrives, in arrival order.
    decode slowdown every content gap is ``itl x (1 + decode_slowdown x (streams - 1))``, ``streams``
                    being the requests holding a batch slot when this one got its slot (itself
                    included); fixed for the stream's life, so the formula stays exact
    batch limit     ``max_concurrency``: beyond it requests queue FIFO and their clock starts when
                    they get a slot (the mock's existing queue; see ``gate``)

Tokens are the mock's whitespace words (``tokens``), so a prompt's token text is its word list.
Pure but for ``ServerModel``'s cache and stream count; no clock is read here.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass

from loadbench.errors import InputError
from loadbench.mock.settings import MockSettings


@dataclass(frozen=True, slots=True)
class ServerModelConfig:
    prefill_ms_per_token: float = 0.0
    prefix_cache_blocks: int = 0  # 0 = no prefix cache
    prefix_block_tokens: int = 16
    decode_slowdown: float = 0.0

    @property
    def caches(self) -> bool:
        return self.prefix_cache_blocks > 0

    @property
    def active(self) -> bool:
        return self.prefill_ms_per_token > 0 or self.caches or self.decode_slowdown > 0


def prefill_s(prefill_ms_per_token: float, uncached_tokens: int) -> float:
    """Seconds of prefill for the prompt tokens the cache did not hold."""
    return prefill_ms_per_token * uncached_tokens / 1000.0


def decode_itl_s(itl_s: float, decode_slowdown: float, streams: int) -> float:
    """The gap between content chunks when ``streams`` requests (this one included) decode together."""
    return itl_s * (1.0 + decode_slowdown * max(0, streams - 1))


def block_hashes(words: Sequence[str], block_tokens: int) -> list[bytes]:
    """The chained hash of every full block of ``words``: block i's names the text up to its end."""
    out: list[bytes] = []
    prev = b""
    for i in range(len(words) // block_tokens):
        block = "\x1f".join(words[i * block_tokens:(i + 1) * block_tokens]).encode()
        prev = hashlib.blake2b(prev + b"\x1e" + block, digest_size=16).digest()
        out.append(prev)
    return out


class PrefixCache:
    """An LRU of block hashes; ``admit`` says how many leading blocks hit and stores the rest."""

    __slots__ = ("_blocks", "capacity")

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._blocks: OrderedDict[bytes, None] = OrderedDict()

    def __len__(self) -> int:
        return len(self._blocks)

    def admit(self, hashes: Sequence[bytes]) -> int:
        """Leading blocks of ``hashes`` already held; afterwards all of them are held, newest last."""
        blocks = self._blocks
        hits = 0
        while hits < len(hashes) and hashes[hits] in blocks:
            hits += 1
        for h in hashes:
            if h in blocks:
                blocks.move_to_end(h)
            else:
                blocks[h] = None
        while len(blocks) > self.capacity:
            blocks.popitem(last=False)
        return hits


@dataclass(frozen=True, slots=True)
class Admission:
    """What the model charges one request."""

    cached_tokens: int
    prefill_s: float


class ServerModel:
    """One process's prefix cache and count of streams holding a batch slot."""

    def __init__(self, config: ServerModelConfig) -> None:
        self.config = config
        self.cache = PrefixCache(config.prefix_cache_blocks) if config.caches else None
        self.streams = 0

    def arrive(self, words: Sequence[str] | None, prompt_tokens: int) -> Admission:
        """Look the prompt up in the prefix cache (``words`` may be None when there is no cache)."""
        cached = 0
        if self.cache is not None and words is not None:
            block = self.config.prefix_block_tokens
            cached = self.cache.admit(block_hashes(words, block)) * block
        return Admission(cached_tokens=cached,
                         prefill_s=prefill_s(self.config.prefill_ms_per_token, max(0, prompt_tokens - cached)))

    def start(self, itl_s: float) -> float:
        """A stream got its batch slot: its content gap."""
        self.streams += 1
        return decode_itl_s(itl_s, self.config.decode_slowdown, self.streams)

    def end(self) -> None:
        self.streams -= 1


def prompt_words(body: object, *, chat: bool) -> list[str]:
    """The prompt's token text as the mock counts it (``tokens``): every word, in order."""
    if not isinstance(body, dict):
        raise InputError("the request body must be a JSON object")
    words: list[str] = []
    if chat:
        for message in body.get("messages") or ():
            content = message.get("content") if isinstance(message, dict) else None
            if isinstance(content, str):
                words.extend(content.split())
            elif isinstance(content, list):
                for part in content:
                    if isinstance(part, dict) and part.get("type") == "text" and isinstance(part.get("text"), str):
                        words.extend(part["text"].split())
        return words
    prompt = body.get("prompt", "")
    for item in (prompt if isinstance(prompt, list) else [prompt]):
        if isinstance(item, str):
            words.extend(item.split())
        elif isinstance(item, list):
            words.extend(str(i) for i in item)
        else:
            words.append(str(item))
    return words


def server_model(settings: MockSettings) -> ServerModel | None:
    """The model the settings describe, or None when every term is off."""
    config = ServerModelConfig(
        prefill_ms_per_token=settings.prefill_ms_per_token, prefix_cache_blocks=settings.prefix_cache_blocks,
        prefix_block_tokens=settings.prefix_block_tokens, decode_slowdown=settings.decode_slowdown)
    return ServerModel(config) if config.active else None
