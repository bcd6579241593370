"""The request log: one row per request, written by a thread, never by the request path.

A sink: it listens to ``events.exchange_finished`` (``add``) and keeps the write-behind queue, the
row building and the pruning, nothing else; where the rows go is its store's (``logstore``: the SQLite
file or PostgreSQL). The event loop only appends a copy of the record's fields (``record_of``, a
``LogRecord``) to a list; every ``flush_ms`` (or at ``batch_rows``) the list is handed to the writer
thread in one ``SimpleQueue.put``. Records not yet committed (listed, handed over, or waiting for the
database) are bounded by ``queue_rows``: beyond it a record is dropped and counted
(``loadbench_gateway_requestlog_dropped_total``), so a slow or absent database costs records, never
latency. The writer builds the rows (usage parsed from the answer's tail, cost, redaction), fires
``events.log_batch`` (breakdowns and inline checks listen there) and commits a batch per transaction,
so a ``kill -9`` loses at most the records not yet committed: at most ``queue_rows``, in practice the
last ``flush_ms`` of traffic. A store that cannot be reached (``LogUnavailable``: PostgreSQL down,
refusing, past its timeouts) keeps the batch: the writer tries again, backing off to
``RETRY_MAX_S``, and writes the waiting batches in order once it answers. It prunes by age and rows.
"""

from __future__ import annotations

import asyncio
import logging
import os
import queue
import threading
import time
from collections import deque
from collections.abc import Mapping, Sequence
from time import perf_counter_ns
from typing import TYPE_CHECKING

import orjson

from loadbench.gateway import logstore
from loadbench.gateway.abconfig import RequestLogSpec
from loadbench.gateway.context import RequestContext
from loadbench.gateway.logdb import NULL, ExperimentRow
from loadbench.gateway.logrecord import LogRecord
from loadbench.gateway.logstore import LogRejected, LogStore, LogUnavailable
from loadbench.pricing import Price, Usage, model_cost
from loadbench.protocol.openai import usage_in
from loadbench.protocol.usage import NO_USAGE

if TYPE_CHECKING:
    import random

    from loadbench.gateway.config import GatewaySpec
    from loadbench.gateway.events import GatewayEvents

log = logging.getLogger("loadbench.gateway")
WAIT_S = 1.0  # the writer wakes at least this often to see whether pruning is due
PRUNE_EVERY_S = 60.0
RETRY_MIN_S = 0.25  # a store that cannot be reached is tried again after this, doubling ...
RETRY_MAX_S = 2.0  # ... up to this: writing resumes within this of the store's return
SAY_EVERY_S = 60.0  # at most one line per minute while the store stays unreachable
REDACTED = "[REDACTED]"
_new_record = tuple.__new__  # a LogRecord from a tuple without NamedTuple's Python-level __new__
# a batch on the writer thread: (records, requests rows, feedback rows), kept until its store commits it
Pending = tuple[int, list[tuple[object, ...]], list[tuple[object, ...]]]
# the shared state's experiment records, events and criteria, for the log's tables (RequestLog.mirror)
Mirror = tuple[Mapping[str, ExperimentRow], Sequence[Mapping[str, object]], Mapping[str, str]]


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


def record_of(ctx: RequestContext, status: int, end_ns: int, end_s: float) -> LogRecord:
    """The log's copy of a finished exchange (on the event loop: attribute reads and one tuple). The
    exchange's objects are freed on the loop as without a log; the context itself is kept only when the
    writer needs more of it (bodies to log, an experiment's inline check), and the answer's bytes only
    when its usage was not decoded yet (a whole answer's tail is the whole answer: kept, it would wait
    in the queue with every record and be freed by the writer's thread, from cold memory)."""
    extra = ctx.extra_headers
    route = ctx.route
    usage = ctx.usage
    return _new_record(LogRecord, (
        ctx.request_id, ctx.arrival_ns, ctx.first_ns, ctx.last_ns, ctx.tokens, b"" if usage else ctx.usage_tail,
        extra.get("x-loadbench-cache") if extra else None, ctx.target, route.name if route else None,
        ctx.experiment, ctx.arm, ctx.attempts, ctx.metadata or None, ctx.client_key_digest, ctx.pair_id,
        ctx.role, ctx.outcome, status, end_ns, end_s, ctx if ctx.log_body or ctx.experiment else None, usage))


