"""The gateway's request log, read back: every query that ``loadbench ab``, ``loadbench eval --pairs``,
``loadbench log`` and ``loadbench dataset from-log`` make, each returning frozen records.

One reader over both stores (``log_source``: a SQLite file, or PostgreSQL through a ``postgresql://``
URL or a variable holding one): the same statements, written once, with the two engines' few
differences in ``Sql`` (the parameter mark, null-safe equality, streaming a large result), so the
same rows give the same answers whichever store holds them. A SQLite log is opened read-only (the
gateway may be writing it: WAL lets readers and the writer run side by side); a PostgreSQL log is
read in autocommit, one statement at a time, with bounded timeouts. The schema and the writer's
statements are ``loadbench.gateway.logdb``'s and ``pglog``'s; docs/ab.md documents the columns.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import orjson

from loadbench.errors import InputError
from loadbench.outcomes import canonical
from loadbench.results.log_source import LogSource, connect, first_line, log_source

NO_VALUE = "(none)"  # the group of a request without the metadata key asked for


@dataclass(frozen=True, slots=True)
class Experiment:
    name: str
    state: str  # running | paused | promoted | rolled_back
    reason: str
    criteria: dict[str, Any]  # the pre-registered criteria, as the gateway recorded them


@dataclass(frozen=True, slots=True)
class ArmRequest:
    """A primary request of an experiment, with its latest feedback score."""

    arm: str
    ts_ms: int
    outcome: str
    ttft_ms: float | None
    e2e_ms: float | None
    cost_usd: float | None
    metadata: str | None  # the X-Loadbench-Metadata JSON as logged
    score: float | None


@dataclass(frozen=True, slots=True)
class Served:
    """One side of a shadowed request: who answered, when, how, how fast and at what cost."""

    target: str
    ts_ms: int
    outcome: str
    ttft_ms: float | None
    e2e_ms: float | None
    cost_usd: float | None


@dataclass(frozen=True, slots=True)
class ShadowPair:
    model: str  # the virtual model
    shadow: Served
    primary: Served


@dataclass(frozen=True, slots=True)
class LoggedAnswer:
    """One side of a shadow pair with its logged bodies (None where they were not logged)."""

    target: str
    ok: bool
    request_body: str | None
    response_body: str | None
    prompt_tokens: int
    output_tokens: int
    cost_usd: float
    ttft_ms: float | None
    e2e_ms: float | None
    status: int


@dataclass(frozen=True, slots=True)
class LoggedPair:
    pair_id: str
    primary: LoggedAnswer
    shadow: LoggedAnswer


@dataclass(frozen=True, slots=True)
class LoggedRequestBody:
    request_id: str
    request_body: str
    metadata: str | None


@dataclass(frozen=True, slots=True)
class LoggedArrival:
    """A primary request as a trace replays it: when it arrived and what it asked for."""

    row_id: int
    ts_ms: int
    prompt_tokens: int | None  # None: the log has no usage for it (it failed before an answer)
    output_tokens: int | None
    model: str | None
    metadata: dict[str, str]


@dataclass(frozen=True, slots=True)
class Table:
    """Rows of the requests table as stored, for export."""

    columns: tuple[str, ...]
    rows: Iterator[tuple[Any, ...]]


def metadata_value(metadata: str | None, key: str) -> str:
    """The value of ``key`` in a logged metadata JSON, as text; ``(none)`` without it."""
    return str(orjson.loads(metadata).get(key, NO_VALUE)) if metadata else NO_VALUE


_ANSWER_COLS = ("target, outcome, request_body, response_body, COALESCE(prompt_tokens, 0),"
                " COALESCE(output_tokens, 0), COALESCE(cost_usd, 0), ttft_ms, e2e_ms, status")


def _answer(r: tuple[Any, ...]) -> LoggedAnswer:
    target, outcome, req, resp, pt, ot, cost, ttft, e2e, status = r
    return LoggedAnswer(str(target or ""), outcome == "ok" and status == 200, req, resp, int(pt), int(ot),
                        float(cost), ttft, e2e, int(status))


class Sql(Protocol):
    """What differs between the engines: how a statement runs and how its text is spelled."""

    same: str  # null-safe equality of two columns

    def rows(self, query: str, params: Sequence[object] = ()) -> Iterator[tuple[Any, ...]]:
        """Run ``query`` (``?`` marks its parameters) and yield its rows."""

    def columns(self, query: str, params: Sequence[object]) -> tuple[tuple[str, ...], Iterator[tuple[Any, ...]]]:
        """The column names of ``query``'s result and its rows, streamed (an export may be large)."""

    def close(self) -> None: ...


