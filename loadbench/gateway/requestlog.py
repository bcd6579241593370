"""The request log: one row per request, written to SQLite by a thread, never by the request path.

The event loop only appends ``(ctx, status, end_ns, wall_s)`` to a list; every ``flush_ms`` (or at
``batch_rows``) the list is handed to the writer thread in one ``SimpleQueue.put``. Records not yet
committed (listed plus handed over) are bounded by ``queue_rows``: beyond it a record is dropped and
counted (``loadbench_gateway_requestlog_dropped_total``), so a slow disk costs records, never latency.
The writer builds the rows (usage parsed from the answer's tail, cost, redaction) and commits a batch
per transaction, so a ``kill -9`` loses at most the records not yet committed: at most ``queue_rows``,
in practice the last ``flush_ms`` of traffic; every committed batch stays readable (WAL).

The same thread reads the experiments table every ``POLL_S`` (so an admin change or another worker's
rollback reaches this worker within a second), runs the guardrail checks and prunes by age and rows.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import queue
import sqlite3
import threading
import time
from dataclasses import asdict
from time import perf_counter_ns
from typing import TYPE_CHECKING

import orjson

from loadbench.eval.pricing import Usage, model_cost
from loadbench.gateway import logdb
from loadbench.gateway.abconfig import Estimate, ExperimentSpec, RequestLogSpec
from loadbench.gateway.answer_judge import AnswerJudges
from loadbench.gateway.breakdown import Breakdown
from loadbench.gateway.context import RequestContext
from loadbench.gateway.costroute import LiveStats, estimate
from loadbench.gateway.experiments import CANDIDATE, Experiments, WindowStats, advance, check_score, share
from loadbench.gateway.shadow import Shadows

if TYPE_CHECKING:
    import random

    from loadbench.gateway.config import GatewaySpec
    from loadbench.gateway.metrics import Metrics

log = logging.getLogger("loadbench.gateway")
POLL_S = 0.25
ESTIMATE_EVERY_S = 2.0  # live estimates for routing: cost
PRUNE_EVERY_S = 60.0
REDACTED = "[REDACTED]"

Item = tuple[RequestContext, int, int, float]  # ctx, status sent, end (perf_counter ns), end (Unix s)


def usage_of(tail: bytes) -> Usage:
    """The last ``usage`` object in a whole answer or in a stream's last events."""
    if not tail or b'"usage"' not in tail:
        return Usage()
    if tail.lstrip()[:1] == b"{":
        try:
            return Usage.from_openai(orjson.loads(tail).get("usage"))
        except (orjson.JSONDecodeError, AttributeError):
            return Usage()
    for event in reversed(tail.split(b"\n\n")):
        if b'"usage"' in event and event.startswith(b"data: {"):
            try:
                return Usage.from_openai(orjson.loads(event[6:]).get("usage"))
            except (orjson.JSONDecodeError, AttributeError):
                return Usage()
    return Usage()


def redact(text: str, spec: RequestLogSpec) -> str:
    for pattern in spec.redact:
        text = pattern.sub(REDACTED, text)
    return text


def outcome_of(ctx: RequestContext, status: int) -> str:
    if status == 499:
        return "client_gone"
    if status != 200:
        return "error"
    return ctx.outcome or "ok"


