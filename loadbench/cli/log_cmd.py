"""``loadbench log export|shadows LOG``: the gateway's request log as CSV or JSONL (schema in docs/ab.md),
and shadowed requests side by side. The queries are ``loadbench.results.request_log``'s."""

from __future__ import annotations

import contextlib
import csv
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import click
import orjson

from loadbench.results.request_log import RequestLog


@click.group("log")
def log_group() -> None:
    """Read the gateway's request log."""


@log_group.command("export")
@click.argument("log_path", metavar="LOG")  # a file, a postgresql:// URL or a variable holding one
@click.option("--format", "fmt", type=click.Choice(["csv", "jsonl"]), default="jsonl", show_default=True)
@click.option("--out", "out_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="File to write (default: standard output).")
@click.option("--experiment", default=None, help="Only this experiment's requests.")
@click.option("--since-ms", type=int, default=None, help="Only requests that arrived at or after this Unix ms.")
def export(log_path: str, fmt: str, out_path: Path | None, experiment: str | None, since_ms: int | None) -> None:
    """Write every row of the requests table (bodies only where they were logged)."""
    with RequestLog.open(log_path) as log, _output(out_path) as out:
        table = log.requests(experiment, since_ms)
        if fmt == "csv":
            writer = csv.writer(out)
            writer.writerow(table.columns)
            for row in table.rows:
                writer.writerow(row)
        else:
            for row in table.rows:
                out.write(orjson.dumps(dict(zip(table.columns, row, strict=True))).decode() + "\n")


@contextlib.contextmanager
def _output(path: Path | None) -> Iterator[IO[str]]:
    """Standard output, or a file closed at the end."""
    if path is None:
        yield sys.stdout
        return
    with path.open("w", newline="") as f:
        yield f


@log_group.command("shadows")
@click.argument("log_path", metavar="LOG")  # a file, a postgresql:// URL or a variable holding one
@click.option("--model", default=None, help="Only this virtual model's pairs.")
@click.option("--format", "fmt", type=click.Choice(["md", "json"]), default="md", show_default=True)
def shadows(log_path: str, model: str | None, fmt: str) -> None:
    """Shadowed requests side by side: the primary and each shadow target, over the same pairs."""
    from loadbench.ab.shadows import markdown, side_by_side, to_json

    with RequestLog.open(log_path) as log:
        sides = side_by_side(log.shadow_pairs(model))
    click.echo(to_json(sides) if fmt == "json" else markdown(sides))
