"""The report's plots (PNG, matplotlib Agg, imported lazily so ``import loadbench.report`` stays light).

Every function takes typed data (distributions, interval rows, latency stats, a sweep) and a path, draws one
figure and returns the path. Latencies are in milliseconds throughout.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from loadbench.metrics.records import LatencyStats, SessionStats, stat_key, stat_label
from loadbench.metrics.slo import SloSpec
from loadbench.plan.load import LoadPlan
from loadbench.report.distribution import Dist
from loadbench.report.intervals import IntervalRow

if TYPE_CHECKING:
    from loadbench.report.replay import ReplayCurves
    from loadbench.report.sweep import Sweep

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

METRIC_TITLES = {"ttft": "TTFT (time to first token)", "itl": "ITL (gap between content chunks)",
                 "tpot": "TPOT (decode time per output token)", "e2e": "E2E (whole request)"}
SPECTRUM_MARKS = (50.0, 90.0, 99.0, 99.9, 99.99)
_PCT_COLORS = {"p50": "#1f77b4", "p90": "#ff7f0e", "p99": "#d62728"}


def _figure(rows: int, cols: int, width: float, height: float, **kw: Any) -> tuple[Figure, Any]:
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(rows, cols, figsize=(width, height), squeeze=False, **kw)
    return fig, axes


def _save(fig: Figure, path: Path) -> Path:
    import matplotlib.pyplot as plt

    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _pct_label(p: float) -> str:
    return f"P{p:g}"


def _spectrum_axes(ax: Axes, dists: Mapping[str, Dist], title: str) -> None:
    max_x = 10.0
    lo_ms, hi_ms = math.inf, 0.0
    for label, dist in dists.items():
        below, values = dist.spectrum()
        if len(values) == 0:
            continue
        xs = [1.0 / (1.0 - b / 100.0) for b in below]
        xs.append(float(dist.total))  # the last sample sits at 1/(1-(n-1)/n) = n
        ys = [*values.tolist(), float(values[-1])]
        ax.plot(xs, ys, drawstyle="steps-post", label=f"{label} (n={dist.total:,})", linewidth=1.6)
        max_x = max(max_x, xs[-1])
        lo_ms, hi_ms = min(lo_ms, float(values[0])), max(hi_ms, float(values[-1]))
    # always show P50 .. P99.99 so spectra of different runs line up; a short run's curve just ends early
    upper = max(10 ** math.ceil(math.log10(max(max_x, 10.0)) - 1e-9), 1e4)
    ax.set_xscale("log")
    ax.set_xlim(1.0, upper * 1.05)
    marks = [p for p in SPECTRUM_MARKS if 1.0 / (1.0 - p / 100.0) <= upper * 1.001]
    ticks = [1.0, *[1.0 / (1.0 - p / 100.0) for p in marks]]
    ax.set_xticks(ticks)
    ax.set_xticklabels(["P0", *[_pct_label(p) for p in marks]])
    ax.minorticks_off()
    for t in ticks[1:]:
        ax.axvline(t, color="#bbb", linestyle=":", linewidth=0.8)
    ylabel = "latency (ms)"
    if hi_ms > 0:
        pad = max((hi_ms - lo_ms) * 0.1, hi_ms * 0.005)
        if lo_ms > 0.3 * hi_ms:
            # a narrow band far from 0 (e.g. E2E 680..695 ms) would be a flat line on a 0-based axis
            ax.set_ylim(lo_ms - pad, hi_ms + pad)
            ylabel = "latency (ms, axis not from 0)"
        else:
            ax.set_ylim(0, hi_ms + pad)
    ax.set_title(title, fontsize=11)
    ax.set_xlabel("percentile (HDR axis: log of 1/(1-p))")
    ax.set_ylabel(ylabel)
    ax.grid(axis="y", alpha=0.3)
    if any(d.total for d in dists.values()):
        # spectra rise to the right from a floor well above 0: the lower right is free
        ax.legend(fontsize=8, loc="lower right")
    else:
        ax.text(0.5, 0.5, "no samples", ha="center", va="center", transform=ax.transAxes, color="#888")


def plot_spectra(by_metric: Mapping[str, Mapping[str, Dist]], path: Path, title: str) -> Path:
    return _save(spectra_figure(by_metric, title), path)


def spectra_figure(by_metric: Mapping[str, Mapping[str, Dist]], title: str) -> Figure:
    """Percentile spectrum per metric (2x2 panels); several labels per panel overlay runs or targets."""
    metrics = list(by_metric)
    cols = 2 if len(metrics) > 1 else 1
    rows = math.ceil(len(metrics) / cols)
    fig, axes = _figure(rows, cols, 6.2 * cols, 4.4 * rows)
    for i, metric in enumerate(metrics):
        _spectrum_axes(axes[i // cols][i % cols], by_metric[metric], METRIC_TITLES.get(metric, metric))
    for j in range(len(metrics), rows * cols):
        axes[j // cols][j % cols].set_visible(False)
    fig.suptitle(title, fontsize=13)
    fig.tight_layout()
    return fig


@dataclass(frozen=True, slots=True)
class PlanMarks:
    """Where the plan's phases and stages begin, on the run clock, exactly (not rounded to intervals)."""

    spans: tuple[tuple[float, float, str], ...]  # (start_s, end_s, phase) of what is not measured
    stages: tuple[tuple[float, str], ...]  # (start_s, label) of every stage after the first