def row_of(r: LogRecord, spec: RequestLogSpec, prices: Mapping[str, Price | None], worker: int) -> tuple[object, ...]:
    """One ``requests`` row in logdb.COLUMNS order, logdb.NULL for SQL NULL; ``prices``: each target's
    price (by its name, else its model's). Runs on the writer thread, once per record: it is the log's
    main cost, so it takes the record's fields in one unpacking (a named read costs a descriptor call
    each: 22 of them were a third of the row) and builds nothing but the row."""
    (request_id, arrival, first, last, tokens, tail, cache, target, model, experiment, arm, attempts, metadata,
     digest, pair_id, role, outcome, status, end_ns, end_s, ctx, usage) = r
    e2e_ms = (end_ns - arrival) / 1e6
    usage = usage or (usage_in(tail) if tail else None) or NO_USAGE
    output_tokens = usage.completion_tokens or tokens
    cost: object = NULL
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
        round(end_s * 1000 - e2e_ms), request_id, worker, model or NULL, experiment or NULL, arm or NULL,
        target, status, outcome_of(status, outcome), cache or NULL, (first - arrival) / 1e6 if first else NULL,
        (last - first) / 1e6 / (tokens - 1) if tokens >= 2 and last > first else NULL,
        e2e_ms, usage.prompt_tokens or NULL, output_tokens or NULL, usage.cached_tokens or NULL,
        cost, attempts, orjson.dumps(metadata).decode() if metadata else NULL,
        digest.hex() if digest else NULL, pair_id or NULL, role, request_body, response_body)


