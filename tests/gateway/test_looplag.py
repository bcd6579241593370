"""The event-loop delay probe: what it measures, where it shows, and the paired bench's reading of it."""

from __future__ import annotations

import asyncio
import time

import aiohttp
import pytest
import uvloop
from prometheus_client.parser import text_string_to_metric_families

from bench.loop_delay import loop_delay_figures
from loadbench.gateway import looplag
from loadbench.gateway.looplag import LoopDelay
from tests.gateway.harness import CHAT, Upstream, gateway, ok, one_target, post, run, upstream


def _spin(seconds: float) -> None:
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass


def test_the_probe_s_callback_waits_behind_the_work_queued_before_it() -> None:
    """On uvloop, as the gateway runs: a probe whose callback is queued behind 30 ms of work records
    a wait of at least 30 ms; queued behind nothing, a wait shorter than that."""
    loop = uvloop.new_event_loop()
    try:
        probe = LoopDelay(loop)
        blocked = loop.create_future()
        alone = loop.create_future()

        def behind_work() -> None:
            loop.call_soon(_spin, 0.03)  # queued first: the probe's callback runs after it
            probe._tick()
            loop.call_soon(lambda: blocked.set_result(list(probe.histogram.counts)))

        def behind_nothing() -> None:
            probe._tick()
            loop.call_soon(lambda: alone.set_result(probe.histogram.sum_s))

        loop.call_soon(behind_work)
        counts = loop.run_until_complete(blocked)
        before = probe.histogram.sum_s
        loop.call_soon(behind_nothing)
        after = loop.run_until_complete(alone)
        probe.stop()
    finally:
        loop.close()
    assert sum(counts) == 1  # one wait recorded ...
    assert before >= 0.03  # ... of at least the work queued before it
    assert sum(counts[looplag.BOUNDS_S.index(0.025) + 1:]) == 1  # in a bucket above 25 ms
    assert 0 <= after - before < 0.03


def test_the_gateway_shows_its_loop_delay_in_metrics_only_when_asked(monkeypatch: pytest.MonkeyPatch) -> None:
    async def families(url: str, s: aiohttp.ClientSession) -> dict[str, object]:
        async with s.get(url + "/metrics") as r:
            return {f.name: f for f in text_string_to_metric_families(await r.text())}

    async def main() -> None:
        async with upstream(Upstream(ok)) as up_url, aiohttp.ClientSession() as s:
            async with gateway(one_target(up_url)) as (url, gw):
                assert gw.loop_delay is None
                assert looplag.METRIC not in await families(url, s)
            monkeypatch.setenv(looplag.ENV, "1")
            async with gateway(one_target(up_url)) as (url, gw):
                for _ in range(3):
                    assert (await post(s, url, CHAT))[0] == 200
                await asyncio.sleep(20 * looplag.PROBE_S)
                family = (await families(url, s))[looplag.METRIC]
                count = next(x.value for x in family.samples if x.name.endswith("_count"))  # type: ignore[attr-defined]
                assert 5 <= count <= 25  # a probe every PROBE_S, for about 20 of them
                buckets = [x for x in family.samples if x.name.endswith("_bucket")]  # type: ignore[attr-defined]
                assert [float(b.labels["le"]) for b in buckets] == [*looplag.BOUNDS_S, float("inf")]
                assert buckets[-1].value == count
            assert gw.loop_delay is not None and gw.loop_delay._timer is None  # stopped with the gateway

    run(main())


def test_the_bench_reads_p50_p99_and_the_share_over_1ms_from_two_readings() -> None:
    bounds = [*looplag.BOUNDS_S, float("inf")]
    before = dict.fromkeys(bounds, 0) | {0.00025: 5, 0.0005: 5, 0.00075: 5, 0.001: 5, 0.002: 5}
    per_bucket = {0.0001: 0, 0.00025: 900, 0.0005: 80, 0.00075: 10, 0.001: 5, 0.002: 5}  # 1,000 new waits
    after = {}
    cum = 0
    for b in bounds:
        cum += per_bucket.get(b, 0)
        after[b] = before[b] + cum
    got = loop_delay_figures(before, after)
    assert got == {"loop_delay_samples": 1000, "loop_delay_p50_ms": 0.25, "loop_delay_p99_ms": 0.75,
                   "loop_delay_over_1ms_share": 0.005}
    assert loop_delay_figures(after, after)["loop_delay_p99_ms"] is None
