"""Build the report of a run, multi-target or sweep folder: plots/, intervals.csv, report.{md,html,json}."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from loadbench.errors import InputError
from loadbench.metrics.records import EMPTY_STATS, STAGE_METRICS, Summary, stat_label
from loadbench.metrics.slo import SloSpec
from loadbench.report import plots
from loadbench.report.definitions import DEFINITIONS, EXCLUSIONS
from loadbench.report.document import Bullets, Document, Heading, Image, Para, Table, to_html, to_markdown
from loadbench.report.intervals import interval_rows, write_intervals_csv
from loadbench.report.replay import replay_curves
from loadbench.report.runfolder import RunFolder, folder_kind, load_run, sub_runs
from loadbench.report.stats import FRACTION_FIGURES, Figure
from loadbench.report.sweep import capacity_text, load_sweep, sweep_rows, sweep_statistics
from loadbench.report.tables import (
    MISSING,
    STAGE_STATS,
    fmt,
    generator_line,
    latency_cell,
    latency_table,
    replay_line,
    requests_line,
    sessions_line,
    slo_headline,
    slo_mark,
    slo_rows,
    slo_text,
    stage_table,
    stalls_line,
    turn_table,
    usage_line,
)
from loadbench.report.validity import check_valid

FORMATS = ("md", "html", "json")
SPECTRUM_METRICS = STAGE_METRICS


def build(path: Path, formats: Sequence[str]) -> list[Path]:
    bad = [f for f in formats if f not in FORMATS]
    if bad:
        raise InputError(f"unknown report format(s) {', '.join(bad)} (choose from {', '.join(FORMATS)})")
    kind = folder_kind(path)
    plot_dir = path / "plots"
    written: list[Path] = []
    data: dict[str, Any]
    if kind == "run":
        doc, data, files = _run_report(load_run(path), plot_dir)
    elif kind == "multi":
        doc, data, files = _multi_report(path, plot_dir)
    else:
        doc, data, files = _sweep_report(path, plot_dir)
    written += files
    for ext in formats:
        out = path / f"report.{ext}"
        if ext == "md":
            out.write_text(to_markdown(doc, path), encoding="utf-8")
        elif ext == "html":
            out.write_text(to_html(doc), encoding="utf-8")
        else:
            out.write_text(json.dumps(data, indent=2, default=str) + "\n", encoding="utf-8")
        written.append(out)
    return written


# ---------------------------------------------------------------- blocks shared by every kind of report

def _load_text(s: Summary) -> str:
    load = s.load
    parts = [f"mode {load.mode}"]
    if load.rps is not None:
        parts.append(f"{fmt(load.rps, 'requests/s')} offered")
    if load.users is not None and load.mode == "closed":
        parts.append(f"{load.users} users" if not s.stages else f"up to {load.users} users")
    for value, label in ((load.ramp_up_s, "ramp-up"), (load.duration_s, "duration"), (load.warmup_s, "warm-up"),
                         (load.cooldown_s, "cool-down")):
        if value:
            parts.append(f"{label} {value:g} s")
    if s.stages:
        parts.append("stages " + ", ".join(st.label for st in s.stages))
    elif load.stages:
        parts.append(f"{len(load.stages)} stages")
    if load.workers:
        parts.append(f"{load.workers} worker process(es)")
    return ", ".join(parts)


def _overview(s: Summary) -> list[str]:
    source = s.tokens.source
    token_note = {"usage": " (the server's usage field)", None: ""}.get(
        source, " (estimated from chunk counts: the server sent no usage)")
    t = s.tokens
    items = [
        f"Run: {s.run_id or MISSING}",
        f"Target: {s.target.url or MISSING} (model {s.target.model or MISSING}, protocol "
        f"{s.target.protocol or 'openai'})",
        f"Load: {_load_text(s)}",
        f"Measure window: {fmt(s.window.measure_s)} s",
        requests_line(s),
        f"Token counts: {source or 'no successful request'}{token_note}; prompt mean {fmt(t.prompt_mean)} "
        f"(requested {fmt(t.prompt_requested_mean)}), output mean {fmt(t.output_mean)} "
        f"(requested {fmt(t.output_requested_mean)})",
    ]
    return [*items, *(line for line in (usage_line(s), stalls_line(s), replay_line(s)) if line)]


def _latency_block(s: Summary) -> Table:
    return Table(*latency_table(s))


def _generator_para(s: Summary) -> list[Para]:
    line = generator_line(s)
    return [Para(line)] if line else []


def _warnings(s: Summary) -> list[str]:
    items = list(s.warnings)
    items += [f"not valid to judge: {r}" for r in check_valid(s)]
    if s.interrupted:
        items.append("the run was interrupted: figures cover only what finished")
    return items or ["none"]


def _slo_blocks(s: Summary) -> list[Heading | Para | Table]:
    if s.slo is None:
        return []
    return [Heading("SLO verdict"), Para(slo_headline(s.slo)), Table(*slo_rows(s.slo))]


def _stage_blocks(s: Summary) -> list[Heading | Para | Table]:
    if not s.stages:
        return []
    return [Heading("Per stage (by each request's intended start; latencies in ms)"), Table(*stage_table(s.stages)),
            Para("A warm-up stage is shown for reference; the headline figures exclude it.")]


def _session_blocks(s: Summary) -> list[Heading | Para | Table]:
    if s.sessions is None:
        return []
    return [Heading("Sessions by turn (latencies in ms; tokens are means)"), Para(sessions_line(s) or ""),
            Table(*turn_table(s)),
            Para("Turn k sends the whole conversation so far: prompt tokens grow turn by turn; cached tokens are "
                 "what the target reported reading from its prefix cache.")]


def _definitions_blocks() -> list[Heading | Bullets | Para]:
    return [Heading("Metric definitions"), Bullets([f"{k}: {v}" for k, v in DEFINITIONS.items()]),
            Heading("What was excluded"), Para(EXCLUSIONS)]


def _breakdown_blocks(s: Summary) -> list[Heading | Table]:
    out: list[Heading | Table] = []
    for dim, values in s.breakdowns.items():
        if not values:
            continue
        headers = [dim, "requests", *[f"{m} {stat_label(st)}" for m in _BREAKDOWN_METRICS for st in STAGE_STATS],
                   "stalls /1k tokens", "streams stalled"]
        rows = [[name, fmt(entry.requests, "n"),
                 *[latency_cell(entry.latency(m), st) for m in _BREAKDOWN_METRICS for st in STAGE_STATS],
                 fmt(entry.stalls.per_1k_tokens if entry.stalls else None),
                 fmt(entry.stalls.stalled_share if entry.stalls else None, "%")]
                for name, entry in values.items()]
        out += [Heading(f"Breakdown by {dim} (ms)", 3), Table(headers, rows)]
    return out


_BREAKDOWN_METRICS = ("ttft", "itl", "e2e")
ALL_REQUESTS = "all requests"


# ---------------------------------------------------------------- single run

def _run_report(run: RunFolder, plot_dir: Path) -> tuple[Document, dict[str, Any], list[Path]]:
    s = run.summary
    rows = interval_rows(run)
    files = [write_intervals_csv(rows, run.path / "intervals.csv")]
    spectra = {m: {run.name: run.hlog.total(m)} for m in SPECTRUM_METRICS}
    target_tags = sorted({t.split("=", 1)[1] for t in run.hlog.tags if t.startswith("ttft:target=")})
    if target_tags:
        # the all-requests line is the one the headline table describes
        spectra = {m: {ALL_REQUESTS: run.hlog.total(m), **{t: run.hlog.total(f"{m}:target={t}") for t in target_tags}}
                   for m in SPECTRUM_METRICS}
    images = [plots.plot_spectra(spectra, plot_dir / "percentile_spectrum.png",
                                 f"Percentile spectrum: {run.name}"),
              plots.plot_over_time(rows, plot_dir / "over_time.png", f"Over time: {run.name}",
                                   run.load_plan())]
    if s.sessions is not None and s.sessions.turns:
        images.append(plots.plot_turns(s.sessions, plot_dir / "turns.png", f"Sessions by turn: {run.name}"))
    plan = run.load_plan()
    curves = replay_curves(run.path, plan) if plan is not None else None
    if curves is not None:
        images.append(plots.plot_replay(curves, plot_dir / "replay.png", f"Trace replay: {run.name}"))
    if target_tags:
        by_target = s.breakdowns.get("target", {})
        stats = {m: {t: by_target[t].latency(m) if t in by_target else EMPTY_STATS for t in target_tags}
                 for m in SPECTRUM_METRICS}
        images.append(plots.plot_bars(stats, plot_dir / "targets_bars.png",
                                      f"P50 / P95 / P99 by target: {run.name}"))
    files += images
    doc = Document(f"loadbench report: {run.name}")
    doc.add(Heading("Run"), Bullets(_overview(s)), *_slo_blocks(s), Heading("Warnings"), Bullets(_warnings(s)),
            Heading("Latency (measure window, successful requests)"), _latency_block(s), *_generator_para(s),
            *_stage_blocks(s), *_session_blocks(s), *_breakdown_blocks(s), Heading("Plots"))
    doc.add(*[Image(p, _ALT[p.stem]) for p in images])
    doc.add(*_definitions_blocks(), Heading("Files"),
            Bullets(["intervals.csv: per-interval counts and P50/P90/P99 of TTFT, ITL, TPOT, E2E",
                     "samples.jsonl: one line per finished request (raw)",
                     "histograms.hlog: HdrHistogram interval log (microseconds)"]))
    data = {"kind": "run", "summary": s.to_json(), "validity": check_valid(s), "definitions": DEFINITIONS,
            "plots": [p.relative_to(run.path).as_posix() for p in images],
            "intervals": [_row_json(r) for r in rows]}
    return doc, data, files


_ALT = {
    "percentile_spectrum": "Percentile spectrum (latency against percentile, HDR axis) per metric",
    "over_time": "P50/P90/P99 of TTFT and ITL per interval, with requests/s, errors and load",
    "targets_bars": "P50 / P95 / P99 per target",
    "turns": "Multi-turn sessions by turn index: TTFT P50/P99, prompt and cached prompt tokens",
    "replay": "A trace replay's arrivals: the trace in its own time, the schedule at the replay's speed, the sends",
    "targets_spectrum": "Percentile spectra of every target, overlaid",
    "sweep": "Latency and goodput against offered load, capacity marked",
    "sweep_spectrum": "Percentile spectra of every sweep step, overlaid",
}


def _row_json(r: Any) -> dict[str, Any]:
    return {"t_start_s": r.t_start_s, "t_end_s": r.t_end_s, "phase": r.phase, "stage": r.stage,
            "users": r.users, "target_rps": r.target_rps, "requests": r.requests, "ok": r.ok,
            "failed": r.failed,
            "latency_ms": r.latency_ms}


# ---------------------------------------------------------------- multi-target

_SIDE_BY_SIDE_FIGURES = (("throughput (requests/s)", "throughput.rps"), ("output tokens/s", "throughput.tokens_per_s"),
                         ("goodput (requests/s)", "throughput.goodput_rps"), ("error rate", "error_rate"),
                         ("stalls per 1,000 tokens", "stalls.per_1k_tokens"),
                         ("streams with a stall", "stalls.stalled_share"))


def side_by_side_table(runs: list[tuple[str, RunFolder]]) -> Table:
    rows: list[list[str]] = [["protocol", *[r.summary.target.protocol or "openai" for _, r in runs]]]
    for m in SPECTRUM_METRICS:
        for st in ("mean", *STAGE_STATS):
            rows.append([f"{m}.{stat_label(st)} (ms)", *[latency_cell(r.summary.latency(m), st) for _, r in runs]])
    for label, name in _SIDE_BY_SIDE_FIGURES:
        fig = Figure(name)
        unit = "%" if name in FRACTION_FIGURES else ""
        rows.append([label, *[fmt(fig.lookup(r.summary), unit) for _, r in runs]])
    rows.append(["requests measured", *[fmt(r.summary.requests.total, "n") for _, r in runs]])
    rows.append(["token source", *[r.summary.tokens.source or MISSING for _, r in runs]])
    rows.append(["output tokens per chunk", *[fmt(r.summary.tokens.per_chunk_mean) for _, r in runs]])
    rows.append(["SLO", *[slo_mark(r.summary.slo) for _, r in runs]])
    verdicts = [check_valid(r.summary) for _, r in runs]
    rows.append(["valid to judge", *["yes" if not v else "NO: " + "; ".join(v) for v in verdicts]])
    return Table(["figure", *[name for name, _ in runs]], rows)


def _multi_report(path: Path, plot_dir: Path) -> tuple[Document, dict[str, Any], list[Path]]:
    runs = sub_runs(path, "multi")
    spectra = {m: {name: r.hlog.total(m) for name, r in runs} for m in SPECTRUM_METRICS}
    stats = {m: {name: r.summary.latency(m) for name, r in runs} for m in SPECTRUM_METRICS}
    title = path.name
    images = [plots.plot_spectra(spectra, plot_dir / "targets_spectrum.png",
                                 f"Percentile spectra by target: {title}"),
              plots.plot_bars(stats, plot_dir / "targets_bars.png", f"P50 / P95 / P99 by target: {title}")]
    doc = Document(f"loadbench comparison of targets: {title}")
    doc.add(Heading("Targets side by side"), side_by_side_table(runs), Heading("Plots"),
            *[Image(p, _ALT[p.stem]) for p in images])
    for name, r in runs:
        doc.add(Heading(f"Target {name}"), Bullets(_overview(r.summary)), *_slo_blocks(r.summary),
                Bullets(_warnings(r.summary)), _latency_block(r.summary), *_stage_blocks(r.summary))
    doc.add(*_definitions_blocks())
    data = {"kind": "multi", "targets": {name: r.summary.to_json() for name, r in runs},
            "validity": {name: check_valid(r.summary) for name, r in runs}, "definitions": DEFINITIONS,
            "plots": [p.relative_to(path).as_posix() for p in images]}
    return doc, data, images


# ---------------------------------------------------------------- sweep

def _sweep_report(path: Path, plot_dir: Path) -> tuple[Document, dict[str, Any], list[Path]]:
    sweep = load_sweep(path)
    spec = SloSpec.from_json(sweep.slo)
    title = sweep.name or path.name
    images = [plots.plot_sweep(sweep, spec, sweep_statistics(spec), plot_dir / "sweep.png", f"Sweep: {title}"),
              plots.plot_spectra({m: {f"{s.load:g} {sweep.load_unit}": s.run.hlog.total(m)
                                      for s in sweep.steps} for m in ("ttft", "e2e")},
                                 plot_dir / "sweep_spectrum.png",
                                 f"Percentile spectra per sweep step: {title}")]
    doc = Document(f"loadbench sweep: {title}")
    doc.add(Heading("Result"), Para(capacity_text(sweep)), Para(f"SLO: {slo_text(spec)}"),
            Heading("Steps"), Table(*sweep_rows(sweep, spec)), Heading("Plots"),
            *[Image(p, _ALT[p.stem]) for p in images], *_definitions_blocks())
    data = {"kind": "sweep", "sweep": sweep.raw, "definitions": DEFINITIONS,
            "plots": [p.relative_to(path).as_posix() for p in images]}
    return doc, data, images
