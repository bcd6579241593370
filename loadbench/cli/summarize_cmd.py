"""``loadbench summarize RUN_DIR``: (re)build a run folder's summary from its samples and histograms."""

from __future__ import annotations

from pathlib import Path

import click


@click.command()
@click.argument("run_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--no-report", is_flag=True, help="Only summary.json and summary.md, no plots or report.")
def summarize(run_dir: Path, no_report: bool) -> int:
    """Write summary.json and summary.md (then the report) from what the folder holds, e.g. after
    the process that ran the load was killed before it could summarise."""
    from loadbench.errors import InputError
    from loadbench.results import run_dir as rd

    if not (run_dir / rd.MANIFEST).is_file():
        raise InputError(f"{run_dir}: no {rd.MANIFEST}: not a loadbench run folder")
    from loadbench.report.summary_text import render_console, write_summary_files

    summary = write_summary_files(run_dir)
    click.echo(render_console(summary))
    for warning in summary.warnings:
        click.echo(f"warning: {warning}")
    if not no_report:
        from loadbench.report import build_report

        for path in build_report(run_dir):
            click.echo(str(path))
    return 0
