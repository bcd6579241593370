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

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from loadbench.errors import InputError
from loadbench.metrics.records import Summary
from loadbench.metrics.timeline import TimelineRow
from loadbench.plan.load import LoadPlan
from loadbench.report._hlog import IntervalLog, read_intervals
from loadbench.results import run_dir as rd
from loadbench.results.manifest import read_manifest
from loadbench.results.summary_file import read_summary
from loadbench.results.summary_io import plan_of

FolderKind = Literal["run", "multi", "sweep"]


def folder_kind(path: Path) -> FolderKind:
    if not path.is_dir():
        raise InputError(f"{path}: no such run folder")
    if (path / rd.SUMMARY).is_file():
        return "run"
    if (path / rd.SWEEP).is_file():
        return "sweep"
    if (path / "targets").is_dir() and any(p.is_dir() for p in (path / "targets").iterdir()):
        return "multi"
    raise InputError(
        f"{path}: not a loadbench results folder (no summary.json, sweep.json or targets/); "
        "if the run was interrupted, rebuild the summary first"
    )


@dataclass(slots=True)
class RunFolder:
    path: Path
    summary: Summary
    timeline: list[TimelineRow] = field(default_factory=list)
    _hlog: IntervalLog | None = None

    @property
    def name(self) -> str:
        return self.summary.name or self.path.name

    def load_plan(self) -> LoadPlan | None:
        """The plan the run followed, as the summary read it from the manifest (None without one)."""
        if not (self.path / rd.MANIFEST).is_file():
            return None
        try:
            return plan_of(read_manifest(self.path)[0])
        except (ValueError, KeyError, TypeError):  # an unreadable plan only costs the exact plot marks
            return None

    @property
    def hlog(self) -> IntervalLog:
        if self._hlog is None:
            self._hlog = read_intervals(self.path / rd.HLOG)
        return self._hlog


def load_run(path: Path) -> RunFolder:
    path = Path(path)
    if not path.is_dir():
        raise InputError(f"{path}: no such run folder")
    return RunFolder(path=path, summary=read_summary(path), timeline=rd.read_timeline(path))


def sub_runs(path: Path, kind: FolderKind) -> list[tuple[str, RunFolder]]:
    """(label, run) for each target of a multi-target folder, in name order."""
    if kind != "multi":
        raise InputError(f"{path}: not a multi-target folder")
    dirs = sorted(p for p in (path / "targets").iterdir() if p.is_dir())
    return [(d.name, load_run(d)) for d in dirs]