class RequestLog:
    def __init__(self, spec: RequestLogSpec, gateway: GatewaySpec, worker: int, events: GatewayEvents,
                 loop: asyncio.AbstractEventLoop, rng: random.Random) -> None:
        self.spec = spec
        self.worker = worker
        self.events = events
        self.loop = loop
        self.rng = rng
        self.pending: list[LogRecord] = []
        self.handed = 0  # written by the loop only
        self.written = 0  # written by the writer thread only
        self.lost = 0  # records of batches the store refused (writer thread only)
        self.dropped = 0
        self.up = True  # the store answered its last write (writer thread only)
        self._said_at = 0.0  # when the writer last said the store does not answer (monotonic s)
        self._mirror: Mirror | None = None
        self._mirrored: Mirror | None = None  # the last copy the store took (writer thread only)
        self._mirror_lock = threading.Lock()
        self._queue: queue.SimpleQueue[list[LogRecord] | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._write_loop, name="request-log", daemon=True)
        self._timer: asyncio.TimerHandle | None = None
        self._prices = spec.target_prices({name: t.model for name, t in gateway.targets.items()})

    @classmethod
    def open(cls, gateway: GatewaySpec, events: GatewayEvents, rng: random.Random) -> RequestLog:
        """Create the schema if needed and start the writer. Runs at startup, before the first request."""
        spec = gateway.request_log
        assert spec is not None
        self = cls(spec, gateway, os.getpid(), events, asyncio.get_running_loop(), rng)
        logstore.prepare(spec)
        self._thread.start()
        self._timer = self.loop.call_later(spec.flush_s, self._tick)
        return self

    # ------------------------------------------------------------------ the event loop's side

    def on_started(self, ctx: RequestContext) -> None:
        """A listener of ``events.exchange_started``: this exchange's bodies are logged (``log_bodies``)?"""
        mode = self.spec.log_bodies
        ctx.keep_answer = ctx.log_body = mode == "all" or (mode == "sampled"
                                                            and self.rng.random() < self.spec.body_sample)

    def add(self, ctx: RequestContext, status: int) -> None:
        """A listener of ``events.exchange_finished``."""
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

    def close(self) -> None:
        """Write what is queued and stop the writer (waits a few seconds at most)."""
        if self._timer is not None:
            self._timer.cancel()
        if self.pending:
            self._hand()
        self._queue.put(None)
        self._thread.join(timeout=10.0)

    def mirror(self, experiments: Mapping[str, ExperimentRow], events: Sequence[Mapping[str, object]],
               criteria: Mapping[str, str]) -> None:
        """Hand the shared state's experiment records and events to the writer, to keep beside the rows
        (a store whose tables are not the shared state's own, ``LogStore.mirror``). Any thread; only the
        newest copy waits, so an unreachable store holds one."""
        with self._mirror_lock:
            self._mirror = (experiments, events, criteria)

    def render(self, worker: str) -> list[str]:
        """The log's part of /metrics."""
        return ["# HELP loadbench_gateway_requestlog_dropped_total Request log records dropped (queue full)",
                "# TYPE loadbench_gateway_requestlog_dropped_total counter",
                f'loadbench_gateway_requestlog_dropped_total{{worker="{worker}"}} {self.dropped}',
                "# HELP loadbench_gateway_requestlog_written_total Request log records committed",
                "# TYPE loadbench_gateway_requestlog_written_total counter",
                f'loadbench_gateway_requestlog_written_total{{worker="{worker}"}} {self.written - self.lost}',
                "# HELP loadbench_gateway_requestlog_lost_total Request log records the store refused",
                "# TYPE loadbench_gateway_requestlog_lost_total counter",
                f'loadbench_gateway_requestlog_lost_total{{worker="{worker}"}} {self.lost}',
                "# HELP loadbench_gateway_requestlog_backend_up 1 when the log's store answered its last write",
                "# TYPE loadbench_gateway_requestlog_backend_up gauge",
                f'loadbench_gateway_requestlog_backend_up{{worker="{worker}"}} {int(self.up)}',
                "# HELP loadbench_gateway_requestlog_waiting_rows Records handed to the writer, not yet committed",
                "# TYPE loadbench_gateway_requestlog_waiting_rows gauge",
                f'loadbench_gateway_requestlog_waiting_rows{{worker="{worker}"}} {self.handed - self.written}']

    # ------------------------------------------------------------------ the writer thread

    def _write_loop(self) -> None:
        store = logstore.open_store(self.spec)
        waiting: deque[Pending] = deque()
        next_prune = 0.0
        pause = RETRY_MIN_S
        retry_at = 0.0
        stopping = False
        try:
            while not stopping or waiting:
                now = time.monotonic()
                timeout = max(0.0, retry_at - now) if waiting else WAIT_S
                try:
                    batch = self._queue.get(timeout=timeout)
                except queue.Empty:
                    batch = []
                if batch is None:
                    stopping = True
                elif batch:
                    waiting.append(self._rows(batch))
                if waiting and (time.monotonic() >= retry_at or stopping):
                    if self._flush(store, waiting):
                        pause = RETRY_MIN_S
                    elif stopping:  # the store is still away: what waits is lost with the process
                        log.warning("request log: %d records not written at shutdown (%s does not answer)",
                                    sum(n for n, _, _ in waiting), self.spec.dsn_name or self.spec.path)
                        break
                    else:
                        retry_at = time.monotonic() + pause
                        pause = min(pause * 2, RETRY_MAX_S)
                if waiting:
                    continue  # the store is away: nothing else is asked of it before the next retry
                self._mirror_now(store)
                now = time.monotonic()
                if now >= next_prune:
                    next_prune = now + PRUNE_EVERY_S
                    self._prune(store)
        finally:
            store.close()

    def _rows(self, batch: list[LogRecord]) -> Pending:
        """A batch's rows and the feedback its listeners add: built once, written once or kept."""
        spec, prices, worker = self.spec, self._prices, self.worker
        rows = [row_of(record, spec, prices, worker) for record in batch]
        feedback: list[tuple[object, ...]] = []
        if self.events.log_batch:
            self.events.log_batch.fire(batch, rows, feedback)
        return len(batch), rows, feedback

    def _flush(self, store: LogStore, waiting: deque[Pending]) -> bool:
        """Write the waiting batches, oldest first; False when the store cannot be reached (they stay)."""
        while waiting:
            n, rows, feedback = waiting[0]
            try:
                store.write(rows, feedback)
            except LogUnavailable as exc:
                self._down(exc)
                return False
            except LogRejected as exc:
                self.lost += n
                log.warning("request log: %d records not written: %s", n, exc)
            waiting.popleft()
            self.written += n
            self._back()
        return True

    def _down(self, exc: Exception) -> None:
        now = time.monotonic()
        if self.up or now >= self._said_at + SAY_EVERY_S:
            self._said_at = now
            log.warning("request log: %s does not answer (%s); %d records waiting, %d dropped so far",
                        self.spec.dsn_name or self.spec.path, exc, self.handed - self.written, self.dropped)
        self.up = False

    def _back(self) -> None:
        if not self.up:
            self.up = True
            log.warning("request log: %s answers again; writing resumed (%d records dropped so far)",
                        self.spec.dsn_name or self.spec.path, self.dropped)

    def _mirror_now(self, store: LogStore) -> None:
        with self._mirror_lock:
            item, self._mirror = self._mirror, None
        if item is None or item == self._mirrored:
            return  # nothing changed since the last copy: the store is not asked
        try:
            store.mirror(*item)
            self._mirrored = item
        except LogUnavailable:
            with self._mirror_lock:  # kept for the next turn unless a newer copy came meanwhile
                self._mirror = self._mirror or item
        except LogRejected as exc:
            log.warning("request log: experiment records not copied: %s", exc)

    def _prune(self, store: LogStore) -> None:
        spec = self.spec
        try:
            store.prune(round(time.time() * 1000), spec.retention_s, spec.max_rows)
        except (LogUnavailable, LogRejected) as exc:
            log.warning("request log: pruning failed: %s", exc)
