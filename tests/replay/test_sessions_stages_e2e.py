"""Sessions under a staged plan, a peak plan and a users sweep against the mock: each stage runs the concurrent sessions
(closed loop) or the session arrivals (open loop) it asks for, a ramp-down ends sessions between turns, a
session belongs to the phase of its first turn, and the summary's arrival rate counts sessions, not turns."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from tests.conftest import read_json, run_profile, samples_of

TURNS, USER, OUTPUT = 4, 10, 5
SCENARIO = f"output_tokens: {OUTPUT}\nsessions: {{turns: {TURNS}, user_tokens: {USER}}}\n"
STEP_MS = 1  # the grid on which in-flight requests are counted


def _load_start_s(run: Path) -> float:
    return float(read_json(run / "status.json")["load_start_unix_s"])


def in_flight(samples: list[dict], t0_s: float, window: tuple[float, float]) -> tuple[float, int]:
    """(time-weighted mean, max) of the requests in flight inside ``window`` (s from the load's start)."""
    spans = [((s["intended_unix_ns"] / 1e9 - t0_s) + (s["queue_us"] or 0) / 1e6,
              (s["intended_unix_ns"] / 1e9 - t0_s) + s["e2e_us"] / 1e6) for s in samples if s["e2e_us"] is not None]
    a, b = window
    mean = sum(max(0.0, min(end, b) - max(start, a)) for start, end in spans) / (b - a)
    steps = int((b - a) * 1000 / STEP_MS)
    peak = max(sum(1 for start, end in spans if start <= a + i * STEP_MS / 1000 < end) for i in range(steps))
    return mean, peak


@pytest.mark.slow
def test_staged_sessions_run_the_concurrent_sessions_each_stage_asks_for(mock_factory, tmp_path: Path) -> None:
    mock = mock_factory("--ttft-ms", "40", "--itl-ms", "4")
    (tmp_path / "scenario.yaml").write_text(SCENARIO)
    users = (2, 6, 1)
    stages = "".join(f"  - {{users: {u}, duration_s: 3}}\n" for u in users)
    run = run_profile(tmp_path, "stages:\n" + stages, "--target", mock.base_url, "--model", "m",
                      "--scenario", str(tmp_path / "scenario.yaml"), "--no-calibrate")
    samples = samples_of(run)
    t0 = _load_start_s(run)
    assert all(s["outcome"] == "ok" and s["session_turns"] == TURNS for s in samples)
    for k, n in enumerate(users):
        # inside each stage (half a second off its edges, where users start and stop): n users, each always
        # in a turn (no think time), so n requests in flight, never more: the ramp-down to 1 ended the
        # other five sessions between their turns
        mean, peak = in_flight(samples, t0, (3 * k + 0.5, 3 * k + 2.5))
        assert peak == n, (k, mean, peak)
        assert n * 0.9 <= mean <= n, (k, mean, peak)
    # every session grows turn by turn, whatever stage it runs in
    by_session: dict[str, list[dict]] = {}
    for s in samples:
        by_session.setdefault(s["session"], []).append(s)
    for turns in by_session.values():
        turns.sort(key=lambda s: s["turn"])
        assert [s["prompt_tokens"] for s in turns] == [USER * k + OUTPUT * (k - 1) for k in range(1, len(turns) + 1)]
    summary = read_json(run / "summary.json")
    # by intended start; the last session's turns after the plan's end belong to its last stage
    stage_of = Counter(min(int((s["intended_unix_ns"] / 1e9 - t0) // 3), 2) for s in samples)
    assert [st["requests"]["total"] for st in summary["stages"]] == [stage_of[k] for k in range(3)]
    assert summary["sessions"]["started"] == sum(1 for s in samples if s["turn"] == 1)


@pytest.mark.slow
def test_a_peak_of_session_arrivals_starts_the_sessions_each_stage_asks_for(mock_factory, tmp_path: Path) -> None:
    mock = mock_factory("--ttft-ms", "20", "--itl-ms", "2")
    (tmp_path / "scenario.yaml").write_text(SCENARIO)
    # warm-up at 2 sessions/s, peak 4/s, 2x peak 8/s, recovery 4/s: 3 s each
    profile = ("warmup_s: 3\npeak: {rps: 4, multiplier: 2, warmup_fraction: 0.5, ramp_s: 0, hold_s: 3}\n"
               "arrival: {kind: constant}\n")
    run = run_profile(tmp_path, profile, "--target", mock.base_url, "--model", "m",
                      "--scenario", str(tmp_path / "scenario.yaml"), "--no-calibrate")
    samples = samples_of(run)
    t0 = _load_start_s(run)
    firsts = [s for s in samples if s["turn"] == 1]
    per_stage = Counter(int((s["intended_unix_ns"] / 1e9 - t0) // 3) for s in firsts)
    assert [per_stage[k] for k in range(4)] == [6, 12, 24, 12], per_stage  # constant arrivals: rate x 3 s
    assert all(s["outcome"] == "ok" for s in samples)
    # a session belongs to the phase of its first turn: the warm-up's sessions are left out whole
    phase = {s["session"]: s["phase"] for s in firsts}
    assert Counter(phase.values()) == {"warmup": 6, "measure": 48}
    assert all(s["phase"] == phase[s["session"]] for s in samples)
    summary = read_json(run / "summary.json")
    assert summary["sessions"]["started"] == 48
    # arrivals are sessions: 48 in the 9 s measured, as offered (turns would make it four times that)
    g = summary["generator"]
    assert g["target_rps"] == pytest.approx(48 / 9, abs=0.01)
    assert g["achieved_rps"] == pytest.approx(48 / 9, abs=0.01)
    assert not g["saturated"], g["reasons"]


@pytest.mark.slow
def test_a_users_sweep_of_sessions_holds_each_steps_users_in_flight(mock_factory, tmp_path: Path) -> None:
    mock = mock_factory("--ttft-ms", "40", "--itl-ms", "4")
    (tmp_path / "scenario.yaml").write_text(SCENARIO)
    profile = "sweep: {variable: users, start: 1, step: 3, max: 7, hold_s: 3}\nslo: {ttft_ms: {p95: 1000}}\n"
    run = run_profile(tmp_path, profile, "--target", mock.base_url, "--model", "m",
                      "--scenario", str(tmp_path / "scenario.yaml"), "--no-calibrate")
    samples = samples_of(run)
    t0 = _load_start_s(run)
    assert all(s["outcome"] == "ok" for s in samples)
    for k, n in enumerate((1, 4, 7)):
        mean, peak = in_flight(samples, t0, (3 * k + 0.5, 3 * k + 2.5))
        assert peak == n, (k, mean, peak)
        assert n * 0.9 <= mean <= n, (k, mean, peak)
    summary = read_json(run / "summary.json")
    assert [st["slo"]["met"] for st in summary["stages"]] == [True, True, True], summary["stages"]
    assert summary["sessions"]["started"] == sum(1 for s in samples if s["turn"] == 1)
