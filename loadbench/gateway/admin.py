"""The admin API: ``GET /admin/experiments`` and ``POST /admin/experiments/NAME``.

    POST /admin/experiments/NAME  {"action": "promote" | "rollback" | "pause" | "resume" | "set_weight",
                                   "weight": 0..100 (set_weight only), "reason": "..." (optional)}

Both need an admin key (``admin.api_keys_env``, presented like a client key); without an admin block
the routes answer 404. A change is written to the shared state (``sharedstate.py``; with SQLite, the
request log's ``experiments`` table and its ``events``), applied at once in the worker that took it
and read by the others within a second. The state is read in the default executor, never on the
event loop's thread.
"""

from __future__ import annotations

import asyncio
import os
import time
from typing import Any

import orjson
from aiohttp import web

from loadbench.gateway import auth
from loadbench.gateway import openai_error as oai
from loadbench.gateway.experiments import share
from loadbench.gateway.logdb import TRANSITIONS, ExperimentRow
from loadbench.gateway.sharedstate import SharedState, StateUnavailable
from loadbench.gateway.state import Gateway

ACTIONS = tuple(action for action in TRANSITIONS if action != "trip")  # a trip is the guardrails' alone


def _allowed(request: web.Request, gw: Gateway) -> web.Response | None:
    assert gw.state is not None
    accepted = gw.state.spec.admin_key_digests
    if not accepted or gw.shared is None:
        return oai.error(404, "The admin API is not configured.", "invalid_request_error")
    digest = auth.key_digest_of(request.headers)
    if digest is None or digest not in accepted:
        return oai.error(401, "Invalid or missing admin key.", "invalid_request_error", "invalid_api_key")
    return None


def _listing(shared: SharedState) -> dict[str, Any]:
    return {"experiments": [r.to_json() for r in shared.experiments().values()],
            "events": shared.experiment_events()}


def _change(shared: SharedState, name: str, action: str, weight: float | None, reason: str) -> dict[str, ExperimentRow]:
    shared.change_experiment(name, action, weight, reason, round(time.time() * 1000), os.getpid())
    return shared.experiments()


def add_admin_routes(app: web.Application, gw: Gateway) -> None:
    async def listing(request: web.Request) -> web.Response:
        refused = _allowed(request, gw)
        if refused is not None:
            return refused
        experiments = gw.experiments
        assert gw.shared is not None and experiments is not None
        try:
            data = await asyncio.get_running_loop().run_in_executor(None, _listing, gw.shared)
        except StateUnavailable:
            return oai.error(503, "The shared state is busy; try again.", "server_error")
        for entry in data["experiments"]:
            spec = experiments.specs.get(entry["name"])
            if spec is not None:
                entry["candidate_share"] = share(experiments.rows.get(spec.name), spec)
                entry["incumbent"], entry["candidate"] = spec.incumbent, spec.candidate
        return web.Response(body=orjson.dumps(data), content_type="application/json")

    async def change(request: web.Request) -> web.Response:
        refused = _allowed(request, gw)
        if refused is not None:
            return refused
        experiments, shared = gw.experiments, gw.shared
        assert experiments is not None and shared is not None
        name = request.match_info["name"]
        if name not in experiments.specs:
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
        try:
            rows = await asyncio.get_running_loop().run_in_executor(
                None, _change, shared, name, action, new_weight, reason)
        except StateUnavailable:
            return oai.error(503, "The shared state is busy; try again.", "server_error")
        experiments.apply(rows)
        return web.Response(body=orjson.dumps(rows[name].to_json()), content_type="application/json")

    app.router.add_get("/admin/experiments", listing)
    app.router.add_post("/admin/experiments/{name}", change)
