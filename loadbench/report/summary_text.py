"""The summary as a person reads it right after a run: the console block and ``summary.md``.

Both use the tables of ``loadbench.report.tables`` (same columns, names and decimals as the report)."""

from __future__ import annotations

from pathlib import Path

from loadbench.metrics.records import Summary
from loadbench.metrics.slo import SloSpec
from loadbench.report.sweep import capacity_text, load_sweep, sweep_rows
from loadbench.report.tables import (
    aligned_table,
    generator_line,
    latency_table,
    replay_line,
    requests_line,
    sessions_line,
    slo_headline,
    slo_rows,
    slo_text,
    stage_table,
    stalls_line,
    turn_table,
    usage_line,
)
from loadbench.results import run_dir as rd
from loadbench.results.summary_file import write_summary_json
from loadbench.results.summary_io import build_summary


def render_console(s: Summary) -> str:
    parts = [aligned_table(*latency_table(s))]
    gen = generator_line(s)
    if gen:
        parts.append(gen)
    parts += ["", requests_line(s)]
    for line in (usage_line(s), stalls_line(s), replay_line(s)):
        if line:
            parts.append(line)
    if s.stages:
        parts += ["", "per stage (latencies in ms):", aligned_table(*stage_table(s.stages))]
    if s.sessions is not None:
        parts += ["", f"{sessions_line(s)}; by turn (ms, tokens are means):", aligned_table(*turn_table(s))]
    if s.slo is not None:
        parts += ["", slo_headline(s.slo), aligned_table(*slo_rows(s.slo))]
    return "\n".join(parts)


def render_markdown(s: Summary) -> str:
    parts = [
        f"# loadbench run {s.run_id or s.name or ''}".rstrip(),
        "",
        f"- target: {s.target.url or '–'} (model `{s.target.model or '–'}`)",
        f"- {requests_line(s)}",
    ]
    for line in (usage_line(s), stalls_line(s), replay_line(s)):
        if line:
            parts.append(f"- {line}")
    parts += ["", "## Latency (ms, measure window, successful requests)", "", aligned_table(*latency_table(s)), ""]
    gen = generator_line(s)
    if gen:
        parts += [gen, ""]
    if s.stages:
        parts += ["## Per stage (ms)", "", aligned_table(*stage_table(s.stages)), ""]
    if s.sessions is not None:
        parts += ["## Sessions by turn (ms; tokens are means)", "", f"{sessions_line(s)}", "",
                  aligned_table(*turn_table(s)), ""]
    if s.slo is not None:
        parts += ["## SLO", "", slo_headline(s.slo), "", aligned_table(*slo_rows(s.slo)), ""]
    if s.warnings:
        parts += ["## Warnings", "", *[f"- {w}" for w in s.warnings], ""]
    return "\n".join(parts)


def write_summary_files(run_dir: Path) -> Summary:
    """Summarise the folder: ``summary.json`` and ``summary.md``."""
    summary = build_summary(run_dir)
    write_summary_json(run_dir, summary)
    (run_dir / rd.SUMMARY_MD).write_text(render_markdown(summary), encoding="utf-8")
    return summary


def render_sweep_console(path: Path) -> str:
    """The sweep's result for the terminal: the SLO as written, the step table, the capacity."""
    sweep = load_sweep(path)
    spec = SloSpec.from_json(sweep.slo)
    return "\n".join([f"SLO: {slo_text(spec)}", aligned_table(*sweep_rows(sweep, spec)), capacity_text(sweep)])
