"""CI gates: a tiny expression language and its evaluation against a run (and a baseline).

An expression states the condition that FAILS the gate::

    gate      = figure op threshold
    figure    = latency "." stat [ "[" dimension "=" value "]" ]
              | "error_rate" | "throughput.rps" | "throughput.tokens_per_s" | "throughput.goodput_rps"
              | "stalls.per_1k_tokens" | "stalls.stalled_share"
    latency   = "ttft" | "itl" | "tpot" | "e2e" | "queue" | "service_ttft"
    stat      = "p50" | "p75" | "p90" | "p95" | "p99" | "p99.9" | "p99_9" | "mean" | "stdev" | "min" | "max"
    op        = ">" | ">=" | "<" | "<="
    threshold = ("+" | "-") number "%"        relative change against the baseline
              | number ("us" | "ms" | "s")    absolute, latencies only
              | number "%"                    absolute, fractions only (error_rate, stalls.stalled_share; 1% = 0.01)
              | number                        absolute: a fraction, throughput per second, stalls per 1,000 tokens

Examples: ``ttft.p95 > +10%``, ``itl.p99 > 25ms``, ``error_rate > 1%``, ``throughput.rps < -5%``,
``e2e.p99[target=fast] > 2s``.

An absolute gate fails when the run's figure satisfies the expression. A relative gate fails when the
relative change (run - baseline) / baseline satisfies it AND the difference is significant (see
``loadbench.report.significance``); without a baseline it is skipped (reported, not failed).
A figure with no data fails its gate: a gate that cannot be checked must not pass silently.
"""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Literal

from loadbench.errors import InputError
from loadbench.metrics.records import LATENCY_METRICS, Summary
from loadbench.report.significance import DEFAULT_MIN_EFFECT, DEFAULT_Z, Noise, decide, summary_noise
from loadbench.report.stats import (
    FRACTION_FIGURES,
    LATENCY_STATS,
    RUN_FIGURES,
    Figure,
)
from loadbench.report.tables import format_value

_OPS: dict[str, Callable[[float, float], bool]] = {
    ">": operator.gt, ">=": operator.ge, "<": operator.lt, "<=": operator.le,
}
_UNIT_TO_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0}

_EXPR_RE = re.compile(
    r"""^\s*
    (?P<figure>[A-Za-z_][\w.]*?)
    (?:\s*\[\s*(?P<dim>[A-Za-z_]\w*)\s*=\s*(?P<val>[^\]\s]+)\s*\])?
    \s*(?P<op>>=|<=|>|<)\s*
    (?P<sign>[+-])?\s*(?P<num>\d+(?:\.\d+)?|\.\d+)\s*(?P<unit>%|us|ms|s)?
    \s*$""",
    re.VERBOSE,
)

Status = Literal["pass", "fail", "skipped"]


@dataclass(frozen=True, slots=True)
class GateExpr:
    text: str
    figure: Figure
    op: str
    threshold: float  # relative: a fraction (+10% -> 0.10); absolute: in the figure's unit
    relative: bool

    def describe_threshold(self) -> str:
        if self.relative:
            return f"{self.threshold * 100:+g}% vs baseline"
        return format_value(self.threshold, self.figure.unit)


@dataclass(frozen=True, slots=True)
class GateResult:
    expr: GateExpr
    status: Status
    observed: float | None
    baseline: float | None
    delta: float | None  # run - baseline, in the figure's unit
    delta_rel: float | None  # (run - baseline) / baseline
    significant: bool | None  # None for absolute gates (significance is not needed)
    noise: float | None  # the |delta| needed to be significant
    message: str

    @property
    def passed(self) -> bool:
        return self.status != "fail"


@dataclass(frozen=True, slots=True)
class GateVerdict:
    results: list[GateResult] = field(default_factory=list)
    noise_method: str = ""

    @property
    def passed(self) -> bool:
        return all(r.passed for r in self.results)

    @property
    def failures(self) -> list[GateResult]:
        return [r for r in self.results if r.status == "fail"]


def _bad(text: str, why: str) -> InputError:
    return InputError(f"gate expression {text!r}: {why}. Examples: 'ttft.p95 > +10%', 'itl.p99 > 25ms', "
                      "'error_rate > 1%', 'throughput.rps < -5%'")


def _parse_figure(text: str, name: str, where: tuple[str, str] | None) -> Figure:
    if name in RUN_FIGURES:
        if where:
            raise _bad(text, f"{name} has no breakdowns; only latencies take [dimension=value]")
        return Figure(name)
    metric, dot, stat = name.partition(".")
    metric = metric.removesuffix("_ms")
    if metric not in LATENCY_METRICS:
        known = ", ".join([*LATENCY_METRICS, *RUN_FIGURES])
        raise _bad(text, f"unknown figure {name!r} (known: {known})")
    stat = stat.replace("p99.9", "p99_9")
    if not dot or stat not in LATENCY_STATS:
        raise _bad(text, f"{metric} needs a statistic after a dot, one of {', '.join(LATENCY_STATS)}")
    return Figure(metric, stat, where)


