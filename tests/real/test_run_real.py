"""`loadbench run` against a real engine (llama.cpp's server): closed and open loop, the server's own
usage, prompt calibration against its real tokenizer, and the engine killed mid-run."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bench.engine import MODEL_NAME
from loadbench.workers.backoff import BASE_S
from tests.conftest import REPO, only_run, read_json, run_loadbench, samples_of, write_profile

pytestmark = [pytest.mark.real, pytest.mark.slow]
OUTPUT_TOKENS = 24
SCENARIO = f"name: real\napi: chat\nprompt_tokens: 200\noutput_tokens: {OUTPUT_TOKENS}\n"


def _scenario(tmp_path: Path) -> Path:
    return write_profile(tmp_path, SCENARIO, "scenario.yaml")


def _exact_usage(run: Path) -> dict:
    """Every request succeeded and the server's usage counted exactly max_tokens output tokens."""
    summary = read_json(run / "summary.json")
    assert summary["requests"]["failed"] == 0, summary["requests"]
    ok = [s for s in samples_of(run) if s["outcome"] == "ok"]
    assert ok and len(ok) == sum(1 for s in samples_of(run) if s["outcome"] != "interrupted")
    assert {s["tokens_source"] for s in ok} == {"usage"}
    assert {s["output_tokens"] for s in ok} == {OUTPUT_TOKENS}
    # one content chunk per token: no token is held back or hidden (all are printable text)
    assert {s["chunks"] for s in ok} == {OUTPUT_TOKENS}
    assert summary["tokens"]["source"] == "usage"
    return summary


def test_closed_loop_run_exact_usage_and_calibrated_prompts(engine_factory, tmp_path: Path) -> None:
    engine = engine_factory(slots=4)
    out = tmp_path / "results"
    r = run_loadbench("run", "--target", engine.base_url, "--model", MODEL_NAME, "--users", "3",
                      "--ramp-up", "0", "--duration", "6", "--scenario", str(_scenario(tmp_path)),
                      "--out", str(out), "--name", "real-closed")
    assert r.returncode == 0, r.stdout + r.stderr
    # calibration converged against the engine's tokenizer (more than one token per word here)
    assert "prompt calibration: scale" in r.stdout and "did not settle" not in r.stdout, r.stdout
    run = only_run(out)
    summary = _exact_usage(run)
    tokens = summary["tokens"]
    extra = read_json(run / "plan.json")["workload"]  # the calibration the plan carried to the workers
    # the engine's tokenizer splits loadbench's words into about 2.4 tokens each: calibration scaled
    # the text to match, and measured the chat template's tokens apart
    assert 0.2 < extra["prompt_scale"] < 0.8, extra
    overhead = extra["prompt_overhead"]["default"]
    assert 5 <= overhead <= 40 and tokens["prompt_requested_mean"] == 200 + overhead, (tokens, extra)
    # what the engine counted is what was asked for
    assert abs(tokens["prompt_mean"] - tokens["prompt_requested_mean"]) <= 0.05 * 200, tokens
    assert not any(w.startswith("prompt tokens: requested") for w in summary["warnings"])
    assert summary["requests"]["ok"] >= 10
    assert summary["metrics"]["ttft_ms"]["p50"] > 0 and summary["metrics"]["itl_ms"]["count"] > 0


def test_open_loop_run_exact_usage(engine_factory, tmp_path: Path) -> None:
    engine = engine_factory(slots=4)
    profile = write_profile(tmp_path, "name: real-open\narrival: {kind: poisson, rps: 3}\nduration_s: 6\n"
                                      "max_in_flight: 16\nseed: 3\n")
    out = tmp_path / "results"
    r = run_loadbench("run", "--target", engine.base_url, "--model", MODEL_NAME, "--profile", str(profile),
                      "--scenario", str(_scenario(tmp_path)), "--out", str(out))
    assert r.returncode == 0, r.stdout + r.stderr
    run = only_run(out)
    summary = _exact_usage(run)
    assert summary["requests"]["dropped"] == 0
    assert 8 <= summary["requests"]["total"] <= 36  # about 18 arrivals in 6 s
    assert summary["metrics"]["queue_ms"]["count"] == summary["requests"]["ok"]


def test_engine_killed_mid_run_backs_off_and_cannot_be_judged(engine_factory, tmp_path: Path) -> None:
    """kill -9 of the engine 6 s into a 16 s run of 4 users: the refused requests are counted and
    backed off (0.5 s doubling, recorded on each sample), and the run exits 3: it cannot be judged."""
    engine = engine_factory(slots=4)
    profile = write_profile(tmp_path, "name: real-kill\nusers: 4\nramp_up_s: 0\nduration_s: 16\n")
    out = tmp_path / "results"
    proc = subprocess.Popen([sys.executable, "-m", "loadbench", "run", "--target", engine.base_url, "--model",
                             MODEL_NAME, "--profile", str(profile), "--scenario", str(_scenario(tmp_path)),
                             "--no-calibrate", "--out", str(out)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=REPO,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not list(out.glob("*/status.json")):
            time.sleep(0.2)
        status = read_json(next(out.glob("*/status.json")))
        start = status.get("load_start_unix_s") or time.time()
        time.sleep(max(0.0, start + 6 - time.time()))
        killed_unix_s = time.time()
        os.kill(engine.proc.pid, signal.SIGKILL)
        output, _ = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 3, output
    assert "the target was lost" in output, output
    run = only_run(out)
    samples = samples_of(run)
    refused = [s for s in samples if s["outcome"] == "connection_error"]
    ok = [s for s in samples if s["outcome"] == "ok"]
    assert ok and refused
    # every refused request is recorded with its user's wait; a fixed 0.25 s pause sent 163 in the
    # last 10 s of this run; with the backoff each user sends at most one per 0.5, 1, 2, 4, 8 s
    assert all(s["backoff_us"] and s["backoff_us"] >= BASE_S * 1e6 for s in refused), refused[:3]
    assert len(refused) <= 4 * 6, len(refused)
    assert max(s["backoff_us"] for s in refused) >= 4 * BASE_S * 1e6
    summary = read_json(run / "summary.json")
    assert summary["requests"]["by_outcome"]["connection_error"] == len(refused)  # no warm-up: all measured
    assert any("backoff" in w for w in summary["warnings"])
    print(f"kill test: killed {killed_unix_s - start:.1f} s into the load; ok {len(ok)}, refused "
          f"{len(refused)}, other {len(samples) - len(ok) - len(refused)}, exit {proc.returncode}")
