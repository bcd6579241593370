"""`loadbench compare` on two scorecards, `--append` sessions, `--failing-from`, and an
interrupted evaluation keeping what it scored."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from loadbench.eval.compare import _delta
from loadbench.eval.stats import Interval
from tests.conftest import REPO, run_loadbench
from tests.eval.conftest import FAST, label_dataset, only_scorecard, write_suite

pytestmark = pytest.mark.slow


def _evaluate(tmp_path: Path, mock_factory, out: str, accuracy: float, cases: int = 120, *extra: str) -> Path:
    data = label_dataset(tmp_path / "cases.jsonl", cases)
    mock = mock_factory("--answers", str(data), "--accuracy", str(accuracy), "--seed", "3", *FAST)
    suite = write_suite(tmp_path, data, [{"name": "model", "url": mock.base_url, "model": "mock-model"}])
    proc = run_loadbench("eval", str(suite), "--out", str(tmp_path / out), *extra)
    assert proc.returncode == 0, proc.stderr
    return only_scorecard(tmp_path / out)[0]


def test_compare_flags_a_significant_quality_drop(tmp_path: Path, mock_factory) -> None:
    good = _evaluate(tmp_path, mock_factory, "a", 0.95)
    bad = _evaluate(tmp_path, mock_factory, "b", 0.6)
    proc = run_loadbench("compare", str(good), str(bad), "--fail-on", "quality < -5%")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "FAILED: quality < -5%: model quality" in proc.stdout
    same = run_loadbench("compare", str(good), str(good), "--fail-on", "quality < -5%")
    assert same.returncode == 0, same.stdout
    assert (good / "compare.md").exists()
    typo = run_loadbench("compare", str(good), str(bad), "--fail-on", "qualty < -5%")
    assert typo.returncode == 2 and "is not a scorecard gate" in typo.stderr


def test_significance_of_a_delta_from_two_intervals() -> None:
    assert _delta("t", "quality", Interval(0.9, 0.85, 0.95), Interval(0.6, 0.5, 0.7)).significant
    assert not _delta("t", "quality", Interval(0.9, 0.8, 1.0), Interval(0.88, 0.78, 0.98)).significant


def test_append_adds_a_session_and_failing_from_reruns_only_failures(tmp_path: Path, mock_factory) -> None:
    data = label_dataset(tmp_path / "cases.jsonl", 40)
    mock = mock_factory("--answers", str(data), "--accuracy", "0.7", "--consistency", "0", *FAST)
    suite = write_suite(tmp_path, data, [{"name": "model", "url": mock.base_url, "model": "mock-model"}], repeats=2)
    assert run_loadbench("eval", str(suite), "--out", str(tmp_path / "out")).returncode == 0
    folder, first = only_scorecard(tmp_path / "out")
    proc = run_loadbench("eval", str(suite), "--append", str(folder))
    assert proc.returncode == 0, proc.stderr
    _, both = only_scorecard(tmp_path / "out")
    assert (first.sessions, first.repeats) == (1, 2) and (both.sessions, both.repeats) == (2, 4)
    rows = [json.loads(x) for x in (folder / "outputs.jsonl").read_text().splitlines()]
    assert len(rows) == 40 * 4 and {r["session"] for r in rows} == {0, 1}
    assert len((folder / "sessions.jsonl").read_text().splitlines()) == 2
    failing = {r["case_id"] for r in rows if not r["scores"]["label"]["passed"]}
    assert failing
    proc = run_loadbench("eval", str(suite), "--failing-from", str(folder), "--out", str(tmp_path / "rerun"))
    assert proc.returncode == 0, proc.stderr
    rerun_folder, rerun = only_scorecard(tmp_path / "rerun")
    assert rerun.cases == len(failing)
    assert set(json.loads((rerun_folder / "manifest.json").read_text())["cases"]) == failing


def _ignore_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)


@pytest.mark.parametrize("inherited", ["default", "ignored"])
def test_an_interrupted_eval_keeps_the_calls_it_scored(tmp_path: Path, mock_factory, inherited: str) -> None:
    """"ignored": started as a background job of a non-interactive shell is (SIGINT ignored from the
    start, which Python keeps): the eval still stops on SIGINT with 130 instead of running on to exit 0."""
    data = label_dataset(tmp_path / "cases.jsonl", 60)
    mock = mock_factory("--answers", str(data), "--ttft-ms", "200", "--itl-ms", "0")
    suite = write_suite(tmp_path, data, [{"name": "model", "url": mock.base_url, "model": "mock-model"}],
                        concurrency=2, repeats=1)
    proc = subprocess.Popen([sys.executable, "-m", "loadbench", "eval", str(suite), "--out", str(tmp_path / "out")],
                            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=_ignore_sigint if inherited == "ignored" else None)
    outputs = None
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        found = list((tmp_path / "out").glob("*/outputs.jsonl")) if (tmp_path / "out").exists() else []
        if found and len(found[0].read_text().splitlines()) >= 4:
            outputs = found[0]
            break
        time.sleep(0.05)
    assert outputs is not None
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err
    rows = [json.loads(x) for x in outputs.read_text().splitlines()]
    assert 4 <= len(rows) < 60 and all(r["ok"] and "label" in r["scores"] for r in rows)


def test_latency_from_a_load_test_folder(tmp_path: Path, mock_factory) -> None:
    run_dir = REPO / "tests/fixtures/runs/open-v1"
    summary = json.loads((run_dir / "summary.json").read_text())["metrics"]
    folder = _evaluate(tmp_path, mock_factory, "out", 0.9, 20, "--latency-from", f"model={run_dir}")
    _, sc = only_scorecard(tmp_path / "out")
    lat = sc.target("model").latency
    assert lat.source == str(run_dir)
    assert (lat.ttft_ms.p95, lat.e2e_ms.p99, lat.e2e_ms.n) == (summary["ttft_ms"]["p95"], summary["e2e_ms"]["p99"],
                                                               summary["e2e_ms"]["count"])
    assert f"Latency from: {run_dir}" in (folder / "scorecard.md").read_text()
    bad = run_loadbench("eval", str(tmp_path / "suite.yaml"), "--latency-from", f"nobody={run_dir}",
                        "--out", str(tmp_path / "x"))
    assert bad.returncode == 2 and "--latency-from: nobody: is not a target of the suite" in bad.stderr
