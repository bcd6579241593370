"""loadbench report: plots, intervals.csv, self-contained HTML, multi-target and sweep folders."""

from __future__ import annotations

import csv
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from hdrh.histogram import HdrHistogram
from hypothesis import given, settings
from hypothesis import strategies as st

from loadbench.errors import InputError
from loadbench.report import build_report
from loadbench.report.distribution import Dist
from loadbench.report.runfolder import load_run
from tests.report.runfolder_factory import RunSpec, make_multitarget, make_run, make_sweep

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _assert_png(path: Path) -> None:
    data = path.read_bytes()
    assert data[:8] == PNG_MAGIC, path
    assert len(data) > 20_000, f"{path} looks empty ({len(data)} bytes)"


def _assert_self_contained(html: str) -> None:
    refs = re.findall(r"""(?:src|href)\s*=\s*["']([^"']*)["']""", html, flags=re.IGNORECASE)
    assert refs, "expected embedded images"
    assert all(r.startswith("data:image/png;base64,") or r.startswith("#") for r in refs), refs
    assert "<link" not in html.lower() and "@import" not in html and "url(" not in html


@settings(max_examples=30, deadline=None)
@given(values=st.lists(st.integers(min_value=1, max_value=10_000_000), min_size=1, max_size=300),
       p=st.sampled_from([0.1, 1.0, 50.0, 90.0, 99.0, 99.9, 100.0]))
def test_dist_percentiles_equal_hdrh(values: list[int], p: float) -> None:
    hist = HdrHistogram(1, 3_600_000_000, 3)
    for v in values:
        hist.record_value(v)
    assert Dist.from_values_us(values).percentile_us(p) == hist.get_value_at_percentile(p)


def test_single_run_report(tmp_path: Path) -> None:
    run = make_run(tmp_path / "run", jitter=0.0, ttft_ms=50.0, itl_ms=10.0, stages=2, failed_per_interval=1)
    written = build_report(run, ("md", "html", "json"))
    names = {p.relative_to(run).as_posix() for p in written}
    assert {"plots/percentile_spectrum.png", "plots/over_time.png", "intervals.csv", "report.md",
            "report.html", "report.json"} <= names
    for p in (run / "plots").glob("*.png"):
        _assert_png(p)
    html = (run / "report.html").read_text()
    _assert_self_contained(html)
    md = (run / "report.md").read_text()
    for text in ("Metric definitions", "ttft: time to first token", "Token counts: usage", "What was excluded",
                 "excluded (warm-up/cool-down) 21", "mode closed", "10 users", "Warnings"):
        assert text in md, text
        assert text.replace("&", "&amp;") in html or text in html
    assert "![" in md and "plots/percentile_spectrum.png" in md
    # intervals.csv: one row per timeline interval, constant latencies read back exactly (0.1% HDR precision)
    rows = list(csv.DictReader((run / "intervals.csv").open()))
    assert len(rows) == 11
    assert rows[0]["phase"] == "warmup" and rows[0]["ttft_p50_ms"] == ""
    measured = rows[1:]
    assert all(float(r["ttft_p50_ms"]) == pytest.approx(50.0, rel=1e-3) for r in measured)
    assert all(float(r["itl_p99_ms"]) == pytest.approx(10.0, rel=1e-3) for r in measured)
    assert all(int(r["failed"]) == 1 and int(r["ok"]) == 20 for r in rows)
    report = json.loads((run / "report.json").read_text())
    assert report["kind"] == "run" and report["validity"] == [] and len(report["intervals"]) == 11


def test_report_lists_validity_problems(tmp_path: Path) -> None:
    run = make_run(tmp_path / "run", saturated=True, tokens_source="estimated")
    build_report(run, ("md",))
    md = (run / "report.md").read_text()
    assert "not valid to judge: load generator saturated" in md
    assert "estimated from chunk counts" in md


def test_multi_target_report(tmp_path: Path) -> None:
    folder = make_multitarget(tmp_path / "multi", {"fast": RunSpec(ttft_ms=40.0, jitter=0.0),
                                                   "slow": RunSpec(ttft_ms=80.0, jitter=0.0, seed=4)})
    written = build_report(folder, ("md", "html"))
    assert {p.name for p in written} >= {"targets_spectrum.png", "targets_bars.png", "report.md", "report.html"}
    for p in (folder / "plots").glob("*.png"):
        _assert_png(p)
    md = (folder / "report.md").read_text()
    header = next(line for line in md.splitlines() if line.startswith("| figure"))
    assert header == "| figure | fast | slow |"
    row = next(line for line in md.splitlines() if line.startswith("| ttft.p50 (ms)"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert float(cells[1]) == pytest.approx(40.0, rel=1e-3) and float(cells[2]) == pytest.approx(80.0, rel=1e-3)
    _assert_self_contained((folder / "report.html").read_text())


def test_single_run_with_target_breakdown_overlays_targets(tmp_path: Path) -> None:
    run = make_run(tmp_path / "run", targets=("a", "b"), target_ttft_ms={"a": 30.0, "b": 90.0})
    written = build_report(run, ("md",))
    assert "targets_bars.png" in {p.name for p in written}
    assert "Breakdown by target" in (run / "report.md").read_text()


def test_sweep_report(tmp_path: Path) -> None:
    folder = make_sweep(tmp_path / "sweep", [5, 10, 20, 30], knee=20)
    written = build_report(folder, ("md", "html"))
    assert {"sweep.png", "sweep_spectrum.png"} <= {p.name for p in written}
    _assert_png(folder / "plots" / "sweep.png")
    md = (folder / "report.md").read_text()
    assert "Capacity: 20 users" in md


def test_bad_folders(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="not a loadbench results folder"):
        build_report(tmp_path)
    run = make_run(tmp_path / "v2", schema="loadbench.summary/2")
    with pytest.raises(InputError, match=re.escape("summary schema 'loadbench.summary/2' is not supported")):
        load_run(run)
    with pytest.raises(InputError, match="unknown report format"):
        build_report(make_run(tmp_path / "ok"), ("pdf",))


def test_report_cli(tmp_path: Path) -> None:
    run = make_run(tmp_path / "run")
    ok = subprocess.run([sys.executable, "-m", "loadbench", "report", str(run), "--format", "html"],
                        capture_output=True, text=True, timeout=120)
    assert ok.returncode == 0, ok.stderr
    assert str(run / "report.html") in ok.stdout and not (run / "report.md").exists()
    empty = tmp_path / "empty"
    empty.mkdir()
    bad = subprocess.run([sys.executable, "-m", "loadbench", "report", str(empty)],
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2
    assert "not a loadbench results folder" in bad.stderr


def test_import_is_light() -> None:
    code = ("import sys, loadbench.report, loadbench.report.gates, loadbench.report.compare, "
            "loadbench.report.validity; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('gevent', 'matplotlib', 'locust')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
