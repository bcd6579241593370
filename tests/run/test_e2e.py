"""End-to-end: real mock upstream, real Locust master + worker processes, real results folder."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from tests.conftest import REPO, only_run, read_json, run_loadbench, samples_of, wait_for_mock_requests

pytestmark = pytest.mark.slow



@pytest.mark.alone
def test_accuracy_against_the_ruler(mock_factory, tmp_path: Path) -> None:
    """Mock TTFT 50 ms, ITL 10 ms, 64 tokens: loadbench must read back what the mock did.

    The first 2 s are warm-up: each user's first request also opens its connection, which is real
    latency but not the mock's configured timing."""
    mock = mock_factory("--ttft-ms", "50", "--itl-ms", "10")
    out = tmp_path / "results"
    r = run_loadbench("run", "--target", mock.base_url, "--users", "20", "--ramp-up", "1", "--warmup", "2",
                      "--duration", "12", "--out", str(out), "--name", "accuracy")
    assert r.returncode == 0, r.stdout + r.stderr
    run = only_run(out)
    summary = read_json(run / "summary.json")
    m = summary["metrics"]
    assert summary["requests"]["failed"] == 0 and summary["requests"]["ok"] > 150
    assert abs(m["ttft_ms"]["p50"] - 50) <= 3.0, m["ttft_ms"]
    assert abs(m["ttft_ms"]["p99"] - 50) <= 15.0, m["ttft_ms"]
    assert abs(m["itl_ms"]["p50"] - 10) <= 1.0, m["itl_ms"]
    assert abs(m["tpot_ms"]["mean"] - 10) <= 0.5, m["tpot_ms"]
    # E2E = TTFT + 63 ITL
    assert abs(m["e2e_ms"]["p50"] - 680) <= 10, m["e2e_ms"]
    assert m["queue_ms"]["max"] == pytest.approx(0.001, abs=0.001)  # closed loop: no queue
    assert summary["tokens"]["source"] == "usage"
    ok = [s for s in samples_of(run) if s["outcome"] == "ok"]
    assert ok and all(s["output_tokens"] == 64 and s["tokens_source"] == "usage" for s in ok)
    assert all(s["chunks"] == 64 for s in ok)
    assert summary["requests"]["excluded"] > 0  # the warm-up requests: kept in samples, marked
    assert summary["generator"]["saturated"] is False
    # the run folder is complete
    for name in ("manifest.json", "status.json", "samples.jsonl", "histograms.hlog", "timeline.jsonl", "summary.md"):
        assert (run / name).exists(), name
    manifest = read_json(run / "manifest.json")
    assert read_json(run / "status.json")["state"] == "finished" and manifest["target"]["model"] == "mock-model"


def test_estimated_tokens_when_the_server_sends_no_usage(mock_factory, tmp_path: Path) -> None:
    mock = mock_factory("--ttft-ms", "20", "--itl-ms", "5", "--no-usage", "--tokens-per-chunk", "2")
    out = tmp_path / "results"
    r = run_loadbench("run", "--target", mock.base_url, "--users", "4", "--duration", "4", "--out", str(out))
    assert r.returncode == 0, r.stdout + r.stderr
    summary = orjson.loads((only_run(out) / "summary.json").read_bytes())
    assert summary["tokens"]["source"] == "estimated"
    # 64 tokens in chunks of 2: 32 content chunks, counted as 32 estimated tokens
    assert summary["tokens"]["output_mean"] == 32
    assert any("estimated" in w for w in summary["warnings"])


def test_failed_requests_are_counted_by_outcome_not_timed(mock_factory, tmp_path: Path) -> None:
    mock = mock_factory("--ttft-ms", "10", "--itl-ms", "2", "--error-rate", "0.5", "--error-status", "503")
    out = tmp_path / "results"
    r = run_loadbench("run", "--target", mock.base_url, "--users", "4", "--duration", "4", "--out", str(out))
    assert r.returncode == 0, r.stdout + r.stderr
    summary = orjson.loads((only_run(out) / "summary.json").read_bytes())
    req = summary["requests"]
    assert req["by_outcome"]["http_error"] == req["failed"] > 0
    assert 0.3 < req["error_rate"] < 0.7
    assert summary["metrics"]["ttft_ms"]["count"] == req["ok"]
    errors = [s for s in samples_of(only_run(out)) if s["outcome"] == "http_error"]
    assert all(s["status"] == 503 and s["ttft_us"] is None for s in errors)


