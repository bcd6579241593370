"""The state a gateway's processes share, behind one interface: ``SharedState``, and its SQLite backend.

What is shared (docs/ARCHITECTURE.md, "State: per process and shared", says how fresh each reader is):
experiment records (weight, state, reason; ``updated_ms`` orders their versions) and their events, the
guardrail's window over a candidate's requests (all processes' requests and their ratings counted
together), the day's shadow and judge spend (one figure for the gateway, not one per process), the live
cost and feedback figures cost routing reads, and target cooldowns.

``SqliteState`` keeps today's behaviour on one host: everything lives in the request log's file, which
every ``--workers`` process opens; window and spend figures are read from the logged rows themselves.
Cooldowns stay per process there (``publish_cooldown`` keeps nothing and ``cooldowns`` is empty). A
networked backend implements the same methods; nothing that reads shared state (the policies, the
guardrails, the judges, the shadows, the admin API) names a backend.

Every method may block (disk, network): none is called on the event loop's thread, except at start-up
before the first request. A backend that cannot answer raises ``StateUnavailable``; callers keep their
current view and try again at their next turn.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from typing import Protocol

from loadbench.errors import LoadbenchError
from loadbench.gateway import logdb
from loadbench.gateway.abconfig import ExperimentSpec
from loadbench.gateway.costroute import LiveStats
from loadbench.gateway.experiments import WindowStats, registrations
from loadbench.gateway.logdb import ExperimentRow


class StateUnavailable(LoadbenchError):
    """The shared state's backend did not answer (busy, down, refused); the caller's view stays as it was."""


@dataclass(frozen=True, slots=True)
class Rating:
    """A quality score given to one of an arm's primary requests (feedback, a judge's grade, an inline
    check): what ``min_quality`` judges over the requests of its window. A later rating of the same
    request replaces the earlier one, as the newest feedback row does in the log."""

    experiment: str
    arm: str
    request_ts_ms: int  # the request's, which places it in the window (not the rating's)
    request_id: str
    score: float


def inline_ratings(rows: Sequence[tuple[object, ...]], feedback: Sequence[tuple[object, ...]]) -> list[Rating]:
    """The ratings among one log batch's feedback rows (``ts_ms, request_id, tenant, score, outcome``) of the
    batch's own requests (``logdb.COLUMNS`` order): the inline checks' scores."""
    if not feedback:
        return []
    by_id = {r[_ID]: r for r in rows if r[_EXP] is not logdb.NULL and r[_ARM] is not logdb.NULL}
    found = []
    for f in feedback:
        row = by_id.get(f[1])
        if row is not None and isinstance(f[3], int | float):
            found.append(Rating(str(row[_EXP]), str(row[_ARM]), int(row[_TS]), str(f[1]),  # type: ignore[call-overload]
                                float(f[3])))
    return found


def rate_quietly(shared: SharedState, ratings: Sequence[Rating]) -> None:
    """``shared.rate`` where a failure costs nothing else: the scores are in the log already; with the state
    away only its shared window misses them (docs/deploy.md)."""
    if ratings:
        with suppress(StateUnavailable):
            shared.rate(ratings)


_ID, _EXP, _ARM, _TS = (logdb.COLUMNS.index(c) for c in ("request_id", "experiment", "arm", "ts_ms"))


class SharedState(Protocol):
    # ------------------------------------------------------------------ experiments
    def register_experiments(self, specs: Iterable[ExperimentSpec], now_ms: int, worker: int) -> None:
        """Start the experiments seen for the first time (running, at their weight, criteria stored once);
        known ones keep their state: a restart never undoes a rollback or a promotion."""

    def experiments(self) -> dict[str, ExperimentRow]:
        """Every experiment's current record, by name."""

    def change_experiment(self, name: str, action: str, weight: float | None, reason: str, now_ms: int,
                          worker: int) -> bool:
        """An admin action or a guardrail trip (``logdb.change``'s actions); False when the experiment is
        unknown or, for a trip, no longer running (another process tripped it first)."""

    def experiment_events(self, limit: int = 100) -> list[dict[str, object]]:
        """The newest experiment events (start, trip, admin actions), newest first."""

    # ------------------------------------------------------------------ guardrails and budgets: the input
    def observe(self, rows: Sequence[tuple[object, ...]]) -> None:
        """One batch of the request log's rows (``logdb.COLUMNS`` order, ``logdb.NULL`` for NULL), on the
        log's writer thread (a listener of ``events.log_batch``): a backend that keeps window counts and
        spend apart from the log adds them up here."""

    def rate(self, ratings: Sequence[Rating]) -> None:
        """Quality scores where they arrive (``POST /v1/feedback``, a judge's grade, a batch's inline checks):
        a backend that keeps the window apart from the log counts them for ``min_quality`` here."""

    # ------------------------------------------------------------------ guardrails
    def window(self, experiment: str, arm: str, since_ms: int) -> WindowStats:
        """An arm's primary requests since ``since_ms``, counted over every process of the gateway."""

    # ------------------------------------------------------------------ budgets
    def shadow_spend_usd(self, since_ms: int) -> float:
        """Shadow spend since ``since_ms``, all processes."""

    def judge_spend_usd(self, experiment: str, since_ms: int) -> float:
        """An experiment's judge spend since ``since_ms``, all processes."""

    def add_judge_grade(self, now_ms: int, experiment: str, request_id: str, tenant: str | None,
                        score: float | None, cost_usd: float, since_ms: int) -> float:
        """Record a sampled grade (a feedback row when ``score`` is not None) and its cost; the experiment's
        judge spend since ``since_ms`` afterwards, all processes."""

    # ------------------------------------------------------------------ cost routing
    def target_stats(self, model: str, target: str, window_requests: int) -> LiveStats:
        """Over ``target``'s newest ``window_requests`` served requests behind ``model``: count, mean cost,
        feedback count and sum."""

    # ------------------------------------------------------------------ health
    def publish_cooldown(self, target: str, until_ms: int, reason: str) -> None:
        """Tell the other processes that ``target`` is cooled down until ``until_ms`` (Unix ms)."""

    def cooldowns(self, now_ms: int) -> dict[str, int]:
        """Targets cooled down by any process and not yet back: name -> until (Unix ms)."""

    def close(self) -> None:
        """Release connections (the state itself stays for the other processes)."""


