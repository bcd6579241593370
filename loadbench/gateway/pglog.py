"""The request log in PostgreSQL: schema, day partitions, batched ``COPY``, retention and the tables
beside the requests (experiments, events, feedback, judge spend).

The columns are ``logdb``'s (the SQLite log's), so every reader asks both the same questions
(``loadbench.results.request_log``). ``requests`` is partitioned by day on ``ts_ms`` (Unix ms,
UTC days): retention drops whole partitions, never deletes rows, so it leaves no dead tuples to
vacuum and costs the same at a billion rows as at a thousand. Schema and partitions are created
idempotently under an advisory lock, so replicas starting together do not race. Several replicas
write the same tables; ``id`` comes from one sequence, so it orders rows across them.

Connections carry bounded connect and statement timeouts (``log_source.connect``): a database that is
down or stuck makes a write fail within them, and the writer keeps the batch (``requestlog``).
No function here runs on the event loop's thread.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING

from loadbench.gateway.logdb import COLUMNS, NULL, ExperimentRow

if TYPE_CHECKING:
    import psycopg

DAY_MS = 86_400_000
DAYS_AHEAD = 1  # partitions created ahead of the clock, so midnight never waits on DDL
_LOCK_KEY = 0x6C62_6C6F_67  # pg_advisory_xact_lock key of schema and partition changes ("lblog")
_BODY_COLUMNS = (COLUMNS.index("request_body"), COLUMNS.index("response_body"))

SCHEMA = """
CREATE TABLE IF NOT EXISTS requests (
    id bigserial,
    ts_ms bigint NOT NULL,
    request_id text NOT NULL,
    worker integer NOT NULL,
    model text,
    experiment text, arm text,
    target text,
    status integer NOT NULL,
    outcome text NOT NULL,
    cache text,
    ttft_ms double precision, tpot_ms double precision, e2e_ms double precision,
    prompt_tokens integer, output_tokens integer, cached_tokens integer,
    cost_usd double precision,
    attempts integer NOT NULL,
    metadata text,
    tenant text,
    pair_id text, role text NOT NULL DEFAULT 'primary',
    request_body text, response_body text
) PARTITION BY RANGE (ts_ms);
CREATE INDEX IF NOT EXISTS requests_ts ON requests (ts_ms);
CREATE INDEX IF NOT EXISTS requests_exp ON requests (experiment, arm, ts_ms) WHERE experiment IS NOT NULL;
CREATE INDEX IF NOT EXISTS requests_rid ON requests (request_id);
CREATE INDEX IF NOT EXISTS requests_pair ON requests (pair_id) WHERE pair_id IS NOT NULL;
CREATE TABLE IF NOT EXISTS experiments (
    name text PRIMARY KEY,
    weight double precision NOT NULL,
    state text NOT NULL,
    reason text NOT NULL DEFAULT '',
    updated_ms bigint NOT NULL,
    criteria text NOT NULL DEFAULT '{}'
);
CREATE TABLE IF NOT EXISTS events (
    id bigserial PRIMARY KEY,
    ts_ms bigint NOT NULL,
    experiment text NOT NULL,
    action text NOT NULL,
    weight double precision,
    reason text NOT NULL DEFAULT '',
    worker integer NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS events_once ON events (ts_ms, experiment, action, worker);
CREATE TABLE IF NOT EXISTS feedback (
    id bigserial PRIMARY KEY,
    ts_ms bigint NOT NULL,
    request_id text NOT NULL,
    tenant text,
    score double precision NOT NULL,
    outcome text NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS feedback_rid ON feedback (request_id);
CREATE TABLE IF NOT EXISTS judge_spend (
    id bigserial PRIMARY KEY,
    ts_ms bigint NOT NULL,
    experiment text NOT NULL,
    request_id text NOT NULL,
    cost_usd double precision NOT NULL
);
CREATE TABLE IF NOT EXISTS meta (key text PRIMARY KEY, value text NOT NULL);
INSERT INTO meta VALUES ('schema', '1') ON CONFLICT DO NOTHING;
"""

COPY = f"COPY requests ({', '.join(COLUMNS)}) FROM STDIN"
FEEDBACK = "INSERT INTO feedback (ts_ms, request_id, tenant, score, outcome) VALUES (%s, %s, %s, %s, %s)"


def partition_name(day: int) -> str:
    """``requests_p20261207`` for the UTC day ``day`` (days since the epoch)."""
    return "requests_p" + (dt.date(1970, 1, 1) + dt.timedelta(days=day)).strftime("%Y%m%d")


def create(conn: psycopg.Connection[tuple[object, ...]]) -> None:
    """The schema, if missing (safe in several replicas at once)."""
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK_KEY,))
        conn.execute(SCHEMA)


def existing_days(conn: psycopg.Connection[tuple[object, ...]]) -> set[int]:
    """The days that have a partition."""
    rows = conn.execute("SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
                        " JOIN pg_class p ON p.oid = i.inhparent WHERE p.relname = 'requests'").fetchall()
    days = set()
    for (name,) in rows:
        try:
            day = dt.datetime.strptime(str(name).removeprefix("requests_p"), "%Y%m%d").date()
        except ValueError:
            continue  # a partition someone else added: not ours to manage
        days.add((day - dt.date(1970, 1, 1)).days)
    return days


def add_partitions(conn: psycopg.Connection[tuple[object, ...]], days: Iterable[int]) -> None:
    """A partition for each of ``days`` that has none."""
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK_KEY,))
        for day in sorted(days):
            conn.execute(f"CREATE TABLE IF NOT EXISTS {partition_name(day)} PARTITION OF requests"
                         f" FOR VALUES FROM ({day * DAY_MS}) TO ({(day + 1) * DAY_MS})")


def drop_before(conn: psycopg.Connection[tuple[object, ...]], oldest_ms: int) -> list[int]:
    """Drop every partition whose whole day is older than ``oldest_ms``; the days dropped."""
    gone = sorted(d for d in existing_days(conn) if (d + 1) * DAY_MS <= oldest_ms)
    if gone:
        with conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK_KEY,))
            for day in gone:
                conn.execute(f"DROP TABLE IF EXISTS {partition_name(day)}")
    return gone


def _copy_row(row: Sequence[object]) -> list[object]:
    out = [None if v is NULL else v for v in row]
    for i in _BODY_COLUMNS:  # PostgreSQL text cannot hold NUL; a body is a record for people, not bytes
        v = out[i]
        if isinstance(v, str) and "\x00" in v:
            out[i] = v.replace("\x00", "\ufffd")
    return out


def write(conn: psycopg.Connection[tuple[object, ...]], rows: Sequence[Sequence[object]],
          feedback: Sequence[Sequence[object]] = ()) -> None:
    """One batch of requests rows (``logdb.COLUMNS`` order, ``logdb.NULL`` for NULL) and feedback rows
    (ts_ms, request_id, tenant, score, outcome), in one transaction through ``COPY``."""
    with conn.transaction(), conn.cursor() as cur:
        with cur.copy(COPY) as copy:
            for row in rows:
                copy.write_row(_copy_row(row))
        if feedback:
            cur.executemany(FEEDBACK, [[None if v is NULL else v for v in f] for f in feedback])


def mirror(conn: psycopg.Connection[tuple[object, ...]], experiments: Mapping[str, ExperimentRow],
           events: Sequence[Mapping[str, object]], criteria: Mapping[str, str]) -> None:
    """Copy the shared state's experiment records and events beside the requests, so ``loadbench ab``
    on this log sees states, trip reasons and criteria: a record replaces an older version only
    (``updated_ms``); the criteria are the first ones stored; an event is stored once."""
    with conn.transaction(), conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO experiments (name, weight, state, reason, updated_ms, criteria)"
            " VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (name) DO UPDATE SET weight = excluded.weight,"
            " state = excluded.state, reason = excluded.reason, updated_ms = excluded.updated_ms"
            " WHERE experiments.updated_ms < excluded.updated_ms",
            [(r.name, r.weight, r.state, r.reason, r.updated_ms, criteria.get(r.name, "{}"))
             for r in experiments.values()])
        cur.executemany(
            "INSERT INTO events (ts_ms, experiment, action, weight, reason, worker) VALUES (%s, %s, %s, %s, %s, %s)"
            " ON CONFLICT DO NOTHING",
            [(e["ts_ms"], e["experiment"], e["action"], e["weight"], e["reason"], e["worker"]) for e in events])


def record_feedback(conn: psycopg.Connection[tuple[object, ...]], now_ms: int, request_id: str,
                    tenant: str | None, score: float, outcome: str) -> tuple[object, ...] | None:
    """Store feedback if ``request_id`` is a primary request of ``tenant``: that request's (experiment, arm,
    ts_ms); None when there is no such request (yet)."""
    with conn.transaction():
        found = conn.execute("SELECT experiment, arm, ts_ms FROM requests WHERE request_id = %s"
                             " AND tenant IS NOT DISTINCT FROM %s AND role = 'primary' LIMIT 1",
                             (request_id, tenant)).fetchone()
        if found is None:
            return None
        conn.execute(FEEDBACK, (now_ms, request_id, tenant, score, outcome))
    return found


def judge_record(conn: psycopg.Connection[tuple[object, ...]], now_ms: int, experiment: str, request_id: str,
                 tenant: str | None, score: float | None, cost_usd: float) -> None:
    """A sampled judge grade (a feedback row, outcome 'judge') and its spend, in one transaction (as
    ``logdb.judge_record``)."""
    with conn.transaction():
        if score is not None:
            conn.execute(FEEDBACK, (now_ms, request_id, tenant, score, "judge"))
        conn.execute("INSERT INTO judge_spend (ts_ms, experiment, request_id, cost_usd) VALUES (%s, %s, %s, %s)",
                     (now_ms, experiment, request_id, cost_usd))
