"""Load models end to end against the mock: open loop, late sending, peak multiples, sweeps, targets."""

from __future__ import annotations

from pathlib import Path

import pytest

from loadbench.results import run_dir as rd
from tests.conftest import mock_stats, only_run, read_json, run_loadbench, run_profile, write_profile

pytestmark = pytest.mark.slow


def test_open_loop_arrivals_reuse_kept_alive_connections(mock_factory, tmp_path: Path) -> None:
    """Arrivals go to the user idle most recently, whose connection is warm: a few users carry the
    rate and the target sees a few connections, not one per request (a FIFO hand-out gave every
    arrival to the longest-idle user, and each request opened its own connection, its handshake
    inside its TTFT)."""
    mock = mock_factory("--ttft-ms", "20", "--itl-ms", "2", "--output-tokens", "8")
    run = run_profile(tmp_path, "name: open\narrival: {kind: constant, rps: 40}\nduration_s: 5\n"
                                 "max_in_flight: 200\n", "--target", mock.base_url)
    s = read_json(run / "summary.json")
    stats = mock_stats(mock)
    assert s["requests"]["ok"] >= 150 and stats["requests"] >= 150
    # ~40 ms a request at 40/s: about two in flight at once; the pre-flight request opens one more
    assert stats["connections"] <= 20, stats
    assert s["generator"]["send_stamped_share"] >= 0.99


@pytest.mark.alone
def test_open_loop_constant_rate_is_achieved_on_schedule(mock_factory, tmp_path: Path) -> None:
    mock = mock_factory("--ttft-ms", "20", "--itl-ms", "5")
    run = run_profile(tmp_path, "name: open\narrival: {kind: constant, rps: 50}\nduration_s: 8\n"
                                 "max_in_flight: 100\n", "--target", mock.base_url)
    s = read_json(run / "summary.json")
    assert s["load"]["mode"] == "open"
    assert s["requests"]["dropped"] == 0
    assert abs(s["requests"]["ok"] - 400) <= 4  # 50/s for 8 s, every arrival sent and drained
    assert abs(s["throughput"]["requests_per_s"] - 50) <= 1.5
    assert s["metrics"]["queue_ms"]["p50"] < 5
    assert s["generator"]["schedule_lag_p99_ms"] is not None
    assert abs(s["generator"]["achieved_rps"] - s["generator"]["target_rps"]) <= 1.5


@pytest.mark.alone
def test_open_loop_late_sending_shows_client_queue_in_ttft_not_in_service_time(mock_factory, tmp_path: Path) -> None:
    # each request takes ~0.37 s; 20 slots can carry ~54 req/s on time; 90 req/s are offered
    mock = mock_factory("--ttft-ms", "50", "--itl-ms", "5")
    run = run_profile(tmp_path, "name: late\narrival: {kind: constant, rps: 90}\nduration_s: 6\n"
                                 "max_in_flight: 20\nlate: send\n", "--target", mock.base_url)
    s = read_json(run / "summary.json")
    m = s["metrics"]
    # every scheduled arrival is accounted for: sent late, or still queued when the plan ended
    assert s["requests"]["ok"] + s["requests"]["dropped"] == pytest.approx(540, abs=3)
    assert s["generator"]["saturated"] is False  # a full client queue is the profile's limit, not the CPU's
    assert any("client-side queue" in w for w in s["warnings"])
    assert abs(m["service_ttft_ms"]["p50"] - 50) < 10  # the server was not slower
    assert m["ttft_ms"]["p50"] > m["service_ttft_ms"]["p50"] + 300  # the client-side queue is counted
    assert m["queue_ms"]["p99"] > 1000


def test_open_loop_drops_are_counted_never_skipped(mock_factory, tmp_path: Path) -> None:
    mock = mock_factory("--ttft-ms", "50", "--itl-ms", "5")
    run = run_profile(tmp_path, "name: drop\narrival: {kind: constant, rps: 90}\nduration_s: 5\n"
                              "max_in_flight: 10\nlate: drop\n", "--target", mock.base_url)
    s = read_json(run / "summary.json")
    assert s["requests"]["dropped"] > 100
    assert s["requests"]["dropped"] + s["requests"]["ok"] == pytest.approx(450, abs=5)
    assert any("never sent" in w for w in s["warnings"])
    assert s["metrics"]["queue_ms"]["p99"] < 50  # what was sent, was sent on time


def test_peak_multiple_stages_show_in_the_timeline_and_warmup_is_excluded(mock_factory, tmp_path: Path) -> None:
    mock = mock_factory("--ttft-ms", "20", "--itl-ms", "5")
    run = run_profile(tmp_path, "name: peak\nwarmup_s: 2\nramp_up_s: 0\ninterval_s: 1\n"
                              "peak: {users: 4, multiplier: 2, ramp_s: 1, hold_s: 3}\n", "--target", mock.base_url)
    timeline = list(rd.iter_timeline(run))
    stages = [t["stage"] for t in timeline]
    assert {"warmup", "peak", "2x-peak", "recovery"} <= set(stages)
    users = {t["stage"]: t["users"] for t in timeline if t["stage"]}
    assert users["2x-peak"] == 8 and users["peak"] == 4
    assert timeline[0]["phase"] == "warmup"
    s = read_json(run / "summary.json")
    assert s["requests"]["excluded"] > 0
    assert s["metrics"]["ttft_ms"]["count"] == s["requests"]["ok"]


