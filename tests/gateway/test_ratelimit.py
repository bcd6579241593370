"""Per-key rate limits: the bucket arithmetic, the buckets shared in a real ``redis-server`` by several
limiters (as several replicas) and their local fallback, and the 429 a real gateway answers."""

from __future__ import annotations

import asyncio
import time

import aiohttp
import orjson
import pytest

from loadbench.errors import ConfigError
from loadbench.gateway.config import RateLimit, StateSpec, compile_model, key_digest, parse_model
from loadbench.gateway.ratelimit import MAX_TENANTS, REQUESTS, TOKENS, LocalBuckets, RedisBuckets, Refusal
from tests.gateway.harness import CHAT, Upstream, gateway, ok, post, run, upstream
from tests.redis_server import RedisServer


def test_a_bucket_admits_a_minutes_worth_then_one_per_refill() -> None:
    b = LocalBuckets()
    limit = RateLimit(requests_per_minute=6)
    assert [b.admit("k", limit, 100.0) for _ in range(6)] == [None] * 6
    refused = b.admit("k", limit, 100.0)
    assert refused == Refusal(REQUESTS, pytest.approx(10.0))  # one request every 60/6 s
    assert b.admit("other", limit, 100.0) is None  # each key its own bucket
    assert b.admit("k", limit, 105.0) is not None
    assert b.admit("k", limit, 110.0) is None
    assert b.admit("k", limit, 1000.0) is None  # refilled to a minute's worth, never beyond
    assert [b.admit("k", limit, 1000.0) for _ in range(5)] == [None] * 5
    assert b.admit("k", limit, 1000.0) is not None


def test_tokens_are_charged_after_the_answer_and_a_debt_is_waited_off() -> None:
    b = LocalBuckets()
    limit = RateLimit(tokens_per_minute=600)
    assert b.admit("k", limit, 0.0) is None
    b.charge("k", limit, 1000, 0.0)  # a long answer: 400 tokens of debt
    refused = b.admit("k", limit, 0.0)
    assert refused is not None and refused.limit == TOKENS
    assert refused.retry_after_s == pytest.approx(401 * 60 / 600)
    assert b.admit("k", limit, 40.0) is not None and b.admit("k", limit, 40.2) is None
    assert b.admit("k", RateLimit(), 0.0) is None  # no limit: always admitted


def test_the_buckets_forget_the_least_recent_keys_beyond_the_bound() -> None:
    b = LocalBuckets()
    limit = RateLimit(requests_per_minute=1)
    b.admit("first", limit, 0.0)
    for i in range(MAX_TENANTS):
        b.admit(f"k{i}", limit, 0.0)
    assert len(b._buckets) == MAX_TENANTS
    assert b.admit("first", limit, 0.0) is None  # forgotten: a fresh bucket


def test_the_config_names_the_missing_key_variable() -> None:
    base = {"targets": [{"name": "a", "url": "http://127.0.0.1:1/v1", "model": "m"}],
            "virtual_models": [{"name": "vm", "targets": [{"target": "a"}]}]}
    limits = {"per_key": {"requests_per_minute": 60},
              "keys": [{"api_keys_env": "GOLD_KEYS", "requests_per_minute": 600, "tokens_per_minute": 10_000}]}
    with pytest.raises(ConfigError) as err:
        compile_model(parse_model({**base, "rate_limits": limits}, "g.yaml"), "g.yaml", env={})
    assert err.value.field == "rate_limits.keys[0].api_keys_env" and "GOLD_KEYS is not set" in str(err.value)
    spec = compile_model(parse_model({**base, "rate_limits": limits}, "g.yaml"), "g.yaml", env={"GOLD_KEYS": "g1, g2"})
    assert spec.rate_limits is not None
    assert spec.rate_limits.of(key_digest("g2")) == RateLimit(600, 10_000)
    assert spec.rate_limits.of(key_digest("x")) == spec.rate_limits.of(None) == RateLimit(60, None)


def test_a_gateway_answers_429_with_retry_after_in_the_openai_shape() -> None:
    async def main() -> None:
        async with upstream(Upstream(ok)) as up_url:
            cfg = {"targets": [{"name": "t", "url": up_url, "model": "m"}],
                   "virtual_models": [{"name": "vm", "targets": [{"target": "t"}]}],
                   "auth": {"api_keys_env": "GW_KEYS"},
                   "rate_limits": {"per_key": {"requests_per_minute": 3, "tokens_per_minute": 600}}}
            async with gateway(cfg) as (url, gw), aiohttp.ClientSession() as s:
                k1, k2 = {"Authorization": "Bearer k1"}, {"Authorization": "Bearer k2"}
                statuses = [(await post(s, url, CHAT, k1))[0] for _ in range(3)]
                status, headers, body = await post(s, url, CHAT, k1)
                assert statuses == [200, 200, 200] and status == 429
                assert headers["Retry-After"] == "20"  # 60 / 3 s until the next request
                error = orjson.loads(body)["error"]
                assert (error["type"], error["code"]) == ("requests", "rate_limit_exceeded")
                assert (await post(s, url, CHAT, k2))[0] == 200  # another key: its own bucket
                async with s.get(url + "/metrics", headers=k1) as r:
                    text = await r.text()
                assert 'loadbench_gateway_rate_limited_total{limit="requests",worker=' in text
                # three answers of 2 tokens each were charged to k1's tokens bucket
                bucket = gw.limiter.local._buckets[(TOKENS, key_digest("k1").hex()[:32])]
                assert bucket.level == pytest.approx(600 - 6, abs=1)  # refills 10 a second

    run(main())


def test_replicas_share_one_bucket_in_redis_and_decide_alone_while_it_is_away(redis_server: RedisServer) -> None:
    spec = StateSpec("redis", redis_server.url, "t:", 0.2)
    limit = RateLimit(requests_per_minute=30, tokens_per_minute=1000)

    async def main() -> None:
        replicas = [RedisBuckets(spec) for _ in range(3)]
        try:
            decisions = [await replicas[i % 3].admit("k", limit, 0.0) for i in range(40)]
            assert sum(d is None for d in decisions) == 30  # one bucket for the three, not 30 each
            refused = decisions[-1]
            assert refused is not None and refused.limit == REQUESTS and 0 < refused.retry_after_s <= 2.0
            await replicas[0].charge("t2", limit, 5000, 0.0)
            refused = await replicas[1].admit("t2", limit, 0.0)
            assert refused is not None and refused.limit == TOKENS and refused.retry_after_s > 200
            assert replicas[2].local_decisions == 0
            redis_server.kill()
            t0 = time.monotonic()
            assert await replicas[2].admit("k", limit, 0.0) is None  # this process's own bucket decides
            assert time.monotonic() - t0 < 0.5
            t0 = time.monotonic()
            assert [await replicas[2].admit("k", limit, 0.0) for _ in range(29)] == [None] * 29
            assert await replicas[2].admit("k", limit, 0.0) is not None
            assert time.monotonic() - t0 < 0.1  # no socket while Redis is known to be away
            assert replicas[2].local_decisions == 31
            assert 'rate_limit_local_decisions_total{worker="w"} 31' in "\n".join(replicas[2].render("w"))
        finally:
            for r in replicas:
                await r.aclose()

    asyncio.run(asyncio.wait_for(main(), 30))
