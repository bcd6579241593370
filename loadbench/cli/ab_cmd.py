"""``loadbench ab LOG --experiment NAME``: judge an experiment from the gateway's request log (docs/ab.md).

Exit codes from the one table: 0 PROMOTE, 1 ROLLBACK (ExitCode.GATE_FAILED), 3 CONTINUE
(ExitCode.INVALID_RUN: not enough data to judge yet), 2 bad input.
"""

from __future__ import annotations

import datetime as dt
import re
import sqlite3
import time
from dataclasses import replace
from pathlib import Path

import click
import orjson

from loadbench.ab.analysis import Analysis, LoggedRequest, analyze
from loadbench.ab.criteria import Criteria
from loadbench.ab.render import html_report, markdown, to_json
from loadbench.cli.log_cmd import open_log
from loadbench.errors import ExitCode, InputError
from loadbench.gateway import logdb

EXIT = {"PROMOTE": ExitCode.OK, "ROLLBACK": ExitCode.GATE_FAILED, "CONTINUE": ExitCode.INVALID_RUN}
_DURATION = re.compile(r"^(\d+(?:\.\d+)?)([smhd])$")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def since_ms(text: str | None, now_s: float) -> int | None:
    """``30m``/``2h``/``7d`` back from now, or an ISO date/time (UTC when no zone is given)."""
    if text is None:
        return None
    m = _DURATION.match(text)
    if m:
        return round((now_s - float(m.group(1)) * _UNIT_S[m.group(2)]) * 1000)
    try:
        when = dt.datetime.fromisoformat(text)
    except ValueError:
        raise InputError(f"--since {text!r}: not a duration (30m, 2h, 7d) or an ISO date/time "
                         "(2026-12-01T10:00)") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return round(when.timestamp() * 1000)


def load(conn: sqlite3.Connection, experiment: str, since: int | None,
         by: str | None) -> tuple[list[LoggedRequest], Criteria, str | None]:
    row = conn.execute("SELECT state, reason, criteria FROM experiments WHERE name = ?", (experiment,)).fetchone()
    if row is None:
        names = [r[0] for r in conn.execute("SELECT name FROM experiments ORDER BY name")]
        raise InputError(f"no experiment {experiment!r} in the log (experiments: {', '.join(names) or 'none'})")
    state, reason, criteria = row
    tripped = reason if state == "rolled_back" else None
    query = ("SELECT r.arm, r.ts_ms, r.outcome, r.ttft_ms, r.e2e_ms, r.cost_usd, r.metadata,"
             " (SELECT f.score FROM feedback f WHERE f.request_id = r.request_id AND f.tenant IS r.tenant"
             "  ORDER BY f.id DESC LIMIT 1)"
             " FROM requests r WHERE r.experiment = ? AND r.role = 'primary'")
    params: list[object] = [experiment]
    if since is not None:
        query += " AND r.ts_ms >= ?"
        params.append(since)
    requests = []
    for arm, ts, outcome, ttft, e2e, cost, meta, score in conn.execute(query, params):
        group = ""
        if by:
            group = str(orjson.loads(meta).get(by, "(none)")) if meta else "(none)"
        requests.append(LoggedRequest(arm, ts, outcome, ttft, e2e, cost, score, group))
    return requests, Criteria.from_json(orjson.loads(criteria)), tripped


@click.command("ab")
@click.argument("log_path", metavar="LOG", type=click.Path(path_type=Path))
@click.option("--experiment", required=True, help="The experiment's name (experiment.name in the gateway config).")
@click.option("--since", default=None, help="Only requests since: 30m, 2h, 7d or an ISO date/time.")
@click.option("--by", default=None, help="Break every figure down by this metadata key (e.g. task).")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Write ab.md, ab.html and ab.json into this folder.")
@click.option("--format", "fmt", type=click.Choice(["md", "json"]), default="md", show_default=True,
              help="What to print on standard output.")
def ab(log_path: Path, experiment: str, since: str | None, by: str | None, out_dir: Path | None, fmt: str) -> ExitCode:
    """Per arm: errors, quality, cost, latency; the pre-registered criteria; PROMOTE, CONTINUE or ROLLBACK."""
    start = since_ms(since, time.time())
    conn = open_log(log_path)
    try:
        requests, criteria, tripped = load(conn, experiment, start, by)
        judge_calls, judge_spend = logdb.judge_spend(conn, experiment, start)
    finally:
        conn.close()
    overall = replace(analyze(experiment, requests, criteria, tripped), judge_calls=judge_calls,
                      judge_spend_usd=judge_spend)
    groups: list[Analysis] = []
    if by:
        for group in sorted({r.group for r in requests}):
            groups.append(analyze(experiment, [r for r in requests if r.group == group], criteria, tripped,
                                  group=f"{by}={group}"))
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / "ab.md").write_text(markdown(overall, groups))
        (out_dir / "ab.html").write_text(html_report(overall, groups))
        (out_dir / "ab.json").write_bytes(to_json(overall, groups))
    click.echo(to_json(overall, groups).decode() if fmt == "json" else markdown(overall, groups), nl=False)
    return EXIT[overall.verdict]