def parse_expr(text: str) -> GateExpr:
    """Parse one gate expression; raise InputError saying what is wrong and showing examples."""
    m = _EXPR_RE.match(text)
    if not m:
        raise _bad(text, "expected '<figure> <op> <threshold>' with op one of > >= < <=")
    where = (m["dim"], m["val"]) if m["dim"] else None
    fig = _parse_figure(text, m["figure"], where)
    number = float(m["num"])
    sign, unit = m["sign"], m["unit"]
    if sign and unit != "%":
        raise _bad(text, "a signed threshold is a relative change and must end in % (e.g. +10%)")
    if sign:
        value = number / 100.0 * (-1 if sign == "-" else 1)
        return GateExpr(text.strip(), fig, m["op"], value, relative=True)
    if fig.is_latency:
        if unit not in _UNIT_TO_MS:
            hint = f"write '+{m['num']}%' for a relative change" if unit == "%" else "add a unit: us, ms or s"
            raise _bad(text, f"an absolute latency threshold needs a time unit ({hint})")
        return GateExpr(text.strip(), fig, m["op"], number * _UNIT_TO_MS[unit], relative=False)
    if fig.metric in FRACTION_FIGURES:
        if unit not in (None, "%"):
            raise _bad(text, f"{fig.metric} is a fraction: write 1% or 0.01")
        value = number / 100.0 if unit == "%" else number
        if value > 1:
            raise _bad(text, f"{fig.metric} is at most 100%")
        return GateExpr(text.strip(), fig, m["op"], value, relative=False)
    if unit is not None:
        hint = f"; write '+{m['num']}%' or '-{m['num']}%' for a relative change" if unit == "%" else ""
        per = "per 1,000 output tokens" if fig.unit.strip() == "per 1k tokens" else "per second"
        raise _bad(text, f"{fig.metric} is {per} and takes a plain number{hint}")
    return GateExpr(text.strip(), fig, m["op"], number, relative=False)


def parse_exprs(texts: Iterable[str]) -> list[GateExpr]:
    return [parse_expr(t) for t in texts]


def evaluate_gates(exprs: Sequence[GateExpr], run_summary: Summary,
                   baseline_summary: Summary | None, *, baseline_lookup: Callable[[Figure], float | None] | None = None,
                   run_noise: Noise | None = None, baseline_noise: Noise | None = None,
                   z: float = DEFAULT_Z, min_effect: float = DEFAULT_MIN_EFFECT, within_only: bool = False,
                   ) -> GateVerdict:
    """Evaluate gates. Without ``*_noise`` the noise is estimated from the summaries alone
    (``summary_noise``); ``loadbench compare`` passes the richer ``folder_noise``. ``baseline_lookup``
    gives the baseline's value of a figure (a baseline of several runs: their mean); ``within_only``
    says the noise knows nothing of the shift between runs (messages say "beyond within-run noise")."""
    figs = [e.figure for e in exprs]
    run_noise = run_noise or summary_noise(run_summary, figs)
    lookup = baseline_lookup
    if baseline_summary is not None:
        baseline_noise = baseline_noise or summary_noise(baseline_summary, figs)
        lookup = lookup or (lambda f: f.lookup(baseline_summary))
    word = "beyond within-run noise" if within_only else "significant"
    results = [_evaluate(e, run_summary, lookup, run_noise, baseline_noise, z, min_effect, word) for e in exprs]
    return GateVerdict(results, run_noise.method)


def relative_change(run: float, base: float) -> float:
    if base == 0:
        return 0.0 if run == 0 else math.copysign(math.inf, run)
    return (run - base) / abs(base)


def _evaluate(expr: GateExpr, run: Summary, base: Callable[[Figure], float | None] | None, run_noise: Noise,
              base_noise: Noise | None, z: float, min_effect: float, word: str) -> GateResult:
    fig = expr.figure
    observed = fig.lookup(run)
    baseline = base(fig) if base is not None else None
    delta = delta_rel = None
    if observed is not None and baseline is not None:
        delta = observed - baseline
        delta_rel = relative_change(observed, baseline)
    crossed_word = f"{expr.op} {expr.describe_threshold()}"
    if observed is None:
        return GateResult(expr, "fail", None, baseline, None, None, None, None,
                          f"{fig.key}: no data in the run, so the gate cannot be checked")
    if not expr.relative:
        crossed = _OPS[expr.op](observed, expr.threshold)
        shown = format_value(observed, fig.unit)
        msg = (f"{fig.key} = {shown} {crossed_word}" if crossed
               else f"{fig.key} = {shown}, not {crossed_word}")
        return GateResult(expr, "fail" if crossed else "pass", observed, baseline, delta, delta_rel,
                          None, None, msg)
    if base is None:
        return GateResult(expr, "skipped", observed, None, None, None, None, None,
                          f"{fig.key}: relative gate skipped: no baseline given")
    if baseline is None or delta is None or delta_rel is None:
        return GateResult(expr, "fail", observed, None, None, None, None, None,
                          f"{fig.key}: no data in the baseline, so the change cannot be checked")
    sig = decide(observed, baseline, run_noise.get(fig.key),
                 base_noise.get(fig.key) if base_noise else None, z=z, min_effect=min_effect)
    crossed = _OPS[expr.op](delta_rel, expr.threshold)
    change = (f"{fig.key} {format_value(baseline, fig.unit)} -> {format_value(observed, fig.unit)} "
              f"({delta_rel * 100:+.1f}%)")
    noise_txt = f"noise ±{format_value(sig.noise, fig.unit)}" if math.isfinite(sig.noise) else "noise unknown"
    if crossed and sig.significant:
        status: Status = "fail"
        msg = f"{change} {crossed_word}; {word} ({noise_txt})"
    elif crossed:
        status = "pass"
        msg = f"{change} {crossed_word} but within noise ({noise_txt}): not a regression"
    else:
        status = "pass"
        msg = f"{change}, not {crossed_word}"
    return GateResult(expr, status, observed, baseline, delta, delta_rel, sig.significant, sig.noise, msg)
