"""Experiments: which arm a request goes to, and when the rollback guardrails trip. Pure, except
``Experiments`` (the live state a worker routes by, replaced from the shared state by ``guardrails.py``)
and ``InlineChecks`` (a listener of the request log's batches).

Assignment: ``assign_by: metadata.KEY`` hashes (experiment name, value) with BLAKE2b into a bucket in
[0, 100): the candidate serves the buckets below its weight, so a user keeps its arm across requests,
processes and restarts, and raising the weight only moves incumbent users over (never back). A request
without the key goes to the incumbent. ``random`` draws from the gateway's RNG.

Guardrails (Flagger's ``threshold``): every ``interval_s`` the candidate's requests of the last
``window_s`` are checked once there are ``min_requests`` of them; a check fails when the error rate or
a P95 is above its limit, or the mean feedback score of at least ``min_requests`` rated requests is
below ``min_quality``, and passes otherwise (and resets the count), and ``failed_checks`` failures in a
row trip the rollback: weight 0 in the shared table, which every worker reads within a second.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass

import orjson

from loadbench.gateway.abconfig import ExperimentSpec, Guardrails
from loadbench.gateway.config import Route, RouteTarget
from loadbench.gateway.context import RequestContext
from loadbench.gateway.escalation import passes
from loadbench.gateway.ingress import captured_text
from loadbench.gateway.logdb import NULL, ExperimentRow
from loadbench.gateway.logrecord import LogRecord
from loadbench.metrics.quantile import nearest_rank

INCUMBENT = "incumbent"
CANDIDATE = "candidate"
_BUCKETS = 10_000


def bucket(name: str, value: str) -> float:
    """The sticky position of ``value`` in experiment ``name``, in [0, 100)."""
    digest = hashlib.blake2b(f"{name}\x00{value}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") % _BUCKETS * (100 / _BUCKETS)


def share(row: ExperimentRow | None, spec: ExperimentSpec) -> float:
    """Percent of traffic the candidate gets in this state."""
    if row is None:
        # not in the table yet (a reload added it a moment ago): no guardrail covers the candidate
        # until its row is read, so the incumbent serves until then
        return 0.0
    return {"running": row.weight, "promoted": 100.0}.get(row.state, 0.0)


def assign(spec: ExperimentSpec, metadata: Mapping[str, str], percent: float, rng: random.Random) -> str:
    if percent <= 0:
        return INCUMBENT
    if percent >= 100:
        return CANDIDATE
    if spec.assign_key is None:
        x = rng.random() * 100
    else:
        value = metadata.get(spec.assign_key)
        if value is None:
            return INCUMBENT
        x = bucket(spec.name, value)
    return CANDIDATE if x < percent else INCUMBENT


@dataclass(frozen=True, slots=True)
class WindowStats:
    requests: int  # the candidate's requests in the window, client disconnects excluded
    errors: int
    p95_ttft_ms: float | None
    p95_e2e_ms: float | None
    quality_n: int = 0  # requests with feedback
    quality_mean: float | None = None  # their mean score

    @classmethod
    def of(cls, rows: Sequence[tuple[int, str, float | None, float | None, float | None]]) -> WindowStats:
        """From (status, outcome, ttft_ms, e2e_ms, feedback score) rows."""
        judged = [r for r in rows if r[1] != "client_gone"]
        ok = [r for r in judged if r[1] == "ok"]
        scores = [r[4] for r in judged if r[4] is not None]
        return cls(len(judged), len(judged) - len(ok), nearest_rank([r[2] for r in ok if r[2] is not None], 95),
                   nearest_rank([r[3] for r in ok if r[3] is not None], 95), len(scores),
                   sum(scores) / len(scores) if scores else None)


def failed_check(stats: WindowStats, g: Guardrails) -> str | None:
    """Why this check fails, or None (passes, or too few requests to judge)."""
    n = stats.requests
    if n < g.min_requests:
        return None
    where = f"over the last {n} candidate requests ({g.window_s:g} s window)"
    if g.max_error_rate is not None and stats.errors / n > g.max_error_rate:
        return f"error rate {stats.errors / n:.1%} > max_error_rate {g.max_error_rate:.1%} {where}"
    if g.max_p95_ttft_ms is not None and stats.p95_ttft_ms is not None and stats.p95_ttft_ms > g.max_p95_ttft_ms:
        return f"P95 TTFT {stats.p95_ttft_ms:.1f} ms > max_p95_ttft_ms {g.max_p95_ttft_ms:g} {where}"
    if g.max_p95_e2e_ms is not None and stats.p95_e2e_ms is not None and stats.p95_e2e_ms > g.max_p95_e2e_ms:
        return f"P95 E2E {stats.p95_e2e_ms:.1f} ms > max_p95_e2e_ms {g.max_p95_e2e_ms:g} {where}"
    if (g.min_quality is not None and stats.quality_mean is not None and stats.quality_n >= g.min_requests
            and stats.quality_mean < g.min_quality):
        return (f"quality {stats.quality_mean:.3f} < min_quality {g.min_quality:g} over {stats.quality_n} rated"
                f" candidate requests ({g.window_s:g} s window)")
    return None


def check_score(ctx: RequestContext, status: int, spec: ExperimentSpec) -> float | None:
    """The inline check of an arm's answer: 1.0 or 0.0, None when there is nothing to check (no check,
    an error, a shadow). Runs on the request log's writer thread."""
    if spec.check is None or status != 200 or ctx.outcome or ctx.role != "primary" or not ctx.captured:
        return None
    return 1.0 if passes(captured_text(ctx), spec.check) else 0.0