def row_of(item: Item, spec: RequestLogSpec, models: dict[str, str], worker: int) -> tuple[object, ...]:
    """One ``requests`` row (logdb.COLUMNS order). Runs on the writer thread."""
    ctx, status, end_ns, end_s = item
    arrival = ctx.arrival_ns
    e2e_ms = (end_ns - arrival) / 1e6
    ttft_ms = (ctx.first_ns - arrival) / 1e6 if ctx.first_ns else None
    tpot_ms = (ctx.last_ns - ctx.first_ns) / 1e6 / (ctx.tokens - 1) if ctx.tokens >= 2 and ctx.last_ns > ctx.first_ns \
        else None
    usage = usage_of(ctx.usage_tail)
    output_tokens = usage.completion_tokens or ctx.tokens
    cache = ctx.extra_headers.get("x-loadbench-cache") if ctx.extra_headers else None
    cost: float | None = None
    if spec.pricing is not None and ctx.target and cache != "hit-exact":
        price = spec.pricing.prices.get(ctx.target) or spec.pricing.prices.get(models.get(ctx.target, ""))
        if price is not None:
            billed = usage if usage.completion_tokens else Usage(usage.prompt_tokens, output_tokens,
                                                                 usage.cached_tokens, usage.cache_write_tokens)
            cost = model_cost(billed, price)
    elif cache == "hit-exact":
        cost = 0.0
    request_body = response_body = None
    if ctx.log_body:
        request_body = redact(orjson.dumps(ctx.body).decode(), spec)
        if ctx.captured:
            response_body = redact(b"".join(ctx.captured).decode(errors="replace"), spec)
    route = ctx.route
    return (
        round((end_s - e2e_ms / 1000) * 1000), ctx.request_id, worker, route.name if route else None,
        ctx.experiment or None, ctx.arm or None, ctx.target, status, outcome_of(ctx, status), cache,
        ttft_ms, tpot_ms, e2e_ms, usage.prompt_tokens or None, output_tokens or None, usage.cached_tokens or None,
        cost, ctx.attempts, orjson.dumps(ctx.metadata).decode() if ctx.metadata else None,
        ctx.client_key_digest.hex() if ctx.client_key_digest else None, ctx.pair_id or None,
        ctx.role, request_body,
        response_body)