def plan_marks(plan: LoadPlan, end_s: float) -> PlanMarks:
    """``end_s``: where the plot ends (the drain runs from the plan's end to there)."""
    spans = [(0.0, plan.warmup_s, "warmup")] if plan.warmup_s > 0 else []
    if plan.cooldown_s > 0:
        spans.append((plan.total_s - plan.cooldown_s, plan.total_s, "cooldown"))
    if end_s > plan.total_s:
        spans.append((plan.total_s, end_s, "drain"))
    steps = plan.steps()
    distinct = len({s.label for s in steps}) > 1
    return PlanMarks(spans=tuple(spans),
                     stages=tuple((s.start_s, s.label) for s in steps[1:]) if distinct else ())


def _row_marks(rows: Sequence[IntervalRow]) -> PlanMarks:
    """Without the load plan (a folder without a manifest): phases and stages as the intervals carry them."""
    spans: list[tuple[float, float, str]] = []
    for r in rows:
        if r.phase != "measure":
            if spans and spans[-1][2] == r.phase and math.isclose(spans[-1][1], r.t_start_s):
                spans[-1] = (spans[-1][0], r.t_end_s, r.phase)
            else:
                spans.append((r.t_start_s, r.t_end_s, r.phase))
    stages: list[tuple[float, str]] = []
    if len({r.stage for r in rows if r.stage is not None}) > 1:
        stages = [(cur.t_start_s, str(cur.stage)) for prev, cur in itertools.pairwise(rows)
                  if cur.stage != prev.stage and cur.stage is not None]
    return PlanMarks(spans=tuple(spans), stages=tuple(stages))


def _shade_phases(ax: Axes, marks: PlanMarks, label: bool) -> None:
    spans = marks.spans
    seen: set[str] = set()
    for start, end, phase in spans:
        # drain: after the plan, requests sent inside it finish; they count, nothing new is sent
        text = "drain (in-flight requests finish)" if phase == "drain" else f"{phase} (excluded)"
        color = "#7aa6d6" if phase == "drain" else "#999"
        ax.axvspan(start, end, color=color, alpha=0.18, linewidth=0,
                   label=text if label and phase not in seen else None)
        seen.add(phase)
    for start_s, stage in marks.stages:
        ax.axvline(start_s, color="#6a3d9a", linestyle="--", linewidth=0.9)
        if label:
            ax.annotate(stage, (start_s, 0.0), xycoords=("data", "axes fraction"),
                        xytext=(3, 4), textcoords="offset points", fontsize=8, color="#6a3d9a")


def _latency_panel(ax: Axes, rows: Sequence[IntervalRow], metric: str, mids: list[float], marks: PlanMarks,
                   label: bool) -> None:
    for name, color in _PCT_COLORS.items():
        ys = [(r.latency_ms.get(metric) or {}).get(name) for r in rows]
        ax.plot(mids, [math.nan if y is None else y for y in ys], marker="o", markersize=3,
                color=color, label=name.upper())
    ax.set_ylabel(f"{metric.upper()} (ms)")
    # headroom above the data keeps the legend clear of the lines
    seen_ms = [y for r in rows for y in (r.latency_ms.get(metric) or {}).values() if y is not None]
    ax.set_ylim(0, max(seen_ms or [1.0]) * 1.35)
    ax.set_title(f"{METRIC_TITLES[metric]} per interval", fontsize=11)
    ax.grid(alpha=0.3)
    _shade_phases(ax, marks, label=label)
    ax.legend(fontsize=8, loc="upper right", ncols=4)


