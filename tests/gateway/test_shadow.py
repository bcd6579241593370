"""Shadow traffic: the client only sees the primary, both answers are logged under one pair id, a shadow
never holds up the primary, and a full shadow pool drops instead of queueing."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import aiohttp
import orjson
from aiohttp import web

from loadbench.gateway import logdb
from tests.conftest import run_loadbench
from tests.gateway.harness import CHAT, DONE, ROLE, USAGE, Upstream, chunk, ok, post, run, upstream
from tests.gateway.test_requestlog import logged, rows

KEY = {"Authorization": "Bearer sk-client-secret-1"}


async def shadow_answer(up: Upstream, request: web.Request, body: dict[str, Any]) -> web.StreamResponse:
    """Answers differently from the primary ("SHADOW" instead of "abc" / "ok")."""
    if not body.get("stream"):
        return web.Response(body=orjson.dumps({"choices": [{"message": {"content": "SHADOW"}}],
                                               "usage": {"prompt_tokens": 1, "completion_tokens": 5}}),
                            content_type="application/json")
    resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
    await resp.prepare(request)
    for part in (ROLE, chunk("SHA"), chunk("DOW"), USAGE, DONE):
        await resp.write(part)
    return resp


def config(primary: str, shadow: str, db: Path, **shadow_cfg: Any) -> dict[str, Any]:
    return {
        "targets": [{"name": "prod", "url": primary, "model": "m"}, {"name": "sh", "url": shadow, "model": "m2"}],
        "virtual_models": [{"name": "vm", "targets": [{"target": "prod"}],
                            "shadow": {"targets": ["sh"], "fraction": 1.0, **shadow_cfg}}],
        "request_log": {"path": str(db), "flush_ms": 20, "log_bodies": "all"},
        "auth": {"api_keys_env": "CLIENT_KEYS"},
    }


def test_the_client_sees_only_the_primary_and_both_answers_share_a_pair_id(tmp_path: Path) -> None:
    db = tmp_path / "gw.db"
    shadow = Upstream(shadow_answer)

    async def main() -> None:
        async with upstream(Upstream(ok)) as a, upstream(shadow) as b, logged(config(a, b, db)) as (url, gw), \
                aiohttp.ClientSession() as s:
            for i in range(6):
                status, _, body = await post(s, url, {**CHAT, "stream": i % 2 == 0}, headers=KEY)
                assert status == 200 and b"SHADOW" not in body and b"SHA" not in body
            await gw.close()  # waits for the shadows, then writes the log

    run(main())
    assert len(shadow.bodies) == 6 and {b["model"] for b in shadow.bodies} == {"m2"}
    primaries = rows(db, "role = 'primary'")
    shadows = {r["pair_id"]: r for r in rows(db, "role = 'shadow'")}
    assert len(primaries) == 6 and len(shadows) == 6
    for p in primaries:
        s = shadows[p["pair_id"]]
        assert p["pair_id"] == p["request_id"] and p["target"] == "prod" and s["target"] == "sh"
        assert "SHADOW" not in p["response_body"]
        assert "SHA" in s["response_body"] and s["outcome"] == "ok" and s["output_tokens"] in (3, 5)
        assert s["ttft_ms"] is not None and s["tenant"] == p["tenant"]
    result = run_loadbench("log", "shadows", str(db), "--format", "json")
    assert result.returncode == 0, result.stderr
    (side_by_side,) = orjson.loads(result.stdout)
    assert side_by_side["shadow"] == "sh" and side_by_side["pairs"] == 6
    assert side_by_side["primary"]["requests"] == side_by_side["shadow_arm"]["requests"] == 6
    table = run_loadbench("log", "shadows", str(db)).stdout
    assert "| vm | primary | 6 |" in table and "| vm | sh | 6 |" in table


def test_a_full_shadow_pool_drops_and_never_delays_the_primary(tmp_path: Path) -> None:
    db = tmp_path / "gw.db"
    release = asyncio.Event()

    async def hanging(up: Upstream, request: web.Request, body: dict[str, Any]) -> web.StreamResponse:
        await release.wait()
        return await ok(up, request, body)

    async def main() -> None:
        async with upstream(Upstream(ok)) as a, upstream(Upstream(hanging)) as b, \
                logged(config(a, b, db, max_concurrency=2)) as (url, gw), aiohttp.ClientSession() as s:
            for _ in range(10):
                # every primary completes while the shadows it started are still waiting upstream
                status, _, body = await post(s, url, {**CHAT, "stream": True}, headers=KEY)
                assert status == 200 and b"[DONE]" in body
            log = gw.shadows
            assert log is not None
            assert log.counts[("vm", "sent")] == 2 and log.counts[("vm", "dropped_full")] == 8
            async with s.get(url + "/metrics", headers=KEY) as r:
                assert 'loadbench_gateway_shadow_total{model="vm",result="dropped_full"' in await r.text()
            release.set()
            await gw.close()
        assert len(rows(db, "role = 'shadow'")) == 2

    run(main())


def test_sampling_exclusion_and_budget(tmp_path: Path) -> None:
    db = tmp_path / "gw.db"
    shadow = Upstream(shadow_answer)

    async def main() -> None:
        cfg = config("http://127.0.0.1:9/v1", "http://127.0.0.1:9/v1", db, fraction=0.25,
                     exclude_metadata={"pii": "yes"}, budget_usd_per_day=1.0)
        async with upstream(Upstream(ok)) as a, upstream(shadow) as b:
            cfg["targets"][0]["url"], cfg["targets"][1]["url"] = a, b
            async with logged(cfg) as (url, gw), aiohttp.ClientSession() as s:
                log = gw.shadows
                assert log is not None
                for _ in range(400):
                    await post(s, url, CHAT, headers=KEY)
                sent = log.counts[("vm", "sent")]
                assert 60 < sent < 140  # 25% of 400, seeded RNG
                for _ in range(40):
                    await post(s, url, CHAT, headers={**KEY, "X-Loadbench-Metadata": '{"pii": "yes"}'})
                assert log.counts[("vm", "sent")] == sent  # excluded requests are never shadowed
                # a day's shadow spend of 1.0 in the log (another worker's): the poller reads it
                conn = logdb.connect(str(db))
                values = {"ts_ms": round(time.time() * 1000), "request_id": "other", "worker": 1, "status": 200,
                          "outcome": "ok", "attempts": 1, "role": "shadow", "cost_usd": 1.0}
                logdb.write(conn, [tuple(values.get(c) for c in logdb.COLUMNS)])
                conn.close()
                deadline = time.monotonic() + 5.0
                while log.spent_today_usd < 1.0 and time.monotonic() < deadline:
                    await asyncio.sleep(0.05)
                assert log.spent_today_usd >= 1.0
                for _ in range(40):
                    await post(s, url, CHAT, headers=KEY)
                assert log.counts[("vm", "sent")] == sent and log.counts[("vm", "over_budget")] > 0
                await gw.close()

    run(main())


def test_shadow_spend_is_summed_apart_from_served_spend(tmp_path: Path) -> None:
    conn = logdb.create(str(tmp_path / "x.db"))
    base = [0, "r", 1, "vm", None, None, "t", 200, "ok", None, 1.0, 1.0, 1.0, 1, 1, None, 0.5, 1, None, None, None,
            "primary", None, None]
    shadow = list(base)
    shadow[16], shadow[21] = 0.25, "shadow"
    logdb.write(conn, [tuple(base), tuple(shadow), tuple(shadow)])
    assert logdb.shadow_spend(conn, 0) == 0.5
