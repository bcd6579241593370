"""`loadbench run --prometheus-port`: the headless master serves the live run while it goes."""

from __future__ import annotations

import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from loadbench.launcher import free_port
from tests.conftest import REPO, only_run

pytestmark = pytest.mark.slow


def test_live_metrics_during_a_headless_run(tmp_path: Path, mock_factory) -> None:
    mock = mock_factory("--ttft-ms", "40", "--itl-ms", "5")
    port = free_port()
    out = tmp_path / "results"
    proc = subprocess.Popen(
        [sys.executable, "-m", "loadbench", "run", "--target", mock.base_url, "--model", "mock-model",
         "--users", "5", "--ramp-up", "1", "--duration", "12", "--no-calibrate", "--workers", "1",
         "--prometheus-port", str(port), "--out", str(out)],
        cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    seen: dict[str, float] = {}
    run_id = None
    deadline = time.monotonic() + 60
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
                    text = resp.read().decode()
            except OSError:
                time.sleep(0.3)
                continue
            for fam in text_string_to_metric_families(text):
                for s in fam.samples:
                    if s.name == "loadbench_run_info":
                        run_id = s.labels["run_id"]
                    if s.name == "loadbench_requests_total" and s.labels["outcome"] == "ok":
                        seen["ok"] = s.value
                    if s.name == "loadbench_ttft_quantile_seconds" and s.labels == {"quantile": "0.5",
                                                                                   "window": "run"}:
                        seen["ttft_p50_s"] = s.value
                    if s.name == "loadbench_users":
                        seen["users"] = s.value
            if seen.get("ok", 0) > 0 and "ttft_p50_s" in seen:
                break
            time.sleep(0.5)
    finally:
        proc.wait(timeout=120)
    assert proc.returncode == 0
    assert run_id == only_run(out).name
    assert seen["ok"] > 0 and seen["users"] == 5
    assert 0.040 <= seen["ttft_p50_s"] < 0.080
