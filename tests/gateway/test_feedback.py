"""Feedback: stored for the tenant that made the request, refused (404, like an unknown id) for any other,
validated, and read by ``loadbench ab`` as the quality signal."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import aiohttp

from loadbench.ab.workflow import load
from loadbench.results.request_log import RequestLog
from tests.gateway.harness import CHAT, Upstream, ok, post, run, upstream
from tests.gateway.test_experiments import config
from tests.gateway.test_requestlog import logged

A = {"Authorization": "Bearer sk-client-secret-1"}
B = {"Authorization": "Bearer sk-client-secret-2"}


def test_feedback_is_scoped_to_the_tenant_and_feeds_quality(tmp_path: Path) -> None:
    db = tmp_path / "gw.db"

    async def main() -> None:
        async with upstream(Upstream(ok)) as a, upstream(Upstream(ok)) as b:
            cfg = config(a, b, db, assign_by="random")
            cfg["auth"] = {"api_keys_env": "CLIENT_KEYS"}
            async with logged(cfg) as (url, gw), aiohttp.ClientSession() as s:
                status, headers, _ = await post(s, url, CHAT, headers=A)
                assert status == 200
                rid = {k.lower(): v for k, v in headers.items()}["x-request-id"]

                async def give(body: object, who: dict[str, str] | None) -> tuple[int, str]:
                    async with s.post(url + "/v1/feedback", json=body, headers=who or {}) as r:
                        return r.status, await r.text()

                # right after the answer: the row may still be in memory, the lookup waits for it
                assert (await give({"request_id": rid, "accepted": True}, A))[0] == 200
                other = await give({"request_id": rid, "accepted": False}, B)
                unknown = await give({"request_id": "lb-nope", "accepted": False}, B)
                assert other[0] == unknown[0] == 404 and rid in other[1]
                assert (await give({"request_id": rid, "accepted": True}, None))[0] == 401
                assert (await give({"request_id": rid, "score": 1.5}, A))[0] == 400
                assert (await give({"request_id": rid, "accepted": True, "score": 1}, A))[0] == 400
                assert (await give({"request_id": rid, "score": 0.25, "outcome": "x" * 101}, A))[0] == 400
                assert (await give({"request_id": rid, "score": 0.25, "outcome": "edited"}, A))[0] == 200
                await gw.close()
        conn = sqlite3.connect(db)
        stored = conn.execute("SELECT request_id, score, outcome FROM feedback ORDER BY id").fetchall()
        assert stored == [(rid, 1.0, ""), (rid, 0.25, "edited")]
        requests, _, _ = load(RequestLog(conn), "exp1", None, None)
        conn.close()
        assert [r.quality for r in requests] == [0.25]  # the latest feedback of the request's own tenant

    run(main())
