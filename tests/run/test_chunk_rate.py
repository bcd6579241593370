"""Worker sizing by the chunk rate: the ITL probe against a real mock, and the sizing rule."""

from __future__ import annotations

import pytest

from loadbench.config import profile_from_dict
from loadbench.plan.run import TargetSpec
from loadbench.protocol.dialect import LLMRequest, Message
from loadbench.run import auto_workers
from loadbench.run.chunk_rate import expected_chunks_per_s, median_gap_s, probe_itl_s
from loadbench.run.inputs import CHUNKS_PER_WORKER


def test_median_gap_of_known_times() -> None:
    assert median_gap_s([0, 8_000_000, 16_000_000, 24_000_000, 40_000_000]) == pytest.approx(0.008)
    assert median_gap_s([5, 5, 5, 5]) is None  # one read carried everything: no gap to measure
    assert median_gap_s([0, 1_000_000]) is None


def test_expected_chunk_rate_is_users_over_itl() -> None:
    assert expected_chunks_per_s(100, 0.008) == pytest.approx(12_500)
    assert expected_chunks_per_s(100, None) is None
    assert expected_chunks_per_s(100, 0.0) is None


def test_workers_follow_the_chunk_rate_when_the_itl_is_known() -> None:
    per_core = CHUNKS_PER_WORKER
    few_users = profile_from_dict({"users": 100})  # one worker by users (250 per worker)
    assert auto_workers(few_users, cpus=8) == 1
    fast_itl = 100 / (2.5 * per_core)  # 100 users then ask 2.5 cores' worth of chunks
    assert auto_workers(few_users, cpus=8, itl_s=fast_itl) == 3
    assert auto_workers(few_users, cpus=2, itl_s=fast_itl) == 2  # never more than the cores
    assert auto_workers(few_users, cpus=8, itl_s=0.05) == 1  # 2,000 chunks/s
    open_loop = profile_from_dict({"arrival": {"kind": "constant", "rps": 100}, "duration_s": 5})
    assert auto_workers(open_loop, cpus=8, itl_s=fast_itl) == 1  # open loop: sized by rps


def test_probe_measures_the_mock_itl(mock_factory) -> None:
    mock = mock_factory("--ttft-ms", "5", "--itl-ms", "20")
    target = TargetSpec(url=mock.base_url, model="mock-model")
    itl_s = probe_itl_s(target, LLMRequest(model="mock-model", messages=(Message("user", "hello"),)), 30.0)
    assert itl_s is not None
    assert 0.015 <= itl_s <= 0.030  # the mock's 20 ms, with room for a busy machine
