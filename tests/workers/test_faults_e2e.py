"""`loadbench run` against a target that misbehaves (the mock's fault injection): what the
results folder holds and what the target received."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.conftest import mock_stats, only_run, read_json, run_loadbench, run_profile, samples_of

pytestmark = pytest.mark.slow


def test_a_timed_out_request_does_not_take_its_user_out_of_the_run(mock_factory, tmp_path: Path) -> None:
    # 30% of requests get their headers and then nothing for 5 s; the run's timeout is 1 s
    mock = mock_factory("--fault", "headers-then-stall", "--fault-rate", "0.3", "--fault-hold-s", "5",
                        "--seed", "3", "--ttft-ms", "20", "--itl-ms", "2")
    run = run_profile(tmp_path, "users: 1\nramp_up_s: 0\nduration_s: 8\ntimeout_s: 1\n",
                      "--target", mock.base_url, "--no-calibrate")
    samples = samples_of(run)
    outcomes = [s["outcome"] for s in samples]
    assert "connection_error" not in outcomes, outcomes
    first_timeout = outcomes.index("timeout")
    assert "ok" in outcomes[first_timeout:]  # the user kept working after its timeout
    # every recorded request reached the target (plus the pre-flight one)
    assert mock_stats(mock)["requests"] == len(samples) + 1


def test_a_throttling_target_is_not_flooded(mock_factory, tmp_path: Path) -> None:
    mock = mock_factory("--fault", "429-retry-after", "--fault-retry-after-s", "1")
    out = tmp_path / "results"
    started = time.monotonic()
    r = run_loadbench("run", "--target", mock.base_url, "--model", "mock-model", "--users", "2",
                      "--duration", "4", "--no-calibrate", "--out", str(out), timeout_s=60)
    assert r.returncode == 4, r.stdout + r.stderr  # nothing succeeded
    run = only_run(out)
    samples = samples_of(run)
    assert all(s["status"] == 429 for s in samples)
    # Retry-After: 1 honoured per user: about 4 requests each in 4 s (it was ~1,000 per second)
    assert 2 <= len(samples) <= 2 * 6, len(samples)
    assert all(s["backoff_us"] == 1_000_000 for s in samples)
    summary = read_json(run / "summary.json")
    assert any("backoff" in w for w in summary["warnings"])
    assert time.monotonic() - started < 40


def test_abort_on_ends_a_run_that_only_produces_errors(mock_factory, tmp_path: Path) -> None:
    mock = mock_factory("--error-rate", "1", "--error-status", "500")
    started = time.monotonic()
    run = run_profile(tmp_path, "users: 4\nramp_up_s: 0\nduration_s: 60\n"
                                "abort_on: {error_rate: 0.5, after_requests: 8}\n",
                      "--target", mock.base_url, "--model", "mock-model", "--no-calibrate", expect_code=4)
    assert time.monotonic() - started < 40  # not the 60 s of the plan
    status = read_json(run / "status.json")
    assert "abort_on" in status["stop_reason"]
    assert read_json(run / "summary.json")["requests"]["ok"] == 0
