"""End-to-end: a real ``loadbench run`` against the real mock says how its chunks were timed."""

from __future__ import annotations

from pathlib import Path

import pytest

from loadbench import rxstamp
from tests.conftest import only_run, read_json, run_loadbench, samples_of

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not rxstamp.supported(), reason="kernel receive stamps need Linux")]


def test_a_run_reports_its_kernel_stamped_share_and_the_clients_read_delay(mock_factory, tmp_path: Path) -> None:
    mock = mock_factory("--ttft-ms", "20", "--itl-ms", "10")
    out = tmp_path / "results"
    r = run_loadbench("run", "--target", mock.base_url, "--users", "4", "--duration", "4", "--out", str(out))
    assert r.returncode == 0, r.stdout + r.stderr
    run = only_run(out)
    g = read_json(run / "summary.json")["generator"]
    assert g["receive_clock"] == "kernel"
    assert g["stamped_share"] >= 0.5  # the first reads on a host may come unstamped; nearly all are stamped
    assert 0.0 <= g["shared_stamp_share"] < 0.5
    assert 0.0 <= g["read_delay_p50_ms"] <= g["read_delay_p99_ms"] < 1_000
    ttft = read_json(run / "summary.json")["metrics"]["ttft_ms"]
    assert ttft["p50"] - 1.0 <= g["user_ttft_p50_ms"] and ttft["p99"] - 1.0 <= g["user_ttft_p99_ms"]
    ok = [s for s in samples_of(run) if s["outcome"] == "ok" and s["phase"] == "measure"]
    assert ok and all(0 <= s["stamped_chunks"] <= s["chunks"] for s in ok)
    assert read_json(run / "manifest.json")["host"]["receive_clock"] == "kernel"
    assert "chunks timed by kernel receive stamps" in r.stdout
    assert "chunks timed by kernel receive stamps" in (run / "summary.md").read_text()
