"""``loadbench ab LOG --experiment NAME``: judge an experiment from the gateway's request log (docs/ab.md).

The workflow is ``loadbench.ab.workflow.run_ab``; exit 0 PROMOTE, 1 ROLLBACK, 3 CONTINUE, 2 bad input.
"""

from __future__ import annotations

import time
from pathlib import Path

import click

from loadbench.errors import ExitCode


@click.command("ab")
@click.argument("log_path", metavar="LOG")  # a file, a postgresql:// URL or a variable holding one
@click.option("--experiment", required=True, help="The experiment's name (experiment.name in the gateway config).")
@click.option("--since", default=None, help="Only requests since: 30m, 2h, 7d or an ISO date/time.")
@click.option("--by", default=None, help="Break every figure down by this metadata key (e.g. task).")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Write ab.md, ab.html and ab.json into this folder.")
@click.option("--format", "fmt", type=click.Choice(["md", "json"]), default="md", show_default=True,
              help="What to print on standard output.")
def ab(log_path: str, experiment: str, since: str | None, by: str | None, out_dir: Path | None, fmt: str) -> ExitCode:
    """Per arm: errors, quality, cost, latency; the pre-registered criteria; PROMOTE, CONTINUE or ROLLBACK."""
    from loadbench.ab.workflow import AbOptions, run_ab

    return run_ab(AbOptions(log_path, experiment, since, by, out_dir, fmt), time.time())
