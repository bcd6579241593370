"""The tables a person reads, one layout each for the console, ``summary.md`` and the report.

Every number goes through ``fmt``: latencies with two decimals in ms, rates with two decimals and
their unit, shares as percentages, missing values as ``–`` (never ``None`` or ``nan``).
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence

from loadbench.metrics.client_delay import TTFT_P99_PROMISE_MS, beyond_promise
from loadbench.metrics.records import (
    LATENCY_METRICS,
    STAGE_METRICS,
    LatencyStats,
    Objective,
    SloResult,
    StageResult,
    Summary,
    stat_label,
)
from loadbench.metrics.slo import SloSpec

MISSING = "–"
# The headline latency table: these metrics, these statistics, in this order, everywhere.
TABLE_METRICS: tuple[str, ...] = LATENCY_METRICS
TABLE_STATS: tuple[str, ...] = ("count", "mean", "p50", "p90", "p95", "p99", "p99_9", "max")
STAGE_STATS: tuple[str, ...] = ("p50", "p95", "p99")
PASS, FAIL = "✓", "✗"
_NUMBER = re.compile(r"^(–|[+-]?[\d,]*\.?\d+ ?(ms|%|req/s)?)$")
SHARE_FIGURES = ("error_rate", "stalled_share")  # fractions, shown as percentages


def fmt(value: float | int | None, unit: str = "") -> str:
    """The one number formatter. ``unit``: "ms" (two decimals), "%" (a fraction as a percentage),
    "n" (a count), or a rate unit such as "req/s" / "tok/s" (two decimals, thousands separated)."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return MISSING
    if unit == "n":
        return f"{int(value):,}"
    if unit == "%":
        return f"{value * 100:.2f}%"
    if unit == "ms":
        return f"{value:,.2f}"
    text = f"{value:,.2f}"
    return f"{text} {unit}" if unit else text


def format_value(value: float | None, unit: str) -> str:
    """A figure in a gate or comparison message, by its ``Figure.unit``: "ms", "" (a fraction),
    "/s" or " per 1k tokens"."""
    if value is None:
        return MISSING
    if unit == "ms":
        return f"{fmt(value, 'ms')} ms"
    if unit == "":
        return fmt(value, "%")
    return f"{fmt(value)}{unit}"


def latency_cell(stats: LatencyStats, stat: str) -> str:
    if stat == "count":
        return fmt(stats.count, "n")
    return fmt(stats.stat(stat), "ms")


def latency_table(summary: Summary) -> tuple[list[str], list[list[str]]]:
    """(headers, rows) of the headline latency table. ``queue`` is 0 in closed loop (a user sends as
    soon as its previous request ends); every metric is shown, empty ones as ``–``."""
    headers = ["metric (ms)", *[stat_label(s) for s in TABLE_STATS]]
    rows = [[m, *[latency_cell(summary.latency(m), s) for s in TABLE_STATS]] for m in TABLE_METRICS]
    return headers, rows


def stage_table(stages: Sequence[StageResult]) -> tuple[list[str], list[list[str]]]:
    """One row per stage: requests, throughput, latencies, errors, whether the SLO held."""
    headers = ["stage", "phase", "start s", "requests", "req/s", "errors",
               *[f"{m} {stat_label(s)}" for m in STAGE_METRICS for s in STAGE_STATS], "SLO"]
    rows = []
    for st in stages:
        rows.append([st.label, st.phase or MISSING, f"{st.start_s:g}", fmt(st.requests.total, "n"),
                     fmt(st.throughput.requests_per_s), fmt(st.requests.error_rate, "%"),
                     *[latency_cell(st.latency(m), s) for m in STAGE_METRICS for s in STAGE_STATS],
                     slo_mark(st.slo)])
    return headers, rows


def turn_table(s: Summary) -> tuple[list[str], list[list[str]]]:
    """Multi-turn sessions: one row per turn index (where prefix caching shows: cached prompt tokens)."""
    headers = ["turn", "requests", "ok", "TTFT P50", "TTFT P99", "ITL mean", "prompt tokens", "cached tokens"]
    rows = [[str(t.turn), fmt(t.requests, "n"), fmt(t.ok, "n"), fmt(t.ttft_p50_ms), fmt(t.ttft_p99_ms),
             fmt(t.itl_mean_ms), fmt(t.prompt_tokens_mean), fmt(t.cached_tokens_mean)]
            for t in (s.sessions.turns if s.sessions else ())]
    return headers, rows


def sessions_line(s: Summary) -> str | None:
    ss = s.sessions
    if ss is None:
        return None
    return (f"sessions: {fmt(ss.started, 'n')} started in the window, {fmt(ss.completed, 'n')} completed every turn; "
            f"turns answered per session {fmt(ss.turns_completed_mean)}, session duration mean "
            f"{fmt(ss.duration_mean_s)} s")


def slo_mark(slo: SloResult | None) -> str:
    if slo is None:
        return MISSING
    return f"{PASS} held" if slo.met else f"{FAIL} broke"


def slo_rows(slo: SloResult) -> tuple[list[str], list[list[str]]]:
    """Each objective, its measured value and a pass/fail mark (older folders: the reasons only)."""
    headers = ["objective", "measured", "result"]
    rows = [[o.label, objective_value(o), f"{PASS} pass" if o.passed else f"{FAIL} FAIL"] for o in slo.objectives]
    if not slo.objectives:
        rows = [[r, MISSING, f"{FAIL} FAIL"] for r in slo.reasons] or [["every objective", MISSING, f"{PASS} pass"]]
    return headers, rows