class RequestLog:
    def __init__(self, spec: RequestLogSpec, gateway: GatewaySpec, metrics: Metrics,
                 loop: asyncio.AbstractEventLoop) -> None:
        self.spec = spec
        self.metrics = metrics
        self.models = {name: t.model for name, t in gateway.targets.items()}
        self.experiments = Experiments(gateway.routes, keep_bodies=spec.log_bodies == "experiments")
        self.worker = os.getpid()
        self.loop = loop
        self.pending: list[Item] = []
        self.handed = 0  # written by the loop only
        self.written = 0  # written by the writer thread only
        self.lost = 0  # records of batches the disk refused (writer thread only)
        self.dropped = 0
        self.trips = 0
        self._queue: queue.SimpleQueue[list[Item] | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._write_loop, name="request-log", daemon=True)
        self._timer: asyncio.TimerHandle | None = None
        self._streaks: dict[str, int] = {}
        self._next_check: dict[str, float] = {}
        self.shadows = Shadows(gateway, self.add)
        self.judges = AnswerJudges(self.experiments.specs, spec.path)
        self.breakdown = Breakdown(spec.metrics_by, spec.metrics_values_max)
        self._cost_routes = [r for r in gateway.routes.values() if r.cost is not None]
        self._prices = {name: spec.pricing.prices.get(name) or spec.pricing.prices.get(t.model)
                        for name, t in gateway.targets.items()} if spec.pricing else {}
        self.estimates: dict[str, Estimate] = {}  # by target, replaced by the writer thread
        if self._cost_routes:
            self.estimates = self._estimate(None)
        self._budgeted = any(r.shadow is not None and r.shadow.budget_usd_per_day is not None
                             for r in gateway.routes.values())

    @classmethod
    def open(cls, gateway: GatewaySpec, metrics: Metrics) -> RequestLog:
        """Create the file if needed, register the experiments, read their state, start the writer.
        Runs at startup, before the first request (the only disk access on the loop's thread)."""
        spec = gateway.request_log
        assert spec is not None
        self = cls(spec, gateway, metrics, asyncio.get_running_loop())
        conn = logdb.create(spec.path)
        try:
            logdb.register(conn, ((e.name, e.weight, orjson.dumps(asdict(e.criteria)).decode())
                                  for e in self.experiments.specs.values()),
                           round(time.time() * 1000), self.worker)
            self.experiments.apply(logdb.experiments(conn))
        finally:
            conn.close()
        self._thread.start()
        self._timer = self.loop.call_later(spec.flush_s, self._tick)
        return self

    # ------------------------------------------------------------------ the event loop's side

    def wants_answer(self, rng: random.Random) -> bool:
        mode = self.spec.log_bodies
        return mode == "all" or (mode == "sampled" and rng.random() < self.spec.body_sample)

    def add(self, ctx: RequestContext, status: int) -> None:
        pending = self.pending
        if len(pending) + self.handed - self.written >= self.spec.queue_rows:
            self.dropped += 1
            return
        pending.append((ctx, status, perf_counter_ns(), time.time()))
        if len(pending) >= self.spec.batch_rows:
            self._hand()

    def _hand(self) -> None:
        batch = self.pending
        self.pending = []
        self.handed += len(batch)
        self._queue.put(batch)

    def _tick(self) -> None:
        if self.pending:
            self._hand()
        self._timer = self.loop.call_later(self.spec.flush_s, self._tick)

    def close(self) -> None:
        """Write what is queued and stop the writer (waits a few seconds at most)."""
        if self._timer is not None:
            self._timer.cancel()
        if self.pending:
            self._hand()
        self._queue.put(None)
        self._thread.join(timeout=10.0)

    def render(self) -> str:
        w = self.worker
        lines = ["# HELP loadbench_gateway_requestlog_dropped_total Request log records dropped (queue full)",
                 "# TYPE loadbench_gateway_requestlog_dropped_total counter",
                 f'loadbench_gateway_requestlog_dropped_total{{worker="{w}"}} {self.dropped}',
                 "# HELP loadbench_gateway_requestlog_written_total Request log records committed",
                 "# TYPE loadbench_gateway_requestlog_written_total counter",
                 f'loadbench_gateway_requestlog_written_total{{worker="{w}"}} {self.written - self.lost}',
                 "# HELP loadbench_gateway_experiment_weight Percent of traffic the candidate gets now",
                 "# TYPE loadbench_gateway_experiment_weight gauge"]
        info = ["# HELP loadbench_gateway_experiment_state 1 for the state an experiment is in, with its reason",
                "# TYPE loadbench_gateway_experiment_state gauge"]
        for name, spec in sorted(self.experiments.specs.items()):
            row = self.experiments.rows.get(name)
            state = row.state if row else "running"
            reason = (row.reason if row else "").replace("\\", "\\\\").replace('"', '\\"')
            lines.append(f'loadbench_gateway_experiment_weight{{experiment="{name}",worker="{w}"}} '
                         f"{share(row, spec):g}")
            info.append(f'loadbench_gateway_experiment_state{{experiment="{name}",state="{state}",'
                        f'reason="{reason}",worker="{w}"}} 1')
        return "\n".join(lines + info + self.shadows.render(w) + self.judges.render(w)
                         + self.breakdown.render(w)) + "\n"

    # ------------------------------------------------------------------ the writer thread

    def _write_loop(self) -> None:
        conn = logdb.connect(self.spec.path)
        next_poll = next_prune = next_estimate = 0.0
        try:
            while True:
                try:
                    batch = self._queue.get(timeout=POLL_S)
                except queue.Empty:
                    batch = []
                if batch is None:
                    break
                if batch:
                    self._write(conn, batch)
                now = time.monotonic()
                if now >= next_poll:
                    next_poll = now + POLL_S
                    self._poll(conn, now)
                if now >= next_prune:
                    next_prune = now + PRUNE_EVERY_S
                    self._prune(conn)
                if self._cost_routes and now >= next_estimate:
                    next_estimate = now + ESTIMATE_EVERY_S
                    try:
                        self.estimates = self._estimate(conn)  # one assignment: the loop sees old or new
                    except sqlite3.Error as exc:
                        log.warning("request log: cost estimates not updated: %s", exc)
        finally:
            conn.close()

    def _write(self, conn: sqlite3.Connection, batch: list[Item]) -> None:
        spec, models, worker = self.spec, self.models, self.worker
        rows = [row_of(item, spec, models, worker) for item in batch]
        if self.breakdown.keys:
            with self.breakdown.lock:
                for (ctx, *_), row in zip(batch, rows, strict=True):
                    ttft, cost = row[10], row[16]
                    if ctx.route is not None and ctx.role == "primary":
                        self.breakdown.count(ctx.route.name, ctx.metadata, row[8] == "ok",
                                             ttft if isinstance(ttft, float) else None,
                                             cost if isinstance(cost, float) else None)
        checks = []
        specs = self.experiments.specs
        for (ctx, status, _, _), row in zip(batch, rows, strict=True):
            exp = specs.get(ctx.experiment) if ctx.experiment else None
            score = check_score(ctx, status, exp) if exp is not None else None
            if score is not None:
                checks.append((row[0], ctx.request_id, row[19], score, "inline_check"))
        try:
            logdb.write(conn, rows, checks)
        except sqlite3.Error as exc:
            self.lost += len(batch)
            log.warning("request log: %d records not written: %s", len(batch), exc)
        self.written += len(batch)

    def _estimate(self, conn: sqlite3.Connection | None) -> dict[str, Estimate]:
        """Per target of a cost-routed model: quality bound and cost per request (live where known)."""
        out: dict[str, Estimate] = {}
        for route in self._cost_routes:
            assert route.cost is not None
            for rt in route.targets:
                live = None
                if conn is not None:
                    n, cost, fb_n, fb_sum = logdb.target_stats(conn, route.name, rt.target, route.cost.window_requests)
                    live = LiveStats(n, cost, fb_n, fb_sum) if n else None
                out[rt.target] = estimate(rt.target, live, route.cost, self._prices.get(rt.target))
        return out

    def _prune(self, conn: sqlite3.Connection) -> None:
        spec = self.spec
        oldest = round((time.time() - spec.retention_s) * 1000) if spec.retention_s else None
        try:
            logdb.prune(conn, oldest, spec.max_rows)
        except sqlite3.Error as exc:
            log.warning("request log: pruning failed: %s", exc)

    def _poll(self, conn: sqlite3.Connection, now: float) -> None:
        try:
            for spec in self.experiments.specs.values():
                if now >= self._next_check.get(spec.name, 0.0):
                    self._next_check[spec.name] = now + spec.guardrails.interval_s
                    self._check(conn, spec)
            rows = logdb.experiments(conn)
            if self._budgeted:
                midnight_ms = int(time.time() // 86400 * 86400 * 1000)
                self.shadows.spent_today_usd = logdb.shadow_spend(conn, midnight_ms)
        except sqlite3.Error as exc:
            log.warning("request log: reading experiments failed: %s", exc)
            return
        if rows != self.experiments.rows:
            with contextlib.suppress(RuntimeError):  # a closed loop: the gateway is stopping
                self.loop.call_soon_threadsafe(self.experiments.apply, rows)

    def _check(self, conn: sqlite3.Connection, spec: ExperimentSpec) -> None:
        row = self.experiments.rows.get(spec.name)
        if row is None or row.state != "running" or row.weight <= 0:
            self._streaks[spec.name] = 0
            return
        g = spec.guardrails
        since_ms = round((time.time() - g.window_s) * 1000)
        stats = WindowStats.of(logdb.window(conn, spec.name, CANDIDATE, since_ms))
        streak, reason = advance(self._streaks.get(spec.name, 0), stats, g)
        self._streaks[spec.name] = streak
        if reason is not None:
            now_ms = round(time.time() * 1000)
            if logdb.change(conn, spec.name, "trip", 0.0, reason, now_ms, self.worker):
                self.trips += 1
                log.warning("experiment %s rolled back: %s", spec.name, reason)
