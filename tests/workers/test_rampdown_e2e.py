"""A ramp-down between stages lets the surplus users finish the request they are in.

Cutting them instead would remove exactly the longest requests in flight at the step (the ones that
started earliest) from the stage they started in, and bias its tail low.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from loadbench.units import s_to_ns
from tests.conftest import mock_stats, only_run, read_json, run_profile, samples_of

pytestmark = pytest.mark.slow

TTFT_MS, OUTPUT_TOKENS = 300, 64  # the default scenario asks for 64 output tokens


def _e2e_ms(itl_ms: int) -> int:
    """The mock's duration of one request: its last content chunk is due ttft + 63 x itl after arrival."""
    return TTFT_MS + (OUTPUT_TOKENS - 1) * itl_ms


def _stages(*stages: tuple[float, int]) -> str:
    rows = "".join(f"  - {{duration_s: {d:g}, users: {u}}}\n" for d, u in stages)
    return f"name: rampdown\nwarmup_s: 0\ntimeout_s: 10\nstages:\n{rows}"


def _run(mock_factory, tmp_path: Path, itl_ms: int, profile: str) -> tuple[list[dict], int]:
    """A one-worker run against the mock; its samples (every one checked ok) and its load start (unix ns)."""
    mock = mock_factory("--ttft-ms", str(TTFT_MS), "--itl-ms", str(itl_ms))
    run = run_profile(tmp_path, profile, "--target", mock.base_url, "--workers", "1", "--no-calibrate")
    samples = samples_of(run)
    outcomes = Counter(s["outcome"] for s in samples)
    assert outcomes == {"ok": len(samples)}, outcomes  # none interrupted (cut by a step), none failed
    assert mock_stats(mock)["requests"] == len(samples) + 1  # every request sent is recorded (+ pre-flight)
    return samples, int(read_json(run / "status.json")["load_start_unix_s"] * 1e9)


def _end_ns(s: dict) -> int:
    return int(s["intended_unix_ns"] + s["e2e_us"] * 1000)


def _max_overlap(spans: list[tuple[int, int]]) -> int:
    """The most spans open at one instant."""
    edges = sorted([(a, 1) for a, _ in spans] + [(b, -1) for _, b in spans])
    most = now = 0
    for _, step in edges:
        now += step
        most = max(most, now)
    return most


def _in_flight_at(samples: list[dict], t_ns: int) -> int:
    return sum(1 for s in samples if s["intended_unix_ns"] <= t_ns < _end_ns(s))


def test_a_ramp_down_lets_requests_in_flight_finish_and_counts_them_in_their_stage(mock_factory,
                                                                                   tmp_path: Path) -> None:
    itl_ms, step_s = 20, 4.0  # requests of 1,560 ms; 8 users for 4 s, then 2 users for 4 s
    samples, start_ns = _run(mock_factory, tmp_path, itl_ms, _stages((step_s, 8), (4, 2)))
    step_ns = start_ns + s_to_ns(step_s)

    at_step = [s for s in samples if s["intended_unix_ns"] < step_ns < _end_ns(s)]
    # all 8 users are mid-request at the step (4 s is no multiple of 1.56 s); 6 of them are surplus
    assert len(at_step) >= 6, len(at_step)
    for s in at_step:
        # measured whole: the mock's own duration plus the client's share, never cut short
        assert _e2e_ms(itl_ms) <= s["e2e_us"] / 1000 <= _e2e_ms(itl_ms) + 600, s
        assert s["output_tokens"] == OUTPUT_TOKENS

    # the surplus users start nothing after the step: the second stage never has more than 2 in flight
    after = [(int(s["intended_unix_ns"]), _end_ns(s)) for s in samples if s["intended_unix_ns"] >= step_ns]
    assert after and _max_overlap(after) <= 2

    # a request is counted in the stage of its intended start, wherever it finished
    high, low = read_json(only_run(tmp_path / "results") / "summary.json")["stages"]
    assert (high["label"], low["label"]) == ("stage-0", "stage-1")
    assert high["requests"]["ok"] == sum(1 for s in samples if s["intended_unix_ns"] < step_ns)
    assert low["requests"]["ok"] == len(after)
    assert high["requests"]["by_outcome"] == {"ok": high["requests"]["ok"]}


def test_a_ramp_up_while_stopped_users_finish_takes_them_back_and_holds_the_planned_users(mock_factory,
                                                                                          tmp_path: Path) -> None:
    """8 users, 2 for one second, 8 again, with requests of 2.5 s: the 6 users stopped at 3 s are still
    in their request at 4 s. Counted as running, they would leave the last stage at 2 users; replaced
    by new users while they finish, the load would reach 14 streams for 8 planned users."""
    itl_ms = 35  # requests of 300 + 63 x 35 = 2,505 ms
    samples, start_ns = _run(mock_factory, tmp_path, itl_ms, _stages((3, 8), (1, 2), (3, 8)))
    spans = [(int(s["intended_unix_ns"]), _end_ns(s)) for s in samples]
    assert _max_overlap(spans) <= 8
    # once every request of the first stages has ended (by 5.6 s), the last stage holds its 8 users
    assert max(_in_flight_at(samples, start_ns + s_to_ns(t_s)) for t_s in (5.8, 6.2, 6.6)) == 8
