"""Reports, plots, comparisons and CI gates, read from run folders alone.

Public API:
- ``build_report(run_dir, formats=("md", "html")) -> list[Path]`` writes ``plots/``, ``intervals.csv``
  and the reports (matplotlib is imported lazily, Agg backend);
- ``loadbench.report.gates``: ``parse_expr``, ``evaluate_gates``;
- ``loadbench.report.validity``: ``check_valid``;
- ``loadbench.report.compare``: ``compare_runs`` and its renderers.

Importing this package imports neither matplotlib nor gevent.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path


def build_report(run_dir: Path, formats: Sequence[str] = ("md", "html")) -> list[Path]:
    """(Re)build the report of a run, multi-target or sweep folder; return the files written."""
    from loadbench.report.builder import build

    return build(Path(run_dir), formats)


__all__ = ["build_report"]
