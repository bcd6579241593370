"""Compare a run against a baseline: a delta per figure with its significance, gate verdicts, and the
renderings CI wants (terminal table, compare.md for a pull-request comment, JUnit XML)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from xml.sax.saxutils import escape, quoteattr

from loadbench.errors import InputError
from loadbench.metrics.records import SUMMARY_SCHEMA, Summary
from loadbench.report.baseline import Baseline, expand_baselines
from loadbench.report.document import markdown_table
from loadbench.report.gates import GateExpr, GateVerdict, evaluate_gates, relative_change
from loadbench.report.runfolder import RunFolder, load_run
from loadbench.report.significance import DEFAULT_MIN_EFFECT, DEFAULT_Z, Noise, decide, folder_noise
from loadbench.report.stats import PERCENTILE_STATS, RUN_FIGURES, Figure
from loadbench.report.tables import format_value
from loadbench.report.validity import DEFAULT_ERROR_CEILING, DEFAULT_MIN_SAMPLES, check_valid
from loadbench.results import run_dir as rd

TABLE_METRICS = ("ttft", "itl", "tpot", "e2e")
TABLE_STATS = ("mean", *PERCENTILE_STATS)


@dataclass(frozen=True, slots=True)
class Delta:
    figure: Figure
    baseline: float | None
    run: float | None
    delta: float | None
    delta_rel: float | None
    significant: bool
    noise: float | None

    @property
    def worse(self) -> bool | None:
        if self.delta is None or self.delta == 0:
            return None
        return (self.delta > 0) == self.figure.higher_is_worse


@dataclass(slots=True)
class Comparison:
    baselines: Baseline
    run: RunFolder
    deltas: list[Delta]
    verdict: GateVerdict
    noise_method: str
    z: float
    min_effect: float
    invalid: dict[str, list[str]] = field(default_factory=dict)  # "baseline"/"run" -> reasons
    warnings: list[str] = field(default_factory=list)

    @property
    def valid(self) -> bool:
        return not any(self.invalid.values())

    @property
    def baseline(self) -> RunFolder:
        return self.baselines.first


def _check_schemas(baseline_dirs: Sequence[Path], run_dir: Path) -> None:
    schemas: dict[Path, object] = {}
    for label, path in [*(("baseline", b) for b in baseline_dirs), ("run", run_dir)]:
        summary = path / "summary.json"
        if not summary.is_file():
            raise InputError(f"{label} {path}: no summary.json; not a finished loadbench run folder")
        data = rd.read_json(summary)
        schemas[path] = data.get("schema") if isinstance(data, dict) else None
    for base in baseline_dirs:
        if schemas[base] != schemas[run_dir]:
            raise InputError(f"baseline and run have different summary schemas ({schemas[base]!r} vs "
                             f"{schemas[run_dir]!r}); rebuild the older one or record a new baseline "
                             f"(this loadbench reads {SUMMARY_SCHEMA!r})")


def _mismatch_warnings(base: RunFolder, run: RunFolder) -> list[str]:
    out = []
    bl, rl = base.summary.load, run.summary.load
    for key in ("mode", "users", "rps", "duration_s", "warmup_s", "workers"):
        if getattr(bl, key) != getattr(rl, key):
            out.append(f"load differs: {key} {getattr(bl, key)!r} (baseline) vs {getattr(rl, key)!r} (run)")
    bm, rm = base.summary.target.model, run.summary.target.model
    if bm != rm:
        out.append(f"model differs: {bm!r} (baseline) vs {rm!r} (run)")
    bs, rs = base.summary.tokens.source, run.summary.tokens.source
    if bs != rs:
        out.append(f"token source differs: {bs!r} (baseline) vs {rs!r} (run); "
                   "token figures are not comparable")
    return out


def compare_runs(baseline: Path | Sequence[Path], run_dir: Path, exprs: Sequence[GateExpr] = (), *,
                 z: float = DEFAULT_Z, min_effect: float = DEFAULT_MIN_EFFECT, seed: int = 0,
                 min_samples: int = DEFAULT_MIN_SAMPLES, error_ceiling: float = DEFAULT_ERROR_CEILING,
                 strict: bool = False) -> Comparison:
    """``baseline``: one run folder, several, or folders of runs (``expand_baselines``)."""
    paths = expand_baselines([baseline] if isinstance(baseline, str | Path) else baseline)
    _check_schemas(paths, Path(run_dir))
    base, run = Baseline.load(paths), load_run(Path(run_dir))
    figures = [Figure(m, s) for m in TABLE_METRICS for s in TABLE_STATS] + [Figure(n) for n in RUN_FIGURES]
    for e in exprs:
        if e.figure not in figures:
            figures.append(e.figure)
    base_noise, run_noise = base.noise(figures, folder_noise(run, figures, seed=seed), seed=seed)
    deltas = [_delta(f, base, run, base_noise, run_noise, z, min_effect) for f in figures]
    deltas = [d for d in deltas if d.baseline is not None or d.run is not None]
    verdict = evaluate_gates(exprs, run.summary, base.first.summary, baseline_lookup=base.value,
                             run_noise=run_noise, baseline_noise=base_noise, z=z, min_effect=min_effect,
                             within_only=not base.between_known)
    def reasons(s: Summary) -> list[str]:
        return check_valid(s, min_samples=min_samples, error_ceiling=error_ceiling, strict=strict)

    invalid = {"baseline": [f"{r.name}: {why}" if len(base.runs) > 1 else why for r in base.runs
                            for why in reasons(r.summary)],
               "run": reasons(run.summary)}
    warnings = [w for r in base.runs for w in _mismatch_warnings(r, run)]
    warnings += [_delay_caveat(r) for r in (*base.runs, run) if r.summary.generator.beyond_promise]
    return Comparison(base, run, deltas, verdict, run_noise.method, z, min_effect, invalid,
                      list(dict.fromkeys(warnings)))


def _delay_caveat(r: RunFolder) -> str:
    """A run whose P99s may carry more client-side delay than promised: a P99 difference smaller than that
    bound is no evidence either way (docs/generator.md); ``--strict`` refuses such runs instead."""
    return (f"{r.name}: P99 figures may include up to {r.summary.generator.client_delay_ms:g} ms of client-side "
            "delay (beyond the accuracy promise): a P99 difference smaller than that says nothing")


def _delta(fig: Figure, base: Baseline, run: RunFolder, base_noise: Noise, run_noise: Noise, z: float,
           min_effect: float) -> Delta:
    b, r = base.value(fig), fig.lookup(run.summary)
    if b is None or r is None:
        return Delta(fig, b, r, None, None, False, None)
    sig = decide(r, b, run_noise.get(fig.key), base_noise.get(fig.key), z=z, min_effect=min_effect)
    return Delta(fig, b, r, r - b, relative_change(r, b), sig.significant,
                 sig.noise if math.isfinite(sig.noise) else None)


# ---------------------------------------------------------------- renderings

def _rel(d: Delta) -> str:
    if d.delta_rel is None:
        return "–"
    if math.isinf(d.delta_rel):
        return "new" if d.delta_rel > 0 else "gone"
    return f"{d.delta_rel * 100:+.1f}%"


def _delta_abs(d: Delta) -> str:
    if d.delta is None:
        return "–"
    if d.figure.unit == "":
        return f"{d.delta * 100:+.2f} pp"
    return f"{d.delta:+.3g}{' ms' if d.figure.unit == 'ms' else '/s'}"


def _sig(d: Delta, between_known: bool) -> str:
    if d.delta is None:
        return "–"
    if not d.significant:
        return "no"
    direction = "worse" if d.worse else "better"
    return f"yes, {direction}" if between_known else f"beyond within-run noise, {direction}"


def delta_rows(c: Comparison) -> list[list[str]]:
    known = c.baselines.between_known
    return [[d.figure.key, format_value(d.baseline, d.figure.unit), format_value(d.run, d.figure.unit),
             _delta_abs(d), _rel(d), "–" if d.noise is None else "±" + format_value(d.noise, d.figure.unit),
             _sig(d, known)] for d in c.deltas]


DELTA_HEADERS = ["figure", "baseline", "run", "Δ", "Δ %", "noise (z·se)", "significant"]
GATE_HEADERS = ["gate", "result", "baseline", "run", "Δ %", "significant", "detail"]


def gate_rows(c: Comparison) -> list[list[str]]:
    rows = []
    for r in c.verdict.results:
        unit = r.expr.figure.unit
        rows.append([r.expr.text, r.status.upper(), format_value(r.baseline, unit),
                     format_value(r.observed, unit),
                     "–" if r.delta_rel is None else f"{r.delta_rel * 100:+.1f}%",
                     {None: "n/a", True: "yes", False: "no"}[r.significant], r.message])
    return rows


def headline(c: Comparison) -> str:
    if not c.valid:
        return "NOT VALID TO JUDGE"
    if not c.verdict.results:
        return "NO GATES (report only)"
    fails = len(c.verdict.failures)
    if fails:
        return f"FAIL: {fails} of {len(c.verdict.results)} gate(s) failed"
    return f"PASS: {len(c.verdict.results)} gate(s) passed"


def significance_note(c: Comparison) -> str:
    note = (f"A difference is significant when |Δ| > {c.z:g} × the combined standard error of both runs "
            f"and > {c.min_effect * 100:g}% of the baseline. Standard errors: {c.noise_method}. "
            "A relative gate fails only when its threshold is crossed AND the difference is significant; "
            "absolute gates need no significance.")
    if not c.baselines.between_known:
        note += (" " + BETWEEN_UNKNOWN)
    return note


BETWEEN_UNKNOWN = ("Between-run noise is unknown: the baseline is one run, so a difference marked "
                   "'beyond within-run noise' may be the ordinary shift between two runs of the same code, "
                   "not a regression. Use a baseline of several runs (repeat --baseline, or pass a folder "
                   "of runs) to include it.")


def _plain_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(str(x)) for x in col) for col in zip(headers, *rows, strict=False)]
    line = "  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=False))
    out = [line, "  ".join("-" * w for w in widths)]
    out += ["  ".join(str(x).ljust(w) for x, w in zip(row, widths, strict=False)) for row in rows]
    return "\n".join(out)


def render_text(c: Comparison) -> str:
    base = c.baseline.path if len(c.baselines.runs) == 1 else f"{len(c.baselines.runs)} baseline runs"
    parts = [f"loadbench compare: {base} (baseline) -> {c.run.path} (run)", headline(c), ""]
    for label, reasons in c.invalid.items():
        parts += [f"{label} not valid to judge: {r}" for r in reasons]
    parts += [f"warning: {w}" for w in c.warnings]
    if c.verdict.results:
        short = [[*row[:2], row[6]] for row in gate_rows(c)]
        parts += ["", _plain_table(["gate", "result", "detail"], short)]
    parts += ["", _plain_table(DELTA_HEADERS, delta_rows(c)), "", significance_note(c)]
    return "\n".join(parts) + "\n"


def render_markdown(c: Comparison) -> str:
    parts = [f"## loadbench compare: {headline(c)}",
             f"Baseline {c.baselines.label} vs run `{c.run.name}` ({c.run.summary.run_id or '?'})."]
    problems = [f"**{label} not valid to judge**: {r}"
                for label, reasons in c.invalid.items() for r in reasons]
    if problems or c.warnings:
        parts.append("\n".join(f"- {p}" for p in problems + [f"warning: {w}" for w in c.warnings]))
    if c.verdict.results:
        parts += ["### Gates", markdown_table(GATE_HEADERS, gate_rows(c))]
    parts += ["### Deltas", markdown_table(DELTA_HEADERS, delta_rows(c)),
              "Latencies in ms (measure window, successful requests); error rate in percent "
              "(Δ in percentage points).", f"_{significance_note(c)}_"]
    return "\n\n".join(parts) + "\n"


def render_junit(c: Comparison) -> str:
    """One test case per gate (and one for validity), so CI systems show each gate by name."""
    cases: list[str] = []
    failures = 0
    errors = 0
    reasons = [f"{label}: {r}" for label, rs in c.invalid.items() for r in rs]
    body = f"<error message={quoteattr('; '.join(reasons))}/>" if reasons else ""
    errors += bool(reasons)
    cases.append(f'<testcase classname="loadbench.compare" name="run is valid to judge">{body}</testcase>')
    for r in c.verdict.results:
        inner = ""
        if r.status == "fail":
            failures += 1
            inner = f"<failure message={quoteattr(r.message)}>{escape(r.message)}</failure>"
        elif r.status == "skipped":
            inner = f"<skipped message={quoteattr(r.message)}/>"
        else:
            inner = f"<system-out>{escape(r.message)}</system-out>"
        name = quoteattr(r.expr.text)
        cases.append(f'<testcase classname="loadbench.gates" name={name}>{inner}</testcase>')
    skipped = sum(r.status == "skipped" for r in c.verdict.results)
    return ('<?xml version="1.0" encoding="UTF-8"?>\n'
            f'<testsuites><testsuite name="loadbench compare" tests="{len(cases)}" failures="{failures}" '
            f'errors="{errors}" skipped="{skipped}">\n' + "\n".join(cases) + "\n</testsuite></testsuites>\n")
