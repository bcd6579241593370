"""ResponseCache behaviour: lookup order, semantic hits, isolation, TTL, LRU, refusal of bad answers."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Coroutine
from typing import Any, TypeVar

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from loadbench.cache import (
    CacheConfig,
    CachedAnswer,
    CacheScope,
    HashingEmbedder,
    ResponseCache,
)
from loadbench.errors import TargetError

T = TypeVar("T")
SCOPE = CacheScope(tenant="key:alice", namespace="default", virtual_model="chat")
ANSWER = CachedAnswer(text="Paris.", finish_reason="stop",
                      usage={"prompt_tokens": 20, "completion_tokens": 2, "total_tokens": 22})


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


class Clock:
    def __init__(self) -> None:
        self.now_s = 1000.0

    def __call__(self) -> float:
        return self.now_s


def body(text: str, *, system: str = "You are terse.", model: str = "m", **params: Any) -> dict[str, Any]:
    return {"model": model, "temperature": 0,
            "messages": [{"role": "system", "content": system}, {"role": "user", "content": text}],
            **params}


def make(**overrides: Any) -> tuple[ResponseCache, Clock]:
    clock = Clock()
    cfg = CacheConfig(mode="semantic").with_overrides(overrides)
    return ResponseCache(cfg, HashingEmbedder(), clock=clock), clock


def stored_then(cache: ResponseCache, first: dict[str, Any], second: dict[str, Any],
                scope_a: CacheScope = SCOPE, scope_b: CacheScope = SCOPE) -> Any:
    async def go() -> Any:
        assert await cache.store(scope_a, first, ANSWER)
        return await cache.lookup(scope_b, second)
    return run(go())


def test_exact_hit_first_and_semantic_only_on_miss() -> None:
    cache, _ = make()
    exact = stored_then(cache, body("How do I reset my password?"), body("How do I reset my password?"))
    assert exact.outcome == "hit-exact" and exact.similarity == 1.0
    semantic = run(cache.lookup(SCOPE, body("how can i reset my password")))
    assert semantic.outcome == "hit-semantic"
    assert semantic.entry is exact.entry
    assert 0.9 <= semantic.similarity <= 1.0001
    assert semantic.headers()["x-loadbench-cache"] == "hit-semantic"
    assert float(semantic.headers()["x-loadbench-cache-similarity"]) >= 0.9
    s = cache.stats()
    assert (s.hits_exact, s.hits_semantic, s.misses) == (1, 1, 0)
    assert s.tokens_saved == 2 * 22


def test_exact_mode_never_embeds_or_hits_semantically() -> None:
    class Exploding(HashingEmbedder):
        async def embed(self, text: str) -> Any:
            raise AssertionError("exact mode must not embed")

    cache = ResponseCache(CacheConfig(mode="exact"), Exploding(), clock=Clock())
    assert stored_then(cache, body("How do I reset my password?"),
                       body("how can i reset my password")).outcome == "miss"
    assert run(cache.lookup(SCOPE, body("How do I reset my password?"))).outcome == "hit-exact"


def test_paraphrase_hits_at_default_threshold() -> None:
    cache, _ = make()
    for a, b in [("What is the capital of France?", "What's the capital of France?"),
                 ("Give me a recipe for banana bread.", "Could you give me a recipe for banana bread?")]:
        assert stored_then(cache, body(a), body(b)).outcome == "hit-semantic", (a, b)


@pytest.mark.parametrize(("a", "b", "reason"), [
    ("What is 15% of 200?", "What is 15% of 300?", "number"),
    ("What is two plus two?", "What is two plus three?", "number"),
    ("Which foods are safe for dogs?", "Which foods are not safe for dogs?", "negation"),
    ("Why does my code compile?", "Why doesn't my code compile?", "negation"),
    ("What is the capital of France?", "What is the capital of Germany?", "entity"),
    ("How do I sort a list in Python?", "How do I sort a list in Rust?", "entity"),
    ("How do I convert Celsius to Fahrenheit?", "How do I convert Fahrenheit to Celsius?", "order"),
    ("Is a square a rectangle?", "Is a rectangle a square?", "order"),
])
def test_near_misses_miss_and_would_hit_without_the_guard(a: str, b: str, reason: str) -> None:
    guarded, _ = make(similarity_threshold=0.6)
    result = stored_then(guarded, body(a), body(b))
    assert result.outcome == "miss"
    if reason == "order":  # same signature: compared, then vetoed
        assert result.reason == "guard:order"
    else:  # another signature group: never compared, not even embedded
        assert result.reason == "" and result.vector is None
    unguarded, _ = make(similarity_threshold=0.6, near_miss_guard=False)
    # The pair is close enough that only the guard stands between it and a false hit.
    assert stored_then(unguarded, body(a), body(b)).outcome == "hit-semantic"


@pytest.mark.parametrize("other", [
    CacheScope("key:mallory", "default", "chat"),
    CacheScope("key:alice", "other-ns", "chat"),
    CacheScope("key:alice", "default", "other-model"),
])
def test_partitions_are_hard_even_for_identical_requests(other: CacheScope) -> None:
    cache, _ = make(similarity_threshold=0.01, near_miss_guard=False)
    req = body("Where is my delivery?")
    result = stored_then(cache, req, req, scope_b=other)
    assert result.outcome == "miss" and result.entry is None
    assert run(cache.lookup(SCOPE, req)).outcome == "hit-exact"


@given(tenants=st.lists(st.text(min_size=1, max_size=8), min_size=2, max_size=4, unique=True))
@settings(max_examples=25, deadline=None)
def test_no_cross_tenant_hit_for_any_tenant_names(tenants: list[str]) -> None:
    cache, _ = make(similarity_threshold=0.01, near_miss_guard=False)
    req = body("What is the status of my order?")

    async def go() -> None:
        owner = CacheScope(tenants[0], "default", "chat")
        assert await cache.store(owner, req, ANSWER)
        for t in tenants[1:]:
            assert (await cache.lookup(CacheScope(t, "default", "chat"), req)).entry is None
    run(go())


@pytest.mark.parametrize("changed", [
    body("How do I reset my password?", system="You are a pirate."),
    body("How do I reset my password?", model="other"),
    body("How do I reset my password?", max_tokens=10),
    body("How do I reset my password?", top_p=0.5),
    body("How do I reset my password?", seed=7),
    body("How do I reset my password?", response_format={"type": "json_object"}),
    body("How do I reset my password?", tools=[{"type": "function", "function": {"name": "f"}}]),
    {"model": "m", "temperature": 0, "messages": [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": "I use Windows."}, {"role": "assistant", "content": "OK."},
        {"role": "user", "content": "How do I reset my password?"}]},
])
def test_context_mismatch_never_hits(changed: dict[str, Any]) -> None:
    cache, _ = make(similarity_threshold=0.01, near_miss_guard=False)
    assert stored_then(cache, body("How do I reset my password?"), changed).outcome == "miss"


def test_presentation_fields_and_number_spelling_do_not_change_the_key() -> None:
    cache, _ = make(mode="exact")
    first = body("Hi", stream=True, stream_options={"include_usage": True})
    second = body("Hi", stream=False)
    second["temperature"] = 0.0
    second["messages"][1]["content"] = [{"type": "text", "text": "Hi"}]
    assert stored_then(cache, first, second).outcome == "hit-exact"


@pytest.mark.parametrize(("req", "opt_in_hits"), [
    ({"model": "m", "messages": [{"role": "user", "content": "hi"}]}, True),  # temperature unset = 1
    (body("hi", temperature=0.7), True),
    (body("hi", n=2), False),
    (body("hi", logprobs=True), False),
    ({"model": "m", "temperature": 0, "messages": [{"role": "user", "content": str(i)} for i in range(5)]},
     False),
])
def test_uncacheable_requests_bypass(req: dict[str, Any], opt_in_hits: bool) -> None:
    cache, _ = make()
    assert run(cache.lookup(SCOPE, req)).outcome == "bypass"
    assert run(cache.store(SCOPE, req, ANSWER)) is False
    assert run(cache.lookup(SCOPE, req)).outcome == "bypass"
    opted, _ = make(cache_nondeterministic=True)
    assert run(opted.store(SCOPE, req, ANSWER)) is opt_in_hits
    assert (run(opted.lookup(SCOPE, req)).outcome == "hit-exact") is opt_in_hits


def test_cache_control_no_cache_skips_lookup_and_no_store_skips_storing() -> None:
    cache, _ = make()
    req = body("What is the speed of light?")

    async def go() -> None:
        skipped = await cache.lookup(SCOPE, req, cache_control="no-store")
        assert skipped.outcome == "miss" and not skipped.store_allowed
        assert await cache.store(SCOPE, req, ANSWER, lookup=skipped) is False
        assert await cache.store(SCOPE, req, ANSWER, cache_control="no-store") is False
        assert (await cache.lookup(SCOPE, req)).outcome == "miss"
        assert await cache.store(SCOPE, req, ANSWER)
        fresh = await cache.lookup(SCOPE, req, cache_control="No-Cache")
        assert fresh.outcome == "bypass" and fresh.store_allowed
        assert (await cache.lookup(SCOPE, req)).outcome == "hit-exact"
    run(go())


def test_ttl_expiry_with_injected_clock() -> None:
    cache, clock = make(ttl_s=60)
    req = body("What is the speed of light?")
    run(cache.store(SCOPE, req, ANSWER))
    clock.now_s += 59.9
    assert run(cache.lookup(SCOPE, req)).outcome == "hit-exact"
    clock.now_s += 0.2  # TTL is fixed from storing: the hit above did not extend it
    assert run(cache.lookup(SCOPE, req)).outcome == "miss"
    assert run(cache.lookup(SCOPE, body("what's the speed of light"))).outcome == "miss"
    s = cache.stats()
    assert s.entries == 0 and s.expirations == 1 and s.partitions == 0


def test_expired_semantic_neighbour_is_dropped() -> None:
    cache, clock = make(ttl_s=10)
    run(cache.store(SCOPE, body("What is the speed of light?"), ANSWER))
    clock.now_s += 11
    assert run(cache.lookup(SCOPE, body("what's the speed of light"))).outcome == "miss"
    assert len(cache) == 0


def test_lru_eviction_keeps_recently_used() -> None:
    cache, clock = make(max_entries=3)
    reqs = [body(f"question number {w}") for w in ("alpha", "beta", "gamma", "delta")]

    async def go() -> None:
        for r in reqs[:3]:
            await cache.store(SCOPE, r, ANSWER)
            clock.now_s += 1
        assert (await cache.lookup(SCOPE, reqs[0])).outcome == "hit-exact"  # alpha now most recent
        await cache.store(SCOPE, reqs[3], ANSWER)
        assert (await cache.lookup(SCOPE, reqs[1])).outcome == "miss"  # beta was least recent
        for r in (reqs[0], reqs[2], reqs[3]):
            assert (await cache.lookup(SCOPE, r)).outcome == "hit-exact"
    run(go())
    s = cache.stats()
    assert s.evictions == 1 and s.entries == 3


def test_restoring_a_key_replaces_not_duplicates() -> None:
    cache, _ = make()
    req = body("What is the speed of light?")
    newer = CachedAnswer(text="c", finish_reason="stop")
    run(cache.store(SCOPE, req, ANSWER))
    run(cache.store(SCOPE, req, newer))
    assert len(cache) == 1
    assert run(cache.lookup(SCOPE, req)).entry.answer is newer


@pytest.mark.parametrize("bad", [
    CachedAnswer(text="partial", finish_reason="stop", complete=False),
    CachedAnswer(text="partial", finish_reason=""),
    CachedAnswer(text="", finish_reason="stop"),
    CachedAnswer(text="{}", finish_reason="tool_calls"),
    CachedAnswer(text="blocked", finish_reason="content_filter"),
])
def test_incomplete_or_unusable_answers_are_refused(bad: CachedAnswer) -> None:
    cache, _ = make()
    req = body("What is the speed of light?")
    assert run(cache.store(SCOPE, req, bad)) is False
    assert run(cache.lookup(SCOPE, req)).outcome == "miss"
    assert cache.stats().store_refused == 1


def test_embedder_failure_degrades_to_exact_only() -> None:
    class Failing(HashingEmbedder):
        async def embed(self, text: str) -> Any:
            raise TargetError("embeddings endpoint down")

    cache = ResponseCache(CacheConfig(mode="semantic"), Failing(), clock=Clock())
    req = body("What is the speed of light?")
    assert run(cache.store(SCOPE, req, ANSWER))
    assert run(cache.lookup(SCOPE, req)).outcome == "hit-exact"
    assert run(cache.lookup(SCOPE, body("what's the speed of light"))).outcome == "miss"
    # Only the store embedded: the failed store left no semantic group for the lookup to embed for,
    # and an exact hit never embeds.
    assert cache.stats().embed_errors == 1


def test_store_reuses_the_lookup_vector() -> None:
    calls: list[str] = []

    class Counting(HashingEmbedder):
        async def embed(self, text: str) -> Any:
            calls.append(text)
            return self.embed_sync(text)

    cache = ResponseCache(CacheConfig(mode="semantic"), Counting(), clock=Clock())
    req = body("What is the speed of light?")

    async def go() -> None:
        found = await cache.lookup(SCOPE, req)
        assert await cache.store(SCOPE, req, ANSWER, lookup=found)
    run(go())
    assert calls == ["What is the speed of light?"]


_TEMPLATES = ["What is {} plus 7?", "Set a timer for {} minutes.", "How many calories are in {} eggs?",
              "Summarize chapter {} of the book.", "Convert {} USD to EUR please.", "Who won in {}?",
              "Give me a {} day itinerary for Rome.", "Is {} a prime number?"]


@given(template=st.sampled_from(_TEMPLATES), x=st.integers(0, 10**9), y=st.integers(0, 10**9),
       threshold=st.floats(0.05, 1.0))
@settings(max_examples=150, deadline=None)
def test_requests_differing_only_in_a_number_never_hit(template: str, x: int, y: int,
                                                       threshold: float) -> None:
    if x == y:
        return
    cache, _ = make(similarity_threshold=threshold)
    result = stored_then(cache, body(template.format(x)), body(template.format(y)))
    assert result.outcome == "miss", (template, x, y, threshold)


def test_semantic_index_grows_and_reuses_slots() -> None:
    cache, _ = make(max_entries=1000)
    reqs = [body(f"tell me about topic {w}") for w in
            ("".join(chr(97 + (i // 26 ** k) % 26) for k in range(3)) for i in range(100))]

    async def go() -> None:
        for r in reqs:
            await cache.store(SCOPE, r, ANSWER)
        for r in reqs:
            assert (await cache.lookup(SCOPE, r)).outcome == "hit-exact"
    run(go())
    s = cache.stats()
    assert s.entries == 100 and s.partitions == 1
    assert s.vector_bytes >= 100 * 128 * 4
    assert np.isfinite(s.vector_bytes)


_WORDS = ["dog", "cat", "safe", "food", "grape", "two", "3", "not", "to", "from", "Paris", "rome", "the", "is"]


@given(stored=st.lists(st.lists(st.sampled_from(_WORDS), min_size=1, max_size=6), min_size=1, max_size=25),
       query=st.lists(st.sampled_from(_WORDS), min_size=1, max_size=6),
       threshold=st.floats(0.05, 1.0))
@settings(max_examples=150, deadline=None)
def test_signature_prefilter_finds_the_same_best_hit_as_a_full_guarded_scan(
        stored: list[list[str]], query: list[str], threshold: float) -> None:
    from loadbench.cache.guard import analyse, disagreement

    cache, _ = make(similarity_threshold=threshold, max_candidates=1000)
    emb = HashingEmbedder()
    texts = list(dict.fromkeys(" ".join(words) for words in stored))
    q = " ".join(query)
    qv, qf = emb.embed_sync(q), analyse(q)
    passing = [float(emb.embed_sync(t) @ qv) for t in texts if t != q and disagreement(qf, analyse(t)) is None]
    best = max((s for s in passing if s >= threshold), default=None)

    async def go() -> Any:
        for t in texts:
            if t != q:
                assert await cache.store(SCOPE, body(t), CachedAnswer(text=t, finish_reason="stop"))
        return await cache.lookup(SCOPE, body(q))
    result = run(go())
    if best is None:
        assert result.outcome == "miss"
    else:
        assert result.outcome == "hit-semantic" and result.similarity == pytest.approx(best, abs=1e-5)


def test_an_entry_adopted_from_another_cache_is_found_by_similarity_in_its_own_partition_only() -> None:
    a, _ = make()
    b, clock = make(ttl_s=60)
    asked = body("How do I reset my password?")
    prepared = run(a.lookup(SCOPE, asked)).prepared
    assert prepared is not None and run(a.store(SCOPE, asked, ANSWER))
    entry = a.portable(SCOPE, prepared.exact_digest)
    assert entry is not None and entry.ttl_left_s == pytest.approx(3600.0)
    assert entry.vector.shape == (128,) and entry.features is not None
    assert a.portable(CacheScope("key:bob", "default", "chat"), prepared.exact_digest) is None

    assert b.adopt(entry) and not b.adopt(entry)  # held already
    semantic = run(b.lookup(SCOPE, body("how can i reset my password")))
    assert semantic.outcome == "hit-semantic" and semantic.entry is not None and semantic.entry.answer == ANSWER
    assert run(b.lookup(SCOPE, asked)).outcome == "hit-exact"
    bob = CacheScope("key:bob", "default", "chat")
    assert run(b.lookup(bob, body("how can i reset my password"))).outcome == "miss"
    assert b.stats().stores == 0 and len(b) == 1
    clock.now_s += 61  # this cache's own TTL bounds what it adopts
    assert run(b.lookup(SCOPE, asked)).outcome == "miss"


def test_an_expired_or_exact_only_entry_is_not_adopted() -> None:
    a, _ = make()
    asked = body("How do I reset my password?")
    prepared = run(a.lookup(SCOPE, asked)).prepared
    assert prepared is not None and run(a.store(SCOPE, asked, ANSWER))
    entry = a.portable(SCOPE, prepared.exact_digest)
    assert entry is not None
    b, _ = make()
    assert not b.adopt(dataclasses.replace(entry, ttl_left_s=0.0))
    assert not b.adopt(dataclasses.replace(entry, features=None))  # the guard could never pass it
    exact, _ = make(mode="exact")
    assert not exact.adopt(entry) and len(exact) == 0
    assert run(exact.store(SCOPE, asked, ANSWER)) and exact.portable(SCOPE, prepared.exact_digest) is None