def test_unreachable_target_fails_clearly_before_any_load(tmp_path: Path) -> None:
    """The pre-flight request finds the refused connection: exit 4 naming the cause, no load sent
    (before it, 5 users sent connection attempts until 20 had failed)."""
    out = tmp_path / "results"
    # a port nothing listens on (bound then closed)
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    r = run_loadbench("run", "--target", f"http://127.0.0.1:{port}/v1", "--model", "x", "--users", "5",
                      "--duration", "30", "--out", str(out), timeout_s=90)
    assert r.returncode == 4, r.stdout + r.stderr
    assert "cannot connect" in r.stderr and "Connection refused" in r.stderr
    assert "no load was sent" in r.stderr
    assert not out.exists() or not any(out.iterdir())


def test_invalid_profile_exits_2_before_any_load(mock_factory, tmp_path: Path) -> None:
    mock = mock_factory()
    bad = tmp_path / "bad.yaml"
    bad.write_text("users: -3\nduration_s: 5\n")
    out = tmp_path / "results"
    r = run_loadbench("run", "--target", mock.base_url, "--profile", str(bad), "--out", str(out))
    assert r.returncode == 2, r.stdout + r.stderr
    assert "bad.yaml" in r.stderr and "users" in r.stderr
    assert not out.exists() or not any(out.iterdir())
    import urllib.request

    stats = orjson.loads(urllib.request.urlopen(mock.url + "/mock/stats").read())
    assert stats["requests"] == 0


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_sigterm_or_ctrl_c_mid_run_leaves_a_complete_folder(mock_factory, tmp_path: Path, signum: int) -> None:
    mock = mock_factory("--ttft-ms", "20", "--itl-ms", "5")
    out = tmp_path / "results"
    proc = subprocess.Popen([sys.executable, "-m", "loadbench", "run", "--target", mock.base_url, "--users", "8",
                             "--duration", "60", "--out", str(out)], cwd=REPO, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    wait_for_mock_requests(mock, 40)  # the load under way (about 6 s on an idle machine)
    proc.send_signal(signum)
    output, _ = proc.communicate(timeout=60)
    assert proc.returncode == 130, output
    run = only_run(out)
    summary = read_json(run / "summary.json")
    assert summary["interrupted"] is True
    assert summary["requests"]["ok"] > 20
    assert summary["metrics"]["ttft_ms"]["count"] == summary["requests"]["ok"]
    n_samples = len(samples_of(run))
    assert n_samples == summary["requests"]["total"]
    status = read_json(run / "status.json")  # the master's record of the run (manifest.json is the request)
    assert status["state"] == "interrupted" and status["end_unix_s"]
    assert status["signal"] == signal.Signals(signum).name


def test_profile_thresholds_gate_the_run_absolute_and_against_a_baseline(mock_factory, tmp_path: Path) -> None:
    base_mock = mock_factory("--ttft-ms", "50", "--itl-ms", "2")
    slow_mock = mock_factory("--ttft-ms", "60", "--itl-ms", "2")
    base_out, out = tmp_path / "base", tmp_path / "results"
    r = run_loadbench("run", "--target", base_mock.base_url, "--users", "8", "--duration", "5", "--out", str(base_out))
    assert r.returncode == 0, r.stdout + r.stderr
    baseline = only_run(base_out)

    def gated(thresholds: list[str], *extra: str) -> subprocess.CompletedProcess[str]:
        prof = tmp_path / "gates.yaml"
        prof.write_text("name: gated\nusers: 8\nduration_s: 5\nthresholds:\n"
                        + "".join(f"  - '{t}'\n" for t in thresholds))
        return run_loadbench("run", "--target", slow_mock.base_url, "--profile", str(prof), "--out", str(out), *extra)

    r = gated(["ttft.p50 > +10%"], "--baseline", str(baseline))
    assert r.returncode == 1, r.stdout + r.stderr
    assert "FAIL" in r.stdout and "ttft.p50" in r.stdout
    assert gated(["ttft.p50 > 100ms", "error_rate > 1%"]).returncode == 0
    r = gated(["ttft.p50 > 40ms"])
    assert r.returncode == 1 and "ttft.p50" in r.stdout
    r = gated(["ttft.p50 > +10%"], "--baseline", str(tmp_path / "nope"))
    assert r.returncode == 2 and "--baseline" in r.stderr