def objective_value(o: Objective) -> str:
    if o.value is None:
        return MISSING
    if o.stat is not None:
        return f"{fmt(o.value, 'ms')} ms"
    return fmt(o.value, "%") if o.metric in SHARE_FIGURES else fmt(o.value)


def slo_headline(slo: SloResult) -> str:
    return f"SLO {'met' if slo.met else 'NOT met'}" + ("" if slo.met else ": " + "; ".join(slo.reasons))


def slo_text(spec: SloSpec | None) -> str:
    return spec.text() if spec is not None else "none given"


def requests_line(s: Summary) -> str:
    r, t = s.requests, s.throughput
    outcomes = ", ".join(f"{k} {fmt(v, 'n')}" for k, v in r.by_outcome.items()) or MISSING
    return (f"Requests: {fmt(r.total, 'n')} measured ({outcomes}); error rate {fmt(r.error_rate, '%')}; "
            f"excluded (warm-up/cool-down) {fmt(r.excluded, 'n')}; dropped {fmt(r.dropped, 'n')}. "
            f"Throughput: {fmt(t.requests_per_s, 'req/s')}, {fmt(t.output_tokens_per_s, 'output tok/s')}"
            + (f", goodput {fmt(t.goodput_rps, 'req/s')}" if t.goodput_rps is not None else "")
            + (f"; arrivals: offered {fmt(s.generator.target_rps, 'req/s')}, achieved "
               f"{fmt(s.generator.achieved_rps, 'req/s')}" if s.load.mode == "open" else "")
            + f" over {fmt(s.window.measure_s)} s; tokens from {s.tokens.source or 'no successful request'}")


def replay_line(s: Summary) -> str | None:
    """A trace replay's fidelity: sends against the schedule and how late they went out."""
    r = s.replay
    if r is None:
        return None
    sampled = f", sample {r.sample:g}" if r.sample < 1 else ""
    return (f"replay of {r.trace} ({r.format}) at speed {r.speed:g}{sampled}"
            + f": {fmt(r.sent, 'n')} sent of {fmt(r.scheduled, 'n')} scheduled, {fmt(r.dropped, 'n')} dropped; "
            f"send lag behind schedule P50 {fmt(r.send_lag_p50_ms)} ms, P99 {fmt(r.send_lag_p99_ms)} ms, "
            f"max {fmt(r.send_lag_max_ms)} ms")


def usage_line(s: Summary) -> str | None:
    """Tokens per chunk and the usage kinds the protocol reported (None: nothing beyond prompt and output)."""
    t = s.tokens
    parts = [f"{fmt(t.per_chunk_mean)} output tokens per chunk"] if t.per_chunk_mean is not None else []
    parts += [f"{name} {fmt(value)}" for name, value in (("cached input", t.cached_mean),
                                                         ("cache write", t.cache_write_mean),
                                                         ("reasoning", t.reasoning_mean)) if value is not None]
    return "Tokens (means per request, from the usage): " + ", ".join(parts) if parts else None


def stalls_line(s: Summary) -> str | None:
    st = s.stalls
    if st is None:
        return None
    return (f"stalls (gaps > {st.limit_ms:g} ms between content chunks): {fmt(st.stalls, 'n')}, "
            f"{fmt(st.per_1k_tokens)} per 1,000 output tokens; {fmt(st.stalled_share, '%')} of "
            f"{fmt(st.streams, 'n')} streams stalled at least once")


def generator_line(s: Summary) -> str | None:
    """The generator's own delay, printed beside the latency table (docs/generator.md)."""
    g = s.generator
    if g.loop_lag_p99_ms is None:
        return None
    line = f"generator: loop-lag P99 {fmt(g.loop_lag_p99_ms)} ms"
    if g.schedule_lag_p99_ms is not None:
        line += f", schedule-lag P99 {fmt(g.schedule_lag_p99_ms)} ms"
    if g.client_delay_ms is not None:
        within = "beyond" if beyond_promise(g.client_delay_ms) else "within"
        line += (f"; P99 figures may include up to {fmt(g.client_delay_ms)} ms of client-side delay "
                 f"({within} the {TTFT_P99_PROMISE_MS:g} ms accuracy promise)")
    if g.receive_clock == "kernel":
        line += (f"; chunks timed by kernel receive stamps: {fmt(g.stamped_share, '%')} "
                 f"({fmt(g.shared_stamp_share, '%')} sharing the previous chunk's), client read delay "
                 f"P50 {fmt(g.read_delay_p50_ms)} / P99 {fmt(g.read_delay_p99_ms)} ms (TTFT as user space read "
                 f"it: P50 {fmt(g.user_ttft_p50_ms)} / P99 {fmt(g.user_ttft_p99_ms)} ms)")
    elif g.receive_clock == "user":
        line += "; chunks timed in user space (no kernel receive stamps)"
    if g.send_stamped_share:
        line += (f"; requests timed from the kernel's send stamp: {fmt(g.send_stamped_share, '%')}, client send "
                 f"delay P50 {fmt(g.send_delay_p50_ms)} / P99 {fmt(g.send_delay_p99_ms)} ms")
    return line


def aligned_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A Markdown table padded so its columns line up in a terminal (numbers right-aligned)."""
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)]
    numeric = [i > 0 and all(_NUMBER.match(r[i]) for r in rows) for i in range(len(headers))]

    def line(cells: Sequence[str]) -> str:
        return "| " + " | ".join(c.rjust(w) if num else c.ljust(w)
                                 for c, w, num in zip(cells, widths, numeric, strict=True)) + " |"

    rule = "|" + "|".join(("-" * (w + 1) + ":") if num else ("-" * (w + 2))
                          for w, num in zip(widths, numeric, strict=True)) + "|"
    return "\n".join([line(headers), rule, *[line(r) for r in rows]])
