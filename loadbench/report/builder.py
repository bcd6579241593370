"""Build the report of a run, multi-target or sweep folder: plots/, intervals.csv, report.{md,html,json}."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from loadbench.errors import InputError
from loadbench.report import plots
from loadbench.report.definitions import DEFINITIONS, EXCLUSIONS
from loadbench.report.document import Bullets, Document, Heading, Image, Para, Table, to_html, to_markdown
from loadbench.report.intervals import interval_rows, write_intervals_csv
from loadbench.report.runfolder import RunFolder, folder_kind, load_run, sub_runs
from loadbench.report.stats import format_value
from loadbench.report.sweep import load_sweep
from loadbench.report.validity import check_valid

FORMATS = ("md", "html", "json")
SPECTRUM_METRICS = ("ttft", "itl", "tpot", "e2e")
TABLE_METRICS = ("ttft", "itl", "tpot", "e2e", "queue", "service_ttft")
TABLE_STATS = ("count", "mean", "p50", "p90", "p95", "p99", "p99_9", "max")
SIDE_BY_SIDE_STATS = ("p50", "p95", "p99")


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
    for fmt in formats:
        out = path / f"report.{fmt}"
        if fmt == "md":
            out.write_text(to_markdown(doc, path), encoding="utf-8")
        elif fmt == "html":
            out.write_text(to_html(doc), encoding="utf-8")
        else:
            out.write_text(json.dumps(data, indent=2, default=str) + "\n", encoding="utf-8")
        written.append(out)
    return written


# ---------------------------------------------------------------- blocks shared by every kind of report

def _fmt_ms(v: Any) -> str:
    return "–" if v is None else f"{float(v):.3f}"


def _num(v: Any) -> str:
    return "–" if v is None else f"{float(v):.4g}"


_SWEEP_COLUMNS = (("ttft", "p50"), ("ttft", "p99"), ("itl", "p99"), ("e2e", "p99"))


def _load_text(summary: dict[str, Any]) -> str:
    load = summary.get("load") or {}
    mode = load.get("mode", "?")
    parts = [f"mode {mode}"]
    if load.get("rps") is not None:
        parts.append(f"{load['rps']} requests/s offered")
    if load.get("users") is not None:
        parts.append(f"{load['users']} users")
    for key, label in (("ramp_up_s", "ramp-up"), ("duration_s", "duration"), ("warmup_s", "warm-up"),
                       ("cooldown_s", "cool-down")):
        if load.get(key):
            parts.append(f"{label} {load[key]} s")
    if load.get("stages"):
        parts.append(f"{len(load['stages'])} stages")
    if load.get("workers"):
        parts.append(f"{load['workers']} worker process(es)")
    return ", ".join(parts)


def _overview(summary: dict[str, Any]) -> list[str]:
    target = summary.get("target") or {}
    req = summary.get("requests") or {}
    thr = summary.get("throughput") or {}
    tokens = summary.get("tokens") or {}
    window = summary.get("window") or {}
    source = tokens.get("source", "?")
    token_note = " (estimated from chunk counts: the server sent no usage)" if source != "usage" else \
        " (the server's usage field)"
    outcomes = ", ".join(f"{k} {v}" for k, v in sorted((req.get("by_outcome") or {}).items())) or "–"
    goodput = thr.get("goodput_rps")
    return [
        f"Run: {summary.get('run_id', '?')}",
        f"Target: {target.get('url', '?')} (model {target.get('model', '?')})",
        f"Load: {_load_text(summary)}",
        f"Measure window: {window.get('measure_s', '?')} s",
        f"Requests: {req.get('total', 0)} measured ({outcomes}); error rate "
        f"{format_value(req.get('error_rate'), '')}; excluded (warm-up/cool-down) {req.get('excluded', 0)}; "
        f"dropped {req.get('dropped', 0)}",
        f"Throughput: {format_value(thr.get('requests_per_s'), ' requests/s')}, "
        f"{format_value(thr.get('output_tokens_per_s'), ' output tokens/s')}"
        + (f", goodput {format_value(goodput, ' requests/s')}" if goodput is not None else ""),
        f"Token counts: {source}{token_note}; prompt mean {tokens.get('prompt_mean')} "
        f"(requested {tokens.get('prompt_requested_mean')}), output mean {tokens.get('output_mean')} "
        f"(requested {tokens.get('output_requested_mean')})",
    ]


def _latency_table(metrics: dict[str, Any]) -> Table:
    headers = ["metric (ms)", *[s.replace("_", ".") for s in TABLE_STATS]]
    rows = []
    for m in TABLE_METRICS:
        stats = metrics.get(f"{m}_ms")
        if not stats:
            continue
        rows.append([m, str(stats.get("count", 0)), *[_fmt_ms(stats.get(s)) for s in TABLE_STATS[1:]]])
    return Table(headers, rows)


def _warnings(summary: dict[str, Any]) -> list[str]:
    items = [str(w) for w in summary.get("warnings") or []]
    items += [f"not valid to judge: {r}" for r in check_valid(summary)]
    if summary.get("interrupted"):
        items.append("the run was interrupted: figures cover only what finished")
    return items or ["none"]


def _definitions_blocks() -> list[Heading | Bullets | Para]:
    return [Heading("Metric definitions"), Bullets([f"{k}: {v}" for k, v in DEFINITIONS.items()]),
            Heading("What was excluded"), Para(EXCLUSIONS)]


def _breakdown_blocks(summary: dict[str, Any]) -> list[Heading | Table]:
    out: list[Heading | Table] = []
    for dim, values in (summary.get("breakdowns") or {}).items():
        if not values:
            continue
        headers = [dim, "requests", *[f"{m} {s}" for m in ("ttft", "itl", "e2e") for s in SIDE_BY_SIDE_STATS]]
        rows = []
        for name, entry in values.items():
            metrics = entry.get("metrics") or {}
            rows.append([name, str(entry.get("requests", "")),
                         *[_fmt_ms((metrics.get(f"{m}_ms") or {}).get(s))
                           for m in ("ttft", "itl", "e2e") for s in SIDE_BY_SIDE_STATS]])
        out += [Heading(f"Breakdown by {dim} (ms)", 3), Table(headers, rows)]
    return out


# ---------------------------------------------------------------- single run

def _run_report(run: RunFolder, plot_dir: Path) -> tuple[Document, dict[str, Any], list[Path]]:
    s = run.summary
    rows = interval_rows(run)
    files = [write_intervals_csv(rows, run.path / "intervals.csv")]
    spectra = {m: {run.name: run.hlog.total(m)} for m in SPECTRUM_METRICS}
    target_tags = sorted({t.split("=", 1)[1] for t in run.hlog.tags if t.startswith("ttft:target=")})
    if target_tags:
        spectra = {m: {t: run.hlog.total(f"{m}:target={t}") for t in target_tags} for m in SPECTRUM_METRICS}
    images = [plots.plot_spectra(spectra, plot_dir / "percentile_spectrum.png",
                                 f"Percentile spectrum: {run.name}"),
              plots.plot_over_time(rows, plot_dir / "over_time.png", f"Over time: {run.name}")]
    if target_tags:
        by_target = ((s.get("breakdowns") or {}).get("target") or {})
        stats = {m: {t: (by_target.get(t, {}).get("metrics") or {}).get(f"{m}_ms") or {} for t in target_tags}
                 for m in SPECTRUM_METRICS}
        images.append(plots.plot_bars(stats, plot_dir / "targets_bars.png",
                                      f"P50 / P95 / P99 by target: {run.name}"))
    files += images
    doc = Document(f"loadbench report: {run.name}")
    doc.add(Heading("Run"), Bullets(_overview(s)), Heading("Warnings"), Bullets(_warnings(s)),
            Heading("Latency (measure window, successful requests)"), _latency_table(s.get("metrics") or {}),
            *_breakdown_blocks(s), Heading("Plots"))
    doc.add(*[Image(p, _ALT[p.stem]) for p in images])
    doc.add(*_definitions_blocks(), Heading("Files"),
            Bullets(["intervals.csv: per-interval counts and P50/P90/P99 of TTFT, ITL, TPOT, E2E",
                     "samples.jsonl: one line per finished request (raw)",
                     "histograms.hlog: HdrHistogram interval log (microseconds)"]))
    data = {"kind": "run", "summary": s, "validity": check_valid(s), "definitions": DEFINITIONS,
            "plots": [p.relative_to(run.path).as_posix() for p in images],
            "intervals": [_row_json(r) for r in rows]}
    return doc, data, files


_ALT = {
    "percentile_spectrum": "Percentile spectrum (latency against percentile, HDR axis) per metric",
    "over_time": "P50/P90/P99 of TTFT and ITL per interval, with requests/s, errors and load",
    "targets_bars": "P50 / P95 / P99 per target",
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

def side_by_side_table(runs: list[tuple[str, RunFolder]]) -> Table:
    rows: list[list[str]] = []
    for m in SPECTRUM_METRICS:
        for st in ("mean", *SIDE_BY_SIDE_STATS):
            rows.append([f"{m}.{st} (ms)",
                         *[_fmt_ms(((r.summary.get("metrics") or {}).get(f"{m}_ms") or {}).get(st))
                           for _, r in runs]])
    for label, section, key, unit in (("throughput (requests/s)", "throughput", "requests_per_s", "/s"),
                                      ("output tokens/s", "throughput", "output_tokens_per_s", "/s"),
                                      ("goodput (requests/s)", "throughput", "goodput_rps", "/s"),
                                      ("error rate", "requests", "error_rate", ""),
                                      ("requests measured", "requests", "total", "n")):
        cells = []
        for _, r in runs:
            v = (r.summary.get(section) or {}).get(key)
            cells.append(str(v) if unit == "n" else format_value(v, "") if unit == "" else _num(v))
        rows.append([label, *cells])
    rows.append(["token source", *[str((r.summary.get("tokens") or {}).get("source", "?")) for _, r in runs]])
    verdicts = [check_valid(r.summary) for _, r in runs]
    rows.append(["valid to judge", *["yes" if not v else "NO: " + "; ".join(v) for v in verdicts]])
    return Table(["figure", *[name for name, _ in runs]], rows)


def _multi_report(path: Path, plot_dir: Path) -> tuple[Document, dict[str, Any], list[Path]]:
    runs = sub_runs(path, "multi")
    spectra = {m: {name: r.hlog.total(m) for name, r in runs} for m in SPECTRUM_METRICS}
    stats = {m: {name: (r.summary.get("metrics") or {}).get(f"{m}_ms") or {} for name, r in runs}
             for m in SPECTRUM_METRICS}
    title = path.name
    images = [plots.plot_spectra(spectra, plot_dir / "targets_spectrum.png",
                                 f"Percentile spectra by target: {title}"),
              plots.plot_bars(stats, plot_dir / "targets_bars.png", f"P50 / P95 / P99 by target: {title}")]
    doc = Document(f"loadbench comparison of targets: {title}")
    doc.add(Heading("Targets side by side"), side_by_side_table(runs), Heading("Plots"),
            *[Image(p, _ALT[p.stem]) for p in images])
    for name, r in runs:
        doc.add(Heading(f"Target {name}"), Bullets(_overview(r.summary)), Bullets(_warnings(r.summary)),
                _latency_table(r.summary.get("metrics") or {}))
    doc.add(*_definitions_blocks())
    data = {"kind": "multi", "targets": {name: r.summary for name, r in runs},
            "validity": {name: check_valid(r.summary) for name, r in runs}, "definitions": DEFINITIONS,
            "plots": [p.relative_to(path).as_posix() for p in images]}
    return doc, data, images


# ---------------------------------------------------------------- sweep

def _sweep_report(path: Path, plot_dir: Path) -> tuple[Document, dict[str, Any], list[Path]]:
    sweep = load_sweep(path)
    steps = sweep.plot_steps()
    title = sweep.name or path.name
    images = [plots.plot_sweep(steps, sweep.capacity, sweep.load_unit, plot_dir / "sweep.png",
                               f"Sweep: {title}"),
              plots.plot_spectra({m: {f"{s.load:g} {sweep.load_unit}": s.run.hlog.total(m)
                                      for s in sweep.steps} for m in ("ttft", "e2e")},
                                 plot_dir / "sweep_spectrum.png",
                                 f"Percentile spectra per sweep step: {title}")]
    headers = ["step", f"load ({sweep.load_unit})", "requests/s", "goodput/s", "output tok/s", "TTFT p50",
               "TTFT p99", "ITL p99", "E2E p99", "SLO met", "valid"]
    rows = []
    for s in sweep.steps:
        m = s.run.summary.get("metrics") or {}
        reasons = check_valid(s.run.summary)
        rows.append([str(s.index), f"{s.load:g}", _num(s.throughput_rps), _num(s.goodput_rps),
                     _num(s.output_tokens_per_s),
                     *[_fmt_ms((m.get(f"{k}_ms") or {}).get(p)) for k, p in _SWEEP_COLUMNS],
                     {True: "yes", False: "no", None: "–"}[s.slo_met], "yes" if not reasons else "no"])
    cap = sweep.capacity
    cap_text = ("Capacity: no step met the SLO" if not cap else
                f"Capacity: {cap.get('load')} {sweep.load_unit} (the highest load meeting the SLO), "
                f"{format_value(cap.get('throughput_rps'), ' requests/s')}, "
                f"goodput {format_value(cap.get('goodput_rps'), ' requests/s')}")
    slo = ", ".join(f"{k} ≤ {v}" for k, v in (sweep.slo or {}).items()) or "none given"
    doc = Document(f"loadbench sweep: {title}")
    doc.add(Heading("Result"), Para(cap_text), Para(f"SLO: {slo}"),
            Heading("Steps (latencies in ms)"), Table(headers, rows), Heading("Plots"),
            *[Image(p, _ALT[p.stem]) for p in images], *_definitions_blocks())
    data = {"kind": "sweep", "sweep": sweep.raw, "definitions": DEFINITIONS,
            "plots": [p.relative_to(path).as_posix() for p in images]}
    return doc, data, images
