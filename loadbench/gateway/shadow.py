"""Shadow traffic: a sampled request is also sent to each shadow target, after the client's answer.

A shadow starts once the primary exchange is over, in a task of its own, on connection pools of its
own (one per shadow target, apart from the pools that serve clients), so it can neither delay the
primary nor take its connections; the client only ever receives the primary's answer. At most
``max_concurrency`` shadows are in flight per worker: one more is dropped and counted, never queued.
Each shadow is read like a client would (streamed when the client streamed: TTFT, TPOT from its own
send) and logged with ``role = 'shadow'`` under the primary's ``pair_id`` (the primary's request id),
with its usage and cost: each shadow's record is announced as ``events.exchange_finished``, where the
request log hears it. Shadow spend since 00:00 UTC is read from the shared state (all workers) by the
poller (``read_spend``); past ``budget_usd_per_day`` nothing more is shadowed that day.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections import defaultdict
from collections.abc import Callable
from time import perf_counter_ns

import aiohttp
import orjson

from loadbench import outcomes
from loadbench.gateway.config import GatewaySpec, Route
from loadbench.gateway.context import RequestContext
from loadbench.gateway.relay import StreamRelay
from loadbench.gateway.sharedstate import SharedState, StateUnavailable
from loadbench.gateway.translate import DialectRelay, translated_request
from loadbench.gateway.upstream import Upstream
from loadbench.protocol.keepalive import post
from loadbench.units import utc_day, utc_day_start_ms

log = logging.getLogger("loadbench.gateway")

CONNECT_ERROR = 502
MAX_ANSWER_BYTES = 4 * 1024 * 1024  # a shadow answer kept for the log (beyond it: not kept)


class Shadows:
    def __init__(self, spec: GatewaySpec, add: Callable[[RequestContext, int], None], rng: random.Random) -> None:
        self.add = add  # announces a shadow's record (events.exchange_finished.fire)
        self.rng = rng
        self.budgeted = any(r.shadow is not None and r.shadow.budget_usd_per_day is not None
                            for r in spec.routes.values())
        names = {t for r in spec.routes.values() if r.shadow is not None for t in r.shadow.targets}
        self.upstreams = {name: Upstream(spec.targets[name]) for name in sorted(names)}
        self.in_flight: dict[str, int] = defaultdict(int)  # by virtual model
        self.counts: dict[tuple[str, str], int] = defaultdict(int)  # (virtual model, result) -> count
        self.spent_today_usd = 0.0  # set by the poller (read_spend)
        self.max_event_bytes = spec.limits.max_event_bytes
        self.tasks: set[asyncio.Task[None]] = set()

    def on_finished(self, ctx: RequestContext, status: int) -> None:
        """A listener of ``events.exchange_finished``: a client's finished exchange may be shadowed."""
        if status != 499:
            self.maybe(ctx, self.rng)

    def read_spend(self, now: float, shared: SharedState) -> None:
        """The day's shadow spend, all workers (the poller's job when a shadow has a budget)."""
        try:
            self.spent_today_usd = shared.shadow_spend_usd(utc_day_start_ms(utc_day(time.time())))
        except StateUnavailable as exc:
            log.warning("shadows: reading the day's spend failed: %s", exc)

    def maybe(self, ctx: RequestContext, rng: random.Random) -> None:
        """Sample this finished exchange and start its shadows (called on the event loop, O(1) when not)."""
        route = ctx.route
        if route is None or route.shadow is None or ctx.role != "primary":
            return
        spec = route.shadow
        if rng.random() >= spec.fraction:
            return
        if spec.exclude_metadata and any(ctx.metadata.get(k) == v for k, v in spec.exclude_metadata):
            self.counts[(route.name, "excluded")] += 1
            return
        if spec.budget_usd_per_day is not None and self.spent_today_usd >= spec.budget_usd_per_day:
            self.counts[(route.name, "over_budget")] += 1
            return
        ctx.pair_id = ctx.request_id
        loop = asyncio.get_running_loop()
        for i, target in enumerate(spec.targets):
            if self.in_flight[route.name] >= spec.max_concurrency:
                self.counts[(route.name, "dropped_full")] += 1
                continue
            self.in_flight[route.name] += 1
            self.counts[(route.name, "sent")] += 1
            task = loop.create_task(self._send(ctx, route, i, self.upstreams[target]))
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)

    async def _send(self, primary: RequestContext, route: Route, index: int, up: Upstream) -> None:
        ctx = RequestContext(f"{primary.request_id}-shadow-{index}", perf_counter_ns(), primary.kind, {},
                             primary.body, primary.stream, primary.metadata, primary.client_key_digest, route)
        ctx.pair_id, ctx.role, ctx.target, ctx.attempts = primary.pair_id, "shadow", up.spec.name, 1
        ctx.keep_answer = ctx.log_body = primary.log_body
        status = CONNECT_ERROR
        if up.native:
            url = up.chat_url if ctx.kind == "chat" else up.completions_url
            headers, payload = up.headers, orjson.dumps({**primary.body, "model": up.spec.model})
        else:  # the primary's request in OpenAI's words, in the shadow target's protocol
            url, headers, payload = up.wire(translated_request(ctx, {}, up))
        try:
            async with asyncio.timeout(up.spec.timeouts.total_s):
                resp = await post(up.session, url, payload, headers)
                try:
                    status = resp.status
                    if status == 200 and ctx.stream:
                        await self._read_stream(ctx, resp, up)
                    else:
                        data = await resp.content.read(MAX_ANSWER_BYTES)
                        ctx.first_ns = ctx.last_ns = perf_counter_ns()
                        ctx.usage_tail = data
                        if not up.native and status == 200:
                            ctx.usage = up.dialect.decode(data).usage
                        if ctx.keep_answer:
                            ctx.captured = [data]
                finally:
                    resp.close()
        except (aiohttp.ClientError, TimeoutError):
            if status == 200:
                ctx.outcome = outcomes.STREAM_CUT  # cut after its headers (a failed connection keeps 502)
        finally:
            self.in_flight[route.name] -= 1
        self.add(ctx, status)

    async def _read_stream(self, ctx: RequestContext, resp: aiohttp.ClientResponse, up: Upstream) -> None:
        capture: list[bytes] | None = [] if ctx.keep_answer else None
        relay: StreamRelay | DialectRelay = StreamRelay(self.max_event_bytes, capture) if up.native else \
            DialectRelay(up.dialect.decoder(), None, up.spec.model, up.dialect.end_marker, self.max_event_bytes,
                         capture, sse=up.dialect.stream_content_type == "text/event-stream")
        content = resp.content
        while chunk := await content.readany():
            relay.feed(chunk, perf_counter_ns())
            if relay.error:
                break
        relay.end()
        if relay.error:
            ctx.outcome = outcomes.STREAM_CUT
        ctx.first_ns, ctx.last_ns = relay.first_ns, relay.last_ns
        ctx.tokens = relay.usage_tokens() or relay.tokens
        if isinstance(relay, StreamRelay):
            ctx.usage_tail = relay.prev + relay.last
        else:
            ctx.usage = relay.usage
        if relay.capture is not None:
            ctx.captured = relay.capture

    def render(self, worker: str) -> list[str]:
        lines = ["# HELP loadbench_gateway_shadow_total Shadow requests by virtual model and result "
                 "(sent, dropped_full, over_budget, excluded)",
                 "# TYPE loadbench_gateway_shadow_total counter"]
        for (model, result), n in sorted(self.counts.items()):
            lines.append(f'loadbench_gateway_shadow_total{{model="{model}",result="{result}",worker="{worker}"}} {n}')
        lines += ["# HELP loadbench_gateway_shadow_spend_today_usd Shadow spend since 00:00 UTC, all workers",
                  "# TYPE loadbench_gateway_shadow_spend_today_usd gauge",
                  f'loadbench_gateway_shadow_spend_today_usd{{worker="{worker}"}} {self.spent_today_usd:.6f}']
        return lines

    async def close(self) -> None:
        if self.tasks:
            await asyncio.wait(list(self.tasks), timeout=5.0)
        for up in self.upstreams.values():
            await up.close()