def judged(stats: WindowStats, g: Guardrails) -> bool:
    return stats.requests >= g.min_requests


def advance(streak: int, stats: WindowStats, g: Guardrails) -> tuple[int, str | None]:
    """The new count of consecutive failed checks, and the trip reason once it reaches the threshold."""
    if not judged(stats, g):
        return streak, None  # too few requests: neither a failure nor a pass
    reason = failed_check(stats, g)
    if reason is None:
        return 0, None
    streak += 1
    return streak, (reason if streak >= g.failed_checks else None)


def specs_of(routes: Mapping[str, Route]) -> dict[str, ExperimentSpec]:
    return {r.experiment.name: r.experiment for r in routes.values() if r.experiment is not None}


def changed(old: Mapping[str, ExperimentSpec], new: Mapping[str, ExperimentSpec]) -> frozenset[str]:
    """The experiments added, removed or changed between two configs."""
    return frozenset(name for name in old.keys() | new.keys() if old.get(name) != new.get(name))


def registrations(specs: Iterable[ExperimentSpec]) -> Iterator[tuple[str, float, str]]:
    """``logdb.register``'s (name, weight, criteria JSON) of each experiment."""
    return ((e.name, e.weight, orjson.dumps(asdict(e.criteria)).decode()) for e in specs)


class Experiments:
    """The experiments of one worker: specs by name (the current config's: the one place the guardrail
    checks, the judges, ``/metrics`` and the admin API read them from), and the live rows it routes by."""

    def __init__(self, routes: Mapping[str, Route], keep_bodies: bool) -> None:
        self.specs: dict[str, ExperimentSpec] = specs_of(routes)
        self.rows: dict[str, ExperimentRow] = {}
        self.keep_bodies = keep_bodies

    def update(self, routes: Mapping[str, Route]) -> frozenset[str]:
        """Take a reloaded config's experiments; the names added, removed or changed."""
        old, new = self.specs, specs_of(routes)
        self.specs = new  # one assignment: other threads read either the old or the new dict
        return changed(old, new)

    def apply(self, rows: dict[str, ExperimentRow]) -> None:
        self.rows = rows  # one assignment: a request reads either the old or the new table

    def render(self, worker: str) -> list[str]:
        """The experiments' part of /metrics: the candidate's share now, and each one's state."""
        lines = ["# HELP loadbench_gateway_experiment_weight Percent of traffic the candidate gets now",
                 "# TYPE loadbench_gateway_experiment_weight gauge"]
        info = ["# HELP loadbench_gateway_experiment_state 1 for the state an experiment is in, with its reason",
                "# TYPE loadbench_gateway_experiment_state gauge"]
        for name, spec in sorted(self.specs.items()):
            row = self.rows.get(name)
            state = row.state if row else "running"
            reason = (row.reason if row else "").replace("\\", "\\\\").replace('"', '\\"')
            lines.append(f'loadbench_gateway_experiment_weight{{experiment="{name}",worker="{worker}"}} '
                         f"{share(row, spec):g}")
            info.append(f'loadbench_gateway_experiment_state{{experiment="{name}",state="{state}",'
                        f'reason="{reason}",worker="{worker}"}} 1')
        return lines + info

    def order(self, route: Route, ctx: RequestContext, rng: random.Random) -> list[RouteTarget]:
        """The arm's target alone: a candidate's failure is the candidate's (no fallback across arms)."""
        spec = route.experiment
        assert spec is not None
        arm = assign(spec, ctx.metadata, share(self.rows.get(spec.name), spec), rng)
        ctx.experiment = spec.name
        ctx.arm = arm
        if self.keep_bodies:
            ctx.keep_answer = ctx.log_body = True
        elif spec.check is not None or spec.judge is not None:
            ctx.keep_answer = True  # the inline check or the judge reads the answer; the bodies are not written
        name = spec.candidate if arm == CANDIDATE else spec.incumbent
        return [rt for rt in route.targets if rt.target == name]


class InlineChecks:
    """An experiment's inline check of each logged answer, as a feedback row committed with the batch
    (a listener of ``events.log_batch``, on the request log's writer thread)."""

    def __init__(self, experiments: Experiments) -> None:
        self.experiments = experiments

    def __call__(self, records: Sequence[LogRecord], rows: Sequence[tuple[object, ...]],
                 feedback: list[tuple[object, ...]]) -> None:
        specs = self.experiments.specs
        if not specs:
            return
        for record, row in zip(records, rows, strict=True):
            ctx = record.ctx
            exp = specs.get(ctx.experiment) if ctx is not None and ctx.experiment else None
            score = check_score(ctx, record.status, exp) if ctx is not None and exp is not None else None
            if score is not None:
                tenant = row[19]
                feedback.append((row[0], row[1], None if tenant is NULL else tenant, score, "inline_check"))