@contextmanager
def _unavailable(what: str) -> Iterator[None]:
    """A SQLite error inside the block is the shared state's ``StateUnavailable``, saying what failed."""
    try:
        yield
    except sqlite3.Error as exc:
        raise StateUnavailable(f"{what}: {exc}") from exc


class SqliteState:
    """``SharedState`` in the request log's SQLite file (WAL: readers never block the writer). One
    connection per thread that asks (the poller, the admin API's executor, the judges' writes)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._local = threading.local()
        self._lock = threading.Lock()
        self._conns: list[sqlite3.Connection] = []

    def _conn(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            with _unavailable(f"shared state {self.path}"):
                conn = logdb.connect(self.path)
            self._local.conn = conn
            with self._lock:
                self._conns.append(conn)
        return conn

    def register_experiments(self, specs: Iterable[ExperimentSpec], now_ms: int, worker: int) -> None:
        with _unavailable("registering experiments"):
            logdb.register(self._conn(), registrations(specs), now_ms, worker)

    def experiments(self) -> dict[str, ExperimentRow]:
        with _unavailable("reading experiments"):
            return logdb.experiments(self._conn())

    def change_experiment(self, name: str, action: str, weight: float | None, reason: str, now_ms: int,
                          worker: int) -> bool:
        with _unavailable(f"changing experiment {name}"):
            return logdb.change(self._conn(), name, action, weight, reason, now_ms, worker)

    def experiment_events(self, limit: int = 100) -> list[dict[str, object]]:
        with _unavailable("reading experiment events"):
            return logdb.events(self._conn(), limit)

    def observe(self, rows: Sequence[tuple[object, ...]]) -> None:
        return None  # the rows, once committed, are this backend's window and spend

    def rate(self, ratings: Sequence[Rating]) -> None:
        return None  # the feedback rows, once committed, are this backend's quality window

    def window(self, experiment: str, arm: str, since_ms: int) -> WindowStats:
        with _unavailable(f"reading the window of {experiment}"):
            return WindowStats.of(logdb.window(self._conn(), experiment, arm, since_ms))

    def shadow_spend_usd(self, since_ms: int) -> float:
        with _unavailable("reading shadow spend"):
            return logdb.shadow_spend(self._conn(), since_ms)

    def judge_spend_usd(self, experiment: str, since_ms: int) -> float:
        with _unavailable("reading judge spend"):
            return logdb.judge_spend(self._conn(), experiment, since_ms)[1]

    def add_judge_grade(self, now_ms: int, experiment: str, request_id: str, tenant: str | None,
                        score: float | None, cost_usd: float, since_ms: int) -> float:
        with _unavailable("recording a judge grade"):
            conn = self._conn()
            logdb.judge_record(conn, now_ms, experiment, request_id, tenant, score, cost_usd)
            return logdb.judge_spend(conn, experiment, since_ms)[1]

    def target_stats(self, model: str, target: str, window_requests: int) -> LiveStats:
        with _unavailable(f"reading live stats of {target}"):
            n, cost, fb_n, fb_sum = logdb.target_stats(self._conn(), model, target, window_requests)
        return LiveStats(n, cost, fb_n, fb_sum)

    def publish_cooldown(self, target: str, until_ms: int, reason: str) -> None:
        return None  # one host: each process keeps its own health (as before there was an interface)

    def cooldowns(self, now_ms: int) -> dict[str, int]:
        return {}

    def close(self) -> None:
        with self._lock:
            conns, self._conns = self._conns, []
        for conn in conns:
            conn.close()

