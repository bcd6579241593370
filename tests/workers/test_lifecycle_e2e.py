"""What `kill -9` and signals do to a run: the load stops, what was measured is kept."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from tests.conftest import REPO, mock_stats, only_run, read_json, run_loadbench, samples_of, wait_for_mock_requests

pytestmark = pytest.mark.slow
ENV = {**os.environ, "PYTHONUNBUFFERED": "1"}


def _start_run(mock_url: str, out: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "loadbench", "run", "--target", mock_url, "--out", str(out),
                             "--no-calibrate", *args],
                            cwd=REPO, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _locust_processes(cli: subprocess.Popen[str], count: int) -> list[psutil.Process]:
    deadline = time.monotonic() + 30
    found: list[psutil.Process] = []
    while time.monotonic() < deadline and len(found) < count:
        time.sleep(0.2)
        found = [p for p in psutil.Process(cli.pid).children(recursive=True) if "loadbench.workers" in p.cmdline()]
    assert len(found) == count, found
    return found


def _requests_stop(mock, within_s: float) -> bool:
    """The mock's request count is unchanged over a second, ``within_s`` after now."""
    time.sleep(within_s)
    before = mock_stats(mock)["requests"]
    time.sleep(1.0)
    return mock_stats(mock)["requests"] == before


def test_kill_9_of_loadbench_run_stops_the_load_and_the_folder_can_be_summarised(mock_factory,
                                                                                   tmp_path: Path) -> None:
    mock = mock_factory("--ttft-ms", "20", "--itl-ms", "5")
    out = tmp_path / "results"
    cli = _start_run(mock.base_url, out, "--users", "4", "--duration", "60", "--workers", "1")
    children = _locust_processes(cli, 2)  # master and one worker
    wait_for_mock_requests(mock, 25)  # the load under way (about 3 s on an idle machine)
    cli.send_signal(signal.SIGKILL)
    cli.wait()
    assert _requests_stop(mock, within_s=2.0)  # before: the load ran on for the rest of the plan
    _, alive = psutil.wait_procs(children, timeout=20)
    assert not alive, [p.cmdline() for p in alive]
    run = only_run(out)
    assert not (run / "summary.json").exists()
    r = run_loadbench("summarize", str(run), timeout_s=120)
    assert r.returncode == 0, r.stdout + r.stderr
    summary = read_json(run / "summary.json")
    assert summary["requests"]["ok"] > 10
    assert summary["requests"]["ok"] == sum(1 for s in samples_of(run) if s["outcome"] == "ok")


def test_kill_9_of_the_master_stops_the_workers_at_once(mock_factory, tmp_path: Path) -> None:
    mock = mock_factory("--ttft-ms", "20", "--itl-ms", "5")
    out = tmp_path / "results"
    cli = _start_run(mock.base_url, out, "--users", "4", "--duration", "60", "--workers", "1")
    procs = _locust_processes(cli, 2)
    master = next(p for p in procs if "master" in p.cmdline())
    time.sleep(3)
    master.send_signal(signal.SIGKILL)
    assert _requests_stop(mock, within_s=2.0)  # before: about 10 s more of unrecorded load
    output, _ = cli.communicate(timeout=60)
    assert cli.returncode != 0, output
    assert (only_run(out) / "samples.jsonl").exists()


@pytest.mark.parametrize(("ttft_ms", "outcome"), [(1500, "ok"), (20000, "interrupted")])
def test_sigint_drains_in_flight_requests_briefly_and_records_the_rest(mock_factory, tmp_path: Path,
                                                                       ttft_ms: int, outcome: str) -> None:
    """Requests in flight at Ctrl-C finish within the drain (5 s) and are measured; longer ones are
    recorded as interrupted. Before, both were lost."""
    mock = mock_factory("--ttft-ms", str(ttft_ms), "--itl-ms", "5")
    out = tmp_path / "results"
    cli = _start_run(mock.base_url, out, "--users", "3", "--duration", "60", "--workers", "1", "--model", "mock-model")
    _locust_processes(cli, 2)
    time.sleep(3)
    cli.send_signal(signal.SIGINT)
    output, _ = cli.communicate(timeout=90)
    assert cli.returncode == 130, output
    run = only_run(out)
    samples = list(samples_of(run))
    assert mock_stats(mock)["requests"] == len(samples) + 1  # each request sent is recorded (+ pre-flight)
    assert samples and samples[-1]["outcome"] == outcome
    assert read_json(run / "status.json")["signal"] == "SIGINT"
    summary = read_json(run / "summary.json")
    assert summary["requests"]["failed"] == 0  # interrupted requests are not failures of the target
