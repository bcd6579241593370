"""The request log's SQLite file: schema, connection settings and every statement on it.

One file per gateway, opened by each ``--workers`` process (WAL: readers never block the writer, and
writers of different processes take turns through ``busy_timeout``). docs/ab.md documents the schema.
No function here runs on the event loop's thread except at startup and in the admin API's executor.
"""

from __future__ import annotations

import math
import sqlite3
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from itertools import chain

SCHEMA_VERSION = 1
BUSY_TIMEOUT_MS = 5000
CREATE_TRIES = 100
CREATE_PAUSE_S = 0.05

# A requests row's "no value": SQLite stores a NaN double as NULL. Python 3.11's sqlite3 binds None
# only after an adapter lookup that raises and clears two AttributeErrors (about 0.25 us per None, a
# dozen per row), a float binds directly. Readers get None back, as for any NULL.
NULL = math.nan


def value(x: object) -> object:
    """A row's value as Python reads it back (None for NULL)."""
    return None if x is NULL else x

COLUMNS = (
    "ts_ms", "request_id", "worker", "model", "experiment", "arm", "target", "status", "outcome", "cache",
    "ttft_ms", "tpot_ms", "e2e_ms", "prompt_tokens", "output_tokens", "cached_tokens", "cost_usd", "attempts",
    "metadata", "tenant", "pair_id", "role", "request_body", "response_body",
)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS requests (
    id INTEGER PRIMARY KEY,
    ts_ms INTEGER NOT NULL,          -- arrival at the gateway, Unix milliseconds
    request_id TEXT NOT NULL,        -- the x-request-id the client received
    worker INTEGER NOT NULL,         -- process id of the gateway worker
    model TEXT,                      -- the virtual model asked for
    experiment TEXT, arm TEXT,       -- arm: incumbent | candidate
    target TEXT,                     -- the target that answered ('' when none did)
    status INTEGER NOT NULL,         -- HTTP status sent to the client (499: the client went away)
    outcome TEXT NOT NULL,           -- loadbench.outcomes.LOG_OUTCOMES (older logs: stream_break = stream_cut)
    cache TEXT,                      -- hit-exact | hit-semantic | miss | bypass | NULL (no cache)
    ttft_ms REAL, tpot_ms REAL, e2e_ms REAL,   -- from arrival at the gateway
    prompt_tokens INTEGER, output_tokens INTEGER, cached_tokens INTEGER,
    cost_usd REAL,                   -- NULL without a price for the target
    attempts INTEGER NOT NULL,
    metadata TEXT,                   -- X-Loadbench-Metadata, JSON
    tenant TEXT,                     -- sha256 hex of the presented key (never the key)
    pair_id TEXT, role TEXT NOT NULL DEFAULT 'primary',
    request_body TEXT, response_body TEXT     -- only as log_bodies asks, redacted
);
CREATE INDEX IF NOT EXISTS requests_ts ON requests(ts_ms);
CREATE INDEX IF NOT EXISTS requests_exp ON requests(experiment, arm, ts_ms) WHERE experiment IS NOT NULL;
CREATE INDEX IF NOT EXISTS requests_rid ON requests(request_id);
CREATE TABLE IF NOT EXISTS experiments (
    name TEXT PRIMARY KEY,
    weight REAL NOT NULL,            -- percent of traffic to the candidate while running
    state TEXT NOT NULL,             -- running | paused | promoted | rolled_back
    reason TEXT NOT NULL DEFAULT '',
    updated_ms INTEGER NOT NULL,
    criteria TEXT NOT NULL DEFAULT '{}'   -- the pre-registered success criteria (JSON), fixed at the start
);
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY,
    ts_ms INTEGER NOT NULL,
    experiment TEXT NOT NULL,
    action TEXT NOT NULL,            -- start | promote | rollback | pause | resume | set_weight | trip
    weight REAL,
    reason TEXT NOT NULL DEFAULT '',
    worker INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS feedback (
    id INTEGER PRIMARY KEY,
    ts_ms INTEGER NOT NULL,
    request_id TEXT NOT NULL,        -- a request of the same tenant
    tenant TEXT,
    score REAL NOT NULL,             -- in [0, 1]; accepted: true is 1, false is 0
    outcome TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS feedback_rid ON feedback(request_id);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS judge_spend (
    id INTEGER PRIMARY KEY,
    ts_ms INTEGER NOT NULL,
    experiment TEXT NOT NULL,
    request_id TEXT NOT NULL,        -- the graded request
    cost_usd REAL NOT NULL           -- the judge call's cost (its own price), never booked on an arm
);
"""

INSERT = f"INSERT INTO requests ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * len(COLUMNS))})"
# A batch is inserted by statements of this many rows each (largest first), not one statement per row:
# sqlite3 releases and retakes the GIL around every statement's step (on the gateway's one core, a
# chance for the event loop's thread to take it in between) and pays its per-statement overhead once
# per row under executemany. bench/requestlog_bench.py --writer, 100-row batches: 5.25 -> 4.39 us a
# row on the writer's thread. Sizes are powers of four so a batch takes at most three statements of
# each smaller size; 64 rows bind 1,536 values, within SQLite's default limit (32,766 since 3.32).
CHUNK_ROWS = (64, 16, 4, 1)
_ROW = f"({', '.join('?' * len(COLUMNS))})"
_INSERTS = {n: f"INSERT INTO requests ({', '.join(COLUMNS)}) VALUES {', '.join([_ROW] * n)}" for n in CHUNK_ROWS}


def connect(path: str) -> sqlite3.Connection:
    conn = sqlite3.connect(path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None, check_same_thread=False)
    conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
    # NORMAL in WAL (a setting of each connection, not of the file): a committed batch survives a crash
    # of the process, not of the machine's power, and a commit does not wait on fsync
    conn.execute("PRAGMA synchronous=NORMAL")
    return conn


def create(path: str) -> sqlite3.Connection:
    """Open the file, switch it to WAL and create what is missing (safe in several processes at once)."""
    conn = connect(path)
    # Switching to WAL does not wait on the busy handler: workers starting together retry it.
    for attempt in range(CREATE_TRIES):
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            break
        except sqlite3.OperationalError:
            if attempt + 1 == CREATE_TRIES:
                raise
            time.sleep(CREATE_PAUSE_S)
    conn.executescript(_SCHEMA)
    conn.execute("INSERT OR IGNORE INTO meta VALUES ('schema', ?)", (str(SCHEMA_VERSION),))
    return conn


def write(conn: sqlite3.Connection, rows: Sequence[tuple[object, ...]],
          feedback: Sequence[tuple[object, ...]] = ()) -> None:
    """One batch of requests rows (and feedback rows: ts_ms, request_id, tenant, score, outcome)."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        insert_rows(conn, rows)
        if feedback:
            conn.executemany("INSERT INTO feedback (ts_ms, request_id, tenant, score, outcome) VALUES (?, ?, ?, ?, ?)",
                             feedback)
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def insert_rows(conn: sqlite3.Connection, rows: Sequence[tuple[object, ...]]) -> None:
    """``rows`` into requests, in the caller's transaction, ``CHUNK_ROWS`` rows per statement."""
    start, count = 0, len(rows)
    for size in CHUNK_ROWS:
        sql = _INSERTS[size]
        while count - start >= size:
            conn.execute(sql, list(chain.from_iterable(rows[start:start + size])))
            start += size


def judge_record(conn: sqlite3.Connection, now_ms: int, experiment: str, request_id: str, tenant: str | None,
                 score: float | None, cost_usd: float) -> None:
    """A sampled judge grade (a feedback row, outcome 'judge') and its spend, in one transaction."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        if score is not None:
            conn.execute("INSERT INTO feedback (ts_ms, request_id, tenant, score, outcome)"
                         " VALUES (?, ?, ?, ?, 'judge')", (now_ms, request_id, tenant, score))
        conn.execute("INSERT INTO judge_spend (ts_ms, experiment, request_id, cost_usd) VALUES (?, ?, ?, ?)",
                     (now_ms, experiment, request_id, cost_usd))
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def judge_spend(conn: sqlite3.Connection, experiment: str, since_ms: int | None = None) -> tuple[int, float]:
    """(judge calls, judge spend) of an experiment since ``since_ms`` (0, 0.0 in a log without the table)."""
    try:
        n, spend = conn.execute("SELECT COUNT(*), COALESCE(SUM(cost_usd), 0) FROM judge_spend WHERE experiment = ?"
                                " AND ts_ms >= ?", (experiment, since_ms or 0)).fetchone()
    except sqlite3.OperationalError:
        return 0, 0.0
    return int(n), float(spend)


def prune(conn: sqlite3.Connection, oldest_ms: int | None, max_rows: int | None) -> int:
    """Delete rows older than ``oldest_ms`` and beyond the newest ``max_rows``; rows deleted."""
    deleted = 0
    if oldest_ms is not None:
        deleted += conn.execute("DELETE FROM requests WHERE ts_ms < ?", (oldest_ms,)).rowcount
    if max_rows is not None:
        deleted += conn.execute("DELETE FROM requests WHERE id <= (SELECT MAX(id) FROM requests) - ?",
                                (max_rows,)).rowcount
    return deleted


@dataclass(frozen=True, slots=True)
class ExperimentRow:
    name: str
    weight: float
    state: str
    reason: str
    updated_ms: int

    def to_json(self) -> dict[str, object]:
        return {"name": self.name, "weight": self.weight, "state": self.state, "reason": self.reason,
                "updated_ms": self.updated_ms}


def register(conn: sqlite3.Connection, start: Iterable[tuple[str, float, str]], now_ms: int, worker: int) -> None:
    """Experiments seen for the first time start running at their configured weight, and their success
    criteria (JSON) are stored once: later edits of the config cannot move the goalposts of a running
    test. Known ones keep their persisted state (a restart never undoes a rollback or a promotion)."""
    for name, weight, criteria in start:
        added = conn.execute("INSERT OR IGNORE INTO experiments VALUES (?, ?, 'running', '', ?, ?)",
                             (name, weight, now_ms, criteria)).rowcount
        if added:
            event(conn, now_ms, name, "start", weight, "", worker)


def experiments(conn: sqlite3.Connection) -> dict[str, ExperimentRow]:
    rows = conn.execute("SELECT name, weight, state, reason, updated_ms FROM experiments").fetchall()
    return {r[0]: ExperimentRow(*r) for r in rows}


def event(conn: sqlite3.Connection, now_ms: int, name: str, action: str, weight: float | None, reason: str,
          worker: int) -> None:
    conn.execute("INSERT INTO events (ts_ms, experiment, action, weight, reason, worker) VALUES (?, ?, ?, ?, ?, ?)",
                 (now_ms, name, action, weight, reason, worker))


# An admin action or a trip: the state it leads to, and the weight it sets (None: unchanged). Every state
# backend applies these (``change`` here, ``RedisState.change_experiment``).
TRANSITIONS: dict[str, tuple[str, float | None]] = {
    "promote": ("promoted", None), "rollback": ("rolled_back", 0.0), "trip": ("rolled_back", 0.0),
    "pause": ("paused", None), "resume": ("running", None), "set_weight": ("running", None)}


def transition(action: str, weight: float | None) -> tuple[str, float | None]:
    """(the state ``action`` leads to, the weight it sets or None to keep it); ``weight`` is set_weight's."""
    state, new_weight = TRANSITIONS[action]
    return state, weight if action == "set_weight" else new_weight


def change(conn: sqlite3.Connection, name: str, action: str, weight: float | None, reason: str, now_ms: int,
           worker: int) -> bool:
    """Apply an admin action or a trip; False when the experiment is unknown (or, for a trip, no
    longer running: another worker tripped it first)."""
    state, new_weight = transition(action, weight)
    sets = "state = ?, reason = ?, updated_ms = ?" + (", weight = ?" if new_weight is not None else "")
    params: list[object] = [state, reason, now_ms] + ([new_weight] if new_weight is not None else [])
    where = " AND state = 'running'" if action == "trip" else ""
    conn.execute("BEGIN IMMEDIATE")
    try:
        changed = conn.execute(f"UPDATE experiments SET {sets} WHERE name = ?{where}", (*params, name)).rowcount
        if changed:
            event(conn, now_ms, name, action, new_weight, reason, worker)
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")
    return bool(changed)


def events(conn: sqlite3.Connection, limit: int = 100) -> list[dict[str, object]]:
    rows = conn.execute("SELECT ts_ms, experiment, action, weight, reason, worker FROM events ORDER BY id DESC LIMIT ?",
                        (limit,)).fetchall()
    return [dict(zip(("ts_ms", "experiment", "action", "weight", "reason", "worker"), r, strict=True))
            for r in rows]


def window(conn: sqlite3.Connection, name: str, arm: str, since_ms: int,
           limit: int = 20_000) -> list[tuple[int, str, float | None, float | None, float | None]]:
    """(status, outcome, ttft_ms, e2e_ms, latest feedback score of the request's tenant) of an arm's
    primary requests since ``since_ms``, newest first."""
    return conn.execute(
        "SELECT r.status, r.outcome, r.ttft_ms, r.e2e_ms, (SELECT f.score FROM feedback f WHERE"
        " f.request_id = r.request_id AND f.tenant IS r.tenant ORDER BY f.id DESC LIMIT 1)"
        " FROM requests r WHERE r.experiment = ? AND r.arm = ? AND r.ts_ms >= ? AND r.role = 'primary'"
        " ORDER BY r.id DESC LIMIT ?", (name, arm, since_ms, limit)).fetchall()


def shadow_spend(conn: sqlite3.Connection, since_ms: int) -> float:
    """Spend of shadow requests since ``since_ms`` (all workers)."""
    row = conn.execute("SELECT COALESCE(SUM(cost_usd), 0) FROM requests WHERE role = 'shadow' AND ts_ms >= ?",
                       (since_ms,)).fetchone()
    return float(row[0])


def target_stats(conn: sqlite3.Connection, model: str, target: str,
                 window: int) -> tuple[int, float | None, int, float]:
    """Over the newest ``window`` served requests of ``target`` behind ``model``: (requests, mean cost_usd,
    feedback count, feedback score sum), feedback of each request's own tenant only."""
    # an escalated answer (it failed the inline check) costs its own price plus the retry that served
    # the request, and counts as a quality score of 0
    n, cost, failed = conn.execute(
        "SELECT COUNT(*), AVG(r.cost_usd + CASE WHEN r.role = 'escalated' THEN COALESCE((SELECT p.cost_usd"
        " FROM requests p WHERE p.request_id = r.pair_id AND p.role = 'primary'), 0) ELSE 0 END),"
        " COALESCE(SUM(r.role = 'escalated'), 0) FROM (SELECT cost_usd, role, pair_id FROM requests"
        " WHERE model = ? AND target = ? AND role IN ('primary', 'escalated') ORDER BY id DESC LIMIT ?) r",
        (model, target, window)).fetchone()
    fb_n, fb_sum = conn.execute(
        "SELECT COUNT(f.score), COALESCE(SUM(f.score), 0) FROM (SELECT request_id, tenant FROM requests"
        " WHERE model = ? AND target = ? AND role = 'primary' ORDER BY id DESC LIMIT ?) r"
        " JOIN feedback f ON f.request_id = r.request_id AND f.tenant IS r.tenant", (model, target, window)).fetchone()
    return int(n), (float(cost) if cost is not None else None), int(fb_n) + int(failed), float(fb_sum)
