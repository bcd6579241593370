"""Trace replay end to end: ``loadbench replay`` of an Azure LLM inference trace CSV (``TIMESTAMP`` with
Azure's seven fractional digits, ``ContextTokens``, ``GeneratedTokens``) against the mock: every request
sent at its own timestamp scaled by the speed, with the trace's prompt and output sizes."""

from __future__ import annotations

import datetime as dt
import random
from pathlib import Path

import pytest

from tests.conftest import only_run, read_json, run_loadbench, samples_of

N = 400
SPEED = 2.0


def write_azure(path: Path, n: int) -> list[tuple[float, int, int]]:
    """``n`` requests 0 to 80 ms apart (tenths of a microsecond, as Azure writes them; two requests share
    a timestamp), sizes as in Azure's code trace, written a little out of order; (ms from the first,
    context tokens, generated tokens) in time order, to the microsecond Python reads."""
    rng = random.Random(11)
    start = dt.datetime(2023, 11, 16, 18, 15, 46, 680590)
    at_100ns = 0
    rows = []
    for i in range(n):
        at_100ns += 0 if i == 7 else rng.randint(0, 800_000)
        rows.append((at_100ns, rng.randint(20, 1500), rng.randint(1, 40)))
    lines = []
    for at, ctx, gen in rows:
        when = start + dt.timedelta(microseconds=at // 10)
        lines.append(f"{when:%Y-%m-%d %H:%M:%S}.{when.microsecond:06d}{at % 10},{ctx},{gen}")
    lines[10], lines[11] = lines[11], lines[10]  # a trace need not be sorted
    path.write_text("TIMESTAMP,ContextTokens,GeneratedTokens\n" + "\n".join(lines) + "\n")
    return [((at // 10 - rows[0][0] // 10) / 1000.0, ctx, gen) for at, ctx, gen in rows]


@pytest.mark.slow
@pytest.mark.alone
def test_an_azure_trace_replayed_at_speed_2_keeps_its_arrival_times_and_token_counts(tmp_path: Path) -> None:
    rows = write_azure(tmp_path / "AzureLLMInferenceTrace_code.csv", N)
    out = tmp_path / "results"
    r = run_loadbench("replay", str(tmp_path / "AzureLLMInferenceTrace_code.csv"), "--speed", str(SPEED),
                      "--out", str(out), "--mock-arg=--ttft-ms=5", "--mock-arg=--itl-ms=1", timeout_s=300)
    assert r.returncode == 0, r.stdout + r.stderr
    run = only_run(out)
    s = read_json(run / "summary.json")
    replay = s["replay"]
    assert (replay["format"], replay["speed"], replay["scheduled"], replay["sent"], replay["dropped"]) == (
        "azure", SPEED, N, N, 0)
    samples = samples_of(run)
    assert len(samples) == N and all(x["outcome"] == "ok" for x in samples)
    # each request at its own timestamp, divided by the speed (intended starts from the first, within a
    # microsecond: the reader keeps six of Azure's seven digits, in ms since the epoch as a float, whose
    # step there is a quarter of a microsecond), with the trace's own context and generated tokens: the
    # mock counts words as tokens, and the calibration found one word a token
    t0 = samples[0]["intended_unix_ns"]
    got = sorted((x["intended_unix_ns"] - t0, x["prompt_tokens"], x["output_tokens"]) for x in samples)
    want = sorted((round(ms * 1e6 / SPEED), ctx, gen) for ms, ctx, gen in rows)
    assert [g[1:] for g in got] == [w[1:] for w in want]
    assert max(abs(g[0] - w[0]) for g, w in zip(got, want, strict=True)) <= 1000
    assert sum(x["prompt_tokens"] for x in samples) == sum(ctx for _, ctx, _ in rows)
    assert (run / "plots" / "replay.png").is_file()
    # last, as it is the one figure the machine's other load can move: each send left on its time
    assert replay["send_lag_ms"]["p99"] < 5.0, (replay, s["generator"])
