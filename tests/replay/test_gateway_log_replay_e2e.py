"""The gateway's own request log as a trace: traffic recorded by one gateway, replayed at speed 2 through a
second gateway, whose log then shows the same requests (virtual models, metadata) on half the time scale."""

from __future__ import annotations

import asyncio
import sqlite3
import statistics
import subprocess
import time
from pathlib import Path

import aiohttp
import orjson
import pytest

from loadbench.procs import ServerProcess
from tests.conftest import only_run, read_json, run_loadbench
from tests.gateway.harness import start_gateway, start_mock

N = 60


def planned_ms(i: int) -> float:
    """Three bursts of 20 requests, 10 ms apart inside a burst, the bursts 1 s apart."""
    return 1000.0 * (i // 20) + 10.0 * (i % 20)


async def original_traffic(url: str) -> None:
    async with aiohttp.ClientSession() as s:
        t0 = time.monotonic()

        async def one(i: int) -> None:
            await asyncio.sleep(max(0.0, t0 + planned_ms(i) / 1000 - time.monotonic()))
            body = {"model": "vm-a" if i % 3 else "vm-b", "messages": [{"role": "user", "content": "w " * (5 + i)}],
                    "max_tokens": 1 + i % 4, "stream": True, "stream_options": {"include_usage": True}}
            headers = {"X-Loadbench-Metadata": orjson.dumps({"team": f"t{i % 4}"}).decode()}
            async with s.post(url + "/v1/chat/completions", data=orjson.dumps(body), headers=headers) as r:
                assert r.status == 200
                await r.read()

        await asyncio.wait_for(asyncio.gather(*(one(i) for i in range(N))), 60)


def logged(db: Path, expect: int) -> list[tuple[int, str, str, int, int]]:
    """(ts_ms, model, metadata, prompt_tokens, output_tokens) of the primary rows, once ``expect`` are written."""
    deadline = time.monotonic() + 20
    while True:
        conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
        try:
            rows = conn.execute("SELECT ts_ms, model, metadata, prompt_tokens, output_tokens FROM requests"
                                " WHERE role = 'primary' ORDER BY ts_ms, id").fetchall()
        except sqlite3.OperationalError:
            rows = []
        finally:
            conn.close()
        if len(rows) >= expect or time.monotonic() > deadline:
            return rows
        time.sleep(0.2)


def gateway_config(db: Path, mock_url: str) -> dict:
    return {"targets": [{"name": "t", "url": mock_url, "model": "m"}],
            "virtual_models": [{"name": "vm-a", "targets": [{"target": "t"}]},
                               {"name": "vm-b", "targets": [{"target": "t"}]}],
            "request_log": {"path": str(db), "flush_ms": 100}}


def assert_replayed_at_half_time(original: list[tuple[int, str, str, int, int]],
                                 replayed: list[tuple[int, str, str, int, int]]) -> None:
    """``replayed`` (the second gateway's rows, without the pre-flight request) holds ``original``'s
    requests, with their virtual models, metadata and sizes, on half its time scale."""
    # the same requests: virtual model, metadata, sizes (each original request had its own prompt size, which
    # names it; requests the original log holds in the same millisecond may swap places)
    by_size = {pt: (ts, m, orjson.loads(meta), ot) for ts, m, meta, pt, ot in original}
    assert len(by_size) == N
    again = {pt: (ts, m, orjson.loads(meta), ot) for ts, m, meta, pt, ot in replayed}
    assert {pt: v[1:] for pt, v in again.items()} == {pt: v[1:] for pt, v in by_size.items()}
    # ... on half the time scale: the arrival curve compressed by the speed (gateway clocks are whole ms)
    # (up to one shift: the replay's first send may leave a little late, a fresh connection's cost)
    o0 = original[0][0]
    shift = statistics.median(again[pt][0] - (by_size[pt][0] - o0) / 2 for pt in by_size)
    errors = [abs(again[pt][0] - shift - (by_size[pt][0] - o0) / 2) for pt in by_size]
    assert statistics.median(errors) <= 3, errors
    assert max(errors) <= 25, errors


def replay_through_a_second_gateway(servers: list[ServerProcess], mock_url: str, tmp_path: Path, trace: str,
                                    original: list[tuple[int, str, str, int, int]]
                                    ) -> tuple[Path, subprocess.CompletedProcess[str]]:
    """``loadbench replay TRACE --speed 2`` through a second gateway (logging to ``b.db``), checked against
    ``original``; the run's folder and the finished command."""
    second, _ = start_gateway(servers, tmp_path / "b", gateway_config(tmp_path / "b.db", mock_url))
    out = tmp_path / "results"
    r = run_loadbench("replay", trace, "--speed", "2", "--target", second.url + "/v1",
                      "--model", "vm-a", "--out", str(out), "--no-calibrate", timeout_s=180)
    assert r.returncode == 0, r.stdout + r.stderr
    replayed = logged(tmp_path / "b.db", N + 1)
    # the run's pre-flight request (one, before the load) comes first
    assert len(replayed) == N + 1 and replayed[0][0] < replayed[1][0] - 500
    assert_replayed_at_half_time(original, replayed[1:])
    return only_run(out), r


@pytest.mark.slow
@pytest.mark.alone
def test_a_gateway_log_replayed_at_speed_2_is_the_original_on_half_the_time(servers: list[ServerProcess],
                                                                           tmp_path: Path) -> None:
    mock = start_mock(servers)
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    first, _ = start_gateway(servers, tmp_path / "a", gateway_config(tmp_path / "a.db", mock.base_url))
    asyncio.run(original_traffic(first.url))
    original = logged(tmp_path / "a.db", N)
    assert len(original) == N
    run, _ = replay_through_a_second_gateway(servers, mock.base_url, tmp_path, str(tmp_path / "a.db"), original)
    s = read_json(run / "summary.json")
    assert (s["replay"]["format"], s["replay"]["sent"], s["replay"]["dropped"]) == ("gateway", N, 0)
    assert (run / "plots" / "replay.png").is_file()
