"""The report's plots (PNG, matplotlib Agg, imported lazily so ``import loadbench.report`` stays light).

Every function takes plain data (distributions, interval rows, sweep steps) and a path, draws one
figure and returns the path. Latencies are in milliseconds throughout.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from loadbench.report.distribution import Dist
from loadbench.report.intervals import IntervalRow

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
    return _save(fig, path)


def _shade_phases(ax: Axes, rows: Sequence[IntervalRow], label: bool) -> None:
    spans: list[tuple[float, float, str]] = []
    for r in rows:
        if r.phase != "measure":
            if spans and spans[-1][2] == r.phase and math.isclose(spans[-1][1], r.t_start_s):
                spans[-1] = (spans[-1][0], r.t_end_s, r.phase)
            else:
                spans.append((r.t_start_s, r.t_end_s, r.phase))
    seen: set[str] = set()
    for start, end, phase in spans:
        # drain: after the plan, requests sent inside it finish; they count, nothing new is sent
        text = "drain (in-flight requests finish)" if phase == "drain" else f"{phase} (excluded)"
        color = "#7aa6d6" if phase == "drain" else "#999"
        ax.axvspan(start, end, color=color, alpha=0.18, linewidth=0,
                   label=text if label and phase not in seen else None)
        seen.add(phase)
    stages = [r.stage for r in rows]
    if len({s for s in stages if s is not None}) > 1:
        for prev, cur in itertools.pairwise(rows):
            if cur.stage != prev.stage:
                ax.axvline(cur.t_start_s, color="#6a3d9a", linestyle="--", linewidth=0.9)
                if label:
                    ax.annotate(f"stage {cur.stage}", (cur.t_start_s, 0.0),
                                xycoords=("data", "axes fraction"), xytext=(3, 4),
                                textcoords="offset points", fontsize=8, color="#6a3d9a")


def plot_over_time(rows: Sequence[IntervalRow], path: Path, title: str) -> Path:
    """TTFT and ITL P50/P90/P99 per interval; requests/s, errors/s and users (or target rps) below."""
    fig, axes = _figure(3, 1, 11, 9.5, sharex=True)
    mids = [(r.t_start_s + r.t_end_s) / 2 for r in rows]
    for ax, metric in ((axes[0][0], "ttft"), (axes[1][0], "itl")):
        for name, color in _PCT_COLORS.items():
            ys = [(r.latency_ms.get(metric) or {}).get(name) for r in rows]
            ax.plot(mids, [math.nan if y is None else y for y in ys], marker="o", markersize=3,
                    color=color, label=name.upper())
        ax.set_ylabel(f"{metric.upper()} (ms)")
        # headroom above the data keeps the legend clear of the lines
        seen_ms = [y for r in rows for y in (r.latency_ms.get(metric) or {}).values() if y is not None]
        top_ms = max(seen_ms or [1.0])
        ax.set_ylim(0, top_ms * 1.35)
        ax.set_title(f"{METRIC_TITLES[metric]} per interval", fontsize=11)
        ax.grid(alpha=0.3)
        _shade_phases(ax, rows, label=ax is axes[0][0])
        ax.legend(fontsize=8, loc="upper right", ncols=4)
    ax = axes[2][0]
    widths = [r.length_s * 0.9 for r in rows]
    ax.bar(mids, [r.ok / r.length_s for r in rows], width=widths, color="#2ca02c", alpha=0.7,
           label="successful requests/s")
    ax.bar(mids, [r.failed / r.length_s for r in rows], width=widths, color="#d62728", alpha=0.9,
           bottom=[r.ok / r.length_s for r in rows], label="failed requests/s")
    ax.set_ylabel("requests / s (finished)")
    ax.set_xlabel("time since run start (s)")
    ax.set_title("Load: throughput, errors and offered load", fontsize=11)
    ax.grid(alpha=0.3)
    _shade_phases(ax, rows, label=False)
    twin = ax.twinx()
    if any(r.target_rps is not None for r in rows):
        ys2 = [math.nan if r.target_rps is None else r.target_rps for r in rows]
        load_label = "target requests/s"
    else:
        ys2 = [math.nan if r.users is None else r.users for r in rows]
        load_label = "users"
    if rows:
        edges = [r.t_start_s for r in rows] + [rows[-1].t_end_s]
        twin.step(edges, [*ys2, ys2[-1]], where="post", color="#000", linewidth=1.4, label=load_label)
    twin.set_ylabel(load_label)
    twin.set_ylim(bottom=0, top=max([y for y in ys2 if not math.isnan(y)] or [1]) * 1.25)
    handles, labels = ax.get_legend_handles_labels()
    h2, l2 = twin.get_legend_handles_labels()
    ax.legend(handles + h2, labels + l2, fontsize=8, loc="upper left", ncols=3)
    if rows:
        ax.set_xlim(rows[0].t_start_s, rows[-1].t_end_s)
    top = max([(r.ok + r.failed) / r.length_s for r in rows] or [1])
    ax.set_ylim(0, top * 1.3 or 1)
    fig.suptitle(title, fontsize=13)
    fig.tight_layout()
    return _save(fig, path)


def plot_bars(stats: Mapping[str, Mapping[str, Mapping[str, float | None]]], path: Path, title: str,
              percentiles: Sequence[str] = ("p50", "p95", "p99")) -> Path:
    """Grouped bars: per metric panel, one group per percentile, one bar per target.

    ``stats[metric][target][pXX]`` in ms."""
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
            ys = [stats[metric][target].get(p) or 0.0 for p in percentiles]
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
    return _save(fig, path)


def plot_sweep(steps: Sequence[Mapping[str, Any]], capacity: Mapping[str, Any] | None, load_unit: str,
               path: Path, title: str) -> Path:
    """Latency percentiles (top) and throughput/goodput (bottom) against offered load; capacity marked.

    Each step carries ``load``, ``throughput_rps``, ``goodput_rps`` and ``latency`` = {metric: {pXX: ms}}."""
    fig, axes = _figure(2, 1, 10, 8.5, sharex=True)
    loads = [float(s["load"]) for s in steps]
    top = axes[0][0]
    styles = {"p50": "-", "p90": "--", "p99": ":"}
    for metric, color in (("ttft", "#1f77b4"), ("itl", "#ff7f0e")):
        for pct, style in styles.items():
            ys = [((s.get("latency") or {}).get(metric) or {}).get(pct) for s in steps]
            top.plot(loads, [math.nan if y is None else y for y in ys], linestyle=style, marker="o",
                     markersize=4, color=color, label=f"{metric.upper()} {pct.upper()}")
    top.set_yscale("log")
    top.set_ylabel("latency (ms, log scale)")
    top.set_title("Latency against offered load", fontsize=11)
    top.grid(alpha=0.3, which="both")
    bottom = axes[1][0]
    bottom.plot(loads, [s.get("throughput_rps") or math.nan for s in steps], marker="o", color="#2ca02c",
                label="throughput (requests/s)")
    goodput = [s.get("goodput_rps") for s in steps]
    bottom.plot(loads, [math.nan if g is None else g for g in goodput],
                marker="s", color="#9467bd", label="goodput (requests/s meeting the SLO)")
    missed = [s for s in steps if s.get("slo_met") is False]
    if missed:
        bottom.scatter([float(s["load"]) for s in missed], [s.get("goodput_rps") or 0.0 for s in missed],
                       marker="x", color="#d62728", s=60, zorder=5, label="SLO missed")
    bottom.set_ylim(bottom=0)
    bottom.set_ylabel("requests / s")
    bottom.set_xlabel(f"offered load ({load_unit})")
    bottom.set_title("Throughput and goodput against offered load", fontsize=11)
    bottom.grid(alpha=0.3)
    if capacity and capacity.get("load") is not None:
        cap = float(capacity["load"])
        for ax in (top, bottom):
            ax.axvline(cap, color="#d62728", linestyle="--", linewidth=1.2,
                       label=f"capacity: {cap:g} {load_unit}" if ax is bottom else None)
    top.legend(fontsize=8, loc="upper left", ncols=2)
    bottom.legend(fontsize=8, loc="upper left")
    fig.suptitle(title, fontsize=13)
    fig.tight_layout()
    return _save(fig, path)
