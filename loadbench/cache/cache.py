"""ResponseCache: exact lookup, then semantic lookup, inside hard (tenant, namespace, virtual model)
partitions; fixed TTL; LRU eviction at ``max_entries``.

Isolation is structural, never textual: the exact index is keyed by ``(scope, digest)`` and each
semantic index by ``(scope, context digest)``, so no similarity, however high, can cross a tenant,
namespace, virtual model, system prompt, prior turn, sampling parameter or tool list.

Semantic candidates are pre-filtered by the near-miss guard's signature (numbers, negations,
content words): a request is compared only with the stored entries of its own signature group,
because the guard would veto every other one. So a lookup scans a handful of rows instead of the
whole partition and returns the same hits (more, in the rare case where over ``max_candidates``
vetoed neighbours used to crowd out a good one). When no entry shares the signature, the lookup
does not even embed: the vector is computed at store time, after the answer has been sent.

Not thread-safe: one instance per event loop (the gateway runs one loop per process).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any, Literal

from loadbench.cache.answer import CachedAnswer, is_cacheable
from loadbench.cache.config import CacheConfig
from loadbench.cache.embedder import Embedder, Vector
from loadbench.cache.guard import Signature, TextFeatures, analyse, disagreement, signature
from loadbench.cache.headers import CacheScope, parse_cache_control, response_headers
from loadbench.cache.index import VectorIndex
from loadbench.cache.request import Bypass, PreparedRequest, prepare
from loadbench.errors import LoadbenchError

Outcome = Literal["hit-exact", "hit-semantic", "miss", "bypass"]
_Key = tuple[CacheScope, bytes]


@dataclass(slots=True, eq=False)
class CacheEntry:
    id: int
    key: _Key
    partition: _Key | None  # semantic partition, None when stored for exact matching only
    slot: int
    answer: CachedAnswer
    features: TextFeatures | None
    stored_at_s: float
    expires_at_s: float


@dataclass(slots=True, frozen=True)
class PortableEntry:
    """A semantic entry as it travels between caches (replicas): everything another cache needs to find it
    by similarity without embedding it again."""

    scope: CacheScope
    exact_digest: bytes
    context_digest: bytes
    answer: CachedAnswer
    vector: Vector
    features: TextFeatures | None
    ttl_left_s: float


@dataclass(slots=True)
class CacheLookup:
    outcome: Outcome
    entry: CacheEntry | None = None
    similarity: float | None = None
    reason: str = ""  # why a bypass, or which guard vetoed the best semantic candidate
    store_allowed: bool = False  # may store() keep this request's answer afterwards
    prepared: PreparedRequest | None = None  # reused by store(lookup=...)
    vector: Vector | None = None  # reused by store(lookup=...)
    features: TextFeatures | None = None  # reused by store(lookup=...)

    @property
    def hit(self) -> bool:
        return self.entry is not None

    def headers(self) -> dict[str, str]:
        return response_headers(self.outcome, self.similarity)


@dataclass(slots=True)
class CacheStats:
    hits_exact: int = 0
    hits_semantic: int = 0
    misses: int = 0
    bypasses: int = 0
    stores: int = 0
    store_refused: int = 0  # incomplete / errored / non-text answers offered to store()
    evictions: int = 0  # LRU evictions at max_entries
    expirations: int = 0
    guard_vetoes: int = 0  # semantic candidates above the threshold rejected by the guard
    embed_errors: int = 0
    entries: int = 0
    partitions: int = 0
    tokens_saved: int = 0  # prompt + completion tokens of every answer served from the cache
    vector_bytes: int = 0

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


class ResponseCache:
    def __init__(self, config: CacheConfig, embedder: Embedder, *, clock: Callable[[], float]) -> None:
        self.config = config
        self._embedder = embedder
        self._clock = clock
        self._exact: dict[_Key, CacheEntry] = {}
        self._lru: OrderedDict[int, CacheEntry] = OrderedDict()  # least recently used first
        self._fifo: OrderedDict[int, CacheEntry] = OrderedDict()  # fixed TTL: oldest expires first
        self._partitions: dict[_Key, VectorIndex] = {}
        self._next_id = 0
        self._stats = CacheStats()

    async def lookup(self, scope: CacheScope, body: dict[str, Any], *,
                     cache_control: str | None = None) -> CacheLookup:
        allow_lookup, allow_store = parse_cache_control(cache_control)
        prepared = prepare(body, self.config)
        if isinstance(prepared, Bypass):
            self._stats.bypasses += 1
            return CacheLookup("bypass", reason=prepared.reason)
        if not allow_lookup:
            self._stats.bypasses += 1
            return CacheLookup("bypass", reason="cache-control", store_allowed=allow_store, prepared=prepared)
        now = self._clock()
        entry = self._exact.get((scope, prepared.exact_digest))
        if entry is not None:
            if entry.expires_at_s > now:
                return self._hit("hit-exact", entry, 1.0, prepared, allow_store)
            self._remove(entry)
            self._stats.expirations += 1
        result = CacheLookup("miss", store_allowed=allow_store, prepared=prepared)
        text = prepared.semantic_text
        if self.config.mode == "semantic" and text is not None:
            part_key = (scope, prepared.context_digest)
            group: Signature | None = None
            if self.config.near_miss_guard:
                result.features = analyse(text)
                group = signature(result.features)
            index = self._partitions.get(part_key)
            if index is not None and (group is None or index.has_group(group)):
                vector = await self._embed(text)
                result.vector = vector
                index = self._partitions.get(part_key)  # the embed may have yielded to other requests
                if vector is not None and index is not None and index.dim == vector.shape[0]:
                    found = self._semantic(index, vector, group, result)
                    if found is not None:
                        entry, similarity = found
                        hit = self._hit("hit-semantic", entry, similarity, prepared, allow_store)
                        hit.vector = vector
                        return hit
        self._stats.misses += 1
        return result

    async def store(self, scope: CacheScope, body: dict[str, Any], answer: CachedAnswer, *,
                    lookup: CacheLookup | None = None, cache_control: str | None = None) -> bool:
        """Keep ``answer`` for ``body``. Pass the ``lookup`` made for the same request to skip
        re-hashing and re-embedding. Returns False when refused (incomplete answer, uncacheable
        request, ``no-store``)."""
        if not is_cacheable(answer):
            self._stats.store_refused += 1
            return False
        if lookup is not None and not lookup.store_allowed:
            return False
        if not parse_cache_control(cache_control)[1]:
            return False
        prepared: PreparedRequest | Bypass | None = lookup.prepared if lookup is not None else None
        if prepared is None:
            prepared = prepare(body, self.config)
        if isinstance(prepared, Bypass):
            return False
        vector: Vector | None = None
        features: TextFeatures | None = None
        if self.config.mode == "semantic" and prepared.semantic_text is not None:
            vector = lookup.vector if lookup is not None and lookup.vector is not None else None
            if vector is None:
                vector = await self._embed(prepared.semantic_text)
            if self.config.near_miss_guard:
                features = lookup.features if lookup is not None and lookup.features is not None else None
                if features is None:
                    features = analyse(prepared.semantic_text)
        now = self._clock()
        self._insert((scope, prepared.exact_digest), prepared.context_digest, answer, vector, features,
                     now, now + self.config.ttl_s)
        self._stats.stores += 1
        return True

    def portable(self, scope: CacheScope, exact_digest: bytes) -> PortableEntry | None:
        """The semantic entry stored for ``(scope, exact_digest)`` as another cache can adopt it (None: not
        stored, expired, or exact-only)."""
        entry = self._exact.get((scope, exact_digest))
        now = self._clock()
        if entry is None or entry.partition is None or entry.expires_at_s <= now:
            return None
        index = self._partitions[entry.partition]
        return PortableEntry(scope, exact_digest, entry.partition[1], entry.answer, index.row(entry.slot),
                             entry.features, entry.expires_at_s - now)

    def adopt(self, entry: PortableEntry) -> bool:
        """Keep an entry another cache stored (another replica's, through Redis), in its partition and this
        cache's vector index. False when already held, expired, or its vector does not fit this index."""
        if entry.ttl_left_s <= 0 or not is_cacheable(entry.answer) or self.config.mode != "semantic":
            return False
        held = self._exact.get((entry.scope, entry.exact_digest))
        now = self._clock()
        if held is not None and held.expires_at_s > now:
            return False
        if self.config.near_miss_guard and entry.features is None:
            return False  # the guard could never pass it: it would only take a slot
        self._insert((entry.scope, entry.exact_digest), entry.context_digest, entry.answer, entry.vector,
                     entry.features, now, now + min(entry.ttl_left_s, self.config.ttl_s))
        return True

    def _insert(self, key: _Key, context_digest: bytes, answer: CachedAnswer, vector: Vector | None,
                features: TextFeatures | None, now: float, expires_at_s: float) -> None:
        old = self._exact.get(key)
        if old is not None:
            self._remove(old)
        self.purge_expired()
        while len(self._lru) >= self.config.max_entries:
            _, victim = self._lru.popitem(last=False)
            self._remove(victim)
            self._stats.evictions += 1
        entry = CacheEntry(id=self._next_id, key=key, partition=None, slot=-1, answer=answer,
                           features=features, stored_at_s=now, expires_at_s=expires_at_s)
        self._next_id += 1
        if vector is not None:
            part_key = (key[0], context_digest)
            index = self._partitions.get(part_key)
            if index is None:
                index = self._partitions[part_key] = VectorIndex(vector.shape[0])
            if index.dim == vector.shape[0]:
                entry.partition = part_key
                entry.slot = index.add(vector, entry.id, signature(features) if features is not None else None)
        self._exact[key] = entry
        self._lru[entry.id] = entry
        self._fifo[entry.id] = entry

    def purge_expired(self) -> int:
        """Drop expired entries (amortised O(1) per entry; store() calls it)."""
        now = self._clock()
        dropped = 0
        while self._fifo:
            entry = next(iter(self._fifo.values()))
            if entry.expires_at_s > now:
                break
            self._remove(entry)
            self._stats.expirations += 1
            dropped += 1
        return dropped

    def stats(self) -> CacheStats:
        s = self._stats
        s.entries = len(self._lru)
        s.partitions = len(self._partitions)
        s.vector_bytes = sum(ix.nbytes() for ix in self._partitions.values())
        return CacheStats(**asdict(s))

    def __len__(self) -> int:
        return len(self._lru)

    def _hit(self, outcome: Outcome, entry: CacheEntry, similarity: float, prepared: PreparedRequest,
             allow_store: bool) -> CacheLookup:
        self._lru.move_to_end(entry.id)
        if outcome == "hit-exact":
            self._stats.hits_exact += 1
        else:
            self._stats.hits_semantic += 1
        self._stats.tokens_saved += entry.answer.tokens
        return CacheLookup(outcome, entry=entry, similarity=similarity, store_allowed=False,
                           prepared=prepared)

    def _semantic(self, index: VectorIndex, vector: Vector, group: Signature | None,
                  result: CacheLookup) -> tuple[CacheEntry, float] | None:
        candidates = index.search(vector, self.config.similarity_threshold, self.config.max_candidates, group)
        if not candidates:
            return None
        now = self._clock()
        query = result.features
        for entry_id, similarity in candidates:
            entry = self._lru.get(entry_id)
            if entry is None:
                continue
            if entry.expires_at_s <= now:
                self._remove(entry)
                self._stats.expirations += 1
                continue
            if self.config.near_miss_guard:
                if entry.features is None or query is None:
                    continue
                reason = disagreement(query, entry.features)
                if reason is not None:
                    self._stats.guard_vetoes += 1
                    if not result.reason:
                        result.reason = f"guard:{reason}"
                    continue
            return entry, similarity
        return None

    async def _embed(self, text: str) -> Vector | None:
        try:
            return await self._embedder.embed(text)
        except (LoadbenchError, OSError, ValueError):
            # The cache must never fail a request: without a vector it is an exact-only cache.
            self._stats.embed_errors += 1
            return None

    def _remove(self, entry: CacheEntry) -> None:
        if self._exact.get(entry.key) is entry:
            del self._exact[entry.key]
        self._lru.pop(entry.id, None)
        self._fifo.pop(entry.id, None)
        if entry.partition is not None:
            index = self._partitions.get(entry.partition)
            if index is not None:
                index.remove(entry.slot)
                if index.count == 0:
                    del self._partitions[entry.partition]
            entry.partition = None