def test_sweep_finds_the_capacity_where_the_server_queue_starts(mock_factory, tmp_path: Path) -> None:
    # the mock serves 50 requests at once; beyond that requests queue and TTFT jumps by a whole E2E
    prof = write_profile(tmp_path, "name: sw\nramp_up_s: 1\nsweep: {variable: users, start: 20, step: 20, max: 100, "
                              "hold_s: 5}\nslo: {ttft_ms: {p95: 200}, error_rate: 0.01}\n")
    out = tmp_path / "results"
    r = run_loadbench("sweep", "--profile", str(prof), "--out", str(out), "--mock-arg=--max-concurrency=50",
                      timeout_s=300)
    assert r.returncode == 0, r.stdout + r.stderr
    doc = read_json(only_run(out) / "sweep.json")
    assert doc["capacity"]["load"] == 40
    assert [s["slo_met"] for s in doc["steps"]] == [True, True, False]
    assert (only_run(out) / "plots" / "sweep.png").exists()


def _run_two_targets(mock_factory, tmp_path: Path, load: str) -> Path:
    """A fast (TTFT 30 / ITL 5 ms) and a slow (90 / 15 ms) mock as the profile's two targets."""
    fast = mock_factory("--ttft-ms", "30", "--itl-ms", "5")
    slow = mock_factory("--ttft-ms", "90", "--itl-ms", "15")
    return run_profile(tmp_path, f"name: cmp\n{load}\ntargets:\n"
                                  f"  - {{name: fast, url: '{fast.base_url}', model: mock-model}}\n"
                                  f"  - {{name: slow, url: '{slow.base_url}', model: mock-model}}\n")


def test_two_targets_side_by_side_match_their_mocks(mock_factory, tmp_path: Path) -> None:
    folder = _run_two_targets(mock_factory, tmp_path, "users: 4\nduration_s: 5")
    fast_s = read_json(folder / "targets" / "fast" / "summary.json")
    slow_s = read_json(folder / "targets" / "slow" / "summary.json")
    assert abs(fast_s["metrics"]["ttft_ms"]["p50"] - 30) < 5 and abs(fast_s["metrics"]["itl_ms"]["p50"] - 5) < 1
    assert abs(slow_s["metrics"]["ttft_ms"]["p50"] - 90) < 5 and abs(slow_s["metrics"]["itl_ms"]["p50"] - 15) < 1
    assert (folder / "report.html").exists()
    assert (folder / "plots" / "targets_bars.png").exists()


def test_interleaved_targets_merge_rounds_exactly(mock_factory, tmp_path: Path) -> None:
    folder = _run_two_targets(mock_factory, tmp_path, "users: 3\nduration_s: 6\ninterleave: true")
    for name, ttft in (("fast", 30), ("slow", 90)):
        target = folder / "targets" / name
        rounds = sorted((target / "rounds").iterdir())
        assert len(rounds) == 3
        s = read_json(target / "summary.json")
        assert abs(s["metrics"]["ttft_ms"]["p50"] - ttft) < 5
        # the merged folder holds exactly the rounds' samples, and its histograms count them all
        per_round = sum(read_json(r / "summary.json")["requests"]["ok"] for r in rounds)
        assert s["requests"]["ok"] == per_round == s["metrics"]["ttft_ms"]["count"]
        assert 5.5 <= s["window"]["measure_s"] <= 7.0  # three ~2 s windows, not the wall time between them
    fast_rounds = [read_json(folder / "targets" / "fast" / "rounds" / str(k) / "status.json")["load_start_unix_s"]
                   for k in range(3)]
    slow_rounds = [read_json(folder / "targets" / "slow" / "rounds" / str(k) / "status.json")["load_start_unix_s"]
                   for k in range(3)]
    assert fast_rounds[0] < slow_rounds[0] < fast_rounds[1] < slow_rounds[1] < fast_rounds[2]  # interleaved


@pytest.mark.parametrize("kind,spec", [
    ("uniform", "{kind: uniform, min: 32, max: 256}"),
    ("normal", "{kind: normal, mean: 200, stdev: 40}"),
    ("lognormal", "{kind: lognormal, mean: 300, stdev: 150, clip_max: 2000}"),
    ("exponential", "{kind: exponential, mean: 150, clip_min: 8}"),
])
def test_requested_and_counted_prompt_tokens_agree_per_distribution(mock_factory, tmp_path: Path, kind: str,
                                                                    spec: str) -> None:
    """The mock counts words as tokens, with a system prompt the generator must account for too."""
    mock = mock_factory("--ttft-ms", "5", "--itl-ms", "1")
    scen = tmp_path / "scenario.yaml"
    scen.write_text(f"name: {kind}\nsystem_prompt: You are a terse assistant who answers in one line.\n"
                    f"prompt_tokens: {spec}\noutput_tokens: {{kind: uniform, min: 4, max: 16}}\n")
    out = tmp_path / "results"
    r = run_loadbench("run", "--target", mock.base_url, "--scenario", str(scen), "--users", "4",
                      "--max-requests", "60", "--duration", "30", "--out", str(out))
    assert r.returncode == 0, r.stdout + r.stderr
    s = read_json(only_run(out) / "summary.json")
    tok = s["tokens"]
    assert abs(tok["prompt_mean"] - tok["prompt_requested_mean"]) <= 0.05 * tok["prompt_requested_mean"], tok
    assert tok["output_mean"] == tok["output_requested_mean"]  # the mock honours max_tokens exactly
    assert not any("prompt tokens" in w for w in s["warnings"])
