"""What one replica knows of the shared experiments while the shared store is away: its own window of
each arm's requests, the last records it read, and the trips it made meanwhile. Pure (the clock is the
caller's); one lock, because the writer thread adds rows while the poller reads.

A networked backend (``redisstate.py``) feeds it every row it observes and reads it only when the store
does not answer, so the guardrails still trip on this replica's own traffic. A trip made here is kept
with the record's version it was decided on and written back when the store returns, only if that
version is still the current one: the durable record wins over anything decided in the dark.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, replace

from loadbench.gateway.experiments import WindowStats
from loadbench.gateway.logdb import COLUMNS, NULL, ExperimentRow

ROWS_KEPT = 20_000  # per arm: the SQLite window reads at most this many too
_TS, _EXP, _ARM, _STATUS, _OUTCOME, _TTFT, _E2E, _ROLE = (
    COLUMNS.index(c) for c in ("ts_ms", "experiment", "arm", "status", "outcome", "ttft_ms", "e2e_ms", "role"))


def arm_rows(rows: Sequence[tuple[object, ...]]) -> list[tuple[str, str, int, int, str, float | None, float | None]]:
    """(experiment, arm, ts_ms, status, outcome, ttft_ms, e2e_ms) of the primary requests of an experiment
    among a batch of the request log's rows (``logdb.COLUMNS`` order)."""
    out = []
    for r in rows:
        exp = r[_EXP]
        if exp is NULL or exp is None or r[_ROLE] != "primary":
            continue
        ttft, e2e = r[_TTFT], r[_E2E]
        out.append((str(exp), str(r[_ARM]), int(r[_TS]), int(r[_STATUS]), str(r[_OUTCOME]),  # type: ignore[call-overload]
                    _number(ttft), _number(e2e)))
    return out


def _number(x: object) -> float | None:
    return None if x is NULL or x is None else float(x)  # type: ignore[arg-type]


@dataclass(frozen=True, slots=True)
class PendingChange:
    """A trip decided while the store was away, and the record version it was decided on."""

    name: str
    reason: str
    now_ms: int
    worker: int
    base_version: int


class LocalView:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._windows: dict[tuple[str, str], deque[tuple[int, int, str, float | None, float | None]]] = {}
        self.rows: dict[str, ExperimentRow] = {}  # the last records read from the store
        self.versions: dict[str, int] = {}
        self.pending: dict[str, PendingChange] = {}

    def add(self, rows: Sequence[tuple[object, ...]]) -> None:
        with self._lock:
            for exp, arm, ts_ms, status, outcome, ttft, e2e in arm_rows(rows):
                kept = self._windows.get((exp, arm))
                if kept is None:
                    kept = self._windows[(exp, arm)] = deque(maxlen=ROWS_KEPT)
                kept.append((ts_ms, status, outcome, ttft, e2e))

    def window(self, experiment: str, arm: str, since_ms: int) -> WindowStats:
        with self._lock:
            kept = list(self._windows.get((experiment, arm), ()))
        return WindowStats.of([(s, o, t, e, None) for ts, s, o, t, e in kept if ts >= since_ms])

    def remember(self, rows: dict[str, ExperimentRow], versions: dict[str, int]) -> None:
        """The records just read; one the store no longer has is kept (it lost it: a restart without
        persistence), so that it can be put back as it was."""
        with self._lock:
            self.rows, self.versions = {**self.rows, **rows}, {**self.versions, **versions}

    def trip(self, name: str, reason: str, now_ms: int, worker: int) -> bool:
        """A guardrail trip while the store is away: False when the record is unknown or not running."""
        with self._lock:
            row = self.rows.get(name)
            if row is None or row.state != "running" or name in self.pending:
                return False
            self.pending[name] = PendingChange(name, reason, now_ms, worker, self.versions.get(name, 0))
            return True

    def view(self) -> dict[str, ExperimentRow]:
        """The last records read, with this replica's pending trips applied."""
        with self._lock:
            rows = dict(self.rows)
            for p in self.pending.values():
                row = rows.get(p.name)
                if row is not None:
                    rows[p.name] = replace(row, weight=0.0, state="rolled_back", reason=p.reason, updated_ms=p.now_ms)
            return rows

    def take_pending(self) -> list[PendingChange]:
        with self._lock:
            pending, self.pending = list(self.pending.values()), {}
            return pending

    def keep_pending(self, changes: Sequence[PendingChange]) -> None:
        """Changes taken but not written (the store went away again): kept for the next return."""
        with self._lock:
            for p in changes:
                self.pending.setdefault(p.name, p)