def plot_over_time(rows: Sequence[IntervalRow], path: Path, title: str, plan: LoadPlan | None = None) -> Path:
    return _save(over_time_figure(rows, title, plan), path)


def over_time_figure(rows: Sequence[IntervalRow], title: str, plan: LoadPlan | None = None) -> Figure:
    """TTFT and ITL P50/P90/P99 per interval; finished requests/s with the offered rate on the same
    axis (both requests/s); closed loop: users in a panel of their own (a different unit). With the
    run's load plan, warm-up, cool-down, drain and stage lines sit at the plan's own times; without
    it at the edges of the intervals whose middle they contain."""
    end_s = rows[-1].t_end_s if rows else 0.0
    marks = plan_marks(plan, end_s) if plan is not None else _row_marks(rows)
    closed = not any(r.target_rps is not None for r in rows)
    panels = 4 if closed else 3
    fig, axes = _figure(panels, 1, 11, 3.2 * panels, sharex=True)
    mids = [(r.t_start_s + r.t_end_s) / 2 for r in rows]
    _latency_panel(axes[0][0], rows, "ttft", mids, marks, label=True)
    _latency_panel(axes[1][0], rows, "itl", mids, marks, label=False)
    ax = axes[2][0]
    widths = [r.length_s * 0.9 for r in rows]
    ok_rps = [r.ok / r.length_s for r in rows]
    ax.bar(mids, ok_rps, width=widths, color="#2ca02c", alpha=0.7, label="successful requests/s")
    ax.bar(mids, [r.failed / r.length_s for r in rows], width=widths, color="#d62728", alpha=0.9,
           bottom=ok_rps, label="failed requests/s")
    top = max([(r.ok + r.failed) / r.length_s for r in rows] or [1.0])
    if not closed and rows:
        target = [math.nan if r.target_rps is None else r.target_rps for r in rows]
        edges = [r.t_start_s for r in rows] + [rows[-1].t_end_s]
        ax.step(edges, [*target, target[-1]], where="post", color="#000", linewidth=1.4,
                label="offered (target) requests/s")
        top = max(top, *[t for t in target if not math.isnan(t)])
    ax.set_ylabel("requests / s")
    ax.set_title("Throughput (finished requests/s)" + ("" if closed else " against the offered rate"), fontsize=11)
    ax.set_ylim(0, top * 1.3 or 1)
    ax.grid(alpha=0.3)
    _shade_phases(ax, marks, label=False)
    ax.legend(fontsize=8, loc="upper left", ncols=3)
    if closed:
        users_ax = axes[3][0]
        # the users the runner had at each interval's end, from 0 at the start: the real ramp
        xs = [0.0, *[r.t_end_s for r in rows]]
        ys = [0.0, *[math.nan if r.users is None else r.users for r in rows]]
        users_ax.plot(xs, ys, color="#000", linewidth=1.4, marker=".", label="users (concurrent)")
        users_ax.set_ylabel("users")
        users_ax.set_title("Concurrent users (closed loop)", fontsize=11)
        users_ax.set_ylim(0, max([y for y in ys if not math.isnan(y)] or [1.0]) * 1.25 or 1)
        users_ax.grid(alpha=0.3)
        _shade_phases(users_ax, marks, label=False)
        users_ax.legend(fontsize=8, loc="upper left")
    axes[-1][0].set_xlabel("time since run start (s)")
    if rows:
        axes[0][0].set_xlim(0.0, rows[-1].t_end_s)
    fig.suptitle(title, fontsize=13)
    fig.tight_layout()
    return fig


def plot_bars(stats: Mapping[str, Mapping[str, LatencyStats]], path: Path, title: str) -> Path:
    return _save(bars_figure(stats, title), path)


