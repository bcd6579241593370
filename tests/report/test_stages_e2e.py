"""A peak-multiple run (profiles/2x-peak.yaml, shortened) prints one row per stage and the SLO verdict;
summary.md and the report show both; a sweep that never breaks its SLO says so."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from loadbench.errors import ExitCode
from tests.conftest import REPO, only_run, run_loadbench


def _short_2x_peak(tmp_path: Path) -> Path:
    profile = yaml.safe_load((REPO / "profiles" / "2x-peak.yaml").read_text())
    profile["warmup_s"] = 3
    profile["ramp_up_s"] = 1
    profile["peak"].update(users=4, ramp_s=1, hold_s=3)
    path = tmp_path / "2x-peak-short.yaml"
    path.write_text(yaml.safe_dump(profile))
    return path


@pytest.mark.slow
def test_a_staged_run_reports_every_stage_and_the_slo(tmp_path: Path) -> None:
    out = tmp_path / "out"
    r = run_loadbench("run", "--profile", str(_short_2x_peak(tmp_path)), "--out", str(out), "--workers", "1")
    assert r.returncode in (ExitCode.OK,), r.stdout + r.stderr
    console = r.stdout
    for stage in ("| warmup ", "| peak ", "| 2x-peak ", "| recovery "):
        assert stage in console, console
    assert "SLO met" in console and "ttft p95 <= 1000 ms" in console and "✓ pass" in console
    run = only_run(out)
    summary = json.loads((run / "summary.json").read_text())
    assert [s["label"] for s in summary["stages"]] == ["warmup", "peak", "2x-peak", "recovery"]
    assert summary["stages"][0]["phase"] == "warmup" and summary["stages"][1]["slo"]["met"] is True
    assert sum(s["requests"]["total"] for s in summary["stages"][1:]) == summary["requests"]["total"]
    for name in ("summary.md", "report.md"):
        text = (run / name).read_text()
        assert "2x-peak" in text and "recovery" in text and "ttft p95 <= 1000 ms" in text, name
        assert "None" not in text and "nan" not in text, name
    status = json.loads((run / "status.json").read_text())
    assert status["state"] == "finished" and status["stop_reason"] == "duration reached"


@pytest.mark.slow
def test_a_sweep_whose_slo_never_breaks_says_capacity_is_at_least_the_maximum(tmp_path: Path) -> None:
    profile = tmp_path / "sweep.yaml"
    profile.write_text(yaml.safe_dump({"name": "never-breaks", "sweep": {"variable": "users", "start": 1, "step": 1,
                                                                          "max": 2, "hold_s": 3},
                                       "slo": {"ttft_ms": {"p95": 5000}, "error_rate": 0.05}}))
    out = tmp_path / "out"
    r = run_loadbench("sweep", "--profile", str(profile), "--out", str(out))
    assert r.returncode == ExitCode.OK, r.stdout + r.stderr
    assert "The SLO never broke: capacity is at least 2 users" in r.stdout
    assert "SLO: ttft p95 <= 5000 ms, error_rate <= 0.05" in r.stdout and "ttft p95 (ms)" in r.stdout
    assert "The SLO never broke" in (only_run(out) / "report.md").read_text()


@pytest.mark.slow
def test_a_sweep_that_breaks_names_the_capacity_and_the_failing_objective(tmp_path: Path) -> None:
    # one request at a time at the mock: a second user waits a whole answer (~0.7 s) for its first token
    profile = tmp_path / "sweep.yaml"
    profile.write_text(yaml.safe_dump({"name": "breaks", "sweep": {"variable": "users", "start": 1, "step": 1,
                                                                    "max": 3, "hold_s": 4},
                                       "slo": {"ttft_ms": {"p95": 300}}}))
    out = tmp_path / "out"
    r = run_loadbench("sweep", "--profile", str(profile), "--out", str(out), "--mock-arg=--max-concurrency=1")
    assert r.returncode == ExitCode.OK, r.stdout + r.stderr
    assert "Capacity: 1 users, the highest load meeting the SLO" in r.stdout, r.stdout
    assert "the SLO broke at 2 users: ttft p95 <= 300 ms failed (measured" in r.stdout, r.stdout
    assert "✗ missed" in r.stdout and "ttft p95 (ms)" in r.stdout
