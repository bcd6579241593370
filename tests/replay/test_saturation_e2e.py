"""Over-saturation against the mock's batch limit: a sweep in rps stops at the knee with the verdict."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import only_run, read_json, run_loadbench, write_profile


@pytest.mark.slow
def test_a_sweep_stops_at_the_knee_of_a_batch_limit_with_an_over_saturation_verdict(tmp_path: Path) -> None:
    # 5 slots, each request 50 + 9 x 10 = 140 ms: the mock serves 5 / 0.14 = 35.7 requests/s. At 15 and 30 rps
    # (constant arrivals) nothing piles up; at 45 the queue grows by ~9 requests a second, and TTFT with it.
    prof = write_profile(tmp_path, "name: knee\nsweep: {variable: rps, start: 15, step: 15, max: 60, hold_s: 10}\n"
                                   "arrival: {kind: constant}\nlate: send\nmax_in_flight: 2000\n"
                                   "slo: {ttft_ms: {p95: 60000}}\n"
                                   "stop_on_saturation: {min_s: 3, window_s: 30, min_ttft_ms: 300}\n")
    scenario = write_profile(tmp_path, "prompt_tokens: 16\noutput_tokens: 10\n", "scenario.yaml")
    out = tmp_path / "results"
    r = run_loadbench("sweep", "--profile", str(prof), "--scenario", str(scenario), "--out", str(out),
                      "--mock-arg=--max-concurrency=5", "--mock-arg=--ttft-ms=50", "--mock-arg=--itl-ms=10",
                      timeout_s=400)
    assert r.returncode == 0, r.stdout + r.stderr
    folder = only_run(out)
    sweep = read_json(folder / "sweep.json")
    steps = {st["load"]: st for st in sweep["steps"]}
    assert sorted(steps) == [15, 30, 45]  # stopped at the knee: 60 never ran
    assert steps[15]["over_saturated"] is None and steps[30]["over_saturated"] is None
    assert steps[45]["over_saturated"].startswith("over-saturated after")
    assert sweep["over_saturated_at"] == 45
    assert sweep["capacity"]["load"] == 30  # the over-saturated step is not capacity
    status = read_json(folder / "steps" / "2-45" / "status.json")
    assert status["end_unix_s"] - status["load_start_unix_s"] < 9  # stopped early, before its 10 s hold
    assert "the target was over-saturated at rps = 45" in r.stdout
    assert "Over-saturated at 45 rps" in r.stdout
    assert (folder / "plots" / "sweep.png").is_file()