def bars_figure(stats: Mapping[str, Mapping[str, LatencyStats]], title: str,
                percentiles: Sequence[str] = ("p50", "p95", "p99")) -> Figure:
    """Grouped bars: per metric panel, one group per percentile, one bar per target.

    ``stats[metric][target]`` in ms."""
    metrics = list(stats)
    cols = 2 if len(metrics) > 1 else 1
    rows = math.ceil(len(metrics) / cols)
    fig, axes = _figure(rows, cols, 6.2 * cols, 4.2 * rows)
    for i, metric in enumerate(metrics):
        ax = axes[i // cols][i % cols]
        targets = list(stats[metric])
        n = max(1, len(targets))
        width = 0.8 / n
        for j, target in enumerate(targets):
            xs = [k + (j - (n - 1) / 2) * width for k in range(len(percentiles))]
            ys = [stats[metric][target].stat(p) or 0.0 for p in percentiles]
            bars = ax.bar(xs, ys, width=width * 0.95, label=target)
            ax.bar_label(bars, labels=[f"{y:,.0f}" if y >= 100 else f"{y:.3g}" for y in ys], fontsize=7,
                         padding=1)
        ax.set_xticks(range(len(percentiles)))
        ax.set_xticklabels([p.upper().replace("_", ".") for p in percentiles])
        ax.set_ylabel("latency (ms)")
        ax.set_title(METRIC_TITLES.get(metric, metric), fontsize=11)
        ax.margins(y=0.15)
        ax.grid(axis="y", alpha=0.3)
        ax.legend(fontsize=8, loc="upper left")
    for j in range(len(metrics), rows * cols):
        axes[j // cols][j % cols].set_visible(False)
    fig.suptitle(title, fontsize=13)
    fig.tight_layout()
    return fig


def _plain_ticks(ax: Axes) -> None:
    """Tick labels as plain numbers (a log axis would otherwise print 10^2)."""
    from matplotlib.ticker import FuncFormatter, LogLocator

    if ax.get_yscale() == "log":  # 1-2-5 steps: a decade with one label is hard to read
        ax.yaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:,.0f}" if v >= 10 else f"{v:g}"))
    ax.yaxis.set_minor_formatter(FuncFormatter(lambda v, _: ""))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))


_SERIES_COLORS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b", "#e377c2")


def plot_sweep(sweep: Sweep, spec: SloSpec | None, judged: Sequence[tuple[str, str]], path: Path,
               title: str) -> Path:
    return _save(sweep_figure(sweep, spec, judged, title), path)


def sweep_figure(sweep: Sweep, spec: SloSpec | None, judged: Sequence[tuple[str, str]], title: str) -> Figure:
    """The statistics the SLO judges (top, with each threshold drawn in the same colour) and
    throughput / goodput (bottom) against offered load; capacity marked."""
    fig, axes = _figure(2, 1, 10, 8.5, sharex=True)
    steps = sweep.steps
    loads = [s.load for s in steps]
    top = axes[0][0]
    limits = {(m, stat_key(st)): lim for m, st, lim in (spec.latency if spec else ())}
    for (metric, stat), color in zip(judged, itertools.cycle(_SERIES_COLORS), strict=False):
        ys = [s.run.summary.latency(metric).stat(stat) for s in steps]
        name = f"{metric.upper()} {stat_label(stat)}"
        top.plot(loads, [math.nan if y is None else y for y in ys], marker="o", markersize=4, color=color,
                 label=name)
        limit = limits.get((metric, stat))
        if limit is not None:
            top.axhline(limit, color=color, linestyle="--", linewidth=1.1, label=f"SLO: {name} <= {limit:g} ms")
    top.set_yscale("log")
    _plain_ticks(top)
    top.set_ylabel("latency (ms, log scale)")
    top.set_title("What the SLO judges, against offered load", fontsize=11)
    top.grid(alpha=0.3, which="both")
    bottom = axes[1][0]
    # goodput drawn first, wide and dashed, so a throughput line on top of it leaves it visible
    goodput = [math.nan if s.goodput_rps is None else s.goodput_rps for s in steps]
    bottom.plot(loads, goodput, linestyle="--", linewidth=3.0, marker="s", markersize=9, markerfacecolor="none",
                color="#9467bd", label="goodput (requests/s meeting the SLO)")
    bottom.plot(loads, [math.nan if s.throughput_rps is None else s.throughput_rps for s in steps],
                linewidth=1.3, marker="o", markersize=4, color="#2ca02c", label="throughput (requests/s)")
    missed = [s for s in steps if s.slo_met is False and not s.over_saturated]
    if missed:
        bottom.scatter([s.load for s in missed], [s.goodput_rps or 0.0 for s in missed],
                       marker="x", color="#d62728", s=60, zorder=5, label="SLO missed")
    bottom.set_ylim(bottom=0)
    bottom.set_ylabel("requests / s")
    bottom.set_xlabel(f"offered load ({sweep.load_unit})")
    bottom.set_title("Throughput and goodput against offered load", fontsize=11)
    bottom.grid(alpha=0.3)
    bottom.set_xticks(loads)  # the loads the sweep ran, not fractions of a user
    bottom.xaxis.set_major_formatter(top.xaxis.get_major_formatter())
    cap = sweep.capacity
    if cap and cap.get("load") is not None:
        load = float(cap["load"])
        for ax in (top, bottom):
            ax.axvline(load, color="#d62728", linestyle=":", linewidth=1.2,
                       label=f"capacity: {load:g} {sweep.load_unit}" if ax is bottom else None)
    knee = next((s for s in steps if s.over_saturated), None)
    if knee is not None:
        for ax in (top, bottom):
            ax.axvspan(knee.load - 0.02 * (max(loads) - min(loads) or 1), max(loads) * 1.02, color="#d62728",
                       alpha=0.08, label=f"over-saturated from {knee.load:g} {sweep.load_unit} (step stopped early)"
                       if ax is top else None)
    top.legend(fontsize=8, loc="upper left", ncols=2)
    bottom.legend(fontsize=8, loc="best")  # throughput climbs from the lower left: let the legend move
    fig.suptitle(title, fontsize=13)
    fig.tight_layout()
    return fig


