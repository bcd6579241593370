"""``loadbench log export LOG``: the gateway's request log as CSV or JSONL (schema in docs/ab.md)."""

from __future__ import annotations

import contextlib
import csv
import sqlite3
import sys
from collections.abc import Iterator
from dataclasses import asdict
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


@log_group.command("shadows")
@click.argument("log_path", metavar="LOG", type=click.Path(path_type=Path))
@click.option("--model", default=None, help="Only this virtual model's pairs.")
@click.option("--format", "fmt", type=click.Choice(["md", "json"]), default="md", show_default=True)
def shadows(log_path: Path, model: str | None, fmt: str) -> None:
    """Shadowed requests side by side: the primary and each shadow target, over the same pairs."""
    from loadbench.ab.analysis import LoggedRequest, summarize_arm

    conn = open_log(log_path)
    query = ("SELECT s.model, s.target, s.ts_ms, s.outcome, s.ttft_ms, s.e2e_ms, s.cost_usd,"
             " p.target, p.ts_ms, p.outcome, p.ttft_ms, p.e2e_ms, p.cost_usd"
             " FROM requests s JOIN requests p ON p.request_id = s.pair_id AND p.role = 'primary'"
             " WHERE s.role = 'shadow'")
    params: list[object] = []
    if model:
        query += " AND s.model = ?"
        params.append(model)
    pairs: dict[tuple[str, str], tuple[list[LoggedRequest], list[LoggedRequest]]] = {}
    for row in conn.execute(query, params):
        vm, target = row[0], row[1]
        shadow_side, primary_side = pairs.setdefault((vm, target), ([], []))
        shadow_side.append(LoggedRequest(target, row[2], row[3], row[4], row[5], row[6]))
        primary_side.append(LoggedRequest("primary", row[8], row[9], row[10], row[11], row[12]))
    conn.close()
    summaries = [(vm, target, len(shadow_side), summarize_arm("primary", primary_side),
                  summarize_arm(target, shadow_side))
                 for (vm, target), (shadow_side, primary_side) in sorted(pairs.items())]
    if fmt == "json":
        out = [{"model": vm, "shadow": target, "pairs": n, "primary": asdict(p), "shadow_arm": asdict(sh)}
               for vm, target, n, p, sh in summaries]
        click.echo(orjson.dumps(out, option=orjson.OPT_INDENT_2).decode())
        return
    click.echo("| model | side | pairs | error rate | TTFT P50/P95 ms | E2E P50/P95 ms | cost / request | spend |")
    click.echo("|---|---|---|---|---|---|---|---|")
    for vm, _, n, primary, shadow in summaries:
        for a in (primary, shadow):
            cost = "–" if a.cost_per_request is None else f"{a.cost_per_request:.6f}"
            click.echo(f"| {vm} | {a.arm} | {n} | {a.error_rate:.2%} | {a.ttft.p50_ms}/{a.ttft.p95_ms} |"
                       f" {a.e2e.p50_ms}/{a.e2e.p95_ms} | {cost} | {a.cost_usd:.6f} |")
