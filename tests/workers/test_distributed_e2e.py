"""Distributed runs: a Locust master and workers as separate processes over 127.0.0.1."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from loadbench.launcher import free_port
from loadbench.results import run_dir as rd
from tests.conftest import REPO, only_run, read_json, run_loadbench

pytestmark = pytest.mark.slow
ENV = {**os.environ, "PYTHONUNBUFFERED": "1"}


def _master(port: int, workers: int, target: str, out: Path, *load: str) -> subprocess.Popen[str]:
    """`loadbench run --master` waiting for ``workers`` workers started by the test."""
    return subprocess.Popen(
        [sys.executable, "-m", "loadbench", "run", "--master", "--expect-workers", str(workers),
         "--master-port", str(port), "--target", target, *load, "--out", str(out)],
        cwd=REPO, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def test_master_and_two_remote_style_workers(mock_factory, tmp_path: Path) -> None:
    mock = mock_factory("--ttft-ms", "30", "--itl-ms", "5")
    out = tmp_path / "results"
    port = free_port()
    master = _master(port, 2, mock.base_url, out, "--users", "10", "--duration", "6")
    workers = [subprocess.Popen([sys.executable, "-m", "loadbench", "worker", "--master-port", str(port)],
                                cwd=REPO, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
               for _ in range(2)]
    worker_output: list[str] = []
    try:
        output, _ = master.communicate(timeout=120)
    finally:
        for w in workers:
            try:
                worker_output.append(w.communicate(timeout=20)[0])
            except subprocess.TimeoutExpired:
                w.kill()
    assert master.returncode == 0, output
    assert all(w.returncode == 0 for w in workers)
    for said in worker_output:  # a remote worker says when it connects, what it runs and when it is done
        assert "connected to the master at 127.0.0.1" in said, said
        assert "running " in said and "closed loop for 6 s" in said and mock.base_url in said, said
        assert "done: " in said and "requests sent" in said, said
    run = only_run(out)
    status = read_json(run / "status.json")
    assert sorted(status["workers"]["seen"]) == ["w0", "w1"]
    samples = list(rd.iter_samples(run))
    by_worker = {s["worker"] for s in samples}
    assert by_worker == {"w0", "w1"}
    summary = read_json(run / "summary.json")
    assert summary["requests"]["failed"] == 0
    assert summary["metrics"]["ttft_ms"]["count"] == summary["requests"]["ok"] == len(samples)
    assert abs(summary["metrics"]["ttft_ms"]["p50"] - 30) < 4


def test_killing_a_worker_mid_run_respawns_its_users_and_marks_the_run_not_valid(mock_factory,
                                                                                tmp_path: Path) -> None:
    mock = mock_factory("--ttft-ms", "20", "--itl-ms", "5")
    out = tmp_path / "results"
    cli = subprocess.Popen([sys.executable, "-m", "loadbench", "run", "--workers", "2", "--target", mock.base_url,
                            "--users", "10", "--duration", "14", "--out", str(out), "--strict"],
                           cwd=REPO, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 30
    victims: list[psutil.Process] = []
    while time.monotonic() < deadline and len(victims) < 2:
        time.sleep(0.5)
        victims = [p for p in psutil.Process(cli.pid).children(recursive=True)
                   if "worker" in p.cmdline() and "loadbench.workers" in p.cmdline()]
    assert len(victims) == 2
    time.sleep(5)
    victims[0].send_signal(signal.SIGKILL)
    output, _ = cli.communicate(timeout=120)
    assert cli.returncode == 3, output  # --strict: the run is not valid to judge (it exited 0 before)
    assert "worker(s) lost" in output
    run = only_run(out)
    status = read_json(run / "status.json")
    assert len(status["workers"]["lost"]) == 1, output
    # the lost worker's users were spawned again on the other one
    assert [t["users"] for t in rd.iter_timeline(run)][-2] == 10
    summary = read_json(run / "summary.json")
    assert any("lost" in w for w in summary["warnings"])
    assert summary["requests"]["ok"] > 50
    # what the dead worker measured before dying is kept
    assert {s["worker"] for s in rd.iter_samples(run)} == {"w0", "w1"}


@pytest.mark.alone
def test_overloaded_worker_is_reported_saturated_and_strict_exits_3(mock_factory, tmp_path: Path) -> None:
    # 1 ms between chunks for 300 streams: far more chunks per second than one worker core can read.
    mock = mock_factory("--ttft-ms", "5", "--itl-ms", "1", "--output-tokens", "200")
    out = tmp_path / "results"
    r = run_loadbench("run", "--target", mock.base_url, "--users", "300", "--ramp-up", "1", "--duration", "10",
                      "--out", str(out), "--strict")
    run = only_run(out)
    summary = read_json(run / "summary.json")
    assert summary["generator"]["saturated"] is True, summary["generator"]
    assert summary["generator"]["reasons"]
    assert r.returncode == 3, r.stdout + r.stderr


@pytest.mark.alone
def test_comfortable_run_is_not_saturated(mock_factory, tmp_path: Path) -> None:
    mock = mock_factory("--ttft-ms", "20", "--itl-ms", "10")
    out = tmp_path / "results"
    r = run_loadbench("run", "--target", mock.base_url, "--users", "5", "--duration", "6", "--out", str(out),
                      "--strict")
    assert r.returncode == 0, r.stdout + r.stderr
    assert read_json(only_run(out) / "summary.json")["generator"]["saturated"] is False


# A worker that reads the master's messages before it listens for the run plan: Locust's worker does
# exactly that between `create_worker_runner` returning and the plan's handler being registered; here
# the gap is widened to 1.5 s so a plan sent on connect always falls into it.
SLOW_WORKER = """
from gevent import monkey
monkey.patch_all()
import sys
import gevent
from loadbench.workers import worker
runner = worker.connect("127.0.0.1", int(sys.argv[1]))
gevent.sleep(1.5)
sys.exit(worker.serve(runner))
"""


def test_a_worker_that_is_slow_to_listen_still_gets_the_plan(mock_factory, tmp_path: Path) -> None:
    mock = mock_factory("--ttft-ms", "20", "--itl-ms", "5")
    out = tmp_path / "results"
    port = free_port()
    master = _master(port, 1, mock.base_url, out, "--users", "4", "--duration", "3")
    slow = subprocess.Popen([sys.executable, "-c", SLOW_WORKER, str(port)], cwd=REPO, env=ENV,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        output, _ = master.communicate(timeout=120)
        said, _ = slow.communicate(timeout=30)
    finally:
        for p in (master, slow):
            if p.poll() is None:
                p.kill()
    assert master.returncode == 0, output
    assert "Unknown message type" not in said, said  # the plan was never sent before the worker listened
    run = only_run(out)
    summary = read_json(run / "summary.json")
    assert summary["requests"]["ok"] > 0 and summary["requests"]["failed"] == 0
    assert read_json(run / "status.json")["workers"]["seen"] == ["w0"]
