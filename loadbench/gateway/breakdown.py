"""Requests, errors, TTFT and cost by metadata value (``request_log.metrics_by``), for /metrics.

Counted on the request log's writer thread from the rows it writes (cost is known only there; a
listener of ``events.log_batch``) and read by /metrics under one lock. Cardinality is bounded: each
key keeps its first ``values_max`` distinct values, later ones are counted as ``other``.
"""

from __future__ import annotations

import threading
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from loadbench.gateway import logdb
from loadbench.gateway.logrecord import LogRecord

OTHER = "other"


@dataclass(slots=True)
class Cell:
    requests: int = 0
    errors: int = 0
    ttft_sum_s: float = 0.0
    ttft_count: int = 0
    cost_usd: float = 0.0


class Breakdown:
    def __init__(self, keys: Iterable[str], values_max: int) -> None:
        self.keys = tuple(keys)
        self.values_max = values_max
        self.cells: dict[tuple[str, str, str], Cell] = defaultdict(Cell)  # (model, key, value)
        self.seen: dict[str, set[str]] = {k: set() for k in self.keys}
        self.lock = threading.Lock()

    def value(self, key: str, raw: str) -> str:
        seen = self.seen[key]
        if raw in seen:
            return raw
        if len(seen) < self.values_max:
            seen.add(raw)
            return raw
        return OTHER

    def count(self, model: str, metadata: Mapping[str, str], ok: bool, ttft_ms: float | None,
              cost_usd: float | None) -> None:
        """Called by the writer thread with the lock held (``with breakdown.lock``)."""
        for key in self.keys:
            raw = metadata.get(key)
            if raw is None:
                continue
            cell = self.cells[(model, key, self.value(key, raw))]
            cell.requests += 1
            cell.errors += not ok
            if ttft_ms is not None:
                cell.ttft_sum_s += ttft_ms / 1000
                cell.ttft_count += 1
            if cost_usd is not None:
                cell.cost_usd += cost_usd

    def on_batch(self, records: Sequence[LogRecord], rows: Sequence[tuple[object, ...]],
                 feedback: list[tuple[object, ...]]) -> None:
        """A listener of ``events.log_batch``: each primary request's row, counted."""
        with self.lock:
            for record, row in zip(records, rows, strict=True):
                model = record.model
                if model is not None and record.role == "primary":
                    ttft, cost = logdb.value(row[10]), logdb.value(row[16])
                    self.count(model, record.metadata or {}, row[8] == "ok",
                               ttft if isinstance(ttft, float) else None, cost if isinstance(cost, float) else None)

    def render(self, worker: str) -> list[str]:
        if not self.keys:
            return []
        with self.lock:
            cells = sorted((k, Cell(c.requests, c.errors, c.ttft_sum_s, c.ttft_count, c.cost_usd))
                           for k, c in self.cells.items())
        lines: list[str] = []
        for metric, kind, help_text, get in (
                ("requests_by_metadata_total", "counter", "Requests by metadata value", lambda c: c.requests),
                ("errors_by_metadata_total", "counter", "Requests not ok by metadata value", lambda c: c.errors),
                ("cost_usd_by_metadata_total", "counter", "Spend by metadata value", lambda c: c.cost_usd),
                ("ttft_by_metadata_seconds_sum", "counter", "Sum of TTFT by metadata value", lambda c: c.ttft_sum_s),
                ("ttft_by_metadata_seconds_count", "counter", "Requests with a TTFT by metadata value",
                 lambda c: c.ttft_count)):
            name = f"loadbench_gateway_{metric}"
            lines += [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}"]
            for (model, key, value), cell in cells:
                labels = f'model="{_esc(model)}",key="{_esc(key)}",value="{_esc(value)}",worker="{worker}"'
                lines.append(f"{name}{{{labels}}} {get(cell):g}")
        return lines


def _esc(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
