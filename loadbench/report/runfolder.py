"""Read the run folders the analysis layer works on (docs/results-format.md), failing with a clear
message on anything it cannot judge.

Three kinds of folder:
- a **run**: ``summary.json`` (schema ``loadbench.summary/1``) plus ``histograms.hlog``,
  ``timeline.jsonl``, ``samples.jsonl``, ``manifest.json``;
- a **multi-target** folder: ``targets/<name>/``, each a run folder;
- a **sweep** folder: ``sweep.json`` (schema ``loadbench.sweep/1``, see ``loadbench.report.sweep``)
  and ``steps/<k>-<load>/``, each a run folder.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from loadbench.errors import InputError
from loadbench.report._hlog import IntervalLog, read_intervals
from loadbench.results import run_dir as rd

SUMMARY_SCHEMA = "loadbench.summary/1"
SWEEP_SCHEMA = "loadbench.sweep/1"

FolderKind = Literal["run", "multi", "sweep"]


def folder_kind(path: Path) -> FolderKind:
    if not path.is_dir():
        raise InputError(f"{path}: no such run folder")
    if (path / "summary.json").is_file():
        return "run"
    if (path / "sweep.json").is_file():
        return "sweep"
    if (path / "targets").is_dir() and any(p.is_dir() for p in (path / "targets").iterdir()):
        return "multi"
    raise InputError(
        f"{path}: not a loadbench results folder (no summary.json, sweep.json or targets/); "
        "if the run was interrupted, rebuild the summary first"
    )


def check_summary(summary: Any, where: str) -> dict[str, Any]:
    if not isinstance(summary, dict):
        raise InputError(f"{where}: summary is not a JSON object")
    schema = summary.get("schema")
    if schema != SUMMARY_SCHEMA:
        raise InputError(f"{where}: summary schema {schema!r} is not supported "
                         f"(this loadbench reads {SUMMARY_SCHEMA!r}); re-run or rebuild the summary")
    for key in ("metrics", "requests", "load"):
        if not isinstance(summary.get(key), dict):
            raise InputError(f"{where}: summary has no {key!r} object")
    return summary


@dataclass(slots=True)
class RunFolder:
    path: Path
    summary: dict[str, Any]
    manifest: dict[str, Any] = field(default_factory=dict)
    timeline: list[dict[str, Any]] = field(default_factory=list)
    _hlog: IntervalLog | None = None

    @property
    def name(self) -> str:
        return str(self.summary.get("name") or self.path.name)

    @property
    def hlog(self) -> IntervalLog:
        if self._hlog is None:
            self._hlog = read_intervals(self.path / rd.HLOG)
        return self._hlog

    def samples(self) -> Iterator[dict[str, Any]]:
        return rd.iter_samples(self.path)


def load_run(path: Path) -> RunFolder:
    path = Path(path)
    if not path.is_dir():
        raise InputError(f"{path}: no such run folder")
    summary_path = path / "summary.json"
    if not summary_path.is_file():
        raise InputError(f"{path}: no summary.json; not a finished loadbench run folder")
    summary = check_summary(rd.read_json(summary_path), str(summary_path))
    manifest_path = path / "manifest.json"
    manifest = rd.read_json(manifest_path) if manifest_path.is_file() else {}
    timeline = list(rd.iter_timeline(path))
    return RunFolder(path=path, summary=summary, manifest=manifest, timeline=timeline)


def sub_runs(path: Path, kind: FolderKind) -> list[tuple[str, RunFolder]]:
    """(label, run) for each target of a multi-target folder, in name order."""
    if kind != "multi":
        raise InputError(f"{path}: not a multi-target folder")
    dirs = sorted(p for p in (path / "targets").iterdir() if p.is_dir())
    return [(d.name, load_run(d)) for d in dirs]
