"""``loadbench log export LOG``: the gateway's request log as CSV or JSONL (schema in docs/ab.md)."""

from __future__ import annotations

import contextlib
import csv
import sqlite3
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import click
import orjson

from loadbench.errors import InputError


def open_log(path: Path) -> sqlite3.Connection:
    """A read-only connection to a request log; InputError (exit 2) when it is not one."""
    if not path.is_file():
        raise InputError(f"{path}: no such file (give the request_log.path of a gateway config)")
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        conn.execute("SELECT 1 FROM requests LIMIT 1")
    except sqlite3.Error as exc:
        raise InputError(f"{path}: not a loadbench request log ({exc})") from None
    return conn


@click.group("log")
def log_group() -> None:
    """Read the gateway's request log."""


@log_group.command("export")
@click.argument("log_path", metavar="LOG", type=click.Path(path_type=Path))
@click.option("--format", "fmt", type=click.Choice(["csv", "jsonl"]), default="jsonl", show_default=True)
@click.option("--out", "out_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="File to write (default: standard output).")
@click.option("--experiment", default=None, help="Only this experiment's requests.")
@click.option("--since-ms", type=int, default=None, help="Only requests that arrived at or after this Unix ms.")
def export(log_path: Path, fmt: str, out_path: Path | None, experiment: str | None, since_ms: int | None) -> None:
    """Write every row of the requests table (bodies only where they were logged)."""
    conn = open_log(log_path)
    where: list[str] = ["1"]
    params: list[object] = []
    if experiment:
        where.append("experiment = ?")
        params.append(experiment)
    if since_ms is not None:
        where.append("ts_ms >= ?")
        params.append(since_ms)
    cur = conn.execute(f"SELECT * FROM requests WHERE {' AND '.join(where)} ORDER BY id", params)
    names = [d[0] for d in cur.description]
    with _output(out_path) as out:
        if fmt == "csv":
            writer = csv.writer(out)
            writer.writerow(names)
            for row in cur:
                writer.writerow(row)
        else:
            for row in cur:
                out.write(orjson.dumps(dict(zip(names, row, strict=True))).decode() + "\n")
    conn.close()


@contextlib.contextmanager
def _output(path: Path | None) -> Iterator[IO[str]]:
    """Standard output, or a file closed at the end."""
    if path is None:
        yield sys.stdout
        return
    with path.open("w", newline="") as f:
        yield f
