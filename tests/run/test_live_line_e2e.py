"""The live line of a real open-loop run against the mock: a sessions run's achieved arrival rate is sessions a
second (session starts the workers count), near the offered rate rather than the turns' rate; a single-request
run's line keeps its requests a second."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.conftest import run_loadbench, write_profile

pytestmark = pytest.mark.slow

RATE, TURNS, DURATION_S = 4, 4, 12  # the master prints a line every 5 s: two lines inside the run


def _live(tmp_path: Path, profile: str, *args: str) -> list[tuple[str, float, float, float]]:
    """(unit, target, achieved, finished req/s) of every live line the run printed."""
    r = run_loadbench("run", *args, "--profile", str(write_profile(tmp_path, profile)),
                      "--out", str(tmp_path / "results"))
    assert r.returncode == 0, r.stdout + r.stderr
    found = re.findall(r"target +([\d.]+) (\w+)/s  achieved +([\d.]+) \w+/s  finished +([\d.]+) req/s", r.stdout)
    assert len(found) >= 2, r.stdout
    return [(unit, float(t), float(a), float(f)) for t, unit, a, f in found]


def test_a_sessions_run_shows_sessions_a_second_near_the_offered_rate(mock_factory, tmp_path: Path) -> None:
    mock = mock_factory("--ttft-ms", "20", "--itl-ms", "2")
    (tmp_path / "scenario.yaml").write_text(f"output_tokens: 5\nsessions: {{turns: {TURNS}, user_tokens: 10}}\n")
    lines = _live(tmp_path, f"arrival: {{kind: constant, rps: {RATE}}}\nduration_s: {DURATION_S}\n",
                  "--target", mock.base_url, "--model", "m", "--scenario", str(tmp_path / "scenario.yaml"),
                  "--no-calibrate")
    assert all(unit == "sessions" and target == RATE for unit, target, _, _ in lines), lines
    # the second window lies wholly inside the run: about 4 sessions a second (a worker reports once a second,
    # so a window may gain or lose one report), where its turns make about 16 requests a second
    _, _, achieved, finished = lines[1]
    assert 0.7 * RATE <= achieved <= 1.3 * RATE, lines
    assert finished >= 2.5 * RATE, lines


def test_a_single_request_run_shows_requests_a_second_as_before(mock_factory, tmp_path: Path) -> None:
    mock = mock_factory("--ttft-ms", "20", "--itl-ms", "2")
    lines = _live(tmp_path, f"arrival: {{kind: constant, rps: {RATE * TURNS}}}\nduration_s: {DURATION_S}\n",
                  "--target", mock.base_url)
    assert all(unit == "req" and target == RATE * TURNS for unit, target, _, _ in lines), lines
    _, _, achieved, _ = lines[1]
    assert 0.8 * RATE * TURNS <= achieved <= 1.2 * RATE * TURNS, lines
