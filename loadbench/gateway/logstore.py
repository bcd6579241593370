"""Where the request log's writer puts its batches: one small interface, ``LogStore``, over the SQLite
file (``logdb``) and PostgreSQL (``pglog``), chosen by ``request_log.backend``.

The writer thread (``requestlog``) owns one store; the feedback endpoint opens one per call in the
executor. A store that cannot be reached now raises ``LogUnavailable``: the writer keeps the batch
and tries again, so rows wait (up to the queue bound) while PostgreSQL is down or slow. A batch the
store refuses for what it holds raises ``LogRejected``: it is counted as lost and the writer goes on
(the SQLite log has always treated every error so: a disk that refuses a batch costs that batch).
"""

from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from loadbench.errors import InputError, LoadbenchError
from loadbench.gateway import logdb, pglog
from loadbench.gateway.abconfig import RequestLogSpec
from loadbench.gateway.logdb import ExperimentRow
from loadbench.results import log_source

if TYPE_CHECKING:
    import psycopg

log = logging.getLogger("loadbench.gateway")


class LogUnavailable(LoadbenchError):
    """The log's database cannot be reached now (down, refused, timed out); the batch waits."""


class LogRejected(LoadbenchError):
    """The log's database refused this batch; it is lost, the next one is tried."""


@dataclass(frozen=True, slots=True)
class RatedRequest:
    """The request a feedback row was stored for: where ``min_quality``'s window places it."""

    experiment: str | None
    arm: str | None
    ts_ms: int

    @classmethod
    def of(cls, row: Sequence[object]) -> RatedRequest:
        experiment, arm, ts_ms = row
        return cls(None if experiment is None else str(experiment), None if arm is None else str(arm),
                   int(ts_ms))  # type: ignore[call-overload]


class LogStore(Protocol):
    def write(self, rows: Sequence[tuple[object, ...]], feedback: Sequence[tuple[object, ...]]) -> None:
        """Commit one batch of requests rows (``logdb.COLUMNS`` order) and feedback rows, or nothing."""

    def prune(self, now_ms: int, retention_s: float | None, max_rows: int | None) -> None:
        """Apply retention (and, where partitioned, create the coming days' partitions)."""

    def mirror(self, experiments: Mapping[str, ExperimentRow], events: Sequence[Mapping[str, object]],
               criteria: Mapping[str, str]) -> None:
        """Keep the shared state's experiment records and events beside the requests (``pglog.mirror``)."""

    def add_feedback(self, now_ms: int, request_id: str, tenant: str | None, score: float,
                     outcome: str) -> RatedRequest | None:
        """Store feedback for a primary request of ``tenant``; None when there is no such request (yet)."""

    def add_judge_grade(self, now_ms: int, experiment: str, request_id: str, tenant: str | None,
                        score: float | None, cost_usd: float) -> None:
        """A sampled judge grade (a feedback row when ``score`` is not None) and its spend, together."""

    def close(self) -> None: ...


class SqliteStore:
    """The SQLite file (WAL): today's log. Its experiments and events tables are the local shared
    state's own (``sharedstate.SqliteState`` writes them), so ``mirror`` has nothing to do."""

    def __init__(self, path: str) -> None:
        try:
            self.conn = logdb.connect(path)
        except sqlite3.Error as exc:
            raise LogUnavailable(f"{path}: {exc}") from exc

    def write(self, rows: Sequence[tuple[object, ...]], feedback: Sequence[tuple[object, ...]]) -> None:
        try:
            logdb.write(self.conn, rows, feedback)
        except sqlite3.Error as exc:
            raise LogRejected(str(exc)) from exc

    def prune(self, now_ms: int, retention_s: float | None, max_rows: int | None) -> None:
        oldest = round(now_ms - retention_s * 1000) if retention_s else None
        try:
            logdb.prune(self.conn, oldest, max_rows)
        except sqlite3.Error as exc:
            raise LogRejected(f"pruning failed: {exc}") from exc

    def mirror(self, experiments: Mapping[str, ExperimentRow], events: Sequence[Mapping[str, object]],
               criteria: Mapping[str, str]) -> None:
        return None

    def add_feedback(self, now_ms: int, request_id: str, tenant: str | None, score: float,
                     outcome: str) -> RatedRequest | None:
        try:
            row = self.conn.execute("SELECT experiment, arm, ts_ms FROM requests WHERE request_id = ? AND tenant IS ?"
                                    " AND role = 'primary'", (request_id, tenant)).fetchone()
            if row is None:
                return None
            self.conn.execute("INSERT INTO feedback (ts_ms, request_id, tenant, score, outcome) VALUES (?, ?, ?, ?, ?)",
                              (now_ms, request_id, tenant, score, outcome))
        except sqlite3.Error as exc:
            raise LogUnavailable(str(exc)) from exc
        return RatedRequest.of(row)

    def add_judge_grade(self, now_ms: int, experiment: str, request_id: str, tenant: str | None,
                        score: float | None, cost_usd: float) -> None:
        try:
            logdb.judge_record(self.conn, now_ms, experiment, request_id, tenant, score, cost_usd)
        except sqlite3.Error as exc:
            raise LogUnavailable(str(exc)) from exc

    def close(self) -> None:
        self.conn.close()


