"""Creating and reading a run folder (see docs/results-format.md)."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from loadbench.errors import InputError
from loadbench.metrics.timeline import TimelineRow

MANIFEST = "manifest.json"
SAMPLES = "samples.jsonl"
HLOG = "histograms.hlog"
TIMELINE = "timeline.jsonl"
SUMMARY = "summary.json"
SUMMARY_MD = "summary.md"
STATUS = "status.json"
PLAN = "plan.json"
SWEEP = "sweep.json"
TARGETS = "targets.json"
# Schemas of the folder-level files (summary.json's is loadbench.metrics.records.SUMMARY_SCHEMA,
# status.json's loadbench.results.status.STATUS_SCHEMA).
SWEEP_SCHEMA = "loadbench.sweep/1"
TARGETS_SCHEMA = "loadbench.targets/1"

_SAFE = re.compile(r"[^A-Za-z0-9._-]+")


def new_run_dir(root: Path, name: str, now: datetime | None = None) -> Path:
    stamp = (now or datetime.now(UTC)).strftime("%Y%m%dT%H%M%SZ")
    base = root / f"{stamp}-{_SAFE.sub('-', name).strip('-') or 'run'}"
    root.mkdir(parents=True, exist_ok=True)
    path = base
    for n in range(2, 10_000):
        try:
            path.mkdir()  # atomic: of two runs started in the same second, each gets its own folder
            return path
        except FileExistsError:
            path = Path(f"{base}-{n}")
    raise FileExistsError(f"{base}: 10,000 run folders of this name in one second")


def write_json(path: Path, obj: Any) -> None:
    """Atomic: a reader never sees half a file, an interrupted write leaves the old one."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(orjson.dumps(obj, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS) + b"\n")
    os.replace(tmp, path)


def read_json(path: Path) -> Any:
    try:
        return orjson.loads(path.read_bytes())
    except FileNotFoundError as exc:
        raise InputError(f"{path}: not found (is this a loadbench run folder?)") from exc
    except orjson.JSONDecodeError as exc:
        raise InputError(f"{path}: not valid JSON: {exc}") from exc


def iter_samples(run_dir: Path) -> Iterator[dict[str, Any]]:
    """Every complete line of samples.jsonl (a torn last line from a crash is skipped)."""
    return _iter_jsonl(run_dir / SAMPLES)


def iter_timeline(run_dir: Path) -> Iterator[dict[str, Any]]:
    return _iter_jsonl(run_dir / TIMELINE)


def read_timeline(run_dir: Path) -> list[TimelineRow]:
    return [TimelineRow.from_json(t) for t in _iter_jsonl(run_dir / TIMELINE)]


def _iter_jsonl(path: Path) -> Iterator[dict[str, Any]]:
    if not path.exists():
        return
    with path.open("rb") as f:
        for line in f:
            if not line.endswith(b"\n"):
                break  # torn by a crash mid-write
            try:
                yield orjson.loads(line)
            except orjson.JSONDecodeError:
                continue
