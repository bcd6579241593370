"""``summary.json`` on disk: read into a typed ``Summary`` (any ``loadbench.summary/1`` written so far)
and written from one."""

from __future__ import annotations

from pathlib import Path

from loadbench.errors import InputError
from loadbench.metrics.records import Summary
from loadbench.results import run_dir as rd


def write_summary_json(run_dir: Path, summary: Summary) -> None:
    rd.write_json(run_dir / rd.SUMMARY, summary.to_json())


def read_summary(path: Path) -> Summary:
    """``path``: a run folder or its summary.json. Bad input raises InputError naming the file."""
    file = path / rd.SUMMARY if path.is_dir() else path
    if not file.is_file():
        raise InputError(f"{path}: no {rd.SUMMARY}; not a finished loadbench run folder")
    data = rd.read_json(file)
    if not isinstance(data, dict):
        raise InputError(f"{file}: summary is not a JSON object")
    try:
        return Summary.from_json(data)
    except (ValueError, TypeError, KeyError) as exc:
        raise InputError(f"{file}: {exc}") from exc
