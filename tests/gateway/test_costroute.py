"""routing: cost: the cheapest target whose quality's lower bound clears the floor, live feedback
replacing the prior once there is enough of it."""

from __future__ import annotations

import asyncio
import datetime as dt
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
from aiohttp import web

import loadbench.gateway.estimates as estimates
from loadbench.errors import ConfigError
from loadbench.gateway.abconfig import CostRoutingSpec, Estimate
from loadbench.gateway.config import RouteTarget, compile_model, parse_model
from loadbench.gateway.costroute import LiveStats, by_cost, estimate
from loadbench.pricing import Price
from tests.gateway.harness import CHAT, Upstream, ok, post, run, upstream
from tests.gateway.test_requestlog import ENV, logged, rows


def rt(name: str) -> RouteTarget:
    return RouteTarget(name, 1.0, 0, (), {}, None, True)


SPEC = CostRoutingSpec(0.8, {"a": Estimate(0.9, 0.002, "scorecard")}, min_feedback=20, window_requests=100)


def test_the_cheapest_qualifying_target_goes_first() -> None:
    est = {"cheap": Estimate(0.7, 0.001, "live"), "mid": Estimate(0.85, 0.002, "live"),
           "dear": Estimate(0.95, 0.004, "live")}
    assert [r.target for r in by_cost([rt("dear"), rt("cheap"), rt("mid")], est, 0.8)] == ["mid", "dear", "cheap"]
    assert by_cost([rt("dear"), rt("cheap"), rt("mid")], est, 0.6)[0].target == "cheap"
    # nothing qualifies: unmeasured targets first (by cost), then the best known bound
    est2 = {"cheap": Estimate(0.3, 0.001, "live"), "mid": Estimate(None, 0.002, "price"),
            "dear": Estimate(0.5, 0.004, "live")}
    assert [r.target for r in by_cost([rt("cheap"), rt("mid"), rt("dear")], est2, 0.8)] == ["mid", "dear", "cheap"]


def test_estimates_live_after_min_feedback_else_the_scorecard_else_the_price() -> None:
    price = Price("b", 1.0, 3.0, 1.0, 1.0, 0.0, "test", dt.date(2026, 1, 1))
    assert estimate("a", None, SPEC, None) == Estimate(0.9, 0.002, "scorecard")
    few = estimate("a", LiveStats(50, 0.003, 19, 19.0), SPEC, None)
    assert few.quality_low == 0.9 and few.cost_per_request == 0.003  # measured cost, scorecard quality
    many = estimate("a", LiveStats(50, 0.003, 20, 10.0), SPEC, None)
    assert many.source == "live" and many.quality_low is not None and many.quality_low < 0.5
    assert estimate("b", None, SPEC, price) == Estimate(None, 0.004, "price")


PRICES = """currency: USD
source: test prices
as_of: 2026-11-01
models:
  cheap: {input_per_mtok: 0.1, output_per_mtok: 0.2}
  mid: {input_per_mtok: 1.0, output_per_mtok: 2.0}
  dear: {input_per_mtok: 5.0, output_per_mtok: 10.0}
"""


