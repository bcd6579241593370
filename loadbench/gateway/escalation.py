"""Escalation of ``routing: cost``: a non-streamed answer that fails the route's inline check (regex,
JSON) is asked of the next target in the order, and the failed answer is logged apart.

Only whole answers can be checked before the client sees them (a stream is the client's as it
arrives), so streamed requests are never escalated. The failed answer becomes its own row
(``role = 'escalated'``, outcome ``check_failed``, its own target, usage and cost, ``pair_id`` = the
request id); the served answer is the request's row. The cheap target's live cost per request counts
each escalation's retry (the served row's cost) as its own, and each failed check as a 0 quality
score, so a target whose cheap answers keep failing stops looking cheap or good enough.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import orjson
from aiohttp import web

from loadbench.gateway.abconfig import AnswerCheck, CostRoutingSpec
from loadbench.gateway.config import RouteTarget
from loadbench.gateway.context import RequestContext
from loadbench.gateway.ingress import answer_text_of


def passes(text: str | None, check: AnswerCheck) -> bool:
    if text is None:
        return False
    if check.regex is not None and check.regex.search(text) is None:
        return False
    if check.json:
        try:
            orjson.loads(text)
        except orjson.JSONDecodeError:
            return False
    return True


def failed_answer(ctx: RequestContext, response: web.Response, spec: CostRoutingSpec) -> bool:
    """True when this answer should be escalated."""
    if not spec.escalate or spec.check is None or ctx.stream or response.status != 200 or response.prepared:
        return False
    body = response.body
    return isinstance(body, bytes) and not passes(answer_text_of(ctx, body), spec.check)


def escalated_record(ctx: RequestContext, body: bytes) -> RequestContext:
    """The failed answer as a record of its own (the exchange's context goes on to the next target)."""
    rec = RequestContext(f"{ctx.request_id}-escalated-{ctx.attempts}", ctx.arrival_ns, ctx.kind, {}, ctx.body,
                         ctx.stream, ctx.metadata, ctx.client_key_digest, ctx.route)
    rec.role, rec.pair_id, rec.outcome, rec.target, rec.attempts = "escalated", ctx.request_id, "check_failed", \
        ctx.target, ctx.attempts
    rec.first_ns, rec.last_ns, rec.tokens, rec.usage_tail = ctx.first_ns, ctx.last_ns, ctx.tokens, body
    rec.keep_answer = rec.log_body = ctx.log_body
    if ctx.log_body:
        rec.captured = [body]
    return rec


def rest_after(order: list[RouteTarget], target: str) -> list[RouteTarget]:
    names = [rt.target for rt in order]
    return order[names.index(target) + 1:] if target in names else []


async def escalate(ctx: RequestContext, order: list[RouteTarget], response: web.StreamResponse, spec: CostRoutingSpec,
                   call: Callable[[list[RouteTarget]], Awaitable[web.StreamResponse]],
                   add: Callable[[RequestContext, int], None]) -> web.StreamResponse:
    """The answer to send: the first that passes the check, else the last target's (at most one call
    per remaining target)."""
    while isinstance(response, web.Response) and failed_answer(ctx, response, spec):
        rest = rest_after(order, ctx.target)
        if not rest:
            return response
        assert isinstance(response.body, bytes)
        add(escalated_record(ctx, response.body), 200)
        ctx.captured = []  # a cache (or the log) keeps the answer that is sent, never the failed one
        order = rest
        response = await call(rest)
    return response