class PostgresStore:
    """PostgreSQL through one connection, opened on first use and again after it broke. Every
    connection-level failure (refused, reset, timed out) is ``LogUnavailable``."""

    def __init__(self, spec: RequestLogSpec, creates: bool = True) -> None:
        assert spec.dsn is not None
        self.creates = creates  # the writer creates the schema and partitions; a feedback call only reads
        self.dsn = spec.dsn
        self.connect_timeout_s = spec.connect_timeout_s
        self.statement_timeout_ms = spec.statement_timeout_ms
        self._conn: psycopg.Connection[tuple[object, ...]] | None = None
        self._days: set[int] = set()

    def _connection(self) -> psycopg.Connection[tuple[object, ...]]:
        if self._conn is None or self._conn.closed:
            self._conn = log_source.connect(self.dsn, self.statement_timeout_ms, self.connect_timeout_s)
            if self.creates:
                pglog.create(self._conn)
                self._days = pglog.existing_days(self._conn)
        return self._conn

    def _failed(self, exc: Exception) -> LoadbenchError:
        import psycopg

        if isinstance(exc, psycopg.OperationalError) or self._conn is None or self._conn.closed:
            if self._conn is not None:
                self._conn.close()
            self._conn = None
            return LogUnavailable(log_source.first_line(exc))
        return LogRejected(log_source.first_line(exc))

    def _ensure_days(self, conn: psycopg.Connection[tuple[object, ...]], first_ms: int, last_ms: int) -> None:
        wanted = set(range(first_ms // pglog.DAY_MS, last_ms // pglog.DAY_MS + 1)) - self._days
        if wanted:
            pglog.add_partitions(conn, wanted)
            self._days |= wanted

    def write(self, rows: Sequence[tuple[object, ...]], feedback: Sequence[tuple[object, ...]]) -> None:
        import psycopg

        try:
            conn = self._connection()
            if rows:
                ts = [int(r[0]) for r in rows]  # type: ignore[call-overload]
                self._ensure_days(conn, min(ts), max(ts))
            pglog.write(conn, rows, feedback)
        except psycopg.Error as exc:
            raise self._failed(exc) from exc

    def prune(self, now_ms: int, retention_s: float | None, max_rows: int | None) -> None:
        import psycopg

        # max_rows has no meaning here: retention is by whole days (docs/deploy.md)
        try:
            conn = self._connection()
            self._ensure_days(conn, now_ms, now_ms + pglog.DAYS_AHEAD * pglog.DAY_MS)
            if retention_s:
                gone = pglog.drop_before(conn, round(now_ms - retention_s * 1000))
                self._days -= set(gone)
                if gone:
                    log.info("request log: dropped %d day partition(s) past retention", len(gone))
        except psycopg.Error as exc:
            raise self._failed(exc) from exc

    def mirror(self, experiments: Mapping[str, ExperimentRow], events: Sequence[Mapping[str, object]],
               criteria: Mapping[str, str]) -> None:
        import psycopg

        try:
            pglog.mirror(self._connection(), experiments, events, criteria)
        except psycopg.Error as exc:
            raise self._failed(exc) from exc

    def add_feedback(self, now_ms: int, request_id: str, tenant: str | None, score: float,
                     outcome: str) -> RatedRequest | None:
        import psycopg

        try:
            row = pglog.record_feedback(self._connection(), now_ms, request_id, tenant, score, outcome)
        except psycopg.Error as exc:
            raise self._failed(exc) from exc
        return None if row is None else RatedRequest.of(row)

    def add_judge_grade(self, now_ms: int, experiment: str, request_id: str, tenant: str | None,
                        score: float | None, cost_usd: float) -> None:
        import psycopg

        try:
            pglog.judge_record(self._connection(), now_ms, experiment, request_id, tenant, score, cost_usd)
        except psycopg.Error as exc:
            raise self._failed(exc) from exc

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


def open_store(spec: RequestLogSpec, writer: bool = True) -> LogStore:
    """The store of ``spec``; ``writer`` False for a caller that only adds feedback (it creates nothing)."""
    return PostgresStore(spec, creates=writer) if spec.backend == "postgres" else SqliteStore(spec.path)


def prepare(spec: RequestLogSpec) -> None:
    """At start, before the first request: the SQLite file and its schema (an error stops the start),
    or PostgreSQL's schema and today's partitions when it answers; when it does not, the gateway
    serves anyway and the writer creates them once it does (rows wait meanwhile)."""
    if spec.backend == "sqlite":
        logdb.create(spec.path).close()
        return
    store = PostgresStore(spec)
    try:
        store.prune(round(time.time() * 1000), None, None)
    except LogUnavailable as exc:
        log.warning("request log: %s does not answer (%s); serving, rows wait in the queue", spec.dsn_name, exc)
    except LogRejected as exc:
        raise InputError(f"request_log: {spec.dsn_name} refused the log's schema: {exc}") from None
    finally:
        store.close()
