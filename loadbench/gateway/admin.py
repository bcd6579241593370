"""The admin API: ``GET /admin/experiments`` and ``POST /admin/experiments/NAME``.

    POST /admin/experiments/NAME  {"action": "promote" | "rollback" | "pause" | "resume" | "set_weight",
                                   "weight": 0..100 (set_weight only), "reason": "..." (optional)}

Both need an admin key (``admin.api_keys_env``, presented like a client key); without an admin block
the routes answer 404. A change is written to the request log's ``experiments`` table (and its
``events``), applied at once in the worker that took it and read by the others within a second.
SQLite runs in the default executor, never on the event loop's thread.
"""

from __future__ import annotations

import asyncio
import os
import time
from typing import Any

import orjson
from aiohttp import web

from loadbench.gateway import auth, logdb
from loadbench.gateway import openai_error as oai
from loadbench.gateway.experiments import share
from loadbench.gateway.state import Gateway

ACTIONS = ("promote", "rollback", "pause", "resume", "set_weight")


def _allowed(request: web.Request, gw: Gateway) -> web.Response | None:
    assert gw.state is not None
    accepted = gw.state.spec.admin_key_digests
    if not accepted or gw.requestlog is None:
        return oai.error(404, "The admin API is not configured.", "invalid_request_error")
    digest = auth.key_digest_of(request.headers)
    if digest is None or digest not in accepted:
        return oai.error(401, "Invalid or missing admin key.", "invalid_request_error", "invalid_api_key")
    return None


def _listing(path: str) -> dict[str, Any]:
    conn = logdb.connect(path)
    try:
        return {"experiments": [r.to_json() for r in logdb.experiments(conn).values()],
                "events": logdb.events(conn)}
    finally:
        conn.close()


def _change(path: str, name: str, action: str, weight: float | None, reason: str) -> dict[str, logdb.ExperimentRow]:
    conn = logdb.connect(path)
    try:
        logdb.change(conn, name, action, weight, reason, round(time.time() * 1000), os.getpid())
        return logdb.experiments(conn)
    finally:
        conn.close()


def add_admin_routes(app: web.Application, gw: Gateway) -> None:
    async def listing(request: web.Request) -> web.Response:
        refused = _allowed(request, gw)
        if refused is not None:
            return refused
        assert gw.requestlog is not None
        data = await asyncio.get_running_loop().run_in_executor(None, _listing, gw.requestlog.spec.path)
        for entry in data["experiments"]:
            spec = gw.requestlog.experiments.specs.get(entry["name"])
            if spec is not None:
                entry["candidate_share"] = share(gw.requestlog.experiments.rows.get(spec.name), spec)
                entry["incumbent"], entry["candidate"] = spec.incumbent, spec.candidate
        return web.Response(body=orjson.dumps(data), content_type="application/json")

    async def change(request: web.Request) -> web.Response:
        refused = _allowed(request, gw)
        if refused is not None:
            return refused
        log = gw.requestlog
        assert log is not None
        name = request.match_info["name"]
        if name not in log.experiments.specs:
            return oai.error(404, f"No experiment named `{name}`.", "invalid_request_error")
        try:
            body = orjson.loads(await request.read())
        except orjson.JSONDecodeError:
            body = None
        action = body.get("action") if isinstance(body, dict) else None
        if action not in ACTIONS:
            return oai.error(400, "Body must be a JSON object with action: " + " | ".join(ACTIONS) + ".",
                             "invalid_request_error", param="action")
        assert isinstance(body, dict)
        weight = body.get("weight")
        if action == "set_weight" and (not isinstance(weight, int | float) or isinstance(weight, bool)
                                       or not 0 <= weight <= 100):
            return oai.error(400, "set_weight needs weight: a number from 0 to 100.", "invalid_request_error",
                             param="weight")
        new_weight = float(weight) if action == "set_weight" and isinstance(weight, int | float) else None
        reason = body.get("reason")
        reason = reason[:500] if isinstance(reason, str) else f"admin {action}"
        rows = await asyncio.get_running_loop().run_in_executor(
            None, _change, log.spec.path, name, action, new_weight, reason)
        log.experiments.apply(rows)
        return web.Response(body=orjson.dumps(rows[name].to_json()), content_type="application/json")

    app.router.add_get("/admin/experiments", listing)
    app.router.add_post("/admin/experiments/{name}", change)
