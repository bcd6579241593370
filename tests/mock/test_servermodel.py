"""The mock's server model: each term alone as arithmetic, then measured through a real client against the real mock."""

from __future__ import annotations

import asyncio
import itertools
import statistics
from typing import Any

import aiohttp
import pytest

from loadbench.mock.servermodel import (
    PrefixCache,
    ServerModel,
    ServerModelConfig,
    block_hashes,
    decode_itl_s,
    prefill_s,
    prompt_words,
    server_model,
)
from loadbench.mock.settings import MockSettings, problems
from tests.mock.test_app import CHAT, COMPLETIONS, Stream, post, run, stream, warm


def words(n: int, tag: str = "w") -> str:
    return " ".join(f"{tag}{i}" for i in range(n))


# --- arithmetic ----------------------------------------------------------------------------


def test_prefill_and_decode_formulas() -> None:
    assert prefill_s(0.5, 300) == pytest.approx(0.150)
    assert prefill_s(0.0, 300) == 0.0
    assert decode_itl_s(0.010, 0.25, 1) == pytest.approx(0.010)
    assert decode_itl_s(0.010, 0.25, 5) == pytest.approx(0.020)  # 10 ms x (1 + 0.25 x 4)


def test_block_hashes_are_chained_and_cover_only_full_blocks() -> None:
    a = block_hashes(["a", "b", "c", "d", "e", "f", "g"], 3)
    b = block_hashes(["a", "b", "c", "X", "e", "f"], 3)
    assert len(a) == 2 and len(b) == 2  # the trailing "g" is no full block
    assert a[0] == b[0] and a[1] != b[1]
    # same words in block 2 after a different block 1: a different name (the hash covers the prefix)
    assert block_hashes(["z", "z", "z", "d", "e", "f"], 3)[1] != a[1]


def test_prefix_cache_counts_leading_hits_and_evicts_least_recently_used() -> None:
    cache = PrefixCache(capacity=3)
    h = [bytes([i]) for i in range(6)]
    assert cache.admit(h[:2]) == 0 and len(cache) == 2
    assert cache.admit(h[:3]) == 2 and len(cache) == 3
    assert cache.admit([h[0], h[4]]) == 1  # h0 used again, h4 added: h1 (least recently used) evicted
    assert len(cache) == 3
    assert cache.admit(h[:3]) == 1  # h1 is gone, so h2 no longer counts although it is held
    assert cache.admit([h[5], h[0]]) == 0  # a hit after a miss is no prefix hit


def test_server_model_charges_prefill_only_for_uncached_tokens() -> None:
    model = ServerModel(ServerModelConfig(prefill_ms_per_token=2.0, prefix_cache_blocks=100, prefix_block_tokens=4))
    first = model.arrive(words(10).split(), 10)
    assert (first.cached_tokens, first.prefill_s) == (0, pytest.approx(0.020))
    again = model.arrive((words(10) + " more").split(), 11)
    assert again.cached_tokens == 8  # two full blocks of 4; the 9th and 10th words were no full block
    assert again.prefill_s == pytest.approx(0.006)
    assert model.start(0.01) == pytest.approx(0.01)


def test_prompt_words_follow_the_mock_token_count() -> None:
    body = {"messages": [{"role": "system", "content": "be  brief"},
                         {"role": "user", "content": [{"type": "text", "text": "a b"}, {"type": "image_url"}]}]}
    assert prompt_words(body, chat=True) == ["be", "brief", "a", "b"]
    assert prompt_words({"prompt": ["x y", [7, 8]]}, chat=False) == ["x", "y", "7", "8"]


def test_every_term_is_off_by_default_and_limits_are_checked() -> None:
    assert server_model(MockSettings()) is None
    assert server_model(MockSettings(decode_slowdown=0.1)) is not None
    assert [f for f, _ in problems(MockSettings(prefix_block_tokens=0))] == ["prefix_block_tokens"]
    assert [f for f, _ in problems(MockSettings(prefill_ms_per_token=-1.0))] == ["prefill_ms_per_token"]


# --- the real mock -------------------------------------------------------------------------


def usage_of(s: Stream) -> dict[str, Any]:
    return next(ev["usage"] for _, ev in s.events if isinstance(ev, dict) and ev.get("usage"))


def test_cached_tokens_are_reported_in_usage_streamed_and_not() -> None:
    prompt = words(40)

    async def scenario(c: aiohttp.ClientSession) -> tuple[Any, Any, Any]:
        s1 = await stream(c, messages=[{"role": "user", "content": prompt}], max_tokens=2,
                          stream_options={"include_usage": True})
        _, whole, _ = await post(c, CHAT, {"messages": [{"role": "user", "content": prompt + " tail"}],
                                           "max_tokens": 2})
        _, comp, _ = await post(c, COMPLETIONS, {"prompt": prompt, "max_tokens": 2})
        return usage_of(s1), whole["usage"], comp["usage"]

    first, second, third = run(MockSettings(ttft_ms=0, itl_ms=0, prefix_cache_blocks=64, prefix_block_tokens=16),
                               scenario)
    assert first["prompt_tokens_details"] == {"cached_tokens": 0}
    assert second == {"prompt_tokens": 41, "completion_tokens": 2, "total_tokens": 43,
                      "prompt_tokens_details": {"cached_tokens": 32}}
    assert third["prompt_tokens_details"] == {"cached_tokens": 32}  # the cache is shared by both endpoints


