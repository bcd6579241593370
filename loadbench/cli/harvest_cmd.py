"""``loadbench dataset from-log LOG --stratify KEY --n 200``: real inputs from the request log (where
bodies were logged) as an eval dataset, a stratified seeded sample (loadbench.ab.harvest)."""

from __future__ import annotations

from pathlib import Path

import click
import orjson

from loadbench.ab.harvest import NONE, LoggedBody, stratified, to_case
from loadbench.cli.log_cmd import open_log
from loadbench.errors import InputError


@click.command("from-log")
@click.argument("log_path", metavar="LOG", type=click.Path(path_type=Path))
@click.option("--out", "out_path", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="Dataset JSONL to write.")
@click.option("--n", "n", type=click.IntRange(1, 1_000_000), default=200, show_default=True)
@click.option("--stratify", default=None, help="Metadata key whose values are the strata (e.g. task).")
@click.option("--model", default=None, help="Only requests to this virtual model.")
@click.option("--seed", type=int, default=0, show_default=True)
def from_log(log_path: Path, out_path: Path, n: int, stratify: str | None, model: str | None, seed: int) -> None:
    """Write a stratified sample of the logged request bodies as dataset cases."""
    conn = open_log(log_path)
    query = ("SELECT request_id, request_body, metadata FROM requests"
             " WHERE role = 'primary' AND request_body IS NOT NULL")
    params: list[object] = []
    if model:
        query += " AND model = ?"
        params.append(model)
    bodies = []
    for request_id, raw, meta in conn.execute(query, params):
        try:
            body = orjson.loads(raw)
        except orjson.JSONDecodeError:
            continue
        stratum = NONE
        if stratify and meta:
            stratum = str(orjson.loads(meta).get(stratify, NONE))
        if isinstance(body, dict):
            bodies.append(LoggedBody(request_id, body, stratum))
    conn.close()
    if not bodies:
        raise InputError(f"{log_path}: no logged request bodies (set request_log.log_bodies in the gateway config)")
    cases = [c for c in (to_case(b, stratify) for b in stratified(bodies, n, seed)) if c is not None]
    out_path.write_bytes(b"".join(orjson.dumps(c) + b"\n" for c in cases))
    click.echo(f"{out_path}: {len(cases)} cases from {len(bodies)} logged requests")
