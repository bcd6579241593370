"""A CPU hog shares the worker's core: kernel-stamped TTFT stays on the truth, user-space TTFT drifts,
and the run's measured read delay shows the difference. Real mock on CPU 0, real ``loadbench run``
(CLI, master and worker) on CPU 1 at a lower priority than a busy process pinned beside it, and the truth read by the
independent reference client (bench/reference_client.py) on CPU 0 against the same mock at the same
time (on a shared machine the mock itself runs late by a few ms: that is truth, not error)."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from loadbench import rxstamp
from tests.conftest import REPO, only_run, read_json

pytestmark = [pytest.mark.slow, pytest.mark.alone,
              pytest.mark.skipif(not rxstamp.supported() or (os.cpu_count() or 1) < 2,
                                 reason="kernel receive stamps need Linux; the hog needs a second core")]

TTFT_MS = 50.0
TRUTH_NICE = -10
RUN_NICE = 10


@pytest.fixture
def hog() -> Iterator[None]:
    """A process spinning on CPU 1 for at most 120 s (bounded even if the test dies)."""
    proc = subprocess.Popen(["taskset", "-c", "1", sys.executable, "-c",
                             "import time\nend = time.monotonic() + 120\nwhile time.monotonic() < end: pass"])
    try:
        yield
    finally:
        proc.kill()
        proc.wait(timeout=10)


def _run(base_url: str, out: Path) -> dict[str, Any]:
    # The run yields to the hog (nice 10): a waking worker waits out the hog's time slice, as on a busy
    # host, instead of preempting it at once as a sleeper does on an otherwise idle core (where a hog
    # of equal priority costs the worker almost nothing and no drift shows).
    cmd = ["taskset", "-c", "1", "nice", "-n", str(RUN_NICE), sys.executable, "-m", "loadbench", "run",
           "--target", base_url,
           "--users", "16", "--ramp-up", "1", "--warmup", "2", "--duration", "10", "--out", str(out)]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=180, cwd=REPO)
    assert r.returncode in (0, 3), r.stdout + r.stderr
    return read_json(only_run(out) / "summary.json")


def test_kernel_stamps_keep_ttft_on_the_truth_while_a_hog_shares_the_core(mock_factory, hog: None,
                                                                           tmp_path: Path) -> None:
    from loadbench.procs import start_server

    mock = start_server(["mock", "--port", "0", "--ttft-ms", str(TTFT_MS), "--itl-ms", "20",
                         "--output-tokens", "24"], cpu=0)
    # the truth's side runs ahead of other work on CPU 0 where the host allows it (the hog is on CPU 1)
    with contextlib.suppress(PermissionError):
        os.setpriority(os.PRIO_PROCESS, mock.proc.pid, TRUTH_NICE)
    try:
        ref = subprocess.Popen(["taskset", "-c", "0", "nice", "-n", str(TRUTH_NICE), sys.executable,
                                "-m", "bench.reference_client",
                                "--url", mock.base_url, "--streams", "4", "--duration", "14",
                                "--warmup", "3", "--max-tokens", "24"],
                               stdout=subprocess.PIPE, text=True, cwd=REPO)
        summary = _run(mock.base_url, tmp_path / "results")
        reference = json.loads(ref.communicate(timeout=120)[0])
    finally:
        mock.stop()
    k, truth, g = summary["metrics"]["ttft_ms"], reference["ttft_ms"], summary["generator"]
    print(f"reference TTFT P50 {truth['p50']} P99 {truth['p99']} (its loop lag P99 "
          f"{reference['loop_lag_ms']['p99']}); kernel TTFT P50 {k['p50']} P99 {k['p99']}; user-space TTFT "
          f"P50 {g['user_ttft_p50_ms']} P99 {g['user_ttft_p99_ms']}; read delay P50 {g['read_delay_p50_ms']} "
          f"P99 {g['read_delay_p99_ms']}; stamped {g['stamped_share']} shared {g['shared_stamp_share']}; "
          f"client delay {g['client_delay_ms']} beyond {g['beyond_promise']} saturated {g['saturated']}; "
          f"sends stamped {g['send_stamped_share']} send delay P50 {g['send_delay_p50_ms']} "
          f"P99 {g['send_delay_p99_ms']}")
    assert g["receive_clock"] == "kernel"
    # the send side too: a request is timed from when its last byte left, not from when the hog let the
    # worker begin it (before send stamps, the kernel-stamped TTFT P99 still read 9 ms over the reference)
    assert g["send_stamped_share"] >= 0.99
    # A busy reference reads late, never early: its figures are the truth or above it. So the kernel
    # figures never exceed the reference's by more than the promise, whatever the machine does ...
    assert k["p50"] <= truth["p50"] + 1.0, (k, truth)
    assert k["p99"] <= truth["p99"] + 5.0, (k, truth)
    # ... and where the reference itself kept up (its own loop lag P99 within 2 ms) they agree both ways,
    # the kernel's figures being earlier than the reference's by at most the promise plus the reference's
    # own lateness: it reads in user space, so each of its stamps is late by up to its loop lag.
    ref_lag_p99 = reference["loop_lag_ms"]["p99"]
    if ref_lag_p99 <= 2.0:
        assert k["p50"] >= truth["p50"] - 1.0 - ref_lag_p99, (k, truth, ref_lag_p99)
        assert k["p99"] >= truth["p99"] - 5.0 - ref_lag_p99, (k, truth, ref_lag_p99)
    # The hog delays the worker's reads, and the read delay (user-space minus kernel time, per chunk)
    # measures it: 3-10 ms at P99 in every run so far. How much of it reaches a TTFT percentile depends
    # on which chunks the hog happened to delay (on an idle host a few reads by a time slice, on a busy
    # one most reads a little), so the per-chunk figure is the one asserted; a user-space TTFT is never
    # earlier than the kernel's for the same requests.
    assert g["user_ttft_p99_ms"] >= k["p99"]
    assert g["read_delay_p99_ms"] > 2.0
    assert not g["beyond_promise"]  # the receive side is measured; closed loop has no send lag