class SqliteSql:
    same = "IS"

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def rows(self, query: str, params: Sequence[object] = ()) -> Iterator[tuple[Any, ...]]:
        return iter(self.conn.execute(query, params))

    def columns(self, query: str, params: Sequence[object]) -> tuple[tuple[str, ...], Iterator[tuple[Any, ...]]]:
        cur = self.conn.execute(query, params)
        return tuple(d[0] for d in cur.description), iter(cur)

    def close(self) -> None:
        self.conn.close()


class PostgresSql:
    same = "IS NOT DISTINCT FROM"

    def __init__(self, conn: Any, dsn: str, name: str) -> None:  # a psycopg.Connection (imported when used)
        self.conn = conn
        self.dsn = dsn
        self.name = name
        self._streams: list[Any] = []  # a streamed result holds its connection: one each, closed with the log

    def rows(self, query: str, params: Sequence[object] = ()) -> Iterator[tuple[Any, ...]]:
        import psycopg

        try:
            return iter(self.conn.execute(query.replace("?", "%s"), params).fetchall())
        except psycopg.Error as exc:
            raise InputError(f"{self.name}: {first_line(exc)}") from None

    def columns(self, query: str, params: Sequence[object]) -> tuple[tuple[str, ...], Iterator[tuple[Any, ...]]]:
        import psycopg

        try:  # the first row, to learn the columns; the rest streamed (single-row mode) as the caller reads
            conn = connect(self.dsn)
            self._streams.append(conn)
            cur = conn.cursor()
            rows = cur.stream(query.replace("?", "%s"), params)
            first = next(rows, None)
        except psycopg.Error as exc:
            raise InputError(f"{self.name}: {first_line(exc)}") from None
        names = tuple(c.name for c in cur.description or ())
        return names, (_chain(first, rows) if first is not None else iter(()))

    def close(self) -> None:
        for conn in self._streams:
            conn.close()
        self.conn.close()


def _chain(first: tuple[Any, ...], rest: Iterator[tuple[Any, ...]]) -> Iterator[tuple[Any, ...]]:
    yield first
    yield from rest