def test_without_a_cache_usage_keeps_its_old_shape() -> None:
    s = run(MockSettings(ttft_ms=0, itl_ms=0, prefill_ms_per_token=0.01),
            lambda c: stream(c, max_tokens=2, stream_options={"include_usage": True}))
    assert usage_of(s) == {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}


@pytest.mark.alone
def test_ttft_is_configured_ttft_plus_prefill_of_the_uncached_tokens_to_the_millisecond() -> None:
    ttft_ms, per_token_ms = 20.0, 0.25

    async def scenario(c: aiohttp.ClientSession) -> list[tuple[float, int, int]]:
        await warm(c, 1)
        out = []
        for i in range(6):
            # A new document each time (cold), then the same document with a new question (warm).
            doc = words(400, tag=f"d{i}x")
            for text in (doc, doc + " " + words(40, tag=f"q{i}x")):
                s = await stream(c, messages=[{"role": "user", "content": text}], max_tokens=2,
                                 stream_options={"include_usage": True})
                u = usage_of(s)
                out.append((s.ms_after_send(s.content[0][0]), u["prompt_tokens"],
                            u["prompt_tokens_details"]["cached_tokens"]))
        return out

    rows = run(MockSettings(ttft_ms=ttft_ms, itl_ms=1, prefill_ms_per_token=per_token_ms,
                            prefix_cache_blocks=10_000, prefix_block_tokens=16), scenario)
    cold, warm_rows = rows[0::2], rows[1::2]
    assert all(r[1:] == (400, 0) for r in cold)
    assert all(r[1:] == (440, 400) for r in warm_rows)
    expect_cold = ttft_ms + 400 * per_token_ms  # 120 ms
    expect_warm = ttft_ms + 40 * per_token_ms  # 30 ms: the 400 cached tokens cost nothing
    got_cold = statistics.median(r[0] for r in cold)
    got_warm = statistics.median(r[0] for r in warm_rows)
    assert expect_cold - 0.5 <= got_cold <= expect_cold + 2.0, (got_cold, expect_cold)
    assert expect_warm - 0.5 <= got_warm <= expect_warm + 2.0, (got_warm, expect_warm)
    # the fixed costs (timer granularity, the client's own reads) cancel in the difference
    assert abs((got_cold - got_warm) - 360 * per_token_ms) <= 1.0


@pytest.mark.alone
def test_decode_slowdown_stretches_itl_with_the_streams_holding_a_slot() -> None:
    itl_ms, slowdown, n = 4.0, 0.5, 30

    async def scenario(c: aiohttp.ClientSession) -> list[Stream]:
        await warm(c, 4)
        alone = await stream(c, max_tokens=n)
        crowd = []
        for _ in range(4):  # the k-th starts while k - 1 others decode: ITL x (1 + 0.5 (k - 1))
            crowd.append(asyncio.create_task(stream(c, max_tokens=n)))
            await asyncio.sleep(0.005)
        return [alone, *await asyncio.gather(*crowd)]

    streams = run(MockSettings(ttft_ms=10, itl_ms=itl_ms, decode_slowdown=slowdown), scenario)
    for k, s in enumerate(streams):
        times = [s.ms_after_send(t) for t, _ in s.content]
        streams_at_start = 1 if k == 0 else k
        gap = itl_ms * (1 + slowdown * (streams_at_start - 1))
        # the median gap is robust to a chunk a busy machine delivered late; the last chunk's absolute
        # deadline (never early, no drift) pins the whole schedule
        assert gap - 0.5 <= statistics.median(b - a for a, b in itertools.pairwise(times)) <= gap + 0.5, (k, gap)
        due_last = 10 + (n - 1) * gap
        assert due_last - 0.5 <= times[-1] <= due_last + 3.0, (k, times[-1], due_last)


@pytest.mark.alone
def test_batch_limit_queues_and_the_queue_adds_to_prefill() -> None:
    # batch limit 1: b waits for a's whole stream, then pays its own TTFT and prefill
    async def scenario(c: aiohttp.ClientSession) -> tuple[Stream, Stream]:
        await warm(c, 2)
        a = asyncio.create_task(stream(c, messages=[{"role": "user", "content": words(100)}], max_tokens=5))
        await asyncio.sleep(0.005)
        b = asyncio.create_task(stream(c, messages=[{"role": "user", "content": words(100, "b")}], max_tokens=5))
        return await a, await b

    a, b = run(MockSettings(ttft_ms=10, itl_ms=2, prefill_ms_per_token=0.2, max_concurrency=1), scenario)
    a_last_ms = a.ms_after_send(a.content[-1][0])
    assert 10 + 20 + 8 - 0.5 <= a_last_ms <= 10 + 20 + 8 + 3.0  # ttft + prefill of 100 + 4 gaps
    gap_ms = (b.content[0][0] - a.content[-1][0]) / 1e6
    assert 30 - 0.5 <= gap_ms <= 30 + 3.0  # b's clock starts when a frees the slot
