"""The request log: one row per request, written to SQLite by a thread, never by the request path.

The event loop only appends a copy of the exchange's fields (``record_of``) to a list; every ``flush_ms`` (or at
``batch_rows``) the list is handed to the writer thread in one ``SimpleQueue.put``. Records not yet
committed (listed plus handed over) are bounded by ``queue_rows``: beyond it a record is dropped and
counted (``loadbench_gateway_requestlog_dropped_total``), so a slow disk costs records, never latency.
The writer builds the rows (usage parsed from the answer's tail, cost, redaction) and commits a batch
per transaction, so a ``kill -9`` loses at most the records not yet committed: at most ``queue_rows``,
in practice the last ``flush_ms`` of traffic; every committed batch stays readable (WAL).

The same thread reads the experiments table every ``POLL_S`` (so an admin change or another worker's
rollback reaches this worker within a second), runs the guardrail checks and prunes by age and rows.
A config reload hands it the new experiments (``on_reload``): it registers them in the table on its
own connection, and from then on checks exactly the reloaded set.
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
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import asdict, dataclass
from time import perf_counter_ns
from typing import TYPE_CHECKING

import orjson

from loadbench.gateway import logdb
from loadbench.gateway.abconfig import Estimate, ExperimentSpec, RequestLogSpec
from loadbench.gateway.answer_judge import AnswerJudges
from loadbench.gateway.breakdown import Breakdown
from loadbench.gateway.context import RequestContext
from loadbench.gateway.costroute import LiveStats, estimate
from loadbench.gateway.experiments import CANDIDATE, Experiments, WindowStats, advance, check_score, share
from loadbench.gateway.logdb import NULL
from loadbench.gateway.shadow import Shadows
from loadbench.pricing import Price, Usage, model_cost
from loadbench.units import utc_day, utc_day_start_ms

if TYPE_CHECKING:
    import random

    from loadbench.gateway.config import GatewaySpec
    from loadbench.gateway.metrics import Metrics

log = logging.getLogger("loadbench.gateway")
POLL_S = 0.25
ESTIMATE_EVERY_S = 2.0  # live estimates for routing: cost
PRUNE_EVERY_S = 60.0
REDACTED = "[REDACTED]"

# What the event loop keeps of a finished exchange: its fields copied while they are in the cache, so the
# exchange's objects are freed on the loop as without a log, and the writer thread reads one small
# tuple instead of the context and the objects it points to. In order: request_id, arrival_ns,
# first_ns, last_ns, tokens, usage_tail, cache (x-loadbench-cache or None), target, model (route name
# or None), experiment, arm, attempts, metadata (or None), tenant digest, pair_id, role, outcome, status
# sent, end (perf_counter ns), end (Unix s), and the context itself only when the writer needs more
# of it (bodies to log, an experiment's inline check).
Item = tuple[str, int, int, int, int, bytes, "str | None", str, "str | None", str, str, int,
             "dict[str, str] | None", "bytes | None", str, str, str, int, int, float, "RequestContext | None"]


NO_USAGE = Usage()


def usage_of(tail: bytes) -> Usage:
    """The last ``usage`` object in a whole answer or in a stream's last events.

    Only that object is parsed, not the answer around it (a whole answer's text can be long): a JSON
    string escapes its quotes, so ``"usage"`` with bare quotes is a key, and the object ends at the
    ``}`` that balances its ``{``."""
    at = tail.rfind(b'"usage"')
    if at < 0:
        return NO_USAGE
    begin = tail.find(b"{", at + 7)
    if begin < 0 or tail[at + 7:begin].strip(b" \t\r\n:"):  # "usage": null, or no object follows
        return NO_USAGE
    end = tail.find(b"}", begin)
    while end > 0 and tail.count(b"{", begin, end) > tail.count(b"}", begin, end + 1):
        end = tail.find(b"}", end + 1)
    if end < 0:
        return NO_USAGE
    try:
        return Usage.from_openai(orjson.loads(tail[begin:end + 1]))
    except orjson.JSONDecodeError:
        return NO_USAGE


def redact(text: str, spec: RequestLogSpec) -> str:
    for pattern in spec.redact:
        text = pattern.sub(REDACTED, text)
    return text


def outcome_of(status: int, outcome: str) -> str:
    """The row's outcome from the status sent and the exchange's ``outcome`` ("" or why a 200 went wrong)."""
    if status == 499:
        return "client_gone"
    if status != 200:
        return "error"
    return outcome or "ok"


def record_of(ctx: RequestContext, status: int, end_ns: int, end_s: float) -> Item:
    """The log's copy of a finished exchange (on the event loop: attribute reads and one tuple)."""
    extra = ctx.extra_headers
    route = ctx.route
    return (ctx.request_id, ctx.arrival_ns, ctx.first_ns, ctx.last_ns, ctx.tokens, ctx.usage_tail,
            extra.get("x-loadbench-cache") if extra else None, ctx.target, route.name if route else None,
            ctx.experiment, ctx.arm, ctx.attempts, ctx.metadata or None, ctx.client_key_digest, ctx.pair_id,
            ctx.role, ctx.outcome, status, end_ns, end_s, ctx if ctx.log_body or ctx.experiment else None)


def row_of(item: Item, spec: RequestLogSpec, prices: Mapping[str, Price | None], worker: int) -> tuple[object, ...]:
    """One ``requests`` row in logdb.COLUMNS order, logdb.NULL for SQL NULL; ``prices``: each target's
    price (by its name, else its model's). Runs on the writer thread, once per record: it is the log's
    main cost, so it reads every field once and builds nothing but the row."""
    (request_id, arrival, first, last, tokens, tail, cache, target, model, experiment, arm, attempts, metadata,
     digest, pair_id, role, outcome, status, end_ns, end_s, ctx) = item
    e2e_ms = (end_ns - arrival) / 1e6
    ttft_ms = (first - arrival) / 1e6 if first else None
    usage = usage_of(tail) if tail else NO_USAGE
    output_tokens = usage.completion_tokens or tokens
    cost: float | None = None
    if cache == "hit-exact":
        cost = 0.0
    elif target and prices:
        price = prices.get(target)
        if price is not None:
            billed = usage if usage.completion_tokens else Usage(usage.prompt_tokens, output_tokens,
                                                                 usage.cached_tokens, usage.cache_write_tokens)
            cost = model_cost(billed, price)
    request_body: object = NULL
    response_body: object = NULL
    if ctx is not None and ctx.log_body:
        request_body = redact(orjson.dumps(ctx.body).decode(), spec)
        if ctx.captured:
            response_body = redact(b"".join(ctx.captured).decode(errors="replace"), spec)
    return (
        round(end_s * 1000 - e2e_ms), request_id, worker, model or NULL, experiment or NULL, arm or NULL, target,
        status, outcome_of(status, outcome), cache or NULL, NULL if ttft_ms is None else ttft_ms,
        (last - first) / 1e6 / (tokens - 1) if tokens >= 2 and last > first else NULL,
        e2e_ms, usage.prompt_tokens or NULL, output_tokens or NULL, usage.cached_tokens or NULL,
        NULL if cost is None else cost, attempts, orjson.dumps(metadata).decode() if metadata else NULL,
        digest.hex() if digest else NULL, pair_id or NULL, role, request_body, response_body)


def value(x: object) -> object:
    """A row's value as Python reads it back (None for logdb.NULL)."""
    return None if x is NULL else x


def registrations(specs: Iterable[ExperimentSpec]) -> Iterator[tuple[str, float, str]]:
    """``logdb.register``'s (name, weight, criteria JSON) of each experiment."""
    return ((e.name, e.weight, orjson.dumps(asdict(e.criteria)).decode()) for e in specs)


@dataclass(frozen=True, slots=True)
class Reload:
    """What a config reload hands the writer thread: every experiment of the new config (registered
    if new) and the names added, removed or changed."""

    specs: tuple[ExperimentSpec, ...]
    changed: frozenset[str]


class RequestLog:
    def __init__(self, spec: RequestLogSpec, gateway: GatewaySpec, metrics: Metrics,
                 loop: asyncio.AbstractEventLoop) -> None:
        self.spec = spec
        self.metrics = metrics
        self.experiments = Experiments(gateway.routes, keep_bodies=spec.log_bodies == "experiments")
        self.worker = os.getpid()
        self.loop = loop
        self.pending: list[Item] = []
        self.handed = 0  # written by the loop only
        self.written = 0  # written by the writer thread only
        self.lost = 0  # records of batches the disk refused (writer thread only)
        self.dropped = 0
        self.trips = 0
        self._queue: queue.SimpleQueue[list[Item] | Reload | None] = queue.SimpleQueue()
        self._unregistered: tuple[ExperimentSpec, ...] = ()  # the writer thread's, until they are in the table
        self._thread = threading.Thread(target=self._write_loop, name="request-log", daemon=True)
        self._timer: asyncio.TimerHandle | None = None
        self._streaks: dict[str, int] = {}
        self._next_check: dict[str, float] = {}
        self.shadows = Shadows(gateway, self.add)
        self.judges = AnswerJudges(self.experiments, spec.path)
        self.breakdown = Breakdown(spec.metrics_by, spec.metrics_values_max)
        self._cost_routes = [r for r in gateway.routes.values() if r.cost is not None]
        # each target's price, by its name or else its model's (empty without a pricing file)
        self._prices: dict[str, Price | None] = {
            name: spec.pricing.prices.get(name) or spec.pricing.prices.get(t.model)
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
            logdb.register(conn, registrations(self.experiments.specs.values()), round(time.time() * 1000),
                           self.worker)
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
        pending.append(record_of(ctx, status, perf_counter_ns(), time.time()))
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

    def on_reload(self, gateway: GatewaySpec) -> None:
        """A reloaded config's experiments: checked, judged and shown from now on; the new ones are
        registered by the writer thread (their candidate is served once their row is read, well under
        a second). A removed one is no longer checked; its row stays in the table."""
        changed = self.experiments.update(gateway.routes)
        if changed:
            self._queue.put(Reload(tuple(self.experiments.specs.values()), changed))
            self.judges.on_reload(changed)

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
                if isinstance(batch, Reload):
                    self._reloaded(batch)
                    next_poll, batch = 0.0, []  # register and read the table at once
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
        spec, prices, worker = self.spec, self._prices, self.worker
        rows = [row_of(item, spec, prices, worker) for item in batch]
        if self.breakdown.keys:
            with self.breakdown.lock:
                for item, row in zip(batch, rows, strict=True):
                    model, metadata = item[8], item[12]
                    if model is not None and item[15] == "primary":
                        ttft, cost = value(row[10]), value(row[16])
                        self.breakdown.count(model, metadata or {}, row[8] == "ok",
                                             ttft if isinstance(ttft, float) else None,
                                             cost if isinstance(cost, float) else None)
        checks = []
        specs = self.experiments.specs
        if specs:
            for item, row in zip(batch, rows, strict=True):
                ctx = item[20]
                exp = specs.get(ctx.experiment) if ctx is not None and ctx.experiment else None
                score = check_score(ctx, item[17], exp) if ctx is not None and exp is not None else None
                if score is not None:
                    checks.append((row[0], row[1], value(row[19]), score, "inline_check"))
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

    def _reloaded(self, job: Reload) -> None:
        for name in job.changed:  # a new or changed experiment's count of failed checks starts over
            self._streaks.pop(name, None)
            self._next_check.pop(name, None)
        self._unregistered = job.specs

    def _poll(self, conn: sqlite3.Connection, now: float) -> None:
        rows = self.experiments.rows
        try:
            if self._unregistered:  # retried every poll until the disk takes it
                logdb.register(conn, registrations(self._unregistered), round(time.time() * 1000), self.worker)
                self._unregistered = ()
            for spec in self.experiments.specs.values():
                if now >= self._next_check.get(spec.name, 0.0):
                    self._next_check[spec.name] = now + spec.guardrails.interval_s
                    self._check(conn, spec)
            if self.experiments.specs:  # only this gateway's experiments are read from the table
                rows = logdb.experiments(conn)
            if self._budgeted:
                self.shadows.spent_today_usd = logdb.shadow_spend(conn, utc_day_start_ms(utc_day(time.time())))
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
