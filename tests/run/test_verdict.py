"""The exit code of a run as one pure function, checked as a table."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from loadbench.errors import ExitCode
from loadbench.run.verdict import NO_ANSWER, RunOutcome, exit_code, lost_share
from tests.conftest import REPO, only_run, read_json, samples_of, write_profile

OK_RUN = {"launch_code": 0, "interrupted": False, "requests_total": 100, "requests_ok": 100,
          "gates_failed": False, "invalid": False, "strict": False, "lost_share": 0.0}

TABLE = [
    ({}, ExitCode.OK),
    ({"gates_failed": True}, ExitCode.GATE_FAILED),
    ({"invalid": True}, ExitCode.OK),  # not strict: a note, not a failure
    ({"invalid": True, "strict": True}, ExitCode.INVALID_RUN),
    ({"invalid": True, "strict": True, "gates_failed": True}, ExitCode.INVALID_RUN),
    ({"requests_ok": 0}, ExitCode.TARGET_FAILED),
    ({"requests_ok": 0, "requests_total": 0}, ExitCode.INVALID_RUN),  # measured nothing: never a pass
    ({"requests_ok": 0, "requests_total": 0, "gates_failed": True}, ExitCode.INVALID_RUN),
    ({"requests_ok": 0, "gates_failed": True, "invalid": True, "strict": True}, ExitCode.TARGET_FAILED),
    ({"launch_code": ExitCode.WORKERS_MISSING, "requests_total": 0, "requests_ok": 0}, ExitCode.WORKERS_MISSING),
    ({"launch_code": ExitCode.TARGET_FAILED}, ExitCode.TARGET_FAILED),
    ({"launch_code": 1}, ExitCode.INTERNAL),  # a master that crashed
    ({"launch_code": -9}, ExitCode.INTERNAL),  # a master killed by a signal
    ({"launch_code": ExitCode.INTERRUPTED}, ExitCode.INTERRUPTED),
    ({"interrupted": True, "gates_failed": True}, ExitCode.INTERRUPTED),
    ({"interrupted": True, "launch_code": ExitCode.WORKERS_MISSING}, ExitCode.INTERRUPTED),
    # the target was lost mid-run for more than the error ceiling of the load's time, strict or not
    ({"lost_share": 0.6}, ExitCode.INVALID_RUN),
    ({"lost_share": 0.6, "strict": True, "invalid": True, "gates_failed": True}, ExitCode.INVALID_RUN),
    ({"lost_share": 0.2}, ExitCode.OK),  # at the ceiling, not above it
    ({"lost_share": 0.05, "error_ceiling": 0.01}, ExitCode.INVALID_RUN),
    ({"lost_share": 1.0, "requests_ok": 0}, ExitCode.TARGET_FAILED),  # nothing succeeded: the target failed
    ({"lost_share": 0.5, "interrupted": True}, ExitCode.INTERRUPTED),
    ({"lost_share": 0.5, "launch_code": ExitCode.TARGET_FAILED}, ExitCode.TARGET_FAILED),
]


@pytest.mark.parametrize(("changes", "expected"), TABLE)
def test_exit_code_table(changes: dict[str, object], expected: ExitCode) -> None:
    assert exit_code(RunOutcome(**{**OK_RUN, **changes})) == expected  # type: ignore[arg-type]


S = 1_000_000_000


def test_lost_share_is_the_time_after_the_last_answer_with_the_target_gone() -> None:
    """Killed 6 s into a 16 s load: lost from the first refused request after the last success."""
    samples = [(0, "ok"), (2 * S, "http_error"), (5 * S, "ok"), (6 * S, "stream_cut"), (int(6.2 * S), NO_ANSWER),
               (7 * S, NO_ANSWER), (12 * S, NO_ANSWER)]
    assert lost_share(samples, 0, 16 * S) == pytest.approx(9.8 / 16)
    assert lost_share(reversed(samples), 0, 16 * S) == pytest.approx(9.8 / 16)  # by intended start


def test_lost_share_is_zero_when_the_target_came_back_or_only_answered_errors() -> None:
    came_back = [(0, "ok"), (S, NO_ANSWER), (3 * S, NO_ANSWER), (9 * S, "ok")]
    assert lost_share(came_back, 0, 10 * S) == 0.0
    # 503s are answers: the target was there (the SLO's error_rate judges them)
    assert lost_share([(0, "ok"), (S, "http_error"), (9 * S, "http_error")], 0, 10 * S) == 0.0
    assert lost_share([], 0, 10 * S) == 0.0 and lost_share([(0, NO_ANSWER)], 5, 5) == 0.0
    # a refused request after the end of the load span cannot make the share exceed 1 or go negative
    assert lost_share([(0, "ok"), (-S, "ok"), (11 * S, NO_ANSWER)], 0, 10 * S) == 0.0
    assert lost_share([(-S, NO_ANSWER)], 0, 10 * S) == 1.0


def test_every_exit_code_is_distinct() -> None:
    values = [c.value for c in ExitCode]
    assert len(values) == len(set(values))
    assert ExitCode.WORKERS_MISSING not in (ExitCode.TARGET_FAILED, ExitCode.INVALID_RUN)


@pytest.mark.slow
def test_a_target_killed_mid_run_is_backed_off_and_the_run_cannot_be_judged(mock_factory, tmp_path) -> None:
    """The mock killed 3 s into an 8 s run of 4 users: the refused requests are backed off (recorded
    on each sample) and the run exits 3 without --strict. (The same against a real engine:
    tests/real/test_run_real.py.)"""
    mock = mock_factory("--ttft-ms", "20", "--itl-ms", "5", "--output-tokens", "8")
    out = tmp_path / "results"
    profile = write_profile(tmp_path, "users: 4\nramp_up_s: 0\nduration_s: 8\n")
    proc = subprocess.Popen([sys.executable, "-m", "loadbench", "run", "--target", mock.base_url, "--model",
                             "mock-model", "--profile", str(profile), "--no-calibrate", "--out", str(out)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=REPO)
    try:
        deadline = time.monotonic() + 60
        start = None
        while start is None and time.monotonic() < deadline:
            status = next(out.glob("*/status.json"), None)
            start = read_json(status).get("load_start_unix_s") if status else None
            time.sleep(0.1)
        assert start is not None, "the run never started"
        time.sleep(max(0.0, start + 3 - time.time()))
        os.killpg(mock.proc.pid, signal.SIGKILL)
        output, _ = proc.communicate(timeout=90)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == ExitCode.INVALID_RUN, output
    assert "the target was lost" in output, output
    samples = samples_of(only_run(out))
    refused = [s for s in samples if s["outcome"] == "connection_error"]
    assert refused and all(s["backoff_us"] >= 500_000 for s in refused)
    # 4 users backing off 0.5, 1, 2, 4 s over the last 5 s: a few each (it was 4 per 0.25 s, about 80)
    assert len(refused) <= 4 * 5, len(refused)
