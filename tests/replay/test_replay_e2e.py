"""Trace replay end to end: ``loadbench replay`` of a Mooncake trace against the mock's prefix cache."""

from __future__ import annotations

import random
from pathlib import Path

import orjson
import pytest

from tests.conftest import only_run, read_json, run_loadbench, samples_of

BLOCK = 64  # tokens per hash_ids block of this trace; the mock caches blocks of 16, which divides it
GROUPS = 8


def write_mooncake(path: Path, n: int) -> list[dict]:
    """``n`` requests 10 ms apart (+0..3 ms), each of 1 to 4 whole blocks. Request i belongs to group
    i % 8: its first block is the group's, the next ones one of three per group, so prefixes repeat, and
    the previous request of a group is 8 requests (40 ms at speed 2) earlier: the mock meets them in order."""
    rng = random.Random(7)
    rows = []
    for i in range(n):
        g = i % GROUPS
        blocks = rng.randint(1, 4)
        hash_ids = [g * 1000] + [g * 1000 + 1 + 10 * k + rng.randrange(3) for k in range(blocks - 1)]
        rows.append({"timestamp": 10 * i + rng.randint(0, 3), "input_length": BLOCK * blocks,
                     "output_length": rng.randint(2, 8), "hash_ids": hash_ids})
    path.write_bytes(b"\n".join(orjson.dumps(r) for r in rows) + b"\n")
    return rows


def expected_cached(rows: list[dict]) -> list[int]:
    """What a prefix cache that forgets nothing holds of each prompt: its leading blocks seen before."""
    seen: set[tuple[int, ...]] = set()
    out = []
    for r in rows:
        h = r["hash_ids"]
        hits = 0
        while hits < len(h) and tuple(h[:hits + 1]) in seen:
            hits += 1
        seen.update(tuple(h[:k + 1]) for k in range(len(h)))
        out.append(hits * BLOCK)
    return out


@pytest.mark.slow
@pytest.mark.alone
def test_a_mooncake_trace_replayed_at_speed_2_keeps_time_sizes_and_prefix_reuse(tmp_path: Path) -> None:
    rows = write_mooncake(tmp_path / "trace.jsonl", 1000)
    out = tmp_path / "results"
    r = run_loadbench("replay", str(tmp_path / "trace.jsonl"), "--speed", "2", "--block-tokens", str(BLOCK),
                      "--out", str(out), "--mock-arg=--prefix-cache-blocks=100000",
                      "--mock-arg=--prefix-block-tokens=16", "--mock-arg=--ttft-ms=5", "--mock-arg=--itl-ms=1",
                      timeout_s=300)
    assert r.returncode == 0, r.stdout + r.stderr
    run = only_run(out)
    s = read_json(run / "summary.json")
    replay = s["replay"]
    assert (replay["format"], replay["speed"], replay["scheduled"], replay["sent"], replay["dropped"]) == (
        "mooncake", 2.0, 1000, 1000, 0)
    assert "send lag behind schedule" in r.stdout
    samples = samples_of(run)
    assert len(samples) == 1000 and all(x["outcome"] == "ok" for x in samples)
    # the schedule is the trace's, halved: intended starts relative to the first
    t0 = samples[0]["intended_unix_ns"]
    assert [round((x["intended_unix_ns"] - t0) / 1e6, 3) for x in samples] == [
        round((row["timestamp"] - rows[0]["timestamp"]) / 2, 3) for row in rows]
    # the mock counts words as tokens and calibration found 1 word a token: the trace's sizes exactly
    assert [x["prompt_tokens"] for x in samples] == [row["input_length"] for row in rows]
    assert [x["output_tokens"] for x in samples] == [row["output_length"] for row in rows]
    cached = expected_cached(rows)
    assert sum(cached) > 0.4 * sum(row["input_length"] for row in rows)  # the trace does reuse prefixes
    assert [x["cached_tokens"] for x in samples] == cached
    assert (run / "plots" / "replay.png").is_file()
    # last, as it is the one figure the machine's other load can move: the generator kept the schedule
    assert replay["send_lag_ms"]["p99"] < 5.0, (replay, s["generator"])


def test_a_bad_trace_line_stops_the_replay_before_any_request(tmp_path: Path) -> None:
    trace = tmp_path / "bad.jsonl"
    trace.write_text('{"timestamp": 0, "input_length": 5, "output_length": 1}\n'
                     '{"timestamp": 9, "input_length": 5, "output_length": 0}\n')
    r = run_loadbench("replay", str(trace), "--out", str(tmp_path / "results"), "--target", "http://127.0.0.1:9/v1",
                      "--model", "m", timeout_s=60)
    assert r.returncode == 2, r.stdout + r.stderr
    assert f"{trace}:2: output_length: must be between 1 and" in r.stderr
    assert not (tmp_path / "results").exists() or not any((tmp_path / "results").iterdir())
