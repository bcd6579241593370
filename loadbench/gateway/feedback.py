"""``POST /v1/feedback``: a business outcome for a logged request (did the user accept it, did the task
complete), the quality signal ``loadbench ab`` judges.

    {"request_id": "lb-…", "accepted": true}      or      {"request_id": "lb-…", "score": 0.8}
    optional "outcome": "task_completed" (100 characters at most)

Authenticated like any request, and scoped to the tenant: feedback is stored only when the request
was made with the same key (the same key digest; callers without a key share the anonymous tenant).
A request of another tenant and an unknown id get the same 404, so ids of other tenants cannot be
probed. A request answered a moment ago may not be on disk yet (``flush_ms``): the lookup retries for
about a second. The log's store (SQLite or PostgreSQL, ``logstore``) is asked in the default executor;
one that cannot be reached answers 503.
"""

from __future__ import annotations

import asyncio
import time

import orjson
from aiohttp import web

from loadbench.gateway import auth, logstore
from loadbench.gateway import openai_error as oai
from loadbench.gateway.abconfig import RequestLogSpec
from loadbench.gateway.logstore import LogRejected, LogUnavailable
from loadbench.gateway.sharedstate import Rating, SharedState, rate_quietly
from loadbench.gateway.state import Gateway

LOOKUP_TRIES = 20
LOOKUP_PAUSE_S = 0.05
MAX_OUTCOME_CHARS = 100


def record(spec: RequestLogSpec, request_id: str, tenant: str | None, score: float, outcome: str,
           shared: SharedState | None = None) -> bool:
    """Store the feedback if ``request_id`` is a request of ``tenant``; False when it is not (yet). A rated
    experiment request is also counted in ``shared``'s quality window (``min_quality``)."""
    store = logstore.open_store(spec, writer=False)
    try:
        for attempt in range(LOOKUP_TRIES):
            rated = store.add_feedback(round(time.time() * 1000), request_id, tenant, score, outcome)
            if rated is not None:
                if shared is not None and rated.experiment is not None and rated.arm is not None:
                    rate_quietly(shared, [Rating(rated.experiment, rated.arm, rated.ts_ms, request_id, score)])
                return True
            if attempt + 1 < LOOKUP_TRIES:
                time.sleep(LOOKUP_PAUSE_S)
        return False
    finally:
        store.close()


def _parse(raw: bytes) -> tuple[str, float, str] | str:
    """(request_id, score, outcome), or what is wrong with the body."""
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return "Body must be JSON."
    if not isinstance(body, dict) or not isinstance(body.get("request_id"), str) or not body["request_id"]:
        return "Body must be a JSON object with request_id (a string)."
    accepted, score = body.get("accepted"), body.get("score")
    if isinstance(accepted, bool) and score is None:
        value = 1.0 if accepted else 0.0
    elif accepted is None and isinstance(score, int | float) and not isinstance(score, bool) and 0 <= score <= 1:
        value = float(score)
    else:
        return "Give either accepted (true or false) or score (a number from 0 to 1)."
    outcome = body.get("outcome", "")
    if not isinstance(outcome, str) or len(outcome) > MAX_OUTCOME_CHARS:
        return f"outcome must be a string of at most {MAX_OUTCOME_CHARS} characters."
    return body["request_id"], value, outcome


def add_feedback_routes(app: web.Application, gw: Gateway) -> None:
    async def feedback(request: web.Request) -> web.Response:
        assert gw.state is not None
        digest = auth.key_digest_of(request.headers)
        if not auth.admitted(digest, gw.state.spec.client_key_digests):
            return oai.error(401, "Invalid or missing API key.", "invalid_request_error", "invalid_api_key")
        log = gw.requestlog
        if log is None:
            return oai.error(404, "Feedback needs the gateway's request log.", "invalid_request_error")
        parsed = _parse(await request.read())
        if isinstance(parsed, str):
            return oai.error(400, parsed, "invalid_request_error")
        request_id, score, outcome = parsed
        try:
            stored = await asyncio.get_running_loop().run_in_executor(
                None, record, log.spec, request_id, digest.hex() if digest else None, score, outcome, gw.shared)
        except (LogUnavailable, LogRejected):
            return oai.error(503, "The request log is busy; try again.", "server_error")
        if not stored:
            return oai.error(404, f"No request `{request_id}` made with this key.", "invalid_request_error")
        return web.Response(body=b'{"ok":true}', content_type="application/json")

    app.router.add_post("/v1/feedback", feedback)