class RequestLog:
    """Read-only queries on one request log. ``open`` checks it is one (InputError, exit 2)."""

    def __init__(self, sql: Sql | sqlite3.Connection, name: str = "request log") -> None:
        self.sql: Sql = SqliteSql(sql) if isinstance(sql, sqlite3.Connection) else sql
        self.name = name  # how messages and manifests name it (never a password)

    @classmethod
    def open(cls, where: str | Path, env: dict[str, str] | None = None) -> RequestLog:
        """A log file, a ``postgresql://`` URL, or the name of an environment variable holding one."""
        # the process's own environment unless told: a variable named on the command line is read here
        source = log_source(where, dict(os.environ) if env is None else env)
        return cls(_open_postgres(source) if source.dsn else _open_sqlite(source), source.name)

    def close(self) -> None:
        self.sql.close()

    def __enter__(self) -> RequestLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def experiment(self, name: str) -> Experiment:
        row = next(self.sql.rows("SELECT state, reason, criteria FROM experiments WHERE name = ?", (name,)), None)
        if row is None:
            names = [r[0] for r in self.sql.rows("SELECT name FROM experiments ORDER BY name")]
            raise InputError(f"no experiment {name!r} in the log (experiments: {', '.join(names) or 'none'})")
        state, reason, criteria = row
        return Experiment(name, state, reason, orjson.loads(criteria))

    def arm_requests(self, experiment: str, since_ms: int | None) -> list[ArmRequest]:
        """The experiment's primary requests (arrived at or after ``since_ms``), each with its latest
        feedback score from the same tenant."""
        query = ("SELECT r.arm, r.ts_ms, r.outcome, r.ttft_ms, r.e2e_ms, r.cost_usd, r.metadata,"
                 f" (SELECT f.score FROM feedback f WHERE f.request_id = r.request_id AND f.tenant {self.sql.same}"
                 " r.tenant ORDER BY f.id DESC LIMIT 1)"
                 " FROM requests r WHERE r.experiment = ? AND r.role = 'primary'")
        params: list[object] = [experiment]
        if since_ms is not None:
            query += " AND r.ts_ms >= ?"
            params.append(since_ms)
        query += " ORDER BY r.id"  # one order on every engine (sums of floats depend on it)
        # outcomes.canonical: an older gateway's words (stream_break) read as today's
        return [ArmRequest(row[0], row[1], canonical(row[2]), *row[3:]) for row in self.sql.rows(query, params)]

    def judge_spend(self, experiment: str, since_ms: int | None) -> tuple[int, float]:
        """(judge calls, judge spend) of an experiment since ``since_ms`` (0, 0.0 in a log without the table)."""
        try:
            n, spend = next(self.sql.rows(
                "SELECT COUNT(*), COALESCE(SUM(cost_usd), 0) FROM judge_spend WHERE experiment = ? AND ts_ms >= ?",
                (experiment, since_ms or 0)))
        except sqlite3.OperationalError:
            return 0, 0.0
        return int(n), float(spend)

    def shadow_pairs(self, model: str | None) -> list[ShadowPair]:
        """Each shadow row beside the primary row it copied (only this virtual model's, when given)."""
        query = ("SELECT s.model, s.target, s.ts_ms, s.outcome, s.ttft_ms, s.e2e_ms, s.cost_usd,"
                 " p.target, p.ts_ms, p.outcome, p.ttft_ms, p.e2e_ms, p.cost_usd"
                 " FROM requests s JOIN requests p ON p.request_id = s.pair_id AND p.role = 'primary'"
                 " WHERE s.role = 'shadow'")
        params: list[object] = []
        if model:
            query += " AND s.model = ?"
            params.append(model)
        query += " ORDER BY s.id, p.id"  # one order on every engine
        return [ShadowPair(row[0], Served(row[1], row[2], canonical(row[3]), *row[4:7]),
                           Served(row[7], row[8], canonical(row[9]), *row[10:13]))
                for row in self.sql.rows(query, params)]

    def answer_pairs(self) -> list[LoggedPair]:
        """Every primary row with a shadow row under its pair id, with bodies (several shadow targets:
        one pair each)."""
        primaries = {r[0]: r[1:] for r in self.sql.rows(
            f"SELECT pair_id, {_ANSWER_COLS} FROM requests WHERE role = 'primary' AND pair_id IS NOT NULL"
            " ORDER BY id")}
        out = []
        for row in self.sql.rows(f"SELECT pair_id, {_ANSWER_COLS} FROM requests WHERE role = 'shadow'"
                                 " ORDER BY id"):
            p = primaries.get(row[0])
            if p is not None:
                out.append(LoggedPair(row[0], _answer(p), _answer(row[1:])))
        return out

    def request_bodies(self, model: str | None) -> list[LoggedRequestBody]:
        """The logged request bodies of primary requests (only this virtual model's, when given)."""
        query = ("SELECT request_id, request_body, metadata FROM requests"
                 " WHERE role = 'primary' AND request_body IS NOT NULL")
        params: list[object] = []
        if model:
            query += " AND model = ?"
            params.append(model)
        query += " ORDER BY id"
        return [LoggedRequestBody(*row) for row in self.sql.rows(query, params)]

    def arrivals(self) -> list[LoggedArrival]:
        """Every primary request in arrival order (shadow copies are the gateway's own traffic, not the
        clients'), for ``loadbench replay``."""
        out = []
        for row_id, ts, prompt, output, model, metadata in self.sql.rows(
                "SELECT id, ts_ms, prompt_tokens, output_tokens, model, metadata FROM requests"
                " WHERE role = 'primary' ORDER BY ts_ms, id"):
            meta = orjson.loads(metadata) if metadata else {}
            out.append(LoggedArrival(int(row_id), int(ts), prompt, output, model,
                                     {str(k): str(v) for k, v in meta.items()} if isinstance(meta, dict) else {}))
        return out

    def requests(self, experiment: str | None, since_ms: int | None) -> Table:
        """Every column of the requests table, in arrival order (this experiment's, since ``since_ms``)."""
        where: list[str] = ["TRUE"]
        params: list[object] = []
        if experiment:
            where.append("experiment = ?")
            params.append(experiment)
        if since_ms is not None:
            where.append("ts_ms >= ?")
            params.append(since_ms)
        columns, rows = self.sql.columns(f"SELECT * FROM requests WHERE {' AND '.join(where)} ORDER BY id", params)
        return Table(columns, rows)


def _open_sqlite(source: LogSource) -> SqliteSql:
    path = source.path
    assert path is not None
    if not path.is_file():
        raise InputError(f"{path}: no such file (give the request_log.path of a gateway config, a postgresql:// URL,"
                         " or a variable holding one)")
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        conn.execute("SELECT 1 FROM requests LIMIT 1")
    except sqlite3.Error as exc:
        raise InputError(f"{path}: not a loadbench request log ({exc})") from None
    return SqliteSql(conn)


def _open_postgres(source: LogSource) -> PostgresSql:
    import psycopg

    assert source.dsn is not None
    try:
        conn = connect(source.dsn)
    except psycopg.Error as exc:
        raise InputError(f"{source.name}: cannot connect ({first_line(exc)})") from None
    try:
        conn.execute("SELECT 1 FROM requests LIMIT 1")
    except psycopg.Error as exc:
        conn.close()
        raise InputError(f"{source.name}: not a loadbench request log ({first_line(exc)})") from None
    return PostgresSql(conn, source.dsn, source.name)
