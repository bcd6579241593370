"""Every plot kind drawn from run folders, checked on the figure objects: series that share a unit
share an axis, users get an axis of their own, no label reads None or nan, thresholds are drawn."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from loadbench.metrics.slo import SloSpec
from loadbench.report import plots
from loadbench.report.intervals import IntervalRow, interval_rows
from loadbench.report.runfolder import load_run
from loadbench.report.sweep import load_sweep, sweep_statistics
from tests.metrics.test_records import OLD_FOLDERS
from tests.report.runfolder_factory import make_run, make_sweep

BAD = re.compile(r"\b(None|nan|NaN)\b|e\+0|\$10\^")


def _texts(fig) -> list[str]:  # type: ignore[no-untyped-def]
    fig.canvas.draw()  # tick labels are only filled in when drawn
    out = [fig._suptitle.get_text()] if fig._suptitle is not None else []
    for ax in fig.axes:
        out += [ax.get_title(), ax.get_xlabel(), ax.get_ylabel()]
        out += [t.get_text() for t in (*ax.get_xticklabels(), *ax.get_yticklabels())]
        out += [t.get_text() for t in ax.texts]
        legend = ax.get_legend()
        if legend is not None:
            out += [t.get_text() for t in legend.get_texts()]
    return out


def _clean(fig) -> None:  # type: ignore[no-untyped-def]
    bad = [t for t in _texts(fig) if BAD.search(t)]
    assert bad == []


def _axes_with_line(fig, label: str):  # type: ignore[no-untyped-def]
    found = [ax for ax in fig.axes if any(line.get_label() == label for line in ax.get_lines())]
    assert len(found) == 1, label
    return found[0]


def _bar_axes(fig):  # type: ignore[no-untyped-def]
    return [ax for ax in fig.axes if ax.containers]


@pytest.fixture(scope="module")
def folders(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("plots")
    return {"closed": OLD_FOLDERS[0], "open": next(p for p in OLD_FOLDERS if p.name == "open-v1"),
            "staged": make_run(root / "staged", stages=3, ttft_ms=40.0),
            "targets": make_run(root / "targets", targets=("a", "b"), target_ttft_ms={"a": 30.0, "b": 90.0}),
            "sweep": make_sweep(root / "sweep", [5, 10, 20, 30], knee=20)}


def test_open_loop_over_time_puts_offered_and_achieved_rate_on_one_axis(folders: dict[str, Path]) -> None:
    fig = plots.over_time_figure(interval_rows(load_run(folders["open"])), "open")
    offered = _axes_with_line(fig, "offered (target) requests/s")
    assert offered in _bar_axes(fig)  # the finished requests/s bars: the same axis, the same unit
    assert "requests / s" in offered.get_ylabel()
    assert len(fig.axes) == 3  # no twin axis with another scale
    _clean(fig)


def test_closed_loop_over_time_gives_users_their_own_panel(folders: dict[str, Path]) -> None:
    rows = interval_rows(load_run(folders["closed"]))
    fig = plots.over_time_figure(rows, "closed")
    users = _axes_with_line(fig, "users (concurrent)")
    assert users not in _bar_axes(fig) and users.get_ylabel() == "users"
    assert len(fig.axes) == 4
    xs, ys = users.get_lines()[0].get_data()
    assert xs[0] == 0.0 and ys[0] == 0.0  # the ramp starts from no users
    _clean(fig)


def test_drain_is_labelled_drain_and_stages_by_name() -> None:
    rows = [IntervalRow(0.0, 2.0, "measure", "peak", users=5), IntervalRow(2.0, 4.0, "measure", "2x-peak", users=10),
            IntervalRow(4.0, 6.0, "drain", None, users=10)]
    fig = plots.over_time_figure(rows, "drain")
    texts = _texts(fig)
    assert any(t.startswith("drain") for t in texts) and "2x-peak" in texts
    assert not any("stage None" in t or t == "None" for t in texts)
    _clean(fig)


def test_phases_and_stages_sit_at_the_plans_own_times_not_at_interval_edges() -> None:
    from loadbench.plan.load import Frame, PeakShape, peak_multiple

    # warm-up 3 s, peak from 3 s, 2x-peak from 11 s, recovery from 19 s, plan ends at 27 s; 2 s intervals
    plan = peak_multiple(PeakShape(peak=6, open_loop=False, ramp_s=2, hold_s=6), Frame(warmup_s=3))
    rows = [IntervalRow(2.0 * i, 2.0 * i + 2, plan.phase_at(2.0 * i + 1) if 2.0 * i + 1 < 27 else "drain",
                        plan.label_at(2.0 * i + 1), users=6) for i in range(15)]
    fig = plots.over_time_figure(rows, "peak", plan)
    ax = fig.axes[0]
    stage_lines = sorted(float(line.get_xdata()[0]) for line in ax.get_lines() if line.get_linestyle() == "--")
    assert stage_lines == [3.0, 11.0, 19.0]  # the interval edges would put them at 2, 10 and 18
    spans = sorted((round(p.get_x(), 6), round(p.get_x() + p.get_width(), 6)) for p in ax.patches)
    assert spans == [(0.0, 3.0), (27.0, 30.0)]  # warm-up to 3 s, the drain from the plan's end
    assert {"peak", "2x-peak", "recovery"} <= set(_texts(fig))
    _clean(fig)
    # without a plan (older folders) the interval edges are all there is
    fig = plots.over_time_figure(rows, "peak")
    assert sorted(float(line.get_xdata()[0]) for line in fig.axes[0].get_lines()
                  if line.get_linestyle() == "--") == [2.0, 10.0, 18.0]
    _clean(fig)


def test_spectra_of_a_multi_target_run_include_all_requests(folders: dict[str, Path]) -> None:
    from loadbench.report.builder import ALL_REQUESTS, SPECTRUM_METRICS

    run = load_run(folders["targets"])
    spectra = {m: {ALL_REQUESTS: run.hlog.total(m), **{t: run.hlog.total(f"{m}:target={t}") for t in ("a", "b")}}
               for m in SPECTRUM_METRICS}
    fig = plots.spectra_figure(spectra, "targets")
    legend = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert legend[0].startswith("all requests (n=") and len(legend) == 3
    _clean(fig)
    by_target = run.summary.breakdowns["target"]
    _clean(plots.bars_figure({m: {t: by_target[t].latency(m) for t in ("a", "b")} for m in SPECTRUM_METRICS}, "b"))


def test_sweep_plot_draws_the_slo_and_keeps_goodput_visible(folders: dict[str, Path]) -> None:
    sweep = load_sweep(folders["sweep"])
    spec = SloSpec.from_json(sweep.slo)
    judged = sweep_statistics(spec)
    assert judged == [("ttft", "p99")]
    fig = plots.sweep_figure(sweep, spec, judged, "sweep")
    top = _axes_with_line(fig, "TTFT p99")
    assert _axes_with_line(fig, "SLO: TTFT p99 <= 200 ms") is top
    bottom = _axes_with_line(fig, "throughput (requests/s)")
    goodput = next(line for line in bottom.get_lines() if line.get_label().startswith("goodput"))
    through = next(line for line in bottom.get_lines() if line.get_label().startswith("throughput"))
    assert goodput.get_linestyle() != through.get_linestyle()
    assert goodput.get_linewidth() > through.get_linewidth()
    _clean(fig)