def plot_replay(curves: ReplayCurves, path: Path, title: str) -> Path:
    return _save(replay_figure(curves, title), path)


def replay_figure(curves: ReplayCurves, title: str) -> Figure:
    """Cumulative arrivals against time: the trace as recorded, the replay's schedule (offered) and its
    sends; below, each send's lag behind its scheduled time."""
    fig, axes = _figure(2, 1, 11, 7.5, height_ratios=[2.2, 1])
    ax = axes[0][0]
    if curves.original_s:
        ax.step(curves.original_s, range(1, len(curves.original_s) + 1), where="post", color="#7f7f7f",
                linestyle="--", linewidth=1.2, label="original trace (its own time)")
    ax.step(curves.offered_s, range(1, len(curves.offered_s) + 1), where="post", color="#000", linewidth=2.4,
            label=f"offered: the trace at speed {curves.speed:g}")
    ax.step(curves.sent_s, range(1, len(curves.sent_s) + 1), where="post", color="#ff7f0e", linewidth=1.2,
            label="sent")
    ax.set_ylabel("arrivals so far")
    ax.set_title("Arrivals: offered (scheduled) against sent", fontsize=11)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="upper left")
    ax.set_xlabel("seconds from the first arrival")
    lag_ax = axes[1][0]
    lags_ms = curves.lag_ms
    if lags_ms:
        lag_ax.plot([100.0 * (i + 1) / len(lags_ms) for i in range(len(lags_ms))], lags_ms, color="#ff7f0e")
    lag_ax.set_xlabel("share of sends (%)")
    lag_ax.set_ylabel("send lag (ms)")
    lag_ax.set_title("Each send's lag behind its scheduled time, sorted", fontsize=11)
    lag_ax.grid(alpha=0.3)
    fig.suptitle(title, fontsize=13)
    fig.tight_layout()
    return fig


def plot_turns(sessions: SessionStats, path: Path, title: str) -> Path:
    return _save(turns_figure(sessions, title), path)


def turns_figure(sessions: SessionStats, title: str) -> Figure:
    """By turn index: TTFT P50 and P99 above; prompt tokens and the cached part of them below."""
    fig, axes = _figure(2, 1, 9, 7, sharex=True)
    turns = [t.turn for t in sessions.turns]
    ax = axes[0][0]
    for stat, color in (("p50", _PCT_COLORS["p50"]), ("p99", _PCT_COLORS["p99"])):
        values = [getattr(t, f"ttft_{stat}_ms") for t in sessions.turns]
        ax.plot(turns, [math.nan if v is None else v for v in values], marker="o", color=color,
                label=f"TTFT {stat.upper()}")
    ax.set_ylabel("ms")
    ax.set_ylim(bottom=0)
    ax.set_title("TTFT by turn", fontsize=11)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="upper left")
    tok = axes[1][0]
    prompt = [t.prompt_tokens_mean or 0.0 for t in sessions.turns]
    cached = [t.cached_tokens_mean or 0.0 for t in sessions.turns]
    tok.bar(turns, prompt, width=0.6, color="#1f77b4", alpha=0.45, label="prompt tokens (mean)")
    tok.bar(turns, cached, width=0.6, color="#2ca02c", alpha=0.9, label="of which cached (mean)")
    tok.set_ylabel("tokens")
    tok.set_xlabel("turn")
    tok.set_xticks(turns)
    tok.set_title("Prompt tokens by turn: the conversation so far, and what the prefix cache held", fontsize=11)
    tok.grid(alpha=0.3, axis="y")
    tok.legend(fontsize=8, loc="upper left")
    fig.suptitle(title, fontsize=13)
    fig.tight_layout()
    return fig
