"""Input that must stop `loadbench run` before any load, and plans the run must read right."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import mock_stats, read_json, run_loadbench, run_profile


def test_unset_api_key_env_exits_2_before_any_request(mock_factory, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LB_TEST_UNSET_KEY", raising=False)
    mock = mock_factory()
    out = tmp_path / "results"
    r = run_loadbench("run", "--target", mock.base_url, "--api-key-env", "LB_TEST_UNSET_KEY",
                      "--duration", "2", "--users", "1", "--out", str(out), timeout_s=60)
    assert r.returncode == 2, r.stdout + r.stderr
    assert "--api-key-env: LB_TEST_UNSET_KEY is not set" in r.stderr
    assert mock_stats(mock)["requests"] == 0  # not even the model probe or calibration
    assert not out.exists() or not any(out.iterdir())


def test_unset_key_of_a_profile_target_exits_2_before_any_request(mock_factory, tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LB_TEST_UNSET_KEY", raising=False)
    mock = mock_factory()
    profile = tmp_path / "p.yaml"
    profile.write_text(f"duration_s: 2\nusers: 1\ntargets:\n  - {{name: a, url: '{mock.base_url}'}}\n"
                       f"  - {{name: b, url: '{mock.base_url}', api_key_env: LB_TEST_UNSET_KEY}}\n")
    r = run_loadbench("run", "--profile", str(profile), "--out", str(tmp_path / "results"), timeout_s=60)
    assert r.returncode == 2, r.stdout + r.stderr
    assert "targets[b].api_key_env: LB_TEST_UNSET_KEY is not set" in r.stderr
    assert mock_stats(mock)["requests"] == 0


@pytest.mark.slow
def test_an_rps_sweep_run_by_loadbench_run_is_summarised_as_open_loop(mock_factory, tmp_path: Path) -> None:
    mock = mock_factory("--ttft-ms", "10", "--itl-ms", "2")
    run = run_profile(tmp_path, "name: rps-sweep\nsweep: {variable: rps, start: 10, step: 10, max: 20, hold_s: 3}\n"
                                "arrival: {kind: constant}\n", "--target", mock.base_url, "--no-calibrate")
    manifest = read_json(run / "manifest.json")
    assert manifest["load_plan"]["mode"] == "open"
    s = read_json(run / "summary.json")
    assert s["load"]["mode"] == "open"
    # the offered-rate check ran: 3 s at 10/s and 3 s at 20/s = 90 arrivals over 6 s
    assert s["generator"]["target_rps"] == pytest.approx(15, rel=0.02)
    assert s["generator"]["achieved_rps"] == pytest.approx(15, rel=0.1)
    assert [st["label"] for st in s["stages"]] == ["step-0", "step-1"]
