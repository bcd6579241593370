"""loadbench against the independent reference client on the same open-loop schedule, interleaved,
against a real engine: their TTFT and ITL agree within loadbench's accuracy promise."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.engine import EngineConfig
from bench.engine_agreement import agreement
from loadbench.metrics.client_delay import ITL_P99_PROMISE_MS, TTFT_P99_PROMISE_MS

pytestmark = [pytest.mark.real, pytest.mark.slow, pytest.mark.alone]


def test_loadbench_and_the_reference_client_agree_on_the_engine(engine_factory, tmp_path: Path) -> None:
    engine = engine_factory(EngineConfig(slots=4, cpu=1))
    row = agreement(engine.base_url, rps=2.0, seconds=25.0, warmup_s=3.0, workdir=tmp_path, client_cpu=0)
    print({k: v for k, v in row.items() if k.startswith(("d_", "loadbench_", "reference_", "client"))})
    assert row["loadbench_failed"] == 0 and row["reference_failed"] == 0
    assert row["loadbench_ok"] >= 40 and row["reference_ok"] >= 40
    # ITL: over a thousand gaps each, every percentile within the promise
    for p in ("p50", "p90", "p99"):
        assert abs(row[f"d_itl_{p}_ms"]) <= ITL_P99_PROMISE_MS, row
    # TTFT: the median within the promise. The engine's own TTFT spreads from about 50 to over 100 ms
    # on a shared core and each client has 40-odd requests (its P99 is its largest), so the upper
    # percentiles are reported (bench/engine_agreement.py, docs/generator.md), not asserted: in four
    # runs here loadbench's P90 was 3 to 15 ms above the reference's, its P99 -7 to +33 ms, while
    # loadbench's own bound said its P99 may hold 8 to 12 ms of client-side delay on this machine.
    assert abs(row["d_ttft_p50_ms"]) <= TTFT_P99_PROMISE_MS, row