def test_feedback_moves_traffic_to_the_next_cheapest_target_that_clears_the_floor(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(estimates, "ESTIMATE_EVERY_S", 0.1)
    db = tmp_path / "gw.db"
    (tmp_path / "prices.yaml").write_text(PRICES)
    key = {"Authorization": "Bearer sk-client-secret-1"}

    async def main() -> None:
        async with upstream(Upstream(ok)) as u1, upstream(Upstream(ok)) as u2, upstream(Upstream(ok)) as u3:
            cfg: dict[str, Any] = {
                "targets": [{"name": n, "url": u, "model": "m"} for n, u in (("dear", u3), ("mid", u2), ("cheap", u1))],
                "virtual_models": [{"name": "vm", "routing": "cost",
                                    "targets": [{"target": "dear"}, {"target": "mid"}, {"target": "cheap"}],
                                    "cost_routing": {"quality_floor": 0.8, "min_feedback": 20}}],
                "request_log": {"path": str(db), "flush_ms": 20, "pricing": str(tmp_path / "prices.yaml")},
                "auth": {"api_keys_env": "CLIENT_KEYS"},
            }
            async with logged(cfg) as (url, gw), aiohttp.ClientSession() as s:

                async def serve_and_rate(n: int, accepted: bool) -> set[str]:
                    served = set()
                    for _ in range(n):
                        _, headers, _ = await post(s, url, CHAT, headers=key)
                        h = {k.lower(): v for k, v in headers.items()}
                        served.add(h["x-loadbench-target"])
                        async with s.post(url + "/v1/feedback", headers=key,
                                          json={"request_id": h["x-request-id"], "accepted": accepted}) as r:
                            assert r.status == 200
                    return served

                # unmeasured: the cheapest (its 20th rejection, the min_feedback, comes with the last request)
                assert await serve_and_rate(20, accepted=False) == {"cheap"}
                await asyncio.sleep(0.5)  # the next estimate: cheap is known to be below the floor
                assert await serve_and_rate(25, accepted=True) == {"mid"}
                await asyncio.sleep(0.5)  # mid's bound (25 of 25 accepted) now clears 0.8
                assert await serve_and_rate(5, accepted=True) == {"mid"}
                live = gw.estimates
                assert live is not None and live.current["mid"].source == "live"
                await gw.close()

    run(main())


def test_cost_routing_needs_its_block_and_the_log(tmp_path: Path) -> None:
    cfg = {"targets": [{"name": "t", "url": "http://127.0.0.1:1/v1", "model": "m"}],
           "virtual_models": [{"name": "vm", "routing": "cost", "targets": [{"target": "t"}]}],
           "request_log": {"path": str(tmp_path / "x.db")}}
    with pytest.raises(ConfigError, match=r"virtual_models\[0\]\.routing"):
        compile_model(parse_model(cfg, "g.yaml"), "g.yaml", env=ENV)
    cfg["virtual_models"][0]["cost_routing"] = {"quality_floor": 0.9, "scorecard": "missing.json"}  # type: ignore[index]
    with pytest.raises(ConfigError, match=r"cost_routing\.scorecard"):
        compile_model(parse_model(cfg, "g.yaml"), "g.yaml", env=ENV)


async def json_answer(up: Upstream, request: web.Request, body: dict[str, Any]) -> web.StreamResponse:
    return web.Response(body=orjson.dumps({"choices": [{"message": {"content": '{"label": "spam"}'}}],
                                           "usage": {"prompt_tokens": 1, "completion_tokens": 4}}),
                        content_type="application/json")


def test_an_answer_failing_the_check_escalates_to_the_next_target(tmp_path: Path) -> None:
    db = tmp_path / "gw.db"
    (tmp_path / "prices.yaml").write_text(PRICES)
    cheap, mid = Upstream(ok), Upstream(json_answer)

    async def main() -> None:
        async with upstream(cheap) as u1, upstream(mid) as u2:
            cfg: dict[str, Any] = {
                "targets": [{"name": "cheap", "url": u1, "model": "m"}, {"name": "mid", "url": u2, "model": "m"}],
                "virtual_models": [{"name": "vm", "routing": "cost",
                                    "targets": [{"target": "cheap"}, {"target": "mid"}],
                                    "cost_routing": {"quality_floor": 0.8, "escalate_on_check_failure": True,
                                                     "check_json": True}}],
                "request_log": {"path": str(db), "flush_ms": 20, "pricing": str(tmp_path / "prices.yaml")},
            }
            async with logged(cfg) as (url, gw), aiohttp.ClientSession() as s:
                status, headers, body = await post(s, url, CHAT)
                assert status == 200 and b"spam" in body  # cheap's "ok" is not JSON: mid answered
                assert {k.lower(): v for k, v in headers.items()}["x-loadbench-target"] == "mid"
                status, _, body = await post(s, url, {**CHAT, "stream": True})
                assert status == 200 and b'"a"' in body  # a stream is the client's as it arrives: never escalated
                await gw.close()
        assert len(cheap.bodies) == 2 and len(mid.bodies) == 1
        escalated = rows(db, "role = 'escalated'")
        served = rows(db, "role = 'primary'")
        assert len(escalated) == 1 and escalated[0]["target"] == "cheap" and escalated[0]["outcome"] == "check_failed"
        assert escalated[0]["pair_id"] == served[0]["request_id"] and served[0]["target"] == "mid"
        assert escalated[0]["cost_usd"] > 0 and served[0]["cost_usd"] > escalated[0]["cost_usd"]
        assert served[1]["target"] == "cheap"
        from loadbench.gateway import logdb

        conn = logdb.connect(str(db))
        n, cost, fb_n, fb_sum = logdb.target_stats(conn, "vm", "cheap", 100)
        conn.close()
        # cheap's cost per request carries mid's retry; its failed check counts as a 0 score
        assert n == 2 and fb_n == 1 and fb_sum == 0
        expected = (escalated[0]["cost_usd"] + served[0]["cost_usd"] + served[1]["cost_usd"]) / 2
        assert cost is not None and abs(cost - expected) < 1e-12

    run(main())
