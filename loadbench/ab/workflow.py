"""``loadbench ab``: read an experiment from the request log, judge it, write and print the report.

Exit codes from the one table: 0 PROMOTE, 1 ROLLBACK (ExitCode.GATE_FAILED), 3 CONTINUE
(ExitCode.INVALID_RUN: not enough data to judge yet), 2 bad input.
"""

from __future__ import annotations

import datetime as dt
import re
import sys
from dataclasses import dataclass, replace
from pathlib import Path

from loadbench.ab.analysis import Analysis, LoggedRequest, analyze
from loadbench.ab.criteria import Criteria
from loadbench.ab.render import html_report, markdown, to_json
from loadbench.errors import ExitCode, InputError
from loadbench.results.request_log import RequestLog, metadata_value

EXIT = {"PROMOTE": ExitCode.OK, "ROLLBACK": ExitCode.GATE_FAILED, "CONTINUE": ExitCode.INVALID_RUN}
_DURATION = re.compile(r"^(\d+(?:\.\d+)?)([smhd])$")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400}


@dataclass(frozen=True, slots=True)
class AbOptions:
    log_path: str | Path  # a file, a postgresql:// URL or a variable holding one
    experiment: str
    since: str | None = None  # 30m, 2h, 7d or an ISO date/time
    by: str | None = None  # a metadata key to break every figure down by
    out_dir: Path | None = None
    fmt: str = "md"  # what to print: md | json


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


def load(log: RequestLog, experiment: str, since: int | None,
         by: str | None) -> tuple[list[LoggedRequest], Criteria, str | None]:
    """The experiment's requests (grouped by the ``by`` metadata key), its criteria and the reason a
    guardrail rolled it back (None when none did)."""
    exp = log.experiment(experiment)
    tripped = exp.reason if exp.state == "rolled_back" else None
    requests = [LoggedRequest(r.arm, r.ts_ms, r.outcome, r.ttft_ms, r.e2e_ms, r.cost_usd, r.score,
                              metadata_value(r.metadata, by) if by else "")
                for r in log.arm_requests(experiment, since)]
    return requests, Criteria.from_json(exp.criteria), tripped


def run_ab(opts: AbOptions, now_s: float) -> ExitCode:
    """Judge the experiment, write ab.md/.html/.json when asked, print the report; the verdict's exit code."""
    start = since_ms(opts.since, now_s)
    with RequestLog.open(opts.log_path) as log:
        requests, criteria, tripped = load(log, opts.experiment, start, opts.by)
        judge_calls, judge_spend = log.judge_spend(opts.experiment, start)
    overall = replace(analyze(opts.experiment, requests, criteria, tripped), judge_calls=judge_calls,
                      judge_spend_usd=judge_spend)
    groups: list[Analysis] = []
    if opts.by:
        for group in sorted({r.group for r in requests}):
            groups.append(analyze(opts.experiment, [r for r in requests if r.group == group], criteria, tripped,
                                  group=f"{opts.by}={group}"))
    if opts.out_dir is not None:
        opts.out_dir.mkdir(parents=True, exist_ok=True)
        (opts.out_dir / "ab.md").write_text(markdown(overall, groups))
        (opts.out_dir / "ab.html").write_text(html_report(overall, groups))
        (opts.out_dir / "ab.json").write_bytes(to_json(overall, groups))
    sys.stdout.write(to_json(overall, groups).decode() if opts.fmt == "json" else markdown(overall, groups))
    sys.stdout.flush()
    return EXIT[overall.verdict]
