"""``loadbench report RUN_DIR``: (re)build plots, intervals.csv and the report from the folder alone."""

from __future__ import annotations

from pathlib import Path

import click


@click.command()
@click.argument("run_dir", type=click.Path(path_type=Path))
@click.option("--format", "formats", type=click.Choice(["md", "html", "json"]), multiple=True,
              help="Report format(s); repeat for several. Default: md and html.")
def report(run_dir: Path, formats: tuple[str, ...]) -> int:
    """Build plots/, intervals.csv and report.{md,html,json} for a run, multi-target or sweep folder."""
    from loadbench.report import build_report

    for path in build_report(run_dir, formats or ("md", "html")):
        click.echo(str(path))
    return 0
