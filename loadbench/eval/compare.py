"""Two scorecards compared: quality, cost and consistency deltas per target, with significance.

For a figure with 95% interval [lo, hi] in each scorecard, its standard error is taken as
se = (hi - lo) / (2·1.96) and the change is significant when |run - base| > 1.96·sqrt(se_b² + se_r²)
(a normal approximation for two independent evaluations; when both used the same cases the
test ignores the pairing and is conservative). Figures: ``quality`` = acceptable-outcome rate,
``cost`` = cost per acceptable outcome, ``consistency`` = pass^k. A regression case that passed
in the base and fails in the run is always reported.

Gates (``--fail-on``, relative, only significant changes fail): ``quality < -2%``,
``cost > +10%``, ``consistency < -5%``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

from loadbench.errors import ConfigError
from loadbench.eval.scorecard import Scorecard, TargetCard
from loadbench.eval.stats import Z95, Interval
from loadbench.report.document import markdown_table

_GATE = re.compile(r"^\s*(quality|cost|consistency)\s*([<>])\s*([+-]?\d+(?:\.\d+)?)\s*%\s*$")


@dataclass(frozen=True, slots=True)
class Gate:
    metric: str
    op: str
    percent: float
    text: str


@dataclass(frozen=True, slots=True)
class Delta:
    target: str
    metric: str
    base: float
    run: float
    z: float
    significant: bool

    @property
    def relative(self) -> float:
        return (self.run - self.base) / self.base if self.base else math.inf


@dataclass(frozen=True, slots=True)
class ScorecardComparison:
    deltas: tuple[Delta, ...]
    new_regressions: tuple[tuple[str, str], ...]
    failures: tuple[str, ...]
    missing_targets: tuple[str, ...]


def parse_gates(exprs: Sequence[str]) -> tuple[Gate, ...]:
    gates = []
    for e in exprs:
        m = _GATE.match(e)
        if not m:
            raise ConfigError("--fail-on", e, "is not a scorecard gate",
                              "e.g. 'quality < -2%', 'cost > +10%', 'consistency < -5%'")
        gates.append(Gate(m.group(1), m.group(2), float(m.group(3)), e.strip()))
    return tuple(gates)


def _se(i: Interval) -> float:
    if not (math.isfinite(i.low) and math.isfinite(i.high)):
        return math.nan
    return (i.high - i.low) / (2 * Z95)


def _delta(target: str, metric: str, a: Interval, b: Interval) -> Delta:
    se = math.sqrt(_se(a) ** 2 + _se(b) ** 2)
    diff = b.value - a.value
    z = diff / se if se > 0 else 0.0 if diff == 0 else math.copysign(math.inf, diff)
    return Delta(target, metric, a.value, b.value, z, math.isfinite(se) and abs(z) > Z95)


def _figures(t: TargetCard) -> dict[str, Interval]:
    out = {"quality": t.quality.acceptable, "consistency": t.consistency.pass_hat_k}
    if t.cost is not None:
        out["cost"] = t.cost.per_acceptable
    return out


def compare_scorecards(base: Scorecard, run: Scorecard, gates: Sequence[Gate]) -> ScorecardComparison:
    deltas: list[Delta] = []
    new_regressions: list[tuple[str, str]] = []
    missing = []
    base_targets = {t.name: t for t in base.targets}
    for t in run.targets:
        b = base_targets.get(t.name)
        if b is None:
            missing.append(t.name)
            continue
        fb, fr = _figures(b), _figures(t)
        deltas += [_delta(t.name, m, fb[m], fr[m]) for m in fr if m in fb]
        passed_before = {r.case_id for r in b.regressions if r.passed}
        new_regressions += [(t.name, r.case_id) for r in t.regressions if not r.passed and r.case_id in passed_before]
    failures = [f"regression case {c} of {t} passed in the base and fails now" for t, c in new_regressions]
    for g in gates:
        for d in deltas:
            if d.metric != g.metric or not d.significant:
                continue
            pct = 100 * d.relative
            if (g.op == "<" and pct < g.percent) or (g.op == ">" and pct > g.percent):
                failures.append(f"{g.text}: {d.target} {d.metric} {d.base:.6g} -> {d.run:.6g} ({pct:+.1f}%, "
                                f"z={d.z:.2f})")
    return ScorecardComparison(tuple(deltas), tuple(new_regressions), tuple(failures), tuple(missing))


def render(c: ScorecardComparison, base_name: str, run_name: str) -> str:
    rows = [[d.target, d.metric, f"{d.base:.6g}", f"{d.run:.6g}", f"{100 * d.relative:+.1f}%", f"{d.z:.2f}",
             "yes" if d.significant else "no"] for d in c.deltas]
    lines = [f"# Scorecard comparison: {base_name} -> {run_name}", "",
             markdown_table(["target", "figure", "base", "run", "change", "z", "significant"], rows)]
    lines += [f"target {t} is not in the base scorecard" for t in c.missing_targets]
    lines += [f"FAILED: {f}" for f in c.failures]
    return "\n".join(lines) + "\n"
