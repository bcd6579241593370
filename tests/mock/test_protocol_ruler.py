"""The mock is the ruler in every protocol: `loadbench run --protocol P` against `loadbench mock --protocol P
--ttft-ms 80 --itl-ms 8` reads back the mock's timing within the ruler's tolerances and its usage exactly;
with several tokens a chunk, ITL is per chunk and TPOT per token; with a thinking block, TTFT and TTFT to
the answer differ by the block's time."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from loadbench.run.target import mock_base_url
from tests.conftest import only_run, read_json, run_loadbench
from tests.mock.test_protocols import PROTOCOLS

TTFT_MS, ITL_MS, OUTPUT, PROMPT = 80.0, 8.0, 64, 32
# The ruler's tolerances (issue 20): TTFT P50 within 1 ms of the mock's setting, ITL P50 within 0.5 ms. What a
# TTFT P50 holds beyond the setting on a quiet 2-core host: the worker's own work before its request's bytes
# leave (~0.25 ms), the mock's wake-up and aiohttp's parse up to its handler (~0.3 ms), the mock's timer
# (~0.1 ms: a timerfd; uvloop's whole-millisecond timers added 0.5-1.2 ms) and the way back (~0.05 ms). On a
# host whose other processes keep both cores busy every wake-up waits for a core and the P50 reads 1-2 ms
# over: the test is marked to run alone.
TTFT_TOLERANCE_MS = 1.0
ITL_TOLERANCE_MS = 0.5
KEYS = {"anthropic": "ANTHROPIC_API_KEY", "azure": "AZURE_OPENAI_API_KEY", "gemini": "GEMINI_API_KEY"}


def _configure(base_url: str, **settings: object) -> None:
    import urllib.request

    root = base_url.rstrip("/").removesuffix("/v1")
    request = urllib.request.Request(root + "/mock/config", data=orjson.dumps(settings), method="POST",
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as resp:
        assert resp.status == 200


def _run(protocol: str, target: str, tmp_path: Path, name: str) -> dict:
    scenario = tmp_path / "ruler.yaml"
    scenario.write_text(f"name: ruler\nprompt_tokens: {PROMPT}\noutput_tokens: {OUTPUT}\n")
    out = tmp_path / name
    region = ("--region", "us-east-1") if protocol == "bedrock" else ()
    r = run_loadbench("run", "--protocol", protocol, *region, "--target", target, "--model", "ruler-model",
                      "--scenario", str(scenario), "--users", "2", "--duration", "10", "--ramp-up", "0",
                      "--workers", "1", "--no-calibrate", "--out", str(out), timeout_s=180)
    assert r.returncode in (0, 3), r.stdout + r.stderr
    return read_json(only_run(out) / "summary.json")


@pytest.mark.alone
@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_every_protocol_reads_the_ruler(protocol: str, mock_factory, tmp_path: Path,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    if protocol in KEYS:
        monkeypatch.setenv(KEYS[protocol], "ruler-key")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDRULER")  # bedrock signs every request (the mock reads no signature)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "ruler-secret")
    mock = mock_factory("--protocol", protocol, "--ttft-ms", str(TTFT_MS), "--itl-ms", str(ITL_MS))
    target = mock_base_url(mock.base_url, protocol)

    plain = _run(protocol, target, tmp_path, "plain")
    _configure(mock.base_url, tokens_per_chunk=4)
    per_chunk = _run(protocol, target, tmp_path, "per-chunk")
    _configure(mock.base_url, tokens_per_chunk=1, thinking_tokens=10)
    thinking = _run(protocol, target, tmp_path, "thinking")

    # usage, exactly (whatever the machine's load)
    for s in (plain, per_chunk, thinking):
        assert s["requests"]["ok"] >= 24 and s["requests"]["failed"] == 0, s["requests"]
        assert s["tokens"]["source"] == "usage" and s["tokens"]["prompt_mean"] == PROMPT  # the words sent
    assert (plain["tokens"]["output_mean"], plain["tokens"]["per_chunk_mean"]) == (OUTPUT, 1.0)
    assert (per_chunk["tokens"]["output_mean"], per_chunk["tokens"]["per_chunk_mean"]) == (OUTPUT, 4.0)
    reported = None if protocol == "bedrock" else 10  # Bedrock's usage has no reasoning count
    assert (thinking["tokens"]["output_mean"], thinking["tokens"]["reasoning_mean"]) == (OUTPUT + 10, reported)

    # timing: the ruler's tolerances
    m = plain["metrics"]
    assert m["ttft_answer_ms"]["p50"] == m["ttft_ms"]["p50"]  # no thinking: the first token is the answer's
    assert abs(m["itl_ms"]["p50"] - ITL_MS) <= ITL_TOLERANCE_MS, m["itl_ms"]
    m = per_chunk["metrics"]
    assert abs(m["itl_ms"]["p50"] - ITL_MS) <= ITL_TOLERANCE_MS, m["itl_ms"]  # per chunk
    assert abs(m["tpot_ms"]["p50"] - ITL_MS / 4) <= 0.2, m["tpot_ms"]  # per token, from the usage
    m = thinking["metrics"]
    block_ms = m["ttft_answer_ms"]["p50"] - m["ttft_ms"]["p50"]
    assert abs(block_ms - 10 * ITL_MS) <= 1.0, (m["ttft_ms"], m["ttft_answer_ms"])
    for s in (plain, thinking):
        assert abs(s["metrics"]["ttft_ms"]["p50"] - TTFT_MS) <= TTFT_TOLERANCE_MS, s["metrics"]["ttft_ms"]
