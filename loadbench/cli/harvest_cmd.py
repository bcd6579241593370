"""``loadbench dataset from-log LOG --stratify KEY --n 200``: real inputs from the request log (where
bodies were logged) as an eval dataset, a stratified seeded sample (loadbench.ab.harvest)."""

from __future__ import annotations

from pathlib import Path

import click


@click.command("from-log")
@click.argument("log_path", metavar="LOG")  # a file, a postgresql:// URL or a variable holding one
@click.option("--out", "out_path", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="Dataset JSONL to write.")
@click.option("--n", "n", type=click.IntRange(1, 1_000_000), default=200, show_default=True)
@click.option("--stratify", default=None, help="Metadata key whose values are the strata (e.g. task).")
@click.option("--model", default=None, help="Only requests to this virtual model.")
@click.option("--seed", type=int, default=0, show_default=True)
def from_log(log_path: str, out_path: Path, n: int, stratify: str | None, model: str | None, seed: int) -> None:
    """Write a stratified sample of the logged request bodies as dataset cases."""
    from loadbench.ab.harvest import harvest

    click.echo(harvest(log_path, out_path, n, stratify, model, seed))
